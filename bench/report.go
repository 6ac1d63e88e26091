package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Report is the result of one run; it is written as JSON by `zombi load
// --report`.
type Report struct {
	Scenario   string    `json:"scenario"`
	Encoding   string    `json:"encoding"`
	Target     string    `json:"target"`
	Table      string    `json:"table"`
	Conns      int       `json:"conns"`
	Size       int       `json:"payload_bytes"`
	Batch      int       `json:"batch"`
	Partitions int       `json:"partitions"`        // 0: the writes named none (Config.Unplaced)
	Rate       float64   `json:"rate,omitempty"`    // requests/s, open loop
	RunTag     string    `json:"run_tag,omitempty"` // of the payload ids (Config.Acks)
	Start      time.Time `json:"start"`
	Seconds    float64   `json:"seconds"`

	Requests     int64   `json:"requests"` // write requests answered 202
	Events       int64   `json:"events"`
	Reads        int64   `json:"reads,omitempty"`
	Overloaded   int64   `json:"overloaded"` // 503 answers
	Errors       int64   `json:"errors"`     // other statuses and transport errors
	ReqPerSec    float64 `json:"requests_per_sec"`
	EventsPerSec float64 `json:"events_per_sec"`
	MBPerSec     float64 `json:"payload_mb_per_sec"` // 10^6 B/s of payload

	Latency     Latency  `json:"latency"` // of writes answered 202
	ReadLatency *Latency `json:"read_latency,omitempty"`

	Statuses  map[string]int64 `json:"statuses"` // "0" = transport error
	LastError string           `json:"last_error,omitempty"`

	// ServerPID's memory, when it was sampled: peak RssAnon and VmRSS (KiB).
	PeakRSSAnonKiB int64 `json:"peak_rss_anon_kib,omitempty"`
	PeakRSSKiB     int64 `json:"peak_rss_kib,omitempty"`

	// CPU time (user + system) per answered request over the measured
	// window: the server's (ServerPID, when sampled) and the load
	// generator's own. On shared cores these say where a gap to a ceiling
	// comes from better than throughput alone.
	ServerCPUPerReq float64 `json:"server_cpu_us_per_request,omitempty"`
	ClientCPUPerReq float64 `json:"client_cpu_us_per_request,omitempty"`

	Timeline []Point `json:"timeline"`

	Consistency  *ConsistencyResult  `json:"consistency,omitempty"`
	Backpressure *BackpressureResult `json:"backpressure,omitempty"`
	Sustained    *SustainedResult    `json:"sustained,omitempty"`
	Violations   []string            `json:"violations,omitempty"`
}

// Latency summarises a histogram, in microseconds.
type Latency struct {
	N     uint64  `json:"n"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Max   float64 `json:"max_us"`
	Notes string  `json:"notes,omitempty"`
}

func summarize(s *Snapshot) Latency {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	return Latency{N: s.N, Mean: us(s.Mean()), P50: us(s.Quantile(0.5)), P90: us(s.Quantile(0.9)),
		P99: us(s.Quantile(0.99)), P999: us(s.Quantile(0.999)), Max: float64(s.Max) / 1e3}
}

// Point is one interval of the timeline.
type Point struct {
	T            float64 `json:"t"` // seconds since the start, at the interval's end
	ReqPerSec    float64 `json:"requests_per_sec"`
	EventsPerSec float64 `json:"events_per_sec"`
	MBPerSec     float64 `json:"payload_mb_per_sec"`
	Errors       int64   `json:"errors"` // 503s and errors in the interval
	P50us        float64 `json:"p50_us"`
	P99us        float64 `json:"p99_us"`
	RSSAnonKiB   int64   `json:"rss_anon_kib,omitempty"`
}

func newReport(cfg *Config, start time.Time) *Report {
	return &Report{Scenario: cfg.Scenario, Encoding: cfg.Encoding, Target: cfg.Target, Table: cfg.Table,
		Conns: cfg.Conns, Size: cfg.Size, Batch: cfg.Batch, Partitions: cfg.Partitions * boolInt(!cfg.Unplaced), Rate: cfg.Rate, RunTag: cfg.RunTag,
		Start: start.UTC(), Statuses: map[string]int64{}}
}

// timeline samples the workers' counters each interval.
type timeline struct {
	cfg          *Config
	ws           []*worker
	start, last  time.Time
	prev, cur    Snapshot
	tmp          Snapshot
	prevOK       int64
	prevEv       int64
	prevBytes    int64
	prevErr      int64
	points       []Point
	peakAnon     int64
	peakRSS      int64
	sampleServer bool
	serverCPU0   time.Duration // at start; 0 when not read
	clientCPU0   time.Duration
}

func newTimeline(cfg *Config, ws []*worker, start time.Time) *timeline {
	t := &timeline{cfg: cfg, ws: ws, start: start, last: start, sampleServer: cfg.ServerPID > 0, clientCPU0: selfCPU()}
	if t.sampleServer {
		t.serverCPU0, _ = ProcCPU(cfg.ServerPID)
	}
	return t
}

func (t *timeline) sample(now time.Time) Point {
	dt := now.Sub(t.last).Seconds()
	if dt <= 0 {
		dt = 1e-9
	}
	t.cur = Snapshot{}
	var ok, ev, by, er int64
	for _, w := range t.ws {
		w.writes.SnapshotInto(&t.tmp)
		t.cur.Add(&t.tmp)
		ok += w.ok.Load()
		ev += w.events.Load()
		by += w.bytes.Load()
		er += w.overload.Load() + w.failed.Load()
	}
	iv := t.cur
	iv.Sub(&t.prev)
	p := Point{
		T:            now.Sub(t.start).Seconds(),
		ReqPerSec:    float64(ok-t.prevOK) / dt,
		EventsPerSec: float64(ev-t.prevEv) / dt,
		MBPerSec:     float64(by-t.prevBytes) / 1e6 / dt,
		Errors:       er - t.prevErr,
		P50us:        float64(iv.Quantile(0.5)) / 1e3,
		P99us:        float64(iv.Quantile(0.99)) / 1e3,
	}
	if t.sampleServer {
		if anon, rss, err := ProcMemory(t.cfg.ServerPID); err == nil {
			p.RSSAnonKiB = anon
			t.peakAnon = max(t.peakAnon, anon)
			t.peakRSS = max(t.peakRSS, rss)
		}
	}
	t.prev = t.cur
	t.prevOK, t.prevEv, t.prevBytes, t.prevErr = ok, ev, by, er
	t.last = now
	if dt > t.cfg.Interval.Seconds()/4 { // drop the sliver at the end
		t.points = append(t.points, p)
	}
	return p
}

func (r *Report) finish(ws []*worker, tl *timeline, elapsed time.Duration) {
	r.Seconds = elapsed.Seconds()
	var wr, rd, tmp Snapshot
	for _, w := range ws {
		w.writes.SnapshotInto(&tmp)
		wr.Add(&tmp)
		w.reads.SnapshotInto(&tmp)
		rd.Add(&tmp)
		r.Requests += w.ok.Load()
		r.Events += w.events.Load()
		r.Reads += w.readsOK.Load()
		r.Overloaded += w.overload.Load()
		r.Errors += w.failed.Load()
		r.MBPerSec += float64(w.bytes.Load())
		w.statusMu.Lock()
		for st, n := range w.statuses {
			r.Statuses[strconv.Itoa(st)] += n
		}
		if w.lastErr != nil {
			r.LastError = w.lastErr.Error()
		}
		w.statusMu.Unlock()
	}
	s := max(r.Seconds, 1e-9)
	r.ReqPerSec = float64(r.Requests) / s
	r.EventsPerSec = float64(r.Events) / s
	r.MBPerSec = r.MBPerSec / 1e6 / s
	r.Latency = summarize(&wr)
	if r.Rate > 0 {
		r.Latency.Notes = "open loop: measured from each request's scheduled send time"
	}
	if rd.N > 0 {
		l := summarize(&rd)
		r.ReadLatency = &l
	}
	r.Timeline = tl.points
	r.PeakRSSAnonKiB, r.PeakRSSKiB = tl.peakAnon, tl.peakRSS
	if n := r.Requests + r.Reads; n > 0 {
		if tl.sampleServer {
			if cpu, err := ProcCPU(tl.cfg.ServerPID); err == nil && tl.serverCPU0 > 0 {
				r.ServerCPUPerReq = float64(cpu-tl.serverCPU0) / 1e3 / float64(n)
			}
		}
		r.ClientCPUPerReq = float64(selfCPU()-tl.clientCPU0) / 1e3 / float64(n)
	}
}

// ProcCPU returns the user plus system CPU time pid has used, from
// /proc/<pid>/stat (clock ticks of 10 ms).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after its ')' are
	// state (3), …, utime (14), stime (15).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: unexpected /proc/%d/stat", pid)
	}
	fs := strings.Fields(string(b[i+1:]))
	if len(fs) < 13 {
		return 0, fmt.Errorf("bench: unexpected /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(fs[11], 10, 64)
	st, err2 := strconv.ParseInt(fs[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: unexpected /proc/%d/stat", pid)
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on every Linux ABI Go supports
	return time.Duration(ut+st) * tick, nil
}

// selfCPU is this process's user plus system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcMemory returns RssAnon and VmRSS of pid, in KiB.
func ProcMemory(pid int) (anon, rss int64, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("RssAnon:")):
			dst = &anon
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &rss
		default:
			continue
		}
		fs := strings.Fields(string(line))
		if len(fs) >= 2 {
			*dst, _ = strconv.ParseInt(fs[1], 10, 64)
		}
	}
	return anon, rss, sc.Err()
}

// SustainedResult compares the first and the last window of a sustained
// run (a window is a minute, or a fifth of a shorter run).
type SustainedResult struct {
	WindowSecs      float64 `json:"window_secs"`
	FirstMBPerSec   float64 `json:"first_window_mb_per_sec"`
	LastMBPerSec    float64 `json:"last_window_mb_per_sec"`
	MinMBPerSec     float64 `json:"min_window_mb_per_sec"`
	DropPercent     float64 `json:"drop_percent"` // (first − last) / first
	WorstDropPct    float64 `json:"worst_drop_percent"`
	WithinTarget20P bool    `json:"within_20_percent"`
}

func sustainedSummary(pts []Point, interval time.Duration) *SustainedResult {
	if len(pts) == 0 {
		return &SustainedResult{}
	}
	total := pts[len(pts)-1].T
	win := min(60.0, total/5)
	per := max(1, int(win/interval.Seconds()+0.5))
	var windows []float64
	for i := 0; i+per <= len(pts); i += per {
		sum := 0.0
		for _, p := range pts[i : i+per] {
			sum += p.MBPerSec
		}
		windows = append(windows, sum/float64(per))
	}
	if len(windows) == 0 {
		return &SustainedResult{}
	}
	r := &SustainedResult{WindowSecs: float64(per) * interval.Seconds(), FirstMBPerSec: windows[0],
		LastMBPerSec: windows[len(windows)-1], MinMBPerSec: windows[0]}
	for _, w := range windows {
		r.MinMBPerSec = min(r.MinMBPerSec, w)
	}
	if r.FirstMBPerSec > 0 {
		r.DropPercent = 100 * (r.FirstMBPerSec - r.LastMBPerSec) / r.FirstMBPerSec
		r.WorstDropPct = 100 * (r.FirstMBPerSec - r.MinMBPerSec) / r.FirstMBPerSec
	}
	r.WithinTarget20P = r.WorstDropPct <= 20
	return r
}

// Summary is the report in a few lines of text.
func (r *Report) Summary() string {
	var b strings.Builder
	parts := strconv.Itoa(r.Partitions) + " partitions"
	if r.Partitions == 0 {
		parts = "partitions placed by the server"
	}
	fmt.Fprintf(&b, "%s (%s, %d conns, %d B × %d, %s", r.Scenario, r.Encoding, r.Conns, r.Size, r.Batch, parts)
	if r.Rate > 0 {
		fmt.Fprintf(&b, ", open loop %s req/s", si(r.Rate))
	}
	fmt.Fprintf(&b, ") against %s for %.1fs\n", r.Target, r.Seconds)
	if r.RunTag != "" {
		fmt.Fprintf(&b, "  payload ids: %s-w<worker>-<seq>\n", r.RunTag)
	}
	fmt.Fprintf(&b, "  %s req/s  %s events/s  %.1f MB/s  (%d requests, %d events)\n",
		si(r.ReqPerSec), si(r.EventsPerSec), r.MBPerSec, r.Requests, r.Events)
	l := r.Latency
	fmt.Fprintf(&b, "  write latency: p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999), fmtDur(l.Max))
	if r.ReadLatency != nil {
		l := r.ReadLatency
		fmt.Fprintf(&b, "  reads: %d, latency p50 %s p99 %s\n", r.Reads, fmtDur(l.P50), fmtDur(l.P99))
	}
	keys := make([]string, 0, len(r.Statuses))
	for k := range r.Statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(&b, "  statuses:")
	for _, k := range keys {
		name := k
		if k == "0" {
			name = "transport-error"
		}
		fmt.Fprintf(&b, " %s×%d", name, r.Statuses[k])
	}
	b.WriteByte('\n')
	if r.LastError != "" && (r.Errors > 0 || r.Overloaded > 0) {
		fmt.Fprintf(&b, "  last error: %s\n", r.LastError)
	}
	if r.PeakRSSAnonKiB > 0 {
		fmt.Fprintf(&b, "  server peak RssAnon %.1f MiB, VmRSS %.1f MiB\n", float64(r.PeakRSSAnonKiB)/1024, float64(r.PeakRSSKiB)/1024)
	}
	switch {
	case r.ServerCPUPerReq > 0:
		fmt.Fprintf(&b, "  CPU per request: server %.1f µs, load generator %.1f µs\n", r.ServerCPUPerReq, r.ClientCPUPerReq)
	case r.ClientCPUPerReq > 0:
		fmt.Fprintf(&b, "  CPU per request: load generator %.1f µs (the server's with --server-pid)\n", r.ClientCPUPerReq)
	}
	if s := r.Sustained; s != nil {
		fmt.Fprintf(&b, "  sustained: first %.0fs window %.1f MB/s, last %.1f MB/s, worst %.1f MB/s (drop %.1f %%, worst %.1f %%)\n",
			s.WindowSecs, s.FirstMBPerSec, s.LastMBPerSec, s.MinMBPerSec, s.DropPercent, s.WorstDropPct)
	}
	if c := r.Consistency; c != nil {
		fmt.Fprintf(&b, "  consistency: %d acked events, %d read back, %d partitions\n", c.Acked, c.ReadBack, c.Partitions)
	}
	if bp := r.Backpressure; bp != nil {
		fmt.Fprintf(&b, "  backpressure: overload phase %d×202 %d×503 (%d without Retry-After); recovery: first 202 after %.0f ms, %d/%d accepted\n",
			bp.OverloadAccepted, bp.OverloadRejected, bp.MissingRetryAfter, bp.RecoveryMs, bp.RecoveryAccepted, bp.RecoveryRequests)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  VIOLATION: %s\n", v)
	}
	return b.String()
}

// si formats n with a K/M suffix.
func si(n float64) string {
	switch {
	case n >= 1e6:
		return strconv.FormatFloat(n/1e6, 'f', 2, 64) + "M"
	case n >= 1e4:
		return strconv.FormatFloat(n/1e3, 'f', 0, 64) + "K"
	case n >= 1e3:
		return strconv.FormatFloat(n/1e3, 'f', 1, 64) + "K"
	default:
		return strconv.FormatFloat(n, 'f', 0, 64)
	}
}

// fmtDur formats microseconds.
func fmtDur(us float64) string {
	switch {
	case us >= 1e6:
		return strconv.FormatFloat(us/1e6, 'f', 2, 64) + "s"
	case us >= 1e3:
		return strconv.FormatFloat(us/1e3, 'f', 2, 64) + "ms"
	default:
		return strconv.FormatFloat(us, 'f', 0, 64) + "µs"
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
