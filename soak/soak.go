// Package soak is the kill -9 soak harness: it runs `zombi serve` as a
// child process with the cold tier on and a one-second flush interval,
// writes to it from a few concurrent producers (single and bulk requests,
// several tables and partitions, most of them with idempotency keys),
// kills it with SIGKILL at random moments (during writes, during the
// background flushes, commits and compactions, while a POST
// /tables/{t}/flush or /compact is in flight, during the start-up
// recovery), restarts it on the same data directory and retries every
// keyed request that was not acknowledged, with the same keys. Every
// acknowledged event is logged as (table, partition, offset, payload
// hash).
//
// After each restart the events acknowledged in the cycle before are read
// back from the hot tier (GET /tables/{t}); at the end, after a clean
// restart, a final POST /tables/{t}/flush and a compaction, every table
// is scanned from Iceberg through the server's /v1 REST view with
// iceberg-go, and Run checks that:
//
//   - every acknowledged event is there, at its offset, with its payload;
//   - no (partition, sequence) is in Iceberg twice, no payload is there
//     twice, and no idempotency key is there twice: a retried request that
//     had already landed was answered with its original offset;
//   - offsets are never reused: no offset was acknowledged for two
//     payloads, and a fresh write after a restart gets an offset above
//     every offset acknowledged before the kill (per partition, offsets
//     also grow in each producer's order);
//   - nothing is there that was never sent; a request that got no answer
//     and had no key may have landed or not, but at most once;
//   - the server stops cleanly on SIGTERM, and `zombi inspect verify`
//     finds no corruption in the data directory.
//
// The durability mode is ZOMBI_FSYNC=always by default, where every ack
// is a promise that holds even through a power loss. A kill -9 is not a
// power loss: what was written to the page cache (the mmap'd segment
// pages, MAP_SHARED, or pwrite) survives the process, so `interval` and
// `never` must lose nothing here either; Config.Fsync runs those modes.
package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config is one soak run. Zero values take the defaults in brackets.
type Config struct {
	Bin        string        // the zombi binary (required)
	Dir        string        // work directory: data dir and server log [a temporary one, removed after a clean run]
	Cycles     int           // kill -9 cycles [20]
	Writers    int           // concurrent producers [4]
	Tables     int           // tables written [2]
	Partitions int           // partitions per table [3]
	Fsync      string        // ZOMBI_FSYNC of the server [always]
	MinUp      time.Duration // shortest time under load before a kill [50ms]
	MaxUp      time.Duration // longest time under load before a kill [2.5s]
	Seed       uint64        // random seed [from the clock]
	Env        []string      // extra environment of the server (ZOMBI_*=…)
	Log        io.Writer     // progress, one line every few cycles [none]
}

func (c *Config) defaults() error {
	if c.Bin == "" {
		return errors.New("soak: Config.Bin (the zombi binary) is required")
	}
	if c.Cycles <= 0 {
		c.Cycles = 20
	}
	if c.Writers <= 0 {
		c.Writers = 4
	}
	if c.Tables <= 0 {
		c.Tables = 2
	}
	if c.Partitions <= 0 {
		c.Partitions = 3
	}
	if c.Fsync == "" {
		c.Fsync = "always"
	}
	if c.MinUp <= 0 {
		c.MinUp = 50 * time.Millisecond
	}
	if c.MaxUp < c.MinUp {
		c.MaxUp = max(c.MinUp, 2500*time.Millisecond)
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

// Run runs the soak and returns what it counted. The error is for a
// harness that could not run (or a server that would not start again);
// violations of the guarantees are in Result.Violations (Result.OK).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	tmp := ""
	if cfg.Dir == "" {
		d, err := os.MkdirTemp("", "zombi-soak-")
		if err != nil {
			return nil, err
		}
		tmp, cfg.Dir = d, d
	}
	h, err := newHarness(cfg)
	if err != nil {
		return nil, err
	}
	defer h.close()
	start := time.Now()
	err = h.run(ctx)
	h.res.Duration = time.Since(start)
	h.res.Seed = cfg.Seed
	h.res.Config = cfg
	if err == nil && h.res.OK() && tmp != "" {
		_ = os.RemoveAll(tmp)
	} else {
		h.res.WorkDir = cfg.Dir
	}
	return &h.res, err
}

// harness is the state of one run.
type harness struct {
	cfg    Config
	rng    *rand.Rand // used by the controlling goroutine only
	tables []string
	data   string // the server's data directory
	logf   *os.File
	client *http.Client
	// coldClient sends POST /flush and /compact, which may take long.
	coldClient *http.Client

	srv   *server // the running server, nil between cycles
	cycle int

	mu  sync.Mutex // guards led and res
	led ledger     // every event sent and every ack
	res Result     // counts and violations

	logMu sync.Mutex // guards logf's writes and lines
	lines []string   // the server log's last lines, for a failure report

	flushing   atomic.Int32 // POST /tables/{t}/flush requests in flight
	compacting atomic.Int32 // POST /tables/{t}/compact requests in flight
	nextID     atomic.Uint64
}

func newHarness(cfg Config) (*harness, error) {
	h := &harness{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x50a4)), data: filepath.Join(cfg.Dir, "data")}
	for i := range cfg.Tables {
		h.tables = append(h.tables, fmt.Sprintf("soak%d", i))
	}
	if err := os.MkdirAll(h.data, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(cfg.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	h.logf = f
	h.client = &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Writers + 4, DisableCompression: true},
	}
	h.coldClient = &http.Client{Timeout: 5 * time.Minute, Transport: h.client.Transport}
	h.led = newLedger()
	return h, nil
}

func (h *harness) close() {
	if h.srv != nil {
		h.srv.kill()
		h.srv = nil
	}
	h.client.CloseIdleConnections()
	_ = h.logf.Close()
}

// violation records a broken guarantee (bounded in number of lines).
func (h *harness) violation(format string, args ...any) {
	h.mu.Lock()
	h.res.violationLocked(fmt.Sprintf("cycle %d: ", h.cycle)+format, args...)
	h.mu.Unlock()
}

// run is the whole soak: the cycles, then the final check.
func (h *harness) run(ctx context.Context) error {
	for h.cycle = 1; h.cycle <= h.cfg.Cycles; h.cycle++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := h.runCycle(ctx); err != nil {
			return fmt.Errorf("cycle %d: %w", h.cycle, err)
		}
		h.res.Cycles++
		if h.cycle%10 == 0 || h.cycle == h.cfg.Cycles {
			h.mu.Lock()
			fmt.Fprintf(h.cfg.Log, "soak: cycle %d/%d: %d events acked, %d retried requests, %d violations\n",
				h.cycle, h.cfg.Cycles, h.res.AckedEvents, h.res.Retried, h.res.violations)
			h.mu.Unlock()
		}
	}
	return h.final(ctx)
}

// runCycle starts the server (sometimes killing it once during its
// start-up first), checks the last cycle's acks in the hot tier, runs the
// producers (whose first requests are the retries), and kills the server.
func (h *harness) runCycle(ctx context.Context) error {
	if h.rng.IntN(10) == 0 {
		// Kill during the start-up: recovery, the catalog, the first flush.
		s, err := h.start()
		if err != nil {
			return err
		}
		time.Sleep(time.Duration(h.rng.Int64N(int64(400 * time.Millisecond))))
		h.mark("SIGKILL during the start-up")
		s.kill()
		h.res.Kills++
		h.res.KillsInStartup++
	}
	t0 := time.Now()
	s, err := h.start()
	if err != nil {
		return err
	}
	if err := s.waitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	h.srv = s
	t1 := time.Now()
	h.checkHot(ctx, h.cycle-1)
	t2 := time.Now()
	h.res.TimeStart += t1.Sub(t0)
	h.res.TimeCheck += t2.Sub(t1)

	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range h.cfg.Writers {
		w := newWorker(h, i, h.rng.Uint64())
		wg.Go(func() { w.loop(lctx, s.base) })
	}
	var fwg sync.WaitGroup
	fseed := h.rng.Uint64()
	fwg.Go(func() { h.flusher(lctx, s.base, fseed) })

	up := h.cfg.MinUp + time.Duration(h.rng.Int64N(int64(h.cfg.MaxUp-h.cfg.MinUp)+1))
	aim := h.rng.IntN(8) // 0, 1: at a flush; 2: at a compaction; 3: at a graceful stop
	select {
	case <-time.After(up):
	case <-s.exited:
	case <-ctx.Done():
	}
	if aim <= 2 && !s.hasExited() {
		// Aim at a flush or a compaction: ask for one, then kill a few
		// ms into it.
		op := "flush"
		if aim == 2 {
			op = "compact"
		}
		go h.postCold(s.base, h.tables[h.rng.IntN(len(h.tables))], op)
		time.Sleep(time.Duration(h.rng.Int64N(int64(40 * time.Millisecond))))
	}
	termed := false
	if aim == 3 && !s.hasExited() {
		// SIGTERM, then SIGKILL during the graceful stop (draining,
		// the final flush), as systemd does after TimeoutStopSec.
		h.mark("SIGTERM")
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		termed = true
		time.Sleep(time.Duration(h.rng.Int64N(int64(500 * time.Millisecond))))
	}
	switch {
	case termed && s.hasExited() && s.err == nil:
		h.res.StoppedBeforeKill++
	case s.hasExited():
		h.violation("the server exited by itself: %v\n%s", s.err, h.logTail())
	case termed:
		h.res.KillsDuringStop++
	}
	inFlush, inCompact := h.flushing.Load() > 0, h.compacting.Load() > 0
	h.mark("SIGKILL")
	s.kill()
	h.srv = nil
	h.res.Kills++
	if inFlush {
		h.res.KillsDuringFlush++
	}
	if inCompact {
		h.res.KillsDuringCompaction++
	}
	stop()
	wg.Wait()
	fwg.Wait()
	h.res.TimeLoad += time.Since(t2)
	h.client.CloseIdleConnections()
	return ctx.Err()
}

// final restarts the server cleanly, retries what is still unacked,
// flushes and compacts every table, checks the hot tier and Iceberg,
// stops the server with SIGTERM and runs zombi inspect verify.
func (h *harness) final(ctx context.Context) error {
	h.cycle = h.cfg.Cycles + 1
	t0 := time.Now()
	defer func() { h.res.TimeFinal = time.Since(t0) }()
	s, err := h.start()
	if err != nil {
		return err
	}
	if err := s.waitReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	h.srv = s
	h.checkHot(ctx, h.cfg.Cycles)
	w := newWorker(h, h.cfg.Writers, h.rng.Uint64())
	for tries := 0; h.pendingCount() > 0; tries++ {
		if tries == 20 {
			h.violation("%d keyed requests still unacknowledged after 20 rounds of retries", h.pendingCount())
			break
		}
		w.retryAll(ctx, s.base)
		if h.pendingCount() > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, t := range h.tables {
		if err := h.finalFlush(ctx, s.base, t); err != nil {
			h.violation("final flush of %s: %v", t, err)
		}
		if err := h.finalCompact(ctx, s.base, t); err != nil {
			h.violation("final compaction of %s: %v", t, err)
		}
	}
	h.checkAllHot(ctx, s.base)
	for _, t := range h.tables {
		if err := h.checkIceberg(ctx, s.base, t); err != nil {
			h.violation("Iceberg scan of %s: %v", t, err)
		}
	}
	h.finishChecks()
	h.mark("SIGTERM (final)")
	if err := s.stop(2 * time.Minute); err != nil {
		h.violation("clean stop: %v\n%s", err, h.logTail())
	}
	h.srv = nil
	h.scanLog()
	// The offline checker must find no corruption either: every CRC of
	// every record, header and checkpoint file of the hot tier.
	out, err := exec.CommandContext(ctx, h.cfg.Bin, "inspect", "verify", h.data).CombinedOutput()
	if err != nil {
		h.violation("zombi inspect verify %s: %v\n%s", h.data, err, out)
	}
	return nil
}

// server is one `zombi serve` child process.
type server struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port, once known
	addr   chan string
	exited chan struct{} // closed when the process is gone
	err    error         // its exit status, once exited is closed
}

// serverEnv is the server's environment: the process environment without
// any ZOMBI_* or AWS_* setting, then the soak settings, then Config.Env.
func (h *harness) serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ZOMBI_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"ZOMBI_HOST=127.0.0.1", "ZOMBI_PORT=0", // a free port, read back from the log
		"ZOMBI_DATA_DIR="+h.data,
		"ZOMBI_FSYNC="+h.cfg.Fsync,
		"ZOMBI_ICEBERG_ENABLED=true",  // the local warehouse and SQLite catalog
		"ZOMBI_FLUSH_INTERVAL_SECS=1", // so that kills land in flushes and commits
		"ZOMBI_SEGMENT_SIZE_MB=1",     // segments roll (and are flushed when full) often
		"ZOMBI_HOT_RETENTION_SECS=0",  // flushed segments are deleted: keys move to the idem file
		"ZOMBI_HOT_MAX_GB=0",
		"ZOMBI_AUTO_COMPACTION=true", // background compaction of the many small files, often
		"ZOMBI_COMPACTION_INTERVAL_SECS=2",
		"ZOMBI_COMPACTION_MIN_FILES=4",
		"ZOMBI_LOG_FORMAT=json",
		"ZOMBI_SHUTDOWN_TIMEOUT_SECS=30",
	)
	return append(env, h.cfg.Env...)
}

// start runs a server on the data directory; its log goes to server.log.
func (h *harness) start() (*server, error) {
	cmd := exec.Command(h.cfg.Bin, "serve")
	cmd.Env = h.serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	h.mark("start " + h.cfg.Bin + " serve")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, addr: make(chan string, 1), exited: make(chan struct{})}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		h.copyLog(out, s.addr)
	}()
	go func() {
		<-logDone // Wait closes the pipe: read it to the end first
		s.err = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// copyLog copies the server's output to server.log and sends the
// address it listens on.
func (h *harness) copyLog(r io.Reader, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		h.writeLog(line + "\n")
		if !sent && strings.Contains(line, `"zombi listening"`) {
			var m struct{ Addr string }
			if json.Unmarshal([]byte(line), &m) == nil && m.Addr != "" {
				addr <- m.Addr
				sent = true
			}
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// mark writes a line of the harness's own into server.log.
func (h *harness) mark(what string) {
	h.writeLog(fmt.Sprintf("---- soak %s cycle %d: %s\n", time.Now().UTC().Format(time.RFC3339Nano), h.cycle, what))
}

func (h *harness) writeLog(s string) {
	h.logMu.Lock()
	_, _ = h.logf.WriteString(s)
	h.lines = append(h.lines, s)
	if len(h.lines) > 400 {
		h.lines = append(h.lines[:0], h.lines[len(h.lines)-200:]...)
	}
	h.logMu.Unlock()
}

// logTail is the end of the server log, for a failure report.
func (h *harness) logTail() string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	n := min(len(h.lines), 30)
	return "server log (last lines):\n" + strings.Join(h.lines[len(h.lines)-n:], "")
}

// waitReady waits until the server listens and answers /health.
func (s *server) waitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-s.addr:
		s.base = "http://" + a
	case <-s.exited:
		return fmt.Errorf("zombi serve exited at start: %v", s.err)
	case <-t.C:
		s.kill()
		return fmt.Errorf("zombi serve did not listen within %v", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	c := &http.Client{Timeout: 5 * time.Second}
	for {
		r, err := c.Get(s.base + "/health/live")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("zombi serve exited at start: %v", s.err)
		case <-t.C:
			s.kill()
			return fmt.Errorf("zombi serve did not answer /health/live within %v", timeout)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *server) hasExited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// stop sends SIGTERM and expects a clean exit within timeout.
func (s *server) stop(timeout time.Duration) error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.err
	case <-time.After(timeout):
		s.kill()
		return fmt.Errorf("still running %v after SIGTERM", timeout)
	}
}

// scanLog counts the server log's errors and looks for a panic.
func (h *harness) scanLog() {
	h.logMu.Lock()
	name := h.logf.Name()
	h.logMu.Unlock()
	f, err := os.Open(name)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:"):
			h.violation("the server panicked: %s (see %s)", line, name)
		case strings.Contains(line, `"level":"ERROR"`):
			h.res.LogErrors++
			h.res.logMsg(line)
		case strings.Contains(line, `"level":"WARN"`):
			h.res.LogWarnings++
			h.res.logMsg(line)
		}
		if strings.Contains(line, "quarantin") {
			h.res.Quarantined++
		}
	}
}
