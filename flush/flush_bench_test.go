package flush

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/columns"
	"github.com/zombihq/zombi/engine"
)

// benchEvents is the events per flush measured: ZOMBI_BENCH_EVENTS, by
// default 1M (~82 MB of 82-byte events, in 64 MiB segments sealed before
// the timer starts).
var benchEvents = func() int64 {
	if n, err := strconv.ParseInt(os.Getenv("ZOMBI_BENCH_EVENTS"), 10, 64); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}()

// payload82 returns an 82-byte JSON event like those of the Rust Zombi's
// benchmark.
func payload82(dst []byte, rng *rand.Rand, i int) []byte {
	dst = fmt.Appendf(dst[:0], `{"user":%07d,"event":"%s","session":"%016x","n":%d`,
		rng.IntN(10_000_000), [...]string{"click", "view", "buy", "scroll"}[i&3], rng.Uint64(), i)
	for len(dst) < 81 {
		dst = append(dst, ' ')
	}
	return append(dst[:81], '}')
}

// fillSealed appends n 82-byte events to table (spread over parts
// partitions, 1 ms apart as a live server stamps them) and seals them.
func fillSealed(b *testing.B, e *engine.Engine, table string, parts, n int) {
	rng := rand.New(rand.NewPCG(7, 7))
	ts := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC).UnixMilli()
	recs := make([]engine.Record, 1000)
	offs := make([]uint64, len(recs))
	bufs := make([][]byte, len(recs))
	for i := 0; i < n; i += len(recs) {
		for j := range recs {
			bufs[j] = payload82(bufs[j], rng, i+j)
			recs[j] = engine.Record{Partition: uint32((i / len(recs)) % parts), TimestampMs: ts + int64(i+j)/100, Payload: bufs[j]}
		}
		if err := e.AppendBatch(table, recs, offs); err != nil {
			b.Fatal(err)
		}
	}
	for p := 0; p < parts; p++ {
		if err := e.Seal(table, uint32(p)); err != nil {
			b.Fatal(err)
		}
	}
}

// rssSampler records the peak RssAnon (anonymous resident memory, which
// excludes the mmap'd segment pages) while it runs.
type rssSampler struct {
	peak     atomic.Int64 // RssAnon
	heap     atomic.Int64 // Go heap objects (live and not yet swept)
	heapBase int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

func heapObjects() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

func readRssAnon() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func startRSS() *rssSampler {
	s := &rssSampler{stop: make(chan struct{})}
	s.peak.Store(readRssAnon())
	s.heapBase = heapObjects()
	s.heap.Store(s.heapBase)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if r := readRssAnon(); r > s.peak.Load() {
					s.peak.Store(r)
				}
				if h := heapObjects(); h > s.heap.Load() {
					s.heap.Store(h)
				}
			}
		}
	}()
	return s
}

func (s *rssSampler) done() int64 {
	close(s.stop)
	s.wg.Wait()
	return s.peak.Load()
}

// BenchmarkFlush measures sealed segments of 82-byte events → Parquet
// (ZSTD) → object store → Iceberg commit (SQLite catalog) → MarkFlushed.
// It reports events/s, MB/s of event payload and the peak RssAnon during
// the flushes.
//
// Each runs for the event schema (raw: the payload as one column) and
// with the four fields of the events extracted into typed columns
// (typed4: ZOMBI_TABLE_SCHEMA), so that `make bench-flush` shows the cost
// of extraction beside the raw flush.
func BenchmarkFlush(b *testing.B) {
	for _, target := range []string{"local", "minio"} {
		for _, schema := range []string{"raw", "typed4"} {
			for _, parts := range []int{1, 4} {
				b.Run(fmt.Sprintf("%s/%s/partitions=%d", target, schema, parts), func(b *testing.B) {
					var store Store = LocalStore{}
					if target == "minio" {
						m := startMinio(b)
						store = m.store(b, "zombi")
					}
					var cfg *columns.Table
					if schema == "typed4" {
						cfg = &benchColumns
					}
					benchFlush(b, store, parts, cfg)
				})
			}
		}
	}
}

// benchColumns extracts the four fields of payload82's events.
var benchColumns = columns.Table{Table: "bench", Format: columns.FormatJSON, PreserveOverflow: true, Fields: []columns.Field{
	{Name: "user", JSONPath: "user", Type: columns.Int64, Nullable: true},
	{Name: "event", JSONPath: "event", Type: columns.Utf8, Nullable: true},
	{Name: "session", JSONPath: "session", Type: columns.Utf8, Nullable: true},
	{Name: "n", JSONPath: "n", Type: columns.Int64, Nullable: true},
}}

// catalogColumns is the catalog's side of a typed-column configuration
// (cmd/zombi does the same).
func catalogColumns(t columns.Table) catalog.TableColumns {
	tc := catalog.TableColumns{Overflow: t.PreserveOverflow}
	for _, f := range t.Fields {
		tc.Columns = append(tc.Columns, catalog.Column{Name: f.Name, Type: f.Type.Iceberg(), Required: !f.Nullable})
	}
	return tc
}

func benchFlush(b *testing.B, store Store, parts int, cfg *columns.Table) {
	ctx := context.Background()
	dir := b.TempDir()
	e, err := engine.Open(engine.Options{Dir: dir}.WithFsync(engine.FsyncNever))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	copts := catalog.Options{DataDir: dir}
	var fcols map[string]columns.Table
	if cfg != nil {
		copts.Columns = map[string]catalog.TableColumns{cfg.Table: catalogColumns(*cfg)}
		fcols = map[string]columns.Table{cfg.Table: *cfg}
	}
	if s3, ok := store.(*S3Store); ok {
		copts.Warehouse = "s3://" + s3.opts.Bucket + "/warehouse"
		copts.IOProps = s3.CatalogProps()
	}
	cat, err := catalog.Open(ctx, copts)
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	f, err := New(Options{Engine: e, Catalog: cat, Store: store, Logger: quietLogger(), BatchBytes: benchBatchBytes(), Columns: fcols})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	table := "bench"
	// Create the table outside the measurement, and flush once: a
	// server's flusher is long-lived, and its first round grows the
	// batch's row slice and the writer's buffers (~5 % of a 1M-event
	// flush), which later rounds reuse.
	if _, err := f.Table(ctx, table); err != nil {
		b.Fatal(err)
	}
	fillSealed(b, e, table, parts, int(benchEvents))
	if _, err := f.FlushTable(ctx, table); err != nil {
		b.Fatal(err)
	}
	var events, fileBytes int64
	var peak, base, heap int64
	var flushTime, writeTime, commitTime, cpuTime time.Duration
	var commits int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		fillSealed(b, e, table, parts, int(benchEvents))
		runtime.GC()
		rss := startRSS()
		base = max(base, rss.peak.Load())
		b.StartTimer()
		start, cpu0 := time.Now(), processCPU()
		res, err := f.FlushTable(ctx, table)
		flushTime += time.Since(start)
		cpuTime += processCPU() - cpu0
		b.StopTimer()
		peak = max(peak, rss.done())
		heap = max(heap, rss.heap.Load()-rss.heapBase)
		if err != nil {
			b.Fatal(err)
		}
		if res.Events != benchEvents {
			b.Fatalf("flushed %d events", res.Events)
		}
		events += res.Events
		writeTime += res.WriteDuration
		commitTime += res.CommitDuration
		commits += res.Commits
		fileBytes += res.FileBytes
		b.StartTimer()
	}
	secs := flushTime.Seconds()
	b.ReportMetric(float64(events)/secs, "events/s")
	// The process's CPU time over the flushes (user + system, every
	// thread: the flusher, its uploads, the runtime), so that the flush
	// is measured per core, whoever else shares the machine.
	b.ReportMetric(float64(events)/cpuTime.Seconds(), "events/cpu-s")
	b.ReportMetric(float64(events)*82/secs/1e6, "MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RssAnon-MiB")
	b.ReportMetric(float64(base)/(1<<20), "start-RssAnon-MiB")
	b.ReportMetric(float64(heap)/(1<<20), "flush-heap-MiB")
	b.ReportMetric(float64(fileBytes)/float64(events), "parquet-B/event")
	b.ReportMetric(float64(commitTime.Milliseconds())/float64(commits), "ms/commit")
	b.ReportMetric(writeTime.Seconds()/secs*100, "%write")
}

// BenchmarkEncode is the ceiling: parquet-go encoding the same rows with
// ZSTD into io.Discard.
func BenchmarkEncode(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 7))
	rows := make([]row, 1<<18)
	ts := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC).UnixMilli()
	for i := range rows {
		rows[i] = row{Sequence: int64(i + 1), Topic: "bench", Payload: payload82(nil, rng, i), TimestampMs: ts + int64(i)/100, EventDate: 20514, EventHour: 10}
	}
	pw := eventWriter(zstd.SpeedFastest)
	var out countWriter
	out.w = io.Discard
	b.SetBytes(int64(len(rows)) * 82)
	b.ReportAllocs()
	for b.Loop() {
		if err := pw.encode(&out, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(rows))*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkZstdFloor is the flush's floor per core: the flusher's ZSTD
// codec (one encoder, ZOMBI's default level) compressing a 1 MiB page of
// the payload column as Parquet lays it out (PLAIN byte arrays: a 4-byte
// length, then the 82 bytes), on one goroutine. No flush can beat it
// without compressing less or worse: make bench-flush prints it beside
// the flush's events per CPU-second.
func BenchmarkZstdFloor(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 7))
	var page, p []byte
	events := 0
	for ; len(page) < 1<<20; events++ {
		p = payload82(p, rng, events)
		page = binary.LittleEndian.AppendUint32(page, uint32(len(p)))
		page = append(page, p...)
	}
	codec := newZstdCodec(zstd.SpeedFastest)
	var dst []byte
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		dst, _ = codec.Encode(dst, page)
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(dst))/float64(events), "B/event")
}

// processCPU returns the CPU time (user + system) the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// benchBatchBytes is Options.BatchBytes for the benchmark:
// ZOMBI_BENCH_BATCH_MB, or the default.
func benchBatchBytes() int64 {
	mb, _ := strconv.Atoi(os.Getenv("ZOMBI_BENCH_BATCH_MB"))
	return int64(mb) << 20
}
