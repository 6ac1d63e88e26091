package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zombihq/zombi/bench"
	"github.com/zombihq/zombi/internal/testsvc"
)

// clusterRun is what one run of BenchmarkCluster measured.
type clusterRun struct {
	eventsPerSec float64
	p99          time.Duration
	serverCPU    float64 // µs per event, every node together
	proxyCPU     float64 // µs per event, HAProxy
	commitsPerS  float64 // Iceberg snapshots committed per second, every node together
	commitErrors int64
}

// BenchmarkCluster (make bench-cluster) loads 1, 2 and 3 zombi serve
// through HAProxy (deploy/haproxy.cfg) with zombi load's bulk scenario
// (82 B × 100 per request, writes that name no partition), on one
// PostgreSQL catalog and one MinIO bucket, each node flushing every
// second. The nodes, the proxy, PostgreSQL, MinIO and the load generator
// share this machine's cores: the figure to compare is server CPU per
// event, not events/s. Runs alternate between the node counts; the
// table has medians. ZOMBI_BENCH_RUNS (3) and ZOMBI_BENCH_SECS (8) set
// the runs and their length.
func BenchmarkCluster(b *testing.B) {
	runs, secs := envInt("ZOMBI_BENCH_RUNS", 3), envInt("ZOMBI_BENCH_SECS", 8)
	pg := testsvc.StartPostgres(b)
	m := testsvc.StartMinIO(b)
	counts := []int{1, 2, 3}
	res := map[int][]clusterRun{}
	for r := range runs {
		for _, n := range counts {
			cr := runCluster(b, pg, m, n, fmt.Sprintf("bench_r%d_n%d", r, n), time.Duration(secs)*time.Second)
			res[n] = append(res[n], cr)
			b.Logf("run %d, %d node(s): %.0f events/s, p99 %v, server CPU %.2f µs/event, HAProxy %.2f µs/event, %.1f commits/s (%d commit errors)",
				r+1, n, cr.eventsPerSec, cr.p99, cr.serverCPU, cr.proxyCPU, cr.commitsPerS, cr.commitErrors)
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\n| nodes | events/s | p99 | server CPU per event | HAProxy CPU per event | Iceberg commits/s |\n|---|---|---|---|---|---|\n")
	for _, n := range counts {
		rs := res[n]
		med := func(f func(clusterRun) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			slices.Sort(v)
			return v[len(v)/2]
		}
		fmt.Fprintf(&out, "| %d | %.0fK | %v | %.2f µs | %.2f µs | %.1f |\n", n,
			med(func(r clusterRun) float64 { return r.eventsPerSec })/1e3,
			time.Duration(med(func(r clusterRun) float64 { return float64(r.p99) })).Round(10*time.Microsecond),
			med(func(r clusterRun) float64 { return r.serverCPU }),
			med(func(r clusterRun) float64 { return r.proxyCPU }),
			med(func(r clusterRun) float64 { return r.commitsPerS }))
	}
	fmt.Fprintf(&out, "\nmedians of %d alternating runs of %d s each (make bench-cluster)\n", runs, secs)
	b.Log(out.String())
	fmt.Fprint(os.Stdout, out.String())
}

// runCluster starts n nodes behind a proxy, loads them for d, and stops
// them.
func runCluster(b *testing.B, pg string, m *testsvc.MinIO, n int, table string, d time.Duration) clusterRun {
	b.Helper()
	env := clusterEnv(pg, m, "ZOMBI_FLUSH_INTERVAL_SECS=1", "ZOMBI_SEGMENT_SIZE_MB=64", "ZOMBI_LEASE_SECS=15",
		"ZOMBI_LOG_LEVEL=warn")
	nodes := make([]*child, n)
	backends := make([]string, n)
	dirs := make([]string, n)
	for i := range nodes {
		dir, err := os.MkdirTemp("", "zombi-bench-node-")
		if err != nil {
			b.Fatal(err)
		}
		dirs[i] = dir
		port := freePort(b)
		nodes[i] = startChildOn(b, port, dir, env...)
		nodes[i].waitReady()
		backends[i] = "127.0.0.1:" + strconv.Itoa(port)
	}
	defer func() {
		for i, c := range nodes {
			c.kill()
			os.RemoveAll(dirs[i])
		}
	}()
	proxy := testsvc.StartHAProxy(b, backends)
	cpu := func() (nodesCPU, proxyCPU time.Duration) {
		for _, c := range nodes {
			t, err := bench.ProcCPU(c.cmd.Process.Pid)
			if err != nil {
				b.Fatal(err)
			}
			nodesCPU += t
		}
		t, err := bench.ProcCPU(proxy.Pid())
		if err != nil {
			b.Fatal(err)
		}
		return nodesCPU, t
	}
	commits := func() (n, errs int64) {
		for _, c := range nodes {
			n += c.metric("zombi_iceberg_snapshots_committed_total")
			errs += c.metric("zombi_iceberg_commit_errors_total")
		}
		return n, errs
	}
	cfg := bench.Config{Target: proxy.Addr(), Scenario: bench.ScenarioBulk, Table: table, Unplaced: true,
		Conns: 16, Duration: d}
	c0, p0 := cpu()
	k0, e0 := commits()
	start := time.Now()
	rep, err := bench.Run(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	el := time.Since(start).Seconds()
	c1, p1 := cpu()
	k1, e1 := commits()
	if rep.Events == 0 || rep.Errors > 0 {
		b.Fatalf("%d node(s): %d events, %d errors (last: %s)", n, rep.Events, rep.Errors, rep.LastError)
	}
	ev := float64(rep.Events)
	return clusterRun{
		eventsPerSec: rep.EventsPerSec,
		p99:          time.Duration(rep.Latency.P99 * float64(time.Microsecond)),
		serverCPU:    float64(c1-c0) / 1e3 / ev,
		proxyCPU:     float64(p1-p0) / 1e3 / ev,
		commitsPerS:  float64(k1-k0) / el,
		commitErrors: e1 - e0,
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
