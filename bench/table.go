package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ShortSuite is the HTTP part of `make bench`: single and bulk writes
// beside their ceilings, and fsync=always beside never. conns is the
// connection count of the single-write rows (64 unless set).
func ShortSuite(conns int) []*Row {
	if conns == 0 {
		conns = 64
	}
	noop := Target{Name: "do-nothing handler", Ceiling: CeilingNoop}
	parse := Target{Name: "parse-only handler", Ceiling: CeilingParse}
	zombi := Target{Name: "zombi (fsync=interval)"}
	reqs := func(r *Report) float64 { return r.ReqPerSec }
	cpu := func(r *Report) float64 { return r.ServerCPUPerReq }
	return []*Row{
		{Name: fmt.Sprintf("single 82 B JSON, %d conns", conns), Unit: "req/s", Metric: reqs,
			Load:    Config{Scenario: ScenarioSingle, Conns: conns},
			Targets: []Target{noop, zombi}, Base: 0, Zombi: 1, Target: 0.85},
		{Name: fmt.Sprintf("single 82 B protobuf, %d conns", conns), Unit: "req/s", Metric: reqs,
			Load:    Config{Scenario: ScenarioSingle, Conns: conns, Encoding: EncodingProtobuf},
			Targets: []Target{noop, zombi}, Base: 0, Zombi: 1, Target: 0.85},
		{Name: "bulk 100 × 82 B JSON, 16 conns", Unit: "events/s",
			Load:    Config{Scenario: ScenarioBulk, Conns: 16, Batch: 100},
			Targets: []Target{parse, noop, zombi}, Base: 0, Zombi: 2, Target: 0.70, Floor: 2e6},
		{Name: "bulk 100 × 82 B JSON, 16 conns, cold tier off: server CPU per request", Unit: "µs/req", Metric: cpu, Lower: true,
			Load:    Config{Scenario: ScenarioBulk, Conns: 16, Batch: 100},
			Targets: []Target{parse, {Name: "zombi (cold tier off)", Env: []string{"ZOMBI_ICEBERG_ENABLED=false"}}},
			Base:    0, Zombi: 1, Target: 1.4},
		{Name: "single 82 B JSON, 64 conns: fsync=always ÷ never", Unit: "req/s", Metric: reqs,
			Load: Config{Scenario: ScenarioSingle, Conns: 64},
			Targets: []Target{
				{Name: "zombi (fsync=never)", Env: []string{"ZOMBI_FSYNC=never"}},
				{Name: "zombi (fsync=always)", Env: []string{"ZOMBI_FSYNC=always"}},
			}, Base: 0, Zombi: 1, Target: 0.50},
	}
}

// LatencyAtHalf runs single 82 B JSON writes open loop at rate req/s
// against fresh zombi children, sc.Runs times, and returns the reports.
func LatencyAtHalf(ctx context.Context, sc SuiteConfig, rate float64, conns int) ([]*Report, error) {
	sc.ensureDefaults()
	var out []*Report
	for k := range sc.Runs {
		rep, err := runOnce(ctx, sc, Target{Name: "zombi (fsync=interval)"},
			Config{Scenario: ScenarioSingle, Conns: conns, Rate: rate})
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(sc.Log, "  %-34s run %d  %10s req/s  p50 %s  p99 %s  p99.9 %s\n", "latency at 50 % of max", k+1,
			si(rep.ReqPerSec), fmtDur(rep.Latency.P50), fmtDur(rep.Latency.P99), fmtDur(rep.Latency.P999))
		out = append(out, rep)
	}
	return out, nil
}

// SuiteTable renders rows (and the latency runs, if any) as Markdown.
func SuiteTable(sc SuiteConfig, command string, started time.Time, loadBefore string, rows []*RowResult, lat []*Report, latRate float64) string {
	sc.ensureDefaults()
	var b strings.Builder
	fmt.Fprintf(&b, "# Zombi over HTTP, beside its ceilings\n\n")
	fmt.Fprintf(&b, "%s · %s · data in %s\n\n", started.UTC().Format("2006-01-02 15:04 UTC"), Machine(), sc.DataDir)
	fmt.Fprintf(&b, "Command: `%s`. Load generator (`zombi load`) and server on the same cores; every figure is the median of %d runs of %v (after %v of warm-up), the targets alternating, each run against a fresh child process (zombi: fresh data directory). Load average before / after: %s / %s (the machine is shared: compare within a row).\n\n",
		command, sc.Runs, sc.Duration, sc.Warmup, loadBefore, LoadAvg())
	b.WriteString("| workload | ceiling | ceiling median | zombi | zombi median | zombi ÷ ceiling | goal | met | zombi runs (min–max) | zombi p99 | peak RssAnon | server CPU/request: ceiling → zombi |\n")
	b.WriteString("|---|---|--:|---|--:|--:|---|:-:|---|--:|--:|--:|\n")
	for _, r := range rows {
		row := r.Row
		goal := fmt.Sprintf("≥ %.0f %%", row.Target*100)
		ratio := fmt.Sprintf("%.1f %%", 100*r.Ratio())
		if row.Lower {
			goal = fmt.Sprintf("≤ %.2f×", row.Target)
			ratio = fmt.Sprintf("%.2f×", r.Ratio())
		}
		if row.Floor > 0 {
			goal += " and ≥ " + si(row.Floor)
		}
		met := "yes"
		if !r.Met() {
			met = "**no**"
		}
		zs := r.Values[row.Zombi]
		var p99s []float64
		for _, rep := range r.Reports {
			p99s = append(p99s, rep.Latency.P99)
		}
		num := si
		if row.Lower {
			num = func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
		}
		fmt.Fprintf(&b, "| %s | %s | %s %s | %s | %s %s | %s | %s | %s | %s–%s | %s | %.0f MiB | %.1f → %.1f µs |\n",
			row.Name, row.Targets[row.Base].Name, num(r.Medians[row.Base]), row.Unit,
			row.Targets[row.Zombi].Name, num(r.Medians[row.Zombi]), row.Unit, ratio, goal, met,
			num(minOf(zs)), num(maxOf(zs)), fmtDur(median(p99s)), float64(r.PeakRSS)/1024,
			median(r.CPU[row.Base]), median(r.CPU[row.Zombi]))
		for i, t := range row.Targets {
			if i != row.Base && i != row.Zombi {
				fmt.Fprintf(&b, "| ↳ also: %s | | %s %s | | | zombi ÷ it: %.1f %% | | | | | | |\n",
					t.Name, si(r.Medians[i]), row.Unit, 100*r.Medians[row.Zombi]/max(r.Medians[i], 1))
			}
		}
	}
	if len(lat) > 0 {
		var p50, p99, p999, got []float64
		var rss int64
		for _, r := range lat {
			p50 = append(p50, r.Latency.P50)
			p99 = append(p99, r.Latency.P99)
			p999 = append(p999, r.Latency.P999)
			got = append(got, r.ReqPerSec)
			rss = max(rss, r.PeakRSSAnonKiB)
		}
		fmt.Fprintf(&b, "\nLatency of single 82 B JSON writes at 50 %% of zombi's max (open loop at %s req/s, %d conns, measured from each request's scheduled time, so free of coordinated omission; client side, loopback included): achieved %s req/s, p50 %s, p99 **%s**, p99.9 %s (medians of %d runs); peak RssAnon %.0f MiB.\n",
			si(latRate), lat[0].Conns, si(median(got)), fmtDur(median(p50)), fmtDur(median(p99)), fmtDur(median(p999)), len(lat), float64(rss)/1024)
	}
	return b.String()
}

func minOf(xs []float64) float64 {
	m := 0.0
	for i, x := range xs {
		if i == 0 || x < m {
			m = x
		}
	}
	return m
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
