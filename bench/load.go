// Package bench is the engine of `zombi load`: an HTTP load generator for
// any Zombi-compatible server (ours or the Rust original), the ceiling
// servers it is measured against (a do-nothing fasthttp handler and a
// parse-only bulk handler), and the side-by-side suite `make bench-http`
// runs. The Pebble comparison of the storage engine is a separate module
// in bench/peer, so Pebble never reaches the server binary.
//
// A run is a set of workers, one keep-alive connection each. Closed loop
// (Rate 0): each worker sends its next request when the last one is
// answered, and latency is measured from send to answer. Open loop (Rate
// > 0): request k of a worker is due at start + k/rate·conns; latency is
// measured from when it was due, not from when it could be sent, so a
// stalled server shows in the percentiles instead of hiding behind fewer
// requests (no coordinated omission). Every run is bounded by Duration and,
// when set, by Requests.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Scenarios of `zombi load`.
const (
	ScenarioSingle       = "single"       // one event per request
	ScenarioBulk         = "bulk"         // Batch events per request
	ScenarioLarge        = "large"        // 20 KiB payloads
	ScenarioSustained    = "sustained"    // a long run; throughput per second over time
	ScenarioMixed        = "mixed"        // reads of the hot tail among the writes
	ScenarioBackpressure = "backpressure" // overload, then check the server recovers
	ScenarioConsistency  = "consistency"  // every acked offset read back, order kept
)

// Scenarios lists them in help order.
var Scenarios = []string{ScenarioSingle, ScenarioBulk, ScenarioLarge, ScenarioSustained,
	ScenarioMixed, ScenarioBackpressure, ScenarioConsistency}

// Config configures one run. A zero field means the scenario's default.
type Config struct {
	// Target is the server's host:port. Default 127.0.0.1:8080.
	Target string
	// Scenario is one of Scenarios. Default single.
	Scenario string
	// Encoding is json or protobuf. Default json.
	Encoding string
	// Table receives the writes. Default "load"; consistency uses a fresh
	// table per run.
	Table string
	// Conns is the number of connections, one worker each. Default 64
	// (backpressure: 128).
	Conns int
	// Size is the payload size in bytes. Default 82 (large, sustained:
	// 20 KiB).
	Size int
	// Batch is the events per request. Default 1 (bulk: 100; backpressure
	// overload phase: 1 MiB of payload).
	Batch int
	// Partitions spreads the writes: worker w writes partition w mod
	// Partitions. Default 1.
	Partitions int
	// Unplaced makes the writes name no partition: the server places
	// them (a node of a cluster writes partitions of its own). Partitions
	// is then ignored, and reads read every partition.
	Unplaced bool
	// Rate is the total requests per second (open loop); 0 is closed loop.
	Rate float64
	// Duration bounds the measured run. Default 10 s.
	Duration time.Duration
	// Warmup runs before the measured part and is not counted. Default 0.
	Warmup time.Duration
	// Requests bounds the requests of the run (0: only Duration).
	// Consistency defaults to 20,000.
	Requests int64
	// FreshPayloads makes every payload new random bytes (costs the
	// generator ~1 ns a byte); otherwise a worker repeats one payload,
	// which a compressor downstream (the cold tier's Parquet ZSTD) would
	// shrink to nothing.
	FreshPayloads bool
	// ReadRatio is the share of reads in the mixed scenario. Default 0.2.
	ReadRatio float64
	// Timeout bounds each request. Default 10 s.
	Timeout time.Duration
	// Interval is the timeline's resolution. Default 1 s.
	Interval time.Duration
	// ServerPID, when set, is sampled for RSS (/proc/<pid>/status) each
	// interval.
	ServerPID int
	// Progress, when not nil, receives a progress line each interval
	// (rewritten in place with \r: meant for a terminal).
	Progress io.Writer
	// Acks, when not nil, receives a line for every event the server
	// acknowledged (202; every record of an acknowledged bulk request),
	// warmup included: the event's id and '\n'. The id is
	// "<RunTag>-w<worker>-<seq>", unique across runs, and the payload is
	// the JSON object {"id":"<id>","pad":"…"} of Size bytes, so that a
	// checker can find every acknowledged event in the table (PayloadID).
	// An event whose request failed (transport error, timeout, any other
	// status) is not written, though the server may have stored it. Run
	// writes whole lines, from one goroutine at a time.
	Acks io.Writer
	// RunTag tags the ids of the payloads (see Acks): letters and digits,
	// at most 16. Default with Acks: 8 random hex digits; without Acks and
	// RunTag, payloads carry no tag.
	RunTag string
}

// EnsureDefaults fills zero fields with the scenario's defaults.
func (c *Config) EnsureDefaults() {
	if c.Target == "" {
		c.Target = "127.0.0.1:8080"
	}
	if c.Scenario == "" {
		c.Scenario = ScenarioSingle
	}
	if c.Encoding == "" {
		c.Encoding = EncodingJSON
	}
	if c.Table == "" {
		c.Table = "load"
		if c.Scenario == ScenarioConsistency {
			c.Table = "consistency_" + strconv.FormatInt(time.Now().UnixNano(), 36)
		}
	}
	if c.Conns == 0 {
		c.Conns = 64
		if c.Scenario == ScenarioBackpressure {
			c.Conns = 128
		}
	}
	if c.Size == 0 {
		c.Size = 82
		if c.Scenario == ScenarioLarge || c.Scenario == ScenarioSustained {
			c.Size = 20 << 10
		}
	}
	if c.Batch == 0 {
		c.Batch = 1
		switch c.Scenario {
		case ScenarioBulk:
			c.Batch = 100
		case ScenarioBackpressure:
			c.Batch = max(1, (1<<20)/c.Size)
		}
	}
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Requests == 0 && c.Scenario == ScenarioConsistency {
		c.Requests = 20_000
	}
	if c.ReadRatio == 0 {
		c.ReadRatio = 0.2
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Acks != nil && c.RunTag == "" {
		c.RunTag = fmt.Sprintf("%08x", rand.Uint32())
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	known := false
	for _, s := range Scenarios {
		known = known || s == c.Scenario
	}
	if !known {
		errs = append(errs, fmt.Errorf("unknown scenario %q", c.Scenario))
	}
	if c.Encoding != EncodingJSON && c.Encoding != EncodingProtobuf {
		errs = append(errs, fmt.Errorf("encoding must be json or protobuf, not %q", c.Encoding))
	}
	if c.Conns < 1 || c.Conns > 10_000 {
		errs = append(errs, errors.New("conns must be between 1 and 10000"))
	}
	if c.Size < 1 || c.Size > 64<<20 {
		errs = append(errs, errors.New("size must be between 1 B and 64 MiB"))
	}
	if c.Scenario == ScenarioConsistency && c.Size < 24 {
		errs = append(errs, errors.New("consistency needs payloads of at least 24 B (each carries its id)"))
	}
	if c.Batch < 1 || c.Batch > 1_000_000 {
		errs = append(errs, errors.New("batch must be between 1 and 1000000"))
	}
	if c.Partitions < 1 {
		errs = append(errs, errors.New("partitions must be positive"))
	}
	if c.Unplaced && c.Scenario == ScenarioConsistency {
		errs = append(errs, errors.New("consistency checks offsets per partition: name the partitions (--partitions 1 or more)"))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("rate must not be negative"))
	}
	if c.Duration <= 0 || c.Duration > 24*time.Hour {
		errs = append(errs, errors.New("duration must be between 0 and 24h"))
	}
	if c.Requests < 0 || c.Warmup < 0 || c.Interval <= 0 || c.Timeout <= 0 {
		errs = append(errs, errors.New("requests, warmup, interval and timeout must not be negative"))
	}
	if c.ReadRatio < 0 || c.ReadRatio > 1 {
		errs = append(errs, errors.New("read ratio must be between 0 and 1"))
	}
	if c.RunTag != "" {
		if len(c.RunTag) > maxTagLen || strings.ContainsFunc(c.RunTag, func(r rune) bool { return !isAlnum(r) }) {
			errs = append(errs, fmt.Errorf("run tag %q: want 1 to %d letters and digits", c.RunTag, maxTagLen))
		}
		if c.Size < minTaggedSize {
			errs = append(errs, fmt.Errorf("payloads with ids (acks, run tag) need at least %d B: each is a JSON object carrying its id", minTaggedSize))
		}
	}
	return errors.Join(errs...)
}

// worker is one connection's loop and its counters. The counters are
// atomic so the reporter can read them while the worker runs.
type worker struct {
	id        int
	cfg       *Config
	conn      *conn
	req       requestBuilder
	body      []byte
	gen       *payloadGen
	partition uint32
	rng       *rand.Rand

	writes    Histogram // write latency
	reads     Histogram // read latency (mixed)
	ok        atomic.Int64
	events    atomic.Int64
	bytes     atomic.Int64 // payload bytes acked
	readsOK   atomic.Int64
	overload  atomic.Int64 // 503
	failed    atomic.Int64 // other statuses and transport errors
	noRetry   atomic.Int64 // 503 without Retry-After
	statusMu  sync.Mutex
	statuses  map[int]int64 // by status; 0 = transport error
	lastErr   error
	seq       uint64
	lastAcked uint64 // highest offset acked (mixed reads near it)

	acks []ack // consistency: every acked event

	ackOut   *ackWriter // Config.Acks; nil without
	ackLines []byte     // lines not yet written to ackOut
}

// ack is one acknowledged event of the consistency scenario.
type ack struct {
	partition uint32
	offset    uint64
	seq       uint64 // payload id: "[<tag>-]w<worker>-<seq>"
}

// ackWriter writes the lines of Config.Acks, whole, one writer at a time,
// and keeps the first error (later lines are dropped).
type ackWriter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

func newAckWriter(w io.Writer) *ackWriter {
	if w == nil {
		return nil
	}
	return &ackWriter{w: w}
}

func (a *ackWriter) write(lines []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err == nil && len(lines) > 0 {
		_, a.err = a.w.Write(lines)
	}
}

// Err returns the first write error; nil for a nil ackWriter.
func (a *ackWriter) Err() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return fmt.Errorf("write acks: %w", a.err)
	}
	return nil
}

// ackFlushBytes is how many bytes of ack lines a worker gathers before it
// writes them.
const ackFlushBytes = 16 << 10

// noteAcked adds the lines of n events acked from seq0 on.
func (w *worker) noteAcked(seq0 uint64, n int) {
	for i := range n {
		w.ackLines = appendPayloadID(w.ackLines, w.cfg.RunTag, w.id, seq0+uint64(i))
		w.ackLines = append(w.ackLines, '\n')
	}
	if len(w.ackLines) >= ackFlushBytes {
		w.flushAcks()
	}
}

func (w *worker) flushAcks() {
	w.ackOut.write(w.ackLines)
	w.ackLines = w.ackLines[:0]
}

// stopper tells workers when the run is over.
type stopper struct {
	ctx      context.Context
	deadline time.Time
	limit    int64 // 0: none
	issued   atomic.Int64
}

func (s *stopper) take() bool {
	if s.ctx.Err() != nil || !time.Now().Before(s.deadline) {
		return false
	}
	if s.limit > 0 && s.issued.Add(1) > s.limit {
		return false
	}
	return true
}

// Run runs one scenario against cfg.Target and returns its report. The
// report's Violations list what the consistency and backpressure checks
// found; an error means the run itself could not be made.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	aw := newAckWriter(cfg.Acks)
	if cfg.Scenario == ScenarioBackpressure {
		rep, err := runBackpressure(ctx, cfg, aw)
		if err == nil {
			err = aw.Err()
		}
		if err != nil {
			return nil, err
		}
		return rep, nil
	}
	rep, ws, err := runWorkers(ctx, &cfg, cfg.Duration, aw)
	if err == nil {
		err = aw.Err()
	}
	if err != nil {
		return nil, err
	}
	switch cfg.Scenario {
	case ScenarioConsistency:
		rep.Consistency = checkConsistency(ctx, &cfg, ws)
		rep.Violations = append(rep.Violations, rep.Consistency.Violations...)
	case ScenarioSustained:
		rep.Sustained = sustainedSummary(rep.Timeline, cfg.Interval)
	}
	return rep, nil
}

// runWorkers runs cfg.Conns workers for warmup + d and reports; the
// acked events go to aw (when not nil), all written when it returns.
func runWorkers(ctx context.Context, cfg *Config, d time.Duration, aw *ackWriter) (*Report, []*worker, error) {
	ws := make([]*worker, cfg.Conns)
	for i := range ws {
		ws[i] = &worker{
			id:        i,
			cfg:       cfg,
			conn:      newConn(cfg.Target, cfg.Timeout),
			req:       requestBuilder{host: cfg.Target},
			gen:       newPayloadGen(i, cfg.Size, cfg.Scenario == ScenarioConsistency, cfg.FreshPayloads, cfg.RunTag),
			partition: uint32(i % cfg.Partitions),
			rng:       rand.New(rand.NewPCG(uint64(i), 7)),
			statuses:  make(map[int]int64),
			ackOut:    aw,
		}
	}
	defer func() {
		for _, w := range ws {
			w.conn.close()
		}
	}()
	// Fail fast when nothing listens.
	probe := newConn(cfg.Target, min(cfg.Timeout, 3*time.Second))
	var rb requestBuilder
	rb.host = cfg.Target
	if _, err := probe.do(rb.build("GET", "/health", "", "", nil)); err != nil {
		return nil, nil, fmt.Errorf("cannot reach %s: %w", cfg.Target, err)
	}
	probe.close()

	if cfg.Warmup > 0 {
		wc := *cfg
		wc.Requests = 0
		wst := &stopper{ctx: ctx, deadline: time.Now().Add(cfg.Warmup)}
		var wg sync.WaitGroup
		for _, w := range ws {
			wg.Add(1)
			go func() { defer wg.Done(); w.loop(wst, time.Now(), 0, false) }()
		}
		wg.Wait()
		for _, w := range ws { // forget the warmup
			w.writes = Histogram{}
			w.reads = Histogram{}
			w.ok.Store(0)
			w.events.Store(0)
			w.bytes.Store(0)
			w.readsOK.Store(0)
			w.overload.Store(0)
			w.failed.Store(0)
			w.noRetry.Store(0)
			clear(w.statuses)
			w.acks = w.acks[:0]
		}
	}

	start := time.Now()
	st := &stopper{ctx: ctx, deadline: start.Add(d), limit: cfg.Requests}
	var perWorker time.Duration // open loop: time between a worker's requests
	if cfg.Rate > 0 {
		perWorker = time.Duration(float64(cfg.Conns) / cfg.Rate * float64(time.Second))
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Stagger the open-loop schedules across the period.
			first := start.Add(perWorker * time.Duration(w.id) / time.Duration(cfg.Conns))
			w.loop(st, first, perWorker, cfg.Scenario == ScenarioConsistency)
		}()
	}
	rep := newReport(cfg, start)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tl := newTimeline(cfg, ws, start)
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tick.C:
			p := tl.sample(time.Now())
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "\r%6.1fs %10s req/s %12s ev/s  p50 %8s  p99 %8s  errors %d   ",
					p.T, si(p.ReqPerSec), si(p.EventsPerSec), fmtDur(p.P50us), fmtDur(p.P99us), p.Errors)
			}
		}
	}
	end := time.Now()
	tl.sample(end)
	if aw != nil {
		for _, w := range ws {
			w.flushAcks()
		}
	}
	if cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress)
	}
	rep.finish(ws, tl, end.Sub(start))
	return rep, ws, nil
}

// loop sends requests until st says stop. With period > 0 request k is due
// at first + k·period and latency counts from then.
func (w *worker) loop(st *stopper, first time.Time, period time.Duration, keepAcks bool) {
	cfg := w.cfg
	path := "/tables/" + cfg.Table
	bulk := cfg.Batch > 1 || cfg.Scenario == ScenarioBulk
	if bulk {
		path += "/bulk"
	}
	ctype := jsonContentType
	extra := ""
	part := int64(w.partition)
	readPath := "/tables/" + cfg.Table + "?partition=" + strconv.Itoa(int(w.partition)) + "&limit=10&offset="
	if cfg.Unplaced {
		part, readPath = noPartition, "/tables/"+cfg.Table+"?limit=10&offset="
	}
	if cfg.Encoding == EncodingProtobuf {
		ctype = protoContentType
		if part != noPartition {
			extra = "X-Partition: " + strconv.Itoa(int(w.partition)) + "\r\n"
		}
	}
	due := first
	for k := int64(0); st.take(); k++ {
		if period > 0 {
			due = first.Add(time.Duration(k) * period)
			if wait := time.Until(due); wait > 0 {
				if !sleepUntil(st, due) {
					return
				}
			}
		} else {
			due = time.Now()
		}
		if cfg.Scenario == ScenarioMixed && w.rng.Float64() < cfg.ReadRatio {
			from := max(w.lastAcked, 5) - 4
			res, err := w.conn.do(w.req.build("GET", readPath+strconv.FormatUint(from, 10), "", "", nil))
			lat := time.Since(due)
			if w.count(res, err) && res.Status == 200 {
				w.reads.Record(lat)
				w.readsOK.Add(1)
			}
			continue
		}
		seq0 := w.seq
		if bulk {
			w.body = appendBulkBody(w.body[:0], cfg.Encoding, cfg.Batch, part, w.gen.object(), func(i int) []byte {
				return w.gen.next(seq0 + uint64(i))
			})
		} else {
			w.body = appendSingleBody(w.body[:0], cfg.Encoding, w.gen.next(seq0), w.gen.object(), part)
		}
		w.seq += uint64(cfg.Batch)
		res, err := w.conn.do(w.req.build("POST", path, ctype, extra, w.body))
		lat := time.Since(due)
		if !w.count(res, err) || res.Status != 202 {
			continue
		}
		w.writes.Record(lat)
		w.ok.Add(1)
		w.events.Add(int64(cfg.Batch))
		w.bytes.Add(int64(cfg.Batch * cfg.Size))
		if w.ackOut != nil {
			w.noteAcked(seq0, cfg.Batch)
		}
		if cfg.Scenario == ScenarioMixed || keepAcks {
			w.noteOffsets(res.Body, seq0, bulk, keepAcks)
		}
	}
}

// count tallies a response by status; it reports whether there was one.
func (w *worker) count(res response, err error) bool {
	status := res.Status
	if err != nil {
		status = 0
	}
	w.statusMu.Lock()
	w.statuses[status]++
	if err != nil {
		w.lastErr = err
	} else if status >= 300 {
		w.lastErr = statusError(res)
	}
	w.statusMu.Unlock()
	switch {
	case err != nil:
		w.failed.Add(1)
		time.Sleep(10 * time.Millisecond) // a refused connect must not spin
		return false
	case status == 503:
		w.overload.Add(1)
		if !res.RetryAfter {
			w.noRetry.Add(1)
		}
	case status >= 300:
		w.failed.Add(1)
	}
	return true
}

// noteOffsets reads the offsets of a 202 answer: {"offset":N,…} or
// {"offsets":[…],…}.
func (w *worker) noteOffsets(body []byte, seq0 uint64, bulk, keep bool) {
	key := `"offset":`
	if bulk {
		key = `"offsets":[`
	}
	i := indexOf(body, key)
	if i < 0 {
		w.failed.Add(1)
		return
	}
	b := body[i+len(key):]
	for n := 0; n < w.cfg.Batch; n++ {
		j := 0
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		off, err := strconv.ParseUint(string(b[:j]), 10, 64)
		if err != nil {
			w.failed.Add(1)
			return
		}
		w.lastAcked = max(w.lastAcked, off)
		if keep {
			w.acks = append(w.acks, ack{partition: w.partition, offset: off, seq: seq0 + uint64(n)})
		}
		if j < len(b) && b[j] == ',' {
			j++
		}
		b = b[j:]
	}
}

func indexOf(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}

// sleepUntil sleeps until t, or returns false if the run ends first.
func sleepUntil(st *stopper, t time.Time) bool {
	if !t.Before(st.deadline) {
		return false
	}
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-st.ctx.Done():
		return false
	}
}

// isAlnum reports whether r is an ASCII letter or digit.
func isAlnum(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
}
