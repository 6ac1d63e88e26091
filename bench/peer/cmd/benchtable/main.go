// Command benchtable runs the engine and Pebble side by side on fixed
// append workloads and prints a Markdown table of throughput, the ratio to
// Pebble, the cost of FsyncAlways under concurrency and the bytes written
// to disk per byte appended. `make bench` runs it; the table also goes to
// results/engine.md.
//
// Each workload runs -runs times for the engine and for Pebble,
// alternating which goes first, each run in a fresh directory under -dir;
// the table shows medians. The whole run is bounded by the event counts
// and the per-run -deadline (about 2-3 minutes on 2 cores).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zombihq/zombi/bench/peer"
	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/segment"
)

type config struct {
	dir      string
	runs     int
	n        int
	durableN int
	bigBytes int
	waN      int
	waDurN   int
	deadline time.Duration
	out      string
	noWA     bool
	syncN    int
}

// row is one workload; pebble says whether Pebble runs it too.
type row struct {
	w      peer.Workload
	pebble bool
	eng    []peer.Result
	peb    []peer.Result
}

func main() {
	var c config
	flag.StringVar(&c.dir, "dir", peer.BenchDir(), "parent directory for the data (must be a real disk; also $ZOMBI_BENCH_DIR)")
	flag.IntVar(&c.runs, "runs", 3, "runs per workload and system; the table shows medians")
	flag.IntVar(&c.n, "n", 1_000_000, "records per run of the 82 B page-cache workloads")
	flag.IntVar(&c.durableN, "durable-n", 100_000, "records per run of the synced workloads (always mode, Pebble Sync=true)")
	flag.IntVar(&c.bigBytes, "big-bytes", 256<<20, "payload bytes per run of the 1 KiB and 20 KiB workloads")
	flag.IntVar(&c.waN, "wa-n", 2_000_000, "records of the page-cache write-amplification workload")
	flag.IntVar(&c.waDurN, "wa-durable-n", 50_000, "records of the synced write-amplification workload")
	flag.DurationVar(&c.deadline, "deadline", 2500*time.Millisecond, "stop a run after this long and count what was appended")
	flag.StringVar(&c.out, "out", "results/engine.md", "also write the table here (\"\" for none)")
	flag.IntVar(&c.syncN, "sync-n", 1000, "write+fdatasync pairs timed for the sync latency ceiling")
	flag.BoolVar(&c.noWA, "no-wa", false, "skip the write-amplification workloads")
	quick := flag.Bool("quick", false, "divide every count by 10 (a smoke test, not a measurement)")
	flag.Parse()
	if *quick {
		c.n /= 10
		c.durableN /= 10
		c.bigBytes /= 10
		c.waN /= 10
		c.waDurN /= 10
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	fsType := peer.FSType(c.dir)
	if fsType == "tmpfs" {
		fmt.Fprintf(os.Stderr, "benchtable: warning: %s is tmpfs; figures will not reflect a disk (set -dir)\n", c.dir)
	}
	devStat := peer.DeviceStatPath(c.dir)
	start := time.Now()

	never, always, interval := engine.FsyncNever, engine.FsyncAlways, engine.FsyncInterval
	big := func(size int) int { return max(c.bigBytes/size, 100) }
	dl := c.deadline
	rows := []*row{
		{w: peer.Workload{Size: 82, Batch: 1, Writers: 1, Events: c.n, Mode: never, Deadline: dl}, pebble: true},
		{w: peer.Workload{Size: 82, Batch: 100, Writers: 1, Events: c.n, Mode: never, Deadline: dl}, pebble: true},
		{w: peer.Workload{Size: 82, Batch: 1, Writers: 64, Events: c.n, Mode: never, Deadline: dl}, pebble: true},
		{w: peer.Workload{Size: 82, Batch: 1, Writers: 64, Partitions: 8, Events: c.n, Mode: never, Deadline: dl}, pebble: true},
		{w: peer.Workload{Size: 82, Batch: 100, Writers: 64, Events: c.n, Mode: never, Deadline: dl}, pebble: true},
		{w: peer.Workload{Size: 82, Batch: 1, Writers: 64, Events: c.n, Mode: interval, Deadline: dl}},
		{w: peer.Workload{Size: 82, Batch: 100, Writers: 1, Events: c.durableN, Mode: always, Deadline: dl}, pebble: true},
		{w: peer.Workload{Size: 82, Batch: 1, Writers: 64, Events: c.durableN, Mode: always, Deadline: dl}, pebble: true},
		{w: peer.Workload{Size: 82, Batch: 1, Writers: 64, Partitions: 8, Events: c.durableN, Mode: always, Deadline: dl}, pebble: true},
		{w: peer.Workload{Size: 82, Batch: 100, Writers: 64, Events: 10 * c.durableN, Mode: always, Deadline: dl}, pebble: true},
		{w: peer.Workload{Size: 1024, Batch: 100, Writers: 1, Events: big(1024), Mode: never, Deadline: dl}, pebble: true},
		{w: peer.Workload{Size: 20 << 10, Batch: 100, Writers: 1, Events: big(20 << 10), Mode: never, Deadline: dl}, pebble: true},
	}
	for i, r := range rows {
		for k := 0; k < c.runs; k++ {
			order := []bool{false, true} // false: engine
			if k%2 == 1 {
				order = []bool{true, false}
			}
			for _, isPebble := range order {
				if isPebble && !r.pebble {
					continue
				}
				var res peer.Result
				var err error
				if isPebble {
					res, err = peer.RunPebble(c.dir, r.w)
					r.peb = append(r.peb, res)
				} else {
					res, err = peer.RunEngine(c.dir, r.w)
					r.eng = append(r.eng, res)
				}
				if err != nil {
					return fmt.Errorf("%s (%s): %w", r.w, sysName(isPebble), err)
				}
				fmt.Fprintf(os.Stderr, "[%2d/%d] %-46s %-6s %-8s run %d: %10.0f ev/s %8.1f MB/s (%d events, %v)\n",
					i+1, len(rows), r.w, sysName(isPebble), r.w.Mode, k+1, res.EventsPerSec(), res.MBPerSec(), res.Events, res.Elapsed.Round(time.Millisecond))
			}
		}
	}

	var waRows []waRow
	if !c.noWA {
		for _, w := range []peer.Workload{
			{Size: 82, Batch: 100, Writers: 1, Events: c.waN, Mode: never},
			{Size: 82, Batch: 1, Writers: 64, Events: c.waDurN, Mode: always},
		} {
			w.MeasureIO, w.DevStat, w.FlushPebble = true, devStat, true
			er, err := peer.RunEngine(c.dir, w)
			if err != nil {
				return fmt.Errorf("write amplification %s (engine): %w", w, err)
			}
			pr, err := peer.RunPebble(c.dir, w)
			if err != nil {
				return fmt.Errorf("write amplification %s (pebble): %w", w, err)
			}
			fmt.Fprintf(os.Stderr, "[wa] %s %s: engine %.3f, pebble %.3f bytes written per payload byte\n",
				w, w.Mode, ratio(er.IO.WriteBytes, er.PayloadBytes), ratio(pr.IO.WriteBytes, pr.PayloadBytes))
			waRows = append(waRows, waRow{w: w, eng: er, peb: pr})
		}
	}

	var lats []syncLat
	for _, zero := range []bool{false, true} {
		p50, p99, err := peer.SyncLatency(c.dir, zero, c.syncN)
		if err != nil {
			return fmt.Errorf("sync latency: %w", err)
		}
		lats = append(lats, syncLat{zero, p50, p99})
		fmt.Fprintf(os.Stderr, "[sync] 4 KiB write + fdatasync, zero-filled=%t: p50 %v p99 %v\n", zero, p50, p99)
	}

	var pcs []pageCost
	for i := 0; i < 3; i++ {
		time.Sleep(pageCachePause)
		fresh, cached, err := peer.PageCacheCost(c.dir)
		if err != nil {
			return fmt.Errorf("page cache cost: %w", err)
		}
		pcs = append(pcs, pageCost{fresh, cached})
		fmt.Fprintf(os.Stderr, "[pagecache] 16 KiB pwrite CPU: fresh pages %v, cached pages %v\n", fresh, cached)
	}

	var scs []syncCPU
	for i := 0; i < 3; i++ {
		lost, n, err := peer.SyncCPUCost(c.dir, syncCPUFor)
		if err != nil {
			return fmt.Errorf("sync CPU cost: %w", err)
		}
		scs = append(scs, syncCPU{lost, n})
		fmt.Fprintf(os.Stderr, "[synccpu] back-to-back fdatasync: %.1f %% of the spinners' work lost, %d syncs in %v\n", 100*lost, n, syncCPUFor)
	}

	var buf bytes.Buffer
	report(&buf, c, rows, waRows, lats, pcs, scs, fsType, devStat, time.Since(start))
	os.Stdout.Write(buf.Bytes())
	if c.out != "" {
		if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(c.out, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "benchtable: wrote %s\n", c.out)
	}
	return nil
}

type syncLat struct {
	zeroFill bool
	p50, p99 time.Duration
}

type waRow struct {
	w        peer.Workload
	eng, peb peer.Result
}

func sysName(pebble bool) string {
	if pebble {
		return "pebble"
	}
	return "engine"
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func medianOf(rs []peer.Result, f func(peer.Result) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return peer.Median(xs)
}

func evs(r peer.Result) float64 { return r.EventsPerSec() }
func mbs(r peer.Result) float64 { return r.MBPerSec() }

func spread(rs []peer.Result) string {
	if len(rs) == 0 {
		return ""
	}
	lo, hi := rs[0].EventsPerSec(), rs[0].EventsPerSec()
	for _, r := range rs[1:] {
		lo, hi = min(lo, r.EventsPerSec()), max(hi, r.EventsPerSec())
	}
	return fmt.Sprintf("%s–%s", human(lo), human(hi))
}

// human formats an events/s figure: 1.23M, 456K.
func human(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.0fK", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

func pebbleMode(m engine.FsyncMode) string {
	if m == engine.FsyncAlways {
		return "Sync=true"
	}
	return "Sync=false"
}

func report(w io.Writer, c config, rows []*row, waRows []waRow, lats []syncLat, pcs []pageCost, scs []syncCPU, fsType, devStat string, took time.Duration) {
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Fprintf(w, "# Zombi engine vs Pebble — append benchmarks\n\n")
	fmt.Fprintf(w, "%s · %s · kernel %s · %d CPUs (GOMAXPROCS %d) · %s · data in %s (%s)\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.Version(), unix.ByteSliceToString(uts.Release[:]),
		runtime.NumCPU(), runtime.GOMAXPROCS(0), pebbleVersion(), c.dir, fsType)
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(w, "Load average at the end: %s (the machine is shared; compare the side-by-side columns, not absolute figures across runs).\n\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	fmt.Fprintf(w, "Medians of %d runs per system, engine and Pebble alternating. Engine: default options (64 MiB segments, as engine.Options documents). "+
		"Pebble: default options, WAL on, Set per record or a Batch per call; key = partition+sequence (12 B), value = timestamp+payload. "+
		"MB/s counts payload bytes (10^6). Runs stop after %v.\n\n", c.runs, c.deadline)

	fmt.Fprintf(w, "| workload | engine mode | engine events/s | engine MB/s | Pebble (WAL on) | Pebble events/s | Pebble MB/s | engine ÷ Pebble | engine runs (min–max) |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|---|--:|--:|--:|---|\n")
	for _, r := range rows {
		ee, em := medianOf(r.eng, evs), medianOf(r.eng, mbs)
		pm, pe, pmb, rat := "—", "—", "—", "—"
		if r.pebble {
			p := medianOf(r.peb, evs)
			pm, pe, pmb = pebbleMode(r.w.Mode), human(p), fmt.Sprintf("%.1f", medianOf(r.peb, mbs))
			rat = fmt.Sprintf("%.2f×", ee/p)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.1f | %s | %s | %s | %s | %s |\n", r.w, r.w.Mode, human(ee), em, pm, pe, pmb, rat, spread(r.eng))
	}

	find := func(size, batch, writers, parts int, m engine.FsyncMode) *row {
		for _, r := range rows {
			if r.w.Size == size && r.w.Batch == batch && r.w.Writers == writers && max(r.w.Partitions, 1) == parts && r.w.Mode == m {
				return r
			}
		}
		return nil
	}
	fmt.Fprintf(w, "\n## FsyncAlways under concurrency\n\n")
	fmt.Fprintf(w, "| workload | always events/s | never events/s | always as %% of never | Pebble Sync=true as %% of Sync=false |\n|---|--:|--:|--:|--:|\n")
	type pctRow struct {
		name string
		pct  float64
	}
	var always64 []pctRow
	for _, k := range []struct{ batch, parts int }{{1, 1}, {1, 8}, {100, 1}} {
		a, n := find(82, k.batch, 64, k.parts, engine.FsyncAlways), find(82, k.batch, 64, k.parts, engine.FsyncNever)
		if a == nil || n == nil {
			continue
		}
		ae, ne := medianOf(a.eng, evs), medianOf(n.eng, evs)
		pct := 100 * ae / ne
		always64 = append(always64, pctRow{a.w.String(), pct})
		fmt.Fprintf(w, "| %s | %s | %s | %.1f %% | %.1f %% |\n", a.w, human(ae), human(ne), pct, 100*medianOf(a.peb, evs)/medianOf(n.peb, evs))
	}

	if len(lats) > 0 {
		fmt.Fprintf(w, "\nThe ceiling of group commit is appenders ÷ sync latency (Little's law: each appender has one record in flight). "+
			"Measured in this run, 4 KiB pwrite + fdatasync into a 64 MiB file, %d times:\n\n", c.syncN)
		fmt.Fprintf(w, "| file | p50 | p99 | ceiling for 64 single-record appenders |\n|---|--:|--:|--:|\n")
		for _, l := range lats {
			name := "fallocate'd (unwritten extents; what segment.Create makes)"
			if l.zeroFill {
				name = "zero-filled and synced beforehand (a recycled segment)"
			}
			fmt.Fprintf(w, "| %s | %v | %v | %s ev/s |\n", name, l.p50.Round(time.Microsecond), l.p99.Round(time.Microsecond), human(64/l.p50.Seconds()))
		}
	}

	if len(scs) > 0 {
		lost := make([]float64, len(scs))
		perSync := make([]float64, len(scs))
		for i, x := range scs {
			lost[i] = x.lost
			perSync[i] = x.lost * float64(runtime.NumCPU()) * us(syncCPUFor) / float64(max(x.syncs, 1)) // µs of CPU per sync
		}
		fmt.Fprintf(w, "\nWhat a sync costs the other threads: spinners on all %d CPUs for %v, alone and beside back-to-back 4 KiB write + "+
			"fdatasync (medians of %d): **%.0f %%** of their work lost, ~%.0f µs of CPU per sync. On bare metal a sync mostly waits "+
			"for the device; here the wait is paid in guest CPU, which `fsync=always` and the interval syncer take from the HTTP path.\n",
			runtime.NumCPU(), syncCPUFor, len(scs), 100*peer.Median(lost), peer.Median(perSync))
	}

	if len(pcs) > 0 {
		fresh := make([]float64, len(pcs))
		cached := make([]float64, len(pcs))
		for i, p := range pcs {
			fresh[i], cached[i] = float64(p.fresh), float64(p.cached)
		}
		f, k := time.Duration(peer.Median(fresh)), time.Duration(peer.Median(cached))
		fmt.Fprintf(w, "\n## The price of fresh page-cache pages\n\n"+
			"A bulk append is one pwrite(2) of ~16 KiB per group commit. CPU time of that pwrite (this thread, user+system), "+
			"medians of %d passes, each %v after the last, over a new 256 MiB fallocated file (every page freshly allocated, as in a new segment) "+
			"and of a second pass over the same, now cached, pages:\n\n"+
			"| pages | CPU per 16 KiB pwrite | per 4 KiB page |\n|---|--:|--:|\n"+
			"| fresh (first write of the file) | %.1f µs | %.2f µs |\n| cached (overwrite) | %.1f µs | %.2f µs |\n\n"+
			"Fresh ÷ cached: %.1f×. The difference is page allocation and zeroing and, on a VM whose host takes back the "+
			"guest's free memory (virtio-balloon free page reporting, as on this machine), the host's fault to back each page "+
			"again — so it varies with how long the memory was free. A handler that only parses (the HTTP ceilings) never pays it.\n",
			len(pcs), pageCachePause, us(f), us(f)/4, us(k), us(k)/4, ratio(int64(f), int64(k)))
	}

	var waEngine, waEngineRec float64
	if len(waRows) > 0 {
		fmt.Fprintf(w, "\n## Bytes written to disk per byte appended\n\n")
		fmt.Fprintf(w, "One run each: open, append, close (Pebble: Flush, then Close), sync(2); counters read before and after. "+
			"write_bytes is /proc/self/io (pages this process dirtied, counted at each dirtying); "+
			"device is the disk's sectors written (%s: machine-wide, so it includes the ext4 journal and other processes' writes). "+
			"Engine records are framed with a %d B header (%d B on disk per 82 B payload).\n\n",
			devStatName(devStat), segment.RecordHeaderSize, segment.RecordHeaderSize+82)
		fmt.Fprintf(w, "| workload | mode | system | payload MB | write_bytes MB | write_bytes ÷ payload | write_bytes ÷ logical record bytes | device MB | device ÷ payload |\n|---|---|---|--:|--:|--:|--:|--:|--:|\n")
		for _, r := range waRows {
			for _, s := range []struct {
				name   string
				res    peer.Result
				recLen int
			}{
				{"engine", r.eng, segment.RecordHeaderSize + r.w.Size},
				{"Pebble", r.peb, 12 + 8 + r.w.Size},
			} {
				wb, pb := s.res.IO.WriteBytes, s.res.PayloadBytes
				mode := r.w.Mode.String()
				if s.name == "Pebble" {
					mode = pebbleMode(r.w.Mode)
				}
				recBytes := s.res.Events * int64(s.recLen)
				fmt.Fprintf(w, "| %s | %s | %s | %.1f | %.1f | **%.3f** | %.3f | %.1f | %.3f |\n", r.w, mode, s.name,
					float64(pb)/1e6, float64(wb)/1e6, ratio(wb, pb), ratio(wb, recBytes), float64(s.res.IO.DeviceBytes)/1e6, ratio(s.res.IO.DeviceBytes, pb))
				if s.name == "engine" && r.w.Mode == engine.FsyncNever {
					waEngine, waEngineRec = ratio(wb, pb), ratio(wb, recBytes)
				}
			}
		}
		fmt.Fprintf(w, "\nLogical record bytes: engine = header + payload (%d B); Pebble = key + value (12 + 8 + payload B).\n", segment.RecordHeaderSize+82)
	}

	fmt.Fprintf(w, "\n## Targets (DESIGN.md §6)\n\n| target | measured | met |\n|---|---|---|\n")
	verdict := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	for _, b := range []int{1, 100} {
		if r := find(82, b, 1, 1, engine.FsyncNever); r != nil && r.pebble {
			x := medianOf(r.eng, evs) / medianOf(r.peb, evs)
			fmt.Fprintf(w, "| engine append 82 B ≥ 10× Pebble (WAL on, Sync=false): %s | %.2f× | %s |\n", r.w, x, verdict(x >= 10))
		}
	}
	if len(waRows) > 0 {
		fmt.Fprintf(w, "| bytes written per payload byte ≤ 1.1 (never mode) | %.3f (%.3f per record byte) | %s |\n", waEngine, waEngineRec, verdict(waEngine <= 1.1))
	}
	for _, r := range always64 {
		fmt.Fprintf(w, "| always ≥ 50 %% of never with 64 appenders: %s | %.1f %% | %s |\n", r.name, r.pct, verdict(r.pct >= 50))
	}
	if r := find(82, 1, 64, 1, engine.FsyncAlways); r != nil {
		x := medianOf(r.eng, evs)
		fmt.Fprintf(w, "| durable appends ≥ 500K ev/s (always, 64 appenders, single records) | %s | %s |\n", human(x), verdict(x >= 500e3))
	}
	if r := find(82, 100, 64, 1, engine.FsyncAlways); r != nil {
		x := medianOf(r.eng, evs)
		fmt.Fprintf(w, "| durable appends ≥ 500K ev/s (always, 64 appenders, batches of 100) | %s | %s |\n", human(x), verdict(x >= 500e3))
	}
	fmt.Fprintf(w, "\nTook %v.\n", took.Round(time.Second))
}

// The machine measurements: how long the spinners of SyncCPUCost run, and
// the pause before each PageCacheCost pass (memory freed moments ago is
// still backed by the host; a server's new segments mostly get memory
// that has been free for longer).
const (
	syncCPUFor     = 2 * time.Second
	pageCachePause = 4 * time.Second
)

type pageCost struct{ fresh, cached time.Duration }

type syncCPU struct {
	lost  float64
	syncs int
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func devStatName(p string) string {
	if p == "" {
		return "no device found"
	}
	return p
}

func pebbleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if strings.HasPrefix(d.Path, "github.com/cockroachdb/pebble") {
				return "Pebble " + d.Version
			}
		}
	}
	return "Pebble"
}
