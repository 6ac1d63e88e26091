package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/valyala/fastjson"
)

// ConsistencyResult is what the consistency scenario checked.
type ConsistencyResult struct {
	Acked      int      `json:"acked"`
	ReadBack   int      `json:"read_back"`
	Partitions int      `json:"partitions"`
	Violations []string `json:"violations,omitempty"`
}

// maxViolations bounds the violations a report lists.
const maxViolations = 20

// checkConsistency verifies, after the writes: each worker's offsets grow
// per partition in the order it was acked them (a worker's requests are
// sequential); no offset was acked twice; and every acked offset reads
// back with the payload that was sent, offsets increasing along the read.
func checkConsistency(ctx context.Context, cfg *Config, ws []*worker) *ConsistencyResult {
	r := &ConsistencyResult{}
	bad := func(format string, args ...any) {
		if len(r.Violations) < maxViolations {
			r.Violations = append(r.Violations, fmt.Sprintf(format, args...))
		} else if len(r.Violations) == maxViolations {
			r.Violations = append(r.Violations, "… (more violations not listed)")
		}
	}
	// want[partition][offset] = payload id.
	want := map[uint32]map[uint64]string{}
	for _, w := range ws {
		last := map[uint32]uint64{}
		for _, a := range w.acks {
			if prev, ok := last[a.partition]; ok && a.offset <= prev {
				bad("worker %d partition %d: offset %d acked after %d (order not kept)", w.id, a.partition, a.offset, prev)
			}
			last[a.partition] = a.offset
			m := want[a.partition]
			if m == nil {
				m = map[uint64]string{}
				want[a.partition] = m
			}
			id := payloadID(cfg.RunTag, w.id, a.seq)
			if other, dup := m[a.offset]; dup {
				bad("partition %d offset %d acked twice (%s and %s)", a.partition, a.offset, other, id)
			}
			m[a.offset] = id
			r.Acked++
		}
		if f := w.failed.Load(); f > 0 {
			bad("worker %d: %d failed requests (last: %v)", w.id, f, w.lastErr)
		}
	}
	r.Partitions = len(want)
	c := newConn(cfg.Target, cfg.Timeout)
	defer c.close()
	rb := requestBuilder{host: cfg.Target}
	var p fastjson.Parser
	deadline := time.Now().Add(cfg.Timeout + time.Duration(r.Acked/1000)*time.Second)
	for part, m := range want {
		offs := make([]uint64, 0, len(m))
		for o := range m {
			offs = append(offs, o)
		}
		slices.Sort(offs)
		next := offs[0]
		var prevSeen uint64
		seen := map[uint64]bool{}
		// Page through [first, last]; every page is bounded, and so is the
		// number of pages (by the offsets left and the deadline).
		for pages := 0; next <= offs[len(offs)-1] && pages < len(offs)+1; pages++ {
			if ctx.Err() != nil || time.Now().After(deadline) {
				bad("partition %d: read-back did not finish in time", part)
				break
			}
			path := "/tables/" + cfg.Table + "?partition=" + strconv.Itoa(int(part)) +
				"&offset=" + strconv.FormatUint(next, 10) + "&limit=5000&fields=sequence,payload"
			res, err := c.do(rb.build("GET", path, "", "", nil))
			if err != nil || res.Status != 200 {
				bad("partition %d: read from %d: %v %v", part, next, err, statusError(res))
				break
			}
			v, err := p.ParseBytes(res.Body)
			if err != nil {
				bad("partition %d: read from %d: invalid JSON: %v", part, next, err)
				break
			}
			recs := v.GetArray("records")
			if len(recs) == 0 {
				break
			}
			for _, rec := range recs {
				off := rec.GetUint64("sequence")
				if off <= prevSeen {
					bad("partition %d: read returned offset %d after %d", part, off, prevSeen)
				}
				prevSeen = off
				id, ok := m[off]
				if !ok {
					continue // another producer's event, or one never acked
				}
				seen[off] = true
				if pl := rec.GetStringBytes("payload"); len(pl) != cfg.Size {
					bad("partition %d offset %d: payload %.40q… of %d B, want %d B", part, off, pl, len(pl), cfg.Size)
				} else if got, _ := PayloadID(pl); got != id {
					bad("partition %d offset %d: payload %.40q… carries id %q, want %s", part, off, pl, got, id)
				}
				r.ReadBack++
			}
			next = prevSeen + 1
		}
		missing := 0
		for _, o := range offs {
			if !seen[o] {
				if missing < 3 {
					bad("partition %d: acked offset %d not read back", part, o)
				}
				missing++
			}
		}
		if missing > 3 {
			bad("partition %d: %d acked offsets not read back in all", part, missing)
		}
	}
	if r.Acked == 0 {
		bad("no write was acknowledged")
	}
	return r
}

// BackpressureResult is what the backpressure scenario saw.
type BackpressureResult struct {
	OverloadSecs      float64 `json:"overload_secs"`
	OverloadAccepted  int64   `json:"overload_accepted"`
	OverloadRejected  int64   `json:"overload_rejected"` // 503
	MissingRetryAfter int64   `json:"missing_retry_after"`
	RecoveryMs        float64 `json:"recovery_ms"` // from the end of the overload to the first 202
	RecoveryRequests  int64   `json:"recovery_requests"`
	RecoveryAccepted  int64   `json:"recovery_accepted"`
	Recovered         bool    `json:"recovered"`
}

// runBackpressure overloads the server for two thirds of the duration
// with cfg.Conns connections of ~1 MiB bulk bodies (more bytes in flight
// than its default 64 MiB budget), then, with the load gone, sends single
// writes from one connection for the last third and checks that the
// server accepts them again within 5 s and keeps accepting (≥ 99 %). A
// 503 without Retry-After is a violation too.
//
// With acks (aw), the recovery writes carry ids too, as worker cfg.Conns.
func runBackpressure(ctx context.Context, cfg Config, aw *ackWriter) (*Report, error) {
	over := cfg.Duration * 2 / 3
	rep, ws, err := runWorkers(ctx, &cfg, over, aw)
	if err != nil {
		return nil, err
	}
	bp := &BackpressureResult{OverloadSecs: rep.Seconds, OverloadAccepted: rep.Requests, OverloadRejected: rep.Overloaded}
	for _, w := range ws {
		bp.MissingRetryAfter += w.noRetry.Load()
	}
	rep.Backpressure = bp
	if bp.MissingRetryAfter > 0 {
		rep.Violations = append(rep.Violations, fmt.Sprintf("%d answers 503 without Retry-After", bp.MissingRetryAfter))
	}
	if bp.OverloadRejected == 0 {
		rep.Violations = append(rep.Violations, "the server was not overloaded (no 503): raise --conns or --size")
	}

	// Recovery: one connection, single small writes, bounded in time.
	end := time.Now()
	recEnd := end.Add(max(cfg.Duration-over, 500*time.Millisecond))
	c := newConn(cfg.Target, cfg.Timeout)
	defer c.close()
	rb := requestBuilder{host: cfg.Target}
	const recSize = 82
	body := appendSingleBody(nil, EncodingJSON, filler(recSize, 99), false, 0)
	var gen *payloadGen // with a run tag: payloads with ids
	if cfg.RunTag != "" {
		gen = newPayloadGen(cfg.Conns, max(recSize, minTaggedSize), false, false, cfg.RunTag)
	}
	var lines []byte // acked recovery events, for aw
	first := time.Duration(-1)
	var after int64 // requests from the first 202 on
	for seq := uint64(0); time.Now().Before(recEnd) && ctx.Err() == nil; seq++ {
		if gen != nil {
			body = appendSingleBody(body[:0], EncodingJSON, gen.next(seq), true, 0)
		}
		res, err := c.do(rb.build("POST", "/tables/"+cfg.Table, jsonContentType, "", body))
		bp.RecoveryRequests++
		ok := err == nil && res.Status == 202
		if ok && aw != nil {
			lines = appendPayloadID(lines, cfg.RunTag, cfg.Conns, seq)
			lines = append(lines, '\n')
		}
		if ok && first < 0 {
			first = time.Since(end)
		}
		if first >= 0 {
			after++
			if ok {
				bp.RecoveryAccepted++
			}
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if aw != nil {
		aw.write(lines)
	}
	bp.RecoveryMs = float64(first) / 1e6
	bp.Recovered = first >= 0 && first <= 5*time.Second && float64(bp.RecoveryAccepted) >= 0.99*float64(after)
	if !bp.Recovered {
		rep.Violations = append(rep.Violations, fmt.Sprintf("no recovery: first 202 after %v, %d of %d accepted",
			first, bp.RecoveryAccepted, bp.RecoveryRequests))
	}
	return rep, nil
}
