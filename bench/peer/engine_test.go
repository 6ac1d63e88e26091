package peer

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/zombihq/zombi/engine"
)

// benchDir returns a fresh directory on the benchmark disk (BenchDir),
// removed when b ends.
func benchDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp(BenchDir(), "zombi-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { removeAll(dir) })
	return dir
}

// ioWindow measures the bytes written to disk from its creation until
// report, which syncs first; report adds them per payload byte as the
// metric "wbytes/B" (write amplification relative to the payload).
type ioWindow struct {
	dev string
	c0  IOCounters
}

func startIO(dir string) *ioWindow {
	SyncFS()
	w := &ioWindow{dev: DeviceStatPath(dir)}
	w.c0, _ = ReadIO(w.dev)
	return w
}

func (w *ioWindow) report(b *testing.B, payloadBytes int64) {
	SyncFS()
	c1, err := ReadIO(w.dev)
	if err != nil || payloadBytes == 0 {
		return
	}
	d := c1.Sub(w.c0)
	b.ReportMetric(float64(d.WriteBytes)/float64(payloadBytes), "wbytes/B")
}

// parallel runs b.N operations over writers goroutines; op gets the
// writer number and a per-writer operation count.
func parallel(b *testing.B, writers int, op func(w, i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				if err := op(w, i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		b.Fatal(*p)
	}
}

var (
	benchModes = []engine.FsyncMode{engine.FsyncNever, engine.FsyncInterval, engine.FsyncAlways}
	benchSizes = []int{82, 1024, 20 << 10}
	// concurrency: writers and the partitions they are spread over.
	benchConc = []struct{ writers, parts int }{{1, 1}, {64, 1}, {64, 8}}
)

func sizeName(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// BenchmarkEngineAppend appends records of 82 B, 1 KiB and 20 KiB, one per
// call (Append) or 100 per call (AppendBatch), in each durability mode,
// with 1 writer, 64 writers on one partition, and 64 writers over 8
// partitions. One op is one call; events/s counts records. wbytes/B is
// /proc/self/io write_bytes per payload byte, Close and sync(2) included.
func BenchmarkEngineAppend(b *testing.B) {
	for _, mode := range benchModes {
		for _, size := range benchSizes {
			for _, batch := range []int{1, 100} {
				for _, c := range benchConc {
					name := fmt.Sprintf("%s/%s/batch=%d/writers=%d/parts=%d", mode, sizeName(size), batch, c.writers, c.parts)
					b.Run(name, func(b *testing.B) { benchEngineAppend(b, mode, size, batch, c.writers, c.parts) })
				}
			}
		}
	}
}

func benchEngineAppend(b *testing.B, mode engine.FsyncMode, size, batch, writers, parts int) {
	dir := benchDir(b)
	iow := startIO(dir)
	e, err := engine.Open(EngineOptions(dir, mode))
	if err != nil {
		b.Fatal(err)
	}
	const table = "bench"
	payloads := Payloads(64, size, 1)
	for p := 0; p < parts; p++ {
		if _, _, err := e.Append(table, engine.Record{Partition: uint32(p), TimestampMs: 1, Payload: payloads[0]}); err != nil {
			b.Fatal(err)
		}
	}
	recs := make([][]engine.Record, writers)
	offs := make([][]uint64, writers)
	for w := range recs {
		recs[w] = make([]engine.Record, batch)
		offs[w] = make([]uint64, batch)
		for j := range recs[w] {
			recs[w][j] = engine.Record{Partition: uint32(w % parts), TimestampMs: 1_700_000_000_000, Payload: payloads[(w+j)&63]}
		}
	}
	op := func(w, i int) error {
		if batch == 1 {
			_, _, err := e.Append(table, engine.Record{Partition: uint32(w % parts), TimestampMs: 1_700_000_000_000 + int64(i), Payload: payloads[(w+i)&63]})
			return err
		}
		return e.AppendBatch(table, recs[w], offs[w])
	}
	b.SetBytes(int64(size * batch))
	b.ReportAllocs()
	if writers == 1 {
		i := 0
		for b.Loop() {
			if err := op(0, i); err != nil {
				b.Fatal(err)
			}
			i++
		}
	} else {
		b.ResetTimer()
		parallel(b, writers, op)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	if err := e.Close(); err != nil {
		b.Fatal(err)
	}
	iow.report(b, int64(b.N*batch*size))
}

// readFixture is one engine holding readEvents 82 B records in partition 0
// of table "bench", ten per millisecond, shared by the read benchmarks.
var readFixture struct {
	once sync.Once
	dir  string
	e    *engine.Engine
	err  error
}

const (
	readEvents = 1_000_000
	readTs0    = 1_700_000_000_000
)

func readEngine(b *testing.B) *engine.Engine {
	f := &readFixture
	f.once.Do(func() {
		f.dir, f.err = os.MkdirTemp(BenchDir(), "zombi-bench-read-")
		if f.err != nil {
			return
		}
		f.e, f.err = engine.Open(EngineOptions(f.dir, engine.FsyncNever))
		if f.err != nil {
			return
		}
		payloads := Payloads(64, 82, 1)
		recs := make([]engine.Record, 1000)
		offs := make([]uint64, len(recs))
		for i := 0; i < readEvents && f.err == nil; i += len(recs) {
			for j := range recs {
				recs[j] = engine.Record{TimestampMs: readTs0 + int64(i+j)/10, Payload: payloads[(i+j)&63]}
			}
			f.err = f.e.AppendBatch("bench", recs, offs)
		}
	})
	if f.err != nil {
		b.Fatal(f.err)
	}
	return f.e
}

func TestMain(m *testing.M) {
	code := m.Run()
	if f := &readFixture; f.e != nil {
		f.e.Close()
		removeAll(f.dir)
	}
	os.Exit(code)
}

// BenchmarkEngineRead reads 100 records of 82 B from a random offset, and
// from a random time (since), of a partition holding 1M records in 64 MiB
// segments: the sparse index finds the start. One op is one Read.
func BenchmarkEngineRead(b *testing.B) {
	const limit = 100
	queries := map[string]func(r *rand.Rand) engine.Query{
		"offset": func(r *rand.Rand) engine.Query {
			return engine.Query{Offset: 1 + r.Uint64N(readEvents-limit), Limit: limit}
		},
		"since": func(r *rand.Rand) engine.Query {
			return engine.Query{Since: readTs0 + r.Int64N((readEvents-limit)/10), HasSince: true, Limit: limit}
		},
	}
	for _, name := range []string{"offset", "since"} {
		q := queries[name]
		for _, readers := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/readers=%d", name, readers), func(b *testing.B) {
				e := readEngine(b)
				b.SetBytes(limit * 82)
				b.ReportAllocs()
				rs := make([]*rand.Rand, readers)
				for i := range rs {
					rs[i] = rand.New(rand.NewPCG(uint64(i), 7))
				}
				read := func(w, _ int) error {
					evs, _, err := e.Read("bench", q(rs[w]))
					if err == nil && len(evs) != limit {
						err = fmt.Errorf("read %d events, want %d", len(evs), limit)
					}
					return err
				}
				if readers == 1 {
					for b.Loop() {
						if err := read(0, 0); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.ResetTimer()
					parallel(b, readers, read)
				}
				b.ReportMetric(float64(b.N*limit)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
