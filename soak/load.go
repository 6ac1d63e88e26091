package soak

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// tp is a (table, partition); tpo an offset in it.
type tp struct {
	table string
	part  int
}

type tpo struct {
	tp
	off uint64
}

// event is one event sent, known by its payload's hash (payloads are
// unique).
type event struct {
	tp
	key     string // idempotency key, "" if none
	ts      int64  // timestamp_ms sent, 0 if none (the server's time)
	acked   bool
	off     uint64 // the acked offset
	iceberg int    // times found in the Iceberg scan
	hot     bool   // found in the hot tier at the end
}

// request is one write request; a keyed one that got no answer is kept
// and sent again, byte for byte, after the restart.
type request struct {
	table    string
	bulk     bool
	keyed    bool
	body     []byte
	events   []uint64 // payload hashes, in request order
	attempts int      // sends so far
}

// ledger is every event sent and every ack. Guarded by harness.mu.
type ledger struct {
	events  map[uint64]*event // payload hash → event
	byOff   map[tpo]uint64    // acked offset → payload hash
	maxAck  map[tp]uint64     // highest offset acked so far
	start   map[tp]uint64     // high watermark when this cycle's server started
	pending []*request        // keyed, not acked: sent again after the restart
	acks    map[int][]tpo     // cycle → offsets acked in it (until checked)
}

func newLedger() ledger {
	return ledger{
		events: map[uint64]*event{}, byOff: map[tpo]uint64{}, maxAck: map[tp]uint64{},
		start: map[tp]uint64{}, acks: map[int][]tpo{},
	}
}

func payloadHash(b []byte) uint64 {
	f := fnv.New64a()
	f.Write(b)
	return f.Sum64()
}

// worker is one producer: its requests are sequential.
type worker struct {
	h    *harness
	id   int
	rng  *rand.Rand
	last map[tp]uint64 // the last fresh offset this worker was acked, per partition
}

func newWorker(h *harness, id int, seed uint64) *worker {
	return &worker{h: h, id: id, rng: rand.New(rand.NewPCG(seed, uint64(id))), last: map[tp]uint64{}}
}

// loop sends requests until ctx ends: first the retries waiting from the
// cycles before, then new requests.
func (w *worker) loop(ctx context.Context, base string) {
	for ctx.Err() == nil {
		req := w.h.takePending()
		if req == nil {
			req = w.newRequest()
		}
		d := time.Duration(w.rng.IntN(6)) * time.Millisecond // a modest load: the machine is shared
		if !w.send(ctx, base, req) {
			d = 20 * time.Millisecond // the server is down (killed), or busy
		}
		if d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
	}
}

// retryAll sends every pending request once.
func (w *worker) retryAll(ctx context.Context, base string) {
	for n := w.h.pendingCount(); n > 0 && ctx.Err() == nil; n-- {
		req := w.h.takePending()
		if req == nil {
			return
		}
		w.send(ctx, base, req)
	}
}

// newRequest makes a request: single (40 %) or bulk of 2-12 events over
// several partitions; 70 % carry an idempotency key on every event.
func (w *worker) newRequest() *request {
	h := w.h
	req := &request{table: h.tables[w.rng.IntN(len(h.tables))], bulk: w.rng.IntN(5) >= 2, keyed: w.rng.IntN(10) < 7}
	n := 1
	if req.bulk {
		n = 2 + w.rng.IntN(11)
	}
	id := h.nextID.Add(1)
	var b bytes.Buffer
	if req.bulk {
		b.WriteString(`{"records":[`)
	}
	var filler [24]byte
	evs := make([]*event, n)
	for i := range n {
		part := w.rng.IntN(h.cfg.Partitions)
		for j := range filler {
			filler[j] = byte(w.rng.Uint32())
		}
		// Unique, and nothing to escape in JSON.
		payload := fmt.Sprintf("soak-%s-p%d-r%d-e%d-w%d-%s", req.table, part, id, i, w.id, hex.EncodeToString(filler[:]))
		ev := &event{tp: tp{req.table, part}}
		if req.keyed {
			ev.key = fmt.Sprintf("k%d.%d", id, i)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"payload":%q,"partition":%d`, payload, part)
		if ev.key != "" {
			fmt.Fprintf(&b, `,"idempotency_key":%q`, ev.key)
		}
		if w.rng.IntN(4) == 0 {
			// A timestamp of the last 6 hours: more partition-hours in
			// Iceberg, so more files to flush and compact.
			ev.ts = time.Now().UnixMilli() - w.rng.Int64N(6*3600*1000)
			fmt.Fprintf(&b, `,"timestamp_ms":%d`, ev.ts)
		}
		b.WriteByte('}')
		req.events = append(req.events, payloadHash([]byte(payload)))
		evs[i] = ev
	}
	if req.bulk {
		b.WriteString(`]}`)
	}
	req.body = b.Bytes()
	h.mu.Lock()
	for i, x := range req.events {
		if _, dup := h.led.events[x]; dup {
			h.res.violationLocked("BUG: payload hash collision (%x)", x)
		}
		h.led.events[x] = evs[i]
		h.res.Events++
	}
	h.mu.Unlock()
	return req
}

// post sends req once and returns the offsets of a 202 answer, or the
// status and body of another.
func (h *harness) post(ctx context.Context, base string, req *request) (offs []uint64, status int, body []byte, err error) {
	path := base + "/tables/" + req.table
	if req.bulk {
		path += "/bulk"
	}
	hreq, err := http.NewRequestWithContext(ctx, "POST", path, bytes.NewReader(req.body))
	if err != nil {
		return nil, 0, nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(hreq)
	if err != nil {
		return nil, 0, nil, err
	}
	body, err = appendAll(nil, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 202 {
		return nil, resp.StatusCode, body, err
	}
	if offs, err = parseOffsets(req, body); err != nil {
		h.violation("answer to %s: %v: %.200s", path, err, body)
	}
	return offs, resp.StatusCode, body, err
}

// send sends req and records what came back. One keyed request in 20 is
// sent twice at once, as by a client that retries on a timeout while
// the first attempt is still being served: both answers must carry the
// same offsets. It reports whether req was acknowledged.
func (w *worker) send(ctx context.Context, base string, req *request) bool {
	h := w.h
	retry := req.attempts > 0
	req.attempts++
	var offs []uint64
	var status int
	var body []byte
	var err error
	if !req.keyed || w.rng.IntN(20) != 0 {
		offs, status, body, err = h.post(ctx, base, req)
	} else {
		var offs2 []uint64
		var status2 int
		var err2 error
		var wg sync.WaitGroup
		wg.Go(func() { offs2, status2, _, err2 = h.post(ctx, base, req) })
		offs, status, body, err = h.post(ctx, base, req)
		wg.Wait()
		ok1, ok2 := err == nil && status == 202, err2 == nil && status2 == 202
		h.mu.Lock()
		h.res.Requests++
		h.res.Twins++
		if ok1 && ok2 {
			h.res.TwinsBothAcked++
			if !slices.Equal(offs, offs2) {
				h.res.Duplicates++
				h.res.violationLocked("cycle %d: the same keyed request sent twice at once was acked at offsets %v and %v", h.cycle, offs, offs2)
			}
		}
		h.mu.Unlock()
		if !ok1 && ok2 {
			offs, status, err = offs2, status2, nil
		}
	}
	path := base + "/tables/" + req.table

	h.mu.Lock()
	defer h.mu.Unlock()
	h.res.Requests++
	if retry && req.attempts == 2 {
		h.res.Retried++
		h.res.RetriedEvents += int64(len(req.events))
	}
	if err != nil || status != 202 {
		if err == nil {
			h.res.Non202++
			if status != 503 {
				h.res.violationLocked("cycle %d: %s answered %d: %.200s", h.cycle, path, status, body)
			}
		}
		if req.keyed {
			h.led.pending = append(h.led.pending, req)
		} else if req.attempts == 1 {
			h.res.UnackedUnkeyed++
			h.res.UnackedUnkeyedEvents += int64(len(req.events))
		}
		return false
	}
	h.res.AckedRequests++
	for i, x := range req.events {
		ev := h.led.events[x]
		off := offs[i]
		k := tpo{ev.tp, off}
		if ev.acked {
			h.res.violationLocked("cycle %d: event %x of %v acked twice (offsets %d and %d)", h.cycle, x, ev.tp, ev.off, off)
			continue
		}
		ev.acked, ev.off = true, off
		h.res.AckedEvents++
		if prev, ok := h.led.byOff[k]; ok && prev != x {
			h.res.ReusedOffsets++
			h.res.violationLocked("cycle %d: offset %d of %s/%d acked for two payloads", h.cycle, off, ev.table, ev.part)
		}
		h.led.byOff[k] = x
		h.led.maxAck[ev.tp] = max(h.led.maxAck[ev.tp], off)
		h.led.acks[h.cycle] = append(h.led.acks[h.cycle], k)
		start := h.led.start[ev.tp]
		switch {
		case retry && off <= start:
			h.res.RetriedOriginal++ // it had landed before the kill: the original offset
		case off <= start:
			// A first attempt is a fresh write: above every offset of the
			// log when this server started.
			h.res.OrderViolations++
			h.res.violationLocked("cycle %d: fresh write to %s/%d got offset %d, not above the high watermark %d at start",
				h.cycle, ev.table, ev.part, off, start)
		case !retry:
			if last := w.last[ev.tp]; off <= last {
				h.res.OrderViolations++
				h.res.violationLocked("cycle %d: worker %d: %s/%d offset %d acked after %d", h.cycle, w.id, ev.table, ev.part, off, last)
			}
			w.last[ev.tp] = off
		}
	}
	return true
}

func appendAll(dst []byte, r io.Reader) ([]byte, error) {
	b := bytes.NewBuffer(dst)
	_, err := b.ReadFrom(io.LimitReader(r, 16<<20))
	return b.Bytes(), err
}

// parseOffsets reads the offsets of a 202 answer, in request order.
func parseOffsets(req *request, body []byte) ([]uint64, error) {
	if !req.bulk {
		var r struct {
			Offset    *uint64
			Partition *int
		}
		if err := json.Unmarshal(body, &r); err != nil || r.Offset == nil || r.Partition == nil {
			return nil, fmt.Errorf("not a single-write answer (%v)", err)
		}
		return []uint64{*r.Offset}, nil
	}
	var r struct {
		Offsets []uint64
		Count   int
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	if len(r.Offsets) != len(req.events) || r.Count != len(req.events) {
		return nil, fmt.Errorf("%d offsets (count %d) for %d events", len(r.Offsets), r.Count, len(req.events))
	}
	return r.Offsets, nil
}

func (h *harness) takePending() *request {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.led.pending)
	if n == 0 {
		return nil
	}
	req := h.led.pending[n-1]
	h.led.pending = h.led.pending[:n-1]
	return req
}

func (h *harness) pendingCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.led.pending)
}

// flusher asks for a flush of a random table every 0.3-0.9 s, and one
// time in four for a compaction instead, so that both also run on
// request and kills land in them.
func (h *harness) flusher(ctx context.Context, base string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(300*time.Millisecond + time.Duration(rng.Int64N(int64(600*time.Millisecond)))):
		}
		op := "flush"
		if rng.IntN(4) == 0 {
			op = "compact"
		}
		h.postCold(base, h.tables[rng.IntN(len(h.tables))], op)
	}
}

// postCold sends POST /tables/{t}/flush or /compact; while it is in
// flight a kill counts as a kill during a flush or compaction.
func (h *harness) postCold(base, table, op string) (int, []byte, error) {
	n := &h.flushing
	if op == "compact" {
		n = &h.compacting
	}
	n.Add(1)
	defer n.Add(-1)
	resp, err := h.coldClient.Post(base+"/tables/"+table+"/"+op, "", nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := appendAll(nil, resp.Body)
	h.mu.Lock()
	switch {
	case resp.StatusCode == 200 && op == "flush":
		h.res.Flushes++
	case resp.StatusCode == 200:
		h.res.Compactions++
	case resp.StatusCode == 409 && op == "compact":
		h.res.CompactionsBusy++ // one is running already (in the background)
	default:
		h.res.ColdErrors++
		h.res.LastColdError = fmt.Sprintf("POST /tables/%s/%s: %d %.300s", table, op, resp.StatusCode, b)
	}
	h.mu.Unlock()
	return resp.StatusCode, b, err
}

// watermarks reads GET /tables/{t}/watermark: per partition, the flushed
// watermark and the high watermark.
func (h *harness) watermarks(ctx context.Context, base, table string) (flushed, high map[int]uint64, err error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/tables/"+table+"/watermark", nil)
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var w struct {
		Partitions map[string]struct {
			Watermark uint64 `json:"watermark"`
			High      uint64 `json:"high_watermark"`
		}
	}
	b, _ := appendAll(nil, resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(b, &w) != nil {
		return nil, nil, fmt.Errorf("GET watermark: %d %.200s", resp.StatusCode, b)
	}
	flushed, high = map[int]uint64{}, map[int]uint64{}
	for k, v := range w.Partitions {
		p, err := strconv.Atoi(k)
		if err != nil {
			return nil, nil, fmt.Errorf("GET watermark: partition %q", k)
		}
		flushed[p], high[p] = v.Watermark, v.High
	}
	return flushed, high, nil
}

// hotRecord is one record of a hot-tier read.
type hotRecord struct {
	Sequence uint64 `json:"sequence"`
	Payload  string `json:"payload"`
	Key      string `json:"idempotency_key"`
}

// readHot reads partition p of table from offset from on, up to and
// including offset to (0: to the end), in pages.
func (h *harness) readHot(ctx context.Context, base, table string, p int, from, to uint64, fn func(hotRecord)) error {
	for pages := 0; pages < 100000; pages++ {
		url := fmt.Sprintf("%s/tables/%s?partition=%d&offset=%d&limit=2000&fields=sequence,payload,idempotency_key", base, table, p, from)
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := h.client.Do(req)
		if err != nil {
			return err
		}
		b, _ := appendAll(nil, resp.Body)
		resp.Body.Close()
		var r struct {
			Records []hotRecord
			HasMore bool `json:"has_more"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(b, &r) != nil {
			return fmt.Errorf("GET %s: %d %.200s", url, resp.StatusCode, b)
		}
		for _, rec := range r.Records {
			if rec.Sequence < from {
				return fmt.Errorf("GET %s returned offset %d", url, rec.Sequence)
			}
			fn(rec)
			from = rec.Sequence + 1
		}
		if len(r.Records) == 0 || !r.HasMore || (to > 0 && from > to) {
			return nil
		}
	}
	return fmt.Errorf("read of %s/%d does not end", table, p)
}

// checkHot runs right after a restart, before any write: the high
// watermarks must cover every acked offset, and the events acked in
// cycle c must read back from the hot tier unless they were flushed
// (then the Iceberg scan at the end checks them).
func (h *harness) checkHot(ctx context.Context, c int) {
	start := map[tp]uint64{}
	for _, t := range h.tables {
		_, high, err := h.watermarks(ctx, h.srv.base, t)
		if err != nil {
			h.violation("after the restart: %v", err)
			continue
		}
		for p, v := range high {
			start[tp{t, p}] = v
		}
	}
	h.mu.Lock()
	h.led.start = start
	for k, m := range h.led.maxAck {
		if start[k] < m {
			h.res.Lost++
			h.res.violationLocked("cycle %d: after the restart %s/%d has high watermark %d, below the acked offset %d",
				h.cycle, k.table, k.part, start[k], m)
		}
	}
	acks := h.led.acks[c]
	delete(h.led.acks, c)
	h.mu.Unlock()

	byTP := map[tp][]uint64{}
	for _, k := range acks {
		byTP[k.tp] = append(byTP[k.tp], k.off)
	}
	for k, offs := range byTP {
		slices.Sort(offs)
		got := map[uint64]uint64{}
		err := h.readHot(ctx, h.srv.base, k.table, k.part, offs[0], offs[len(offs)-1], func(r hotRecord) {
			got[r.Sequence] = payloadHash([]byte(r.Payload))
		})
		if err != nil {
			h.violation("hot read of %s/%d: %v", k.table, k.part, err)
			continue
		}
		flushed, _, err := h.watermarks(ctx, h.srv.base, k.table) // after the read
		if err != nil {
			h.violation("after the restart: %v", err)
			continue
		}
		h.mu.Lock()
		for _, off := range offs {
			want := h.led.byOff[tpo{k, off}]
			x, ok := got[off]
			switch {
			case ok && x == want:
				h.res.HotChecked++
			case ok:
				h.res.ReusedOffsets++
				h.res.violationLocked("cycle %d: hot tier %s/%d offset %d holds another payload than the one acked in cycle %d",
					h.cycle, k.table, k.part, off, c)
			case off > flushed[k.part]:
				h.res.Lost++
				h.res.violationLocked("cycle %d: %s/%d offset %d (acked in cycle %d) is neither in the hot tier nor flushed (watermark %d)",
					h.cycle, k.table, k.part, off, c, flushed[k.part])
			default:
				h.res.HotFlushed++ // flushed and deleted: checked in Iceberg at the end
			}
		}
		h.mu.Unlock()
	}
}
