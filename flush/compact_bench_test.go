package flush

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/engine"
)

// compactBenchEvents is the events compacted per iteration
// (ZOMBI_BENCH_COMPACT_EVENTS), in compactBenchFiles flushes of two
// partitions each, all in one partition-hour.
var compactBenchEvents = func() int {
	if n, err := strconv.Atoi(os.Getenv("ZOMBI_BENCH_COMPACT_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}()

const compactBenchFiles = 32

// procStatusKB returns a field of /proc/self/status in bytes.
func procStatusKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkCompact measures compaction of one partition-hour made of
// 2 × compactBenchFiles small files of 82-byte events (local warehouse,
// SQLite catalog): MB/s of Parquet read and of events rewritten, and the
// peak memory while it runs — RssAnon sampled every 5 ms, and VmHWM
// (peak RSS) after resetting it through /proc/self/clear_refs.
func BenchmarkCompact(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	e, err := engine.Open(engine.Options{Dir: dir}.WithFsync(engine.FsyncNever))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	cat, err := catalog.Open(ctx, catalog.Options{DataDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	f, err := New(Options{Engine: e, Catalog: cat, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	m, err := NewMaintainer(f, MaintainOptions{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	const table = "bench"
	rng := rand.New(rand.NewPCG(7, 7))
	ts := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC).UnixMilli()
	recs := make([]engine.Record, 1000)
	offs := make([]uint64, len(recs))
	bufs := make([][]byte, len(recs))
	var n int64
	var rows, read, written int64
	var took time.Duration
	var peakAnon, hwm, base, heap int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		per := compactBenchEvents / compactBenchFiles
		for k := 0; k < compactBenchFiles; k++ {
			for j := 0; j < per; j += len(recs) {
				for r := range recs {
					bufs[r] = payload82(bufs[r], rng, int(n))
					// 2 partitions, 2,000 events per ms: an hour holds it all.
					// Each iteration its own hour: the last one's output
					// is not compacted again.
					recs[r] = engine.Record{Partition: uint32(r & 1), TimestampMs: ts + int64(i)*3_600_000 + n/2000, Payload: bufs[r]}
					n++
				}
				if err := e.AppendBatch(table, recs, offs); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := f.FlushTable(ctx, table); err != nil {
				b.Fatal(err)
			}
		}
		want := n - rows
		// The flushes' garbage does not count; writing 5 to clear_refs
		// resets VmHWM.
		debug.FreeOSMemory()
		os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
		rss := startRSS()
		base = max(base, rss.peak.Load())
		b.StartTimer()
		res, err := m.Compact(ctx, table)
		b.StopTimer()
		peakAnon = max(peakAnon, rss.done())
		heap = max(heap, rss.heap.Load()-rss.heapBase)
		hwm = max(hwm, procStatusKB("VmHWM"))
		if err != nil {
			b.Fatal(err)
		}
		if res.FilesCompacted != 2*compactBenchFiles || res.RowsProcessed != want {
			b.Fatalf("compaction %+v", res)
		}
		rows += res.RowsProcessed
		read += res.BytesRead
		written += res.BytesWritten
		took += res.Duration
		b.StartTimer()
	}
	secs := took.Seconds()
	b.ReportMetric(float64(read)/secs/1e6, "parquet-MB/s")
	b.ReportMetric(float64(rows)*82/secs/1e6, "event-MB/s")
	b.ReportMetric(float64(rows)/secs, "rows/s")
	b.ReportMetric(float64(peakAnon)/(1<<20), "peak-RssAnon-MiB")
	b.ReportMetric(float64(base)/(1<<20), "start-RssAnon-MiB")
	b.ReportMetric(float64(hwm)/(1<<20), "VmHWM-MiB")
	b.ReportMetric(float64(heap)/(1<<20), "compact-heap-MiB")
	b.ReportMetric(float64(read)/float64(max(written, 1)), "in/out-bytes")
}
