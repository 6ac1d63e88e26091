package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/zombihq/zombi/bench"
)

const loadUsage = `Usage: zombi load [flags]

Sends load to a Zombi-compatible server (ours or the Rust original) and
reports throughput and latency. Every run is bounded by --duration and,
when set, --requests. The target is 127.0.0.1:8080 unless --target says
otherwise.

Scenarios (--scenario):
  single        one event per request (POST /tables/{t})
  bulk          --batch events per request (POST /tables/{t}/bulk; default 100)
  large         20 KiB payloads
  sustained     a long run (default 20 KiB payloads); reports the drop from the
                first window (a minute, or a fifth of the run) to the worst
  mixed         reads of the hot tail (--read-ratio) among the writes
  backpressure  overload with ~1 MiB bodies for 2/3 of the run, then check the
                server accepts writes again (exit 1 if not)
  consistency   every acked offset is read back with its payload and each
                producer's per-partition order is checked (exit 1 on any violation)

Side by side with the ceiling (children on 127.0.0.1, fresh data dirs):
  --ceiling     run the scenario against a do-nothing fasthttp handler (and,
                for bulk JSON, a parse-only handler) and a child zombi serve,
                alternating, --runs times each; print medians and ratios
  --suite       the short suite of make bench-http: single, bulk and
                fsync=always beside their ceilings, and p99 at 50 % of max

Flags:
`

// load runs `zombi load`.
func load(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zombi load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c bench.Config
	fs.StringVar(&c.Target, "target", "127.0.0.1:8080", "server host:port")
	fs.StringVar(&c.Scenario, "scenario", "single", "one of "+strings.Join(bench.Scenarios, ", "))
	fs.StringVar(&c.Encoding, "encoding", "json", "json or protobuf")
	fs.StringVar(&c.Table, "table", "", `table written (default "load"; consistency: a fresh one)`)
	fs.IntVar(&c.Conns, "conns", 0, "connections, one worker each (default 64; backpressure 128)")
	fs.IntVar(&c.Size, "size", 0, "payload bytes (default 82; large and sustained 20480)")
	fs.IntVar(&c.Batch, "batch", 0, "events per request (default 1; bulk 100)")
	fs.IntVar(&c.Partitions, "partitions", 1, "partitions written (worker w writes w mod partitions); 0: name none, the server places the writes (a cluster: each node writes its own)")
	fs.Float64Var(&c.Rate, "rate", 0, "total requests/s, open loop (0: closed loop, as fast as answered)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured run time (an upper bound)")
	fs.DurationVar(&c.Warmup, "warmup", 0, "unmeasured run time before it")
	fs.Int64Var(&c.Requests, "requests", 0, "stop after this many requests (0: only --duration; consistency 20000)")
	fs.BoolVar(&c.FreshPayloads, "fresh-payloads", false, "new random bytes for every payload (for the cold tier's compression); default: each worker repeats one")
	fs.Float64Var(&c.ReadRatio, "read-ratio", 0.2, "share of reads in the mixed scenario")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "sample this process's RssAnon each second and report its CPU time per request")
	// --acks FILE: one line per event the server acknowledged (202; every
	// record of an acknowledged bulk request), "<run tag>-w<worker>-<seq>\n",
	// the id its payload carries (bench.Config.Acks, bench.PayloadID).
	acksPath := fs.String("acks", "", "write the id of every event acknowledged (202) here, one a line: <run tag>-w<worker>-<seq>, where the run tag is 8 random hex digits of this run; the payloads are then JSON objects {\"id\":\"<id>\",\"pad\":\"…\"} of --size bytes (at least 64), so a checker can find each acked event in the table (bench.PayloadID). Events of failed requests (transport error, timeout, any status but 202) are not listed")
	reportPath := fs.String("report", "", "write the JSON report here")
	svgPath := fs.String("svg", "", "write an SVG chart of throughput and p50/p99 over time here")
	progress := fs.String("progress", "auto", "progress line: auto (on a terminal), on, off")
	ceiling := fs.Bool("ceiling", false, "measure the scenario beside its ceilings (see above)")
	suite := fs.Bool("suite", false, "run the short side-by-side suite (make bench-http)")
	runs := fs.Int("runs", 3, "--ceiling/--suite: runs per target (medians)")
	out := fs.String("out", "", "--suite/--ceiling: also write the Markdown table here")
	dataDir := fs.String("data-dir", "", "--suite/--ceiling: parent of the child servers' data dirs (default $TMPDIR)")
	ceilingServer := fs.String("ceiling-server", "", "serve a ceiling handler (noop, noop-streamed or parse) instead of sending load")
	listen := fs.String("listen", "127.0.0.1:0", "--ceiling-server: listen address")
	only := fs.String("only", "", "--suite: run only the rows whose name contains this (e.g. \"cold tier off\")")
	profileDir := fs.String("profile-dir", "", "--suite/--ceiling: profile every zombi child into a sub-directory of this one")
	profile := fs.String("profile-serve", "", "run `zombi serve <args after -->` with CPU and alloc profiles written to this directory on exit")
	fs.Usage = func() { fmt.Fprint(stderr, loadUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if isFlagSet(fs, "partitions") && c.Partitions == 0 {
		c.Unplaced, c.Partitions = true, 1
	}
	if *profile != "" {
		return profileServe(*profile, fs.Args(), stdout, stderr)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zombi load: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	if *acksPath != "" && (*suite || *ceiling || *ceilingServer != "") {
		fmt.Fprintln(stderr, "zombi load: --acks lists the events of one run: not with --suite, --ceiling or --ceiling-server")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if *ceilingServer != "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintf(stderr, "zombi load: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "ceiling %s listening on %s\n", *ceilingServer, ln.Addr())
		if err := bench.ServeCeiling(ctx, ln, *ceilingServer); err != nil {
			fmt.Fprintf(stderr, "zombi load: %v\n", err)
			return 1
		}
		return 0
	}

	switch *progress {
	case "on":
		c.Progress = stderr
	case "auto":
		if f, ok := stderr.(*os.File); ok && isTerminal(f) {
			c.Progress = stderr
		}
	}

	if *suite || *ceiling {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "zombi load: %v\n", err)
			return 1
		}
		sc := bench.SuiteConfig{Exe: exe, Runs: *runs, Duration: c.Duration, Warmup: c.Warmup,
			DataDir: *dataDir, Log: stderr, Progress: c.Progress != nil, ProfileDir: *profileDir}
		if !isFlagSet(fs, "duration") {
			sc.Duration = 3 * time.Second
		}
		if !isFlagSet(fs, "warmup") {
			sc.Warmup = time.Second
		}
		return sideBySide(ctx, sc, c, *suite, *only, *out, "zombi load "+strings.Join(args, " "), stdout, stderr)
	}

	var acks *acksFile
	if *acksPath != "" {
		f, err := os.Create(*acksPath)
		if err != nil {
			fmt.Fprintf(stderr, "zombi load: %v\n", err)
			return 1
		}
		defer f.Close() // after an error; close checks it otherwise
		acks = &acksFile{f: f, w: bufio.NewWriterSize(f, 256<<10)}
		c.Acks = acks.w
	}
	rep, err := bench.Run(ctx, c)
	if err == nil && acks != nil {
		err = acks.close()
	}
	if err != nil {
		fmt.Fprintf(stderr, "zombi load: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, rep.Summary())
	if *reportPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*reportPath, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "zombi load: %v\n", err)
			return 1
		}
	}
	if *svgPath != "" {
		f, err := os.Create(*svgPath)
		if err == nil {
			err = rep.WriteSVG(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "zombi load: %v\n", err)
			return 1
		}
	}
	if len(rep.Violations) > 0 {
		return 1
	}
	return 0
}

// sideBySide runs --suite, or --ceiling for one scenario, and prints the
// Markdown table.
func sideBySide(ctx context.Context, sc bench.SuiteConfig, c bench.Config, suite bool, only, out, command string, stdout, stderr io.Writer) int {
	started, loadBefore := time.Now(), bench.LoadAvg()
	var rows []*bench.Row
	if suite {
		for _, r := range bench.ShortSuite(c.Conns) {
			if strings.Contains(r.Name, only) {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			fmt.Fprintf(stderr, "zombi load: --only %q matches no row of the suite\n", only)
			return 2
		}
	} else {
		c.Target = ""
		targets := []bench.Target{{Name: "do-nothing handler", Ceiling: bench.CeilingNoop}}
		if c.Scenario == bench.ScenarioBulk && c.Encoding != bench.EncodingProtobuf {
			targets = append([]bench.Target{{Name: "parse-only handler", Ceiling: bench.CeilingParse}}, targets...)
		}
		targets = append(targets, bench.Target{Name: "zombi"})
		rows = []*bench.Row{{Name: c.Scenario + " " + c.Encoding, Load: c, Targets: targets, Base: 0, Zombi: len(targets) - 1}}
	}
	var results []*bench.RowResult
	for _, r := range rows {
		fmt.Fprintf(stderr, "%s\n", r.Name)
		res, err := bench.RunRow(ctx, sc, r)
		if err != nil {
			fmt.Fprintf(stderr, "zombi load: %v\n", err)
			return 1
		}
		results = append(results, res)
	}
	var lat []*bench.Report
	var latRate float64
	if suite && only == "" {
		latRate = results[0].Medians[results[0].Row.Zombi] / 2
		fmt.Fprintf(stderr, "latency at 50 %% of max (%.0f req/s)\n", latRate)
		var err error
		lat, err = bench.LatencyAtHalf(ctx, sc, latRate, results[0].Row.Load.Conns)
		if err != nil {
			fmt.Fprintf(stderr, "zombi load: %v\n", err)
			return 1
		}
	}
	table := bench.SuiteTable(sc, command, started, loadBefore, results, lat, latRate)
	fmt.Fprint(stdout, "\n"+table)
	if out != "" {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err == nil {
			err = os.WriteFile(out, []byte(table), 0o644)
		}
	}
	return 0
}

// profileServe runs the server under the CPU profiler (and with every
// allocation sampled at the default rate) and writes cpu.prof and
// allocs.prof into dir when it stops: `go tool pprof bin/zombi dir/cpu.prof`.
func profileServe(dir string, args []string, stdout, stderr io.Writer) int {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "zombi load: %v\n", err)
		return 1
	}
	f, err := os.Create(filepath.Join(dir, "cpu.prof"))
	if err != nil {
		fmt.Fprintf(stderr, "zombi load: %v\n", err)
		return 1
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(stderr, "zombi load: %v\n", err)
		return 1
	}
	code := serve(args, stdout, stderr, nil, nil)
	pprof.StopCPUProfile()
	if af, err := os.Create(filepath.Join(dir, "allocs.prof")); err == nil {
		_ = pprof.Lookup("allocs").WriteTo(af, 0)
		_ = af.Close()
	}
	return code
}

// acksFile is the file of --acks, written through a buffer.
type acksFile struct {
	f *os.File
	w *bufio.Writer
}

// close writes out the buffer and closes the file: a line lost here would
// read as an acked event the server lost.
func (a *acksFile) close() error {
	err := a.w.Flush()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--acks: %w", err)
	}
	return nil
}

func isFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
