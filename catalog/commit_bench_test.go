package catalog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zombihq/zombi/internal/testsvc"
)

// BenchmarkCommitRate (make bench-commits) measures how many Iceberg
// commits one table takes per second through the PostgreSQL catalog when
// 1 or 3 servers commit to it at once, each its own partition, back to
// back, with the default retry policy: every commit rewrites the table's
// metadata and swaps its pointer in the catalog database, so commits to
// one table serialise and a server whose view is stale reloads and
// retries. A commit here adds one small data file (no Parquet is
// written: this is the catalog's cost alone) and the metadata goes to a
// local warehouse. Runs alternate between 1 and 3 committers;
// ZOMBI_BENCH_RUNS (3) and ZOMBI_BENCH_SECS (5) set their number and
// length.
func BenchmarkCommitRate(b *testing.B) {
	runs, secs := benchEnv("ZOMBI_BENCH_RUNS", 3), benchEnv("ZOMBI_BENCH_SECS", 5)
	uri := testsvc.StartPostgres(b)
	ctx := context.Background()
	counts := []int{1, 3}
	type result struct{ perSec, attempts float64 }
	res := map[int][]result{}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for r := range runs {
		for _, n := range counts {
			name := fmt.Sprintf("commits_r%d_n%d", r, n)
			tables := make([]*Table, n)
			for i := range tables {
				c, err := Open(ctx, Options{URI: uri, DataDir: b.TempDir(), Owner: fmt.Sprintf("node-%d", i), Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				if tables[i], err = c.Table(ctx, name); err != nil {
					b.Fatal(err)
				}
			}
			var (
				wg                sync.WaitGroup
				mu                sync.Mutex
				commits, attempts int
				firstErr          error
			)
			deadline := time.Now().Add(time.Duration(secs) * time.Second)
			start := time.Now()
			for i, tbl := range tables {
				wg.Go(func() {
					p := uint32(i)
					for to := uint64(100); time.Now().Before(deadline); to += 100 {
						cr, err := tbl.Commit(ctx, []Range{{Partition: p, From: to - 99, To: to, High: to}},
							[]DataFile{fakeFile(tbl, p, to-99, to)})
						mu.Lock()
						if err != nil && firstErr == nil {
							firstErr = err
						}
						commits++
						attempts += cr.Attempts
						mu.Unlock()
						if err != nil {
							return
						}
					}
				})
			}
			wg.Wait()
			if firstErr != nil {
				b.Fatalf("%d committers: %v", n, firstErr)
			}
			el := time.Since(start).Seconds()
			rr := result{float64(commits) / el, float64(attempts) / float64(commits)}
			res[n] = append(res[n], rr)
			b.Logf("run %d, %d committer(s): %d commits, %.1f commits/s, %.2f attempts per commit", r+1, n, commits, rr.perSec, rr.attempts)
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\n| servers committing to one table | commits/s (all together) | attempts per commit |\n|---|---|---|\n")
	for _, n := range counts {
		per, att := []float64{}, []float64{}
		for _, r := range res[n] {
			per, att = append(per, r.perSec), append(att, r.attempts)
		}
		slices.Sort(per)
		slices.Sort(att)
		fmt.Fprintf(&out, "| %d | %.1f | %.2f |\n", n, per[len(per)/2], att[len(att)/2])
	}
	fmt.Fprintf(&out, "\nmedians of %d alternating runs of %d s each, PostgreSQL catalog, local warehouse (make bench-commits)\n", runs, secs)
	b.Log(out.String())
	fmt.Fprint(os.Stdout, out.String())
}

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
