package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Target is something a measurement runs against: a ceiling server or a
// `zombi serve` with some settings, each run in a fresh child process
// (and, for zombi, a fresh data directory).
type Target struct {
	Name    string   // as shown in the table
	Ceiling string   // CeilingNoop or CeilingParse; "" for zombi serve
	Env     []string // ZOMBI_* settings of a zombi child
}

// Row is one line of the side-by-side table: the same load against every
// target, alternating, Runs times each.
type Row struct {
	Name    string
	Load    Config
	Targets []Target
	// Metric picks the figure compared: events/s by default.
	Metric func(*Report) float64
	Unit   string
	// Base is the index of the target the zombi figure is divided by, and
	// Zombi the index of the measured one.
	Base, Zombi int
	// Target is the goal as a ratio (0.85 = 85 %), and Floor an absolute
	// goal in Unit (0 = none).
	Target, Floor float64
	// Lower makes the metric a cost (server CPU per request): the goal
	// is met when the ratio is at most Target (1.4 = 1.4×).
	Lower bool
}

// SuiteConfig configures a side-by-side suite.
type SuiteConfig struct {
	Exe      string        // the zombi binary (children run `zombi serve` and ceilings)
	Runs     int           // runs per target; medians are quoted (default 3)
	Duration time.Duration // measured time per run (default 3 s)
	Warmup   time.Duration // unmeasured time per run (default 1 s)
	DataDir  string        // parent of the children's data directories (default os.TempDir())
	Log      io.Writer     // progress (default io.Discard)
	Progress bool          // progress lines while running
	// ProfileDir, when set, runs each zombi child under the profiler
	// (zombi load --profile-serve) writing into a sub-directory per run.
	ProfileDir string
}

// RowResult is one row's measurements.
type RowResult struct {
	Row     *Row
	Values  [][]float64 // per target, per run
	Medians []float64
	PeakRSS int64       // peak RssAnon of any zombi child, KiB
	CPU     [][]float64 // per target, per run: server CPU µs per request
	Reports []*Report   // the zombi target's reports
}

// Ratio is the zombi median over the base median.
func (r *RowResult) Ratio() float64 {
	b := r.Medians[r.Row.Base]
	if b == 0 {
		return 0
	}
	return r.Medians[r.Row.Zombi] / b
}

// Met reports whether the row's targets are met.
func (r *RowResult) Met() bool {
	if r.Row.Lower {
		return r.Row.Target == 0 || r.Ratio() <= r.Row.Target
	}
	ok := r.Row.Target == 0 || r.Ratio() >= r.Row.Target
	if r.Row.Floor > 0 {
		ok = ok && r.Medians[r.Row.Zombi] >= r.Row.Floor
	}
	return ok
}

func (c *SuiteConfig) ensureDefaults() {
	if c.Runs == 0 {
		c.Runs = 3
	}
	if c.Duration == 0 {
		c.Duration = 3 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = time.Second
	}
	if c.DataDir == "" {
		c.DataDir = os.TempDir()
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// RunRow measures one row: for run k, every target once, the order
// rotated by k so that no target always runs first (or last, on a warmer
// or more tired machine).
func RunRow(ctx context.Context, sc SuiteConfig, row *Row) (*RowResult, error) {
	sc.ensureDefaults()
	if row.Metric == nil {
		row.Metric = func(r *Report) float64 { return r.EventsPerSec }
		row.Unit = "events/s"
	}
	res := &RowResult{Row: row, Values: make([][]float64, len(row.Targets)), CPU: make([][]float64, len(row.Targets))}
	for k := range sc.Runs {
		for j := range row.Targets {
			ti := (j + k) % len(row.Targets)
			t := row.Targets[ti]
			rep, err := runOnce(ctx, sc, t, row.Load)
			if err != nil {
				return nil, fmt.Errorf("%s against %s: %w", row.Name, t.Name, err)
			}
			v := row.Metric(rep)
			res.Values[ti] = append(res.Values[ti], v)
			res.CPU[ti] = append(res.CPU[ti], rep.ServerCPUPerReq)
			if ti == row.Zombi {
				res.Reports = append(res.Reports, rep)
				res.PeakRSS = max(res.PeakRSS, rep.PeakRSSAnonKiB)
			}
			fmt.Fprintf(sc.Log, "  %-34s run %d  %-22s %10s %s  p99 %-8s  CPU/req server %5.1f µs, generator %5.1f µs %s\n", row.Name, k+1, t.Name, si(v), row.Unit,
				fmtDur(rep.Latency.P99), rep.ServerCPUPerReq, rep.ClientCPUPerReq, errNote(rep))
		}
	}
	for _, vs := range res.Values {
		res.Medians = append(res.Medians, median(vs))
	}
	return res, nil
}

func errNote(r *Report) string {
	if r.Errors+r.Overloaded == 0 {
		return ""
	}
	return fmt.Sprintf("(%d errors, %d 503; last: %s)", r.Errors, r.Overloaded, r.LastError)
}

// runOnce starts the target, runs the load against it, and stops it.
func runOnce(ctx context.Context, sc SuiteConfig, t Target, load Config) (*Report, error) {
	var ch *Child
	var err error
	if t.Ceiling != "" {
		ch, err = StartChild(t.Name, sc.Exe, []string{"load", "--ceiling-server", t.Ceiling, "--listen", "127.0.0.1:0"}, nil, "", 10*time.Second)
	} else {
		var dir string
		dir, err = os.MkdirTemp(sc.DataDir, "zombi-bench-")
		if err != nil {
			return nil, err
		}
		args := []string{"serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", dir}
		if sc.ProfileDir != "" {
			pd, perr := os.MkdirTemp(sc.ProfileDir, "run-")
			if perr != nil {
				return nil, perr
			}
			args = append([]string{"load", "--profile-serve", pd, "--"}, args[1:]...)
			fmt.Fprintf(sc.Log, "  profiles of the next run: %s\n", pd)
		}
		ch, err = StartChild(t.Name, sc.Exe, args, t.Env, dir, 30*time.Second)
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}
	if err != nil {
		return nil, err
	}
	defer ch.Stop()
	load.Target = ch.Addr
	load.Duration = sc.Duration
	load.Warmup = sc.Warmup
	load.ServerPID = ch.PID()
	if sc.Progress {
		load.Progress = sc.Log
	}
	return Run(ctx, load)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Machine describes where a suite ran.
func Machine() string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					model = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	return fmt.Sprintf("%d vCPU (%s), kernel %s, %s, GOMAXPROCS %d", runtime.NumCPU(), model,
		strings.TrimSpace(string(kernel)), runtime.Version(), runtime.GOMAXPROCS(0))
}

// LoadAvg is /proc/loadavg's first three fields.
func LoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
