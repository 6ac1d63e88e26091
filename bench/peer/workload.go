package peer

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/zombihq/zombi/engine"
)

// Workload is a fixed append workload: Events records of Size payload
// bytes, appended by Writers goroutines in calls of Batch records, writer
// w to partition w % Partitions.
type Workload struct {
	Size       int              // payload bytes per record
	Batch      int              // records per append call; 1 = Append / Set
	Writers    int              // concurrent appenders
	Partitions int              // partitions the writers are spread over
	Events     int              // total records (split evenly over writers)
	Mode       engine.FsyncMode // engine durability; Pebble syncs each commit iff FsyncAlways
	// Deadline, if set, stops the writers early; throughput is then
	// computed over the records that were appended.
	Deadline time.Duration
	// MeasureIO reads the I/O counters from before open to after close
	// and sync(2); DevStat is the device stat file (see DeviceStatPath).
	MeasureIO bool
	DevStat   string
	// FlushPebble flushes Pebble's memtable before Close (so the data is
	// in sstables, not only in the WAL), for write-amplification runs.
	FlushPebble bool
}

func (w Workload) norm() Workload {
	w.Batch = max(w.Batch, 1)
	w.Writers = max(w.Writers, 1)
	w.Partitions = max(w.Partitions, 1)
	return w
}

// String names the workload in tables, e.g. "82 B ×100, 64 writers/8 p".
func (w Workload) String() string {
	w = w.norm()
	size := fmt.Sprintf("%d B", w.Size)
	if w.Size >= 1024 && w.Size%1024 == 0 {
		size = fmt.Sprintf("%d KiB", w.Size/1024)
	}
	s := size
	if w.Batch > 1 {
		s += fmt.Sprintf(", batch %d", w.Batch)
	} else {
		s += ", single"
	}
	s += fmt.Sprintf(", %d writer", w.Writers)
	if w.Writers > 1 {
		s += "s"
	}
	if w.Partitions > 1 {
		s += fmt.Sprintf(" / %d partitions", w.Partitions)
	}
	return s
}

// quietLogger drops the engine's and Pebble's informational logs.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// EngineOptions returns the engine options the benchmarks use: defaults
// (64 MiB segments, 100 ms interval) with the given durability mode.
func EngineOptions(dir string, mode engine.FsyncMode) engine.Options {
	return engine.Options{Dir: dir, Logger: quietLogger}.WithFsync(mode)
}

// driver runs writers goroutines, each calling do(writer, first, n) for
// successive chunks of its share until the share is done or the deadline
// passes, and returns the records written and the time taken.
func driver(w Workload, do func(writer, first, n int) error) (int64, time.Duration, error) {
	per := w.Events / w.Writers
	var (
		wg    sync.WaitGroup
		done  atomic.Int64
		errMu sync.Mutex
		first error
		stop  atomic.Bool
	)
	var timer *time.Timer
	start := time.Now()
	if w.Deadline > 0 {
		timer = time.AfterFunc(w.Deadline, func() { stop.Store(true) })
	}
	for wr := 0; wr < w.Writers; wr++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := 0; i < per && !stop.Load(); i += w.Batch {
				k := min(w.Batch, per-i)
				if err := do(wr, i, k); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					stop.Store(true)
					break
				}
				n += k
			}
			done.Add(int64(n))
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if timer != nil {
		timer.Stop()
	}
	return done.Load(), el, first
}

// RunEngine runs w on a fresh engine in a new directory under parent and
// removes it afterwards. Opening the engine and creating each partition's
// first segment happen before the clock starts; Close after it stops.
func RunEngine(parent string, w Workload) (Result, error) {
	w = w.norm()
	dir, err := runDir(parent, "engine")
	if err != nil {
		return Result{}, err
	}
	defer removeAll(dir)
	var io0 IOCounters
	if w.MeasureIO {
		SyncFS()
		if io0, err = ReadIO(w.DevStat); err != nil {
			return Result{}, err
		}
	}
	e, err := engine.Open(EngineOptions(dir, w.Mode))
	if err != nil {
		return Result{}, err
	}
	const table = "bench"
	payloads := Payloads(64, w.Size, 1)
	// Create each partition's log and first segment outside the clock.
	for p := 0; p < w.Partitions; p++ {
		if _, _, err := e.Append(table, engine.Record{Partition: uint32(p), TimestampMs: 1, Payload: payloads[0]}); err != nil {
			e.Close()
			return Result{}, err
		}
	}
	type wstate struct {
		recs []engine.Record
		offs []uint64
	}
	states := make([]wstate, w.Writers)
	for i := range states {
		states[i] = wstate{recs: make([]engine.Record, w.Batch), offs: make([]uint64, w.Batch)}
	}
	const ts0 = 1_700_000_000_000
	n, el, err := driver(w, func(wr, first, k int) error {
		p := uint32(wr % w.Partitions)
		if k == 1 {
			_, _, err := e.Append(table, engine.Record{Partition: p, TimestampMs: ts0 + int64(first), Payload: payloads[(wr+first)&63]})
			return err
		}
		st := &states[wr]
		recs := st.recs[:k]
		for j := range recs {
			recs[j] = engine.Record{Partition: p, TimestampMs: ts0 + int64(first+j), Payload: payloads[(wr+first+j)&63]}
		}
		return e.AppendBatch(table, recs, st.offs)
	})
	cerr := e.Close()
	if err == nil {
		err = cerr
	}
	res := Result{Events: n, PayloadBytes: n * int64(w.Size), Elapsed: el}
	if w.MeasureIO {
		SyncFS()
		io1, ierr := ReadIO(w.DevStat)
		if err == nil {
			err = ierr
		}
		res.IO = io1.Sub(io0)
	}
	return res, err
}

// PebbleOptions returns the Pebble options the benchmarks use: Pebble's
// defaults (WAL on, 4 MiB memtable growing to 64 MiB, default compaction
// and compression) with logging off.
func PebbleOptions() *pebble.Options {
	return &pebble.Options{Logger: pebbleQuiet{}}
}

type pebbleQuiet struct{}

func (pebbleQuiet) Infof(string, ...any)           {}
func (pebbleQuiet) Errorf(string, ...any)          {}
func (pebbleQuiet) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

// PebbleKey writes the key of a record: partition (4 B) and a per-writer
// sequence (writer in the top 16 bits), big endian, so keys arrive in
// ascending order per writer as offsets do in a log.
func PebbleKey(dst []byte, partition uint32, writer, seq int) []byte {
	dst = binary.BigEndian.AppendUint32(dst[:0], partition)
	return binary.BigEndian.AppendUint64(dst, uint64(writer)<<48|uint64(seq))
}

// PebbleValue writes a record's value: timestamp (8 B) then payload, the
// same information a segment record carries besides its offset.
func PebbleValue(dst []byte, ts int64, payload []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst[:0], uint64(ts))
	return append(dst, payload...)
}

// RunPebble runs w on a fresh Pebble DB (WAL on) in a new directory under
// parent: Set per record when Batch is 1, else a Batch of Batch records;
// each commit synced iff w.Mode is FsyncAlways.
func RunPebble(parent string, w Workload) (Result, error) {
	w = w.norm()
	dir, err := runDir(parent, "pebble")
	if err != nil {
		return Result{}, err
	}
	defer removeAll(dir)
	var io0 IOCounters
	if w.MeasureIO {
		SyncFS()
		if io0, err = ReadIO(w.DevStat); err != nil {
			return Result{}, err
		}
	}
	db, err := pebble.Open(dir, PebbleOptions())
	if err != nil {
		return Result{}, err
	}
	wo := pebble.NoSync
	if w.Mode == engine.FsyncAlways {
		wo = pebble.Sync
	}
	payloads := Payloads(64, w.Size, 1)
	type wstate struct {
		key, val []byte
		b        *pebble.Batch
	}
	states := make([]wstate, w.Writers)
	for i := range states {
		states[i].key = make([]byte, 0, 12)
		states[i].val = make([]byte, 0, 8+w.Size)
		if w.Batch > 1 {
			states[i].b = db.NewBatch()
		}
	}
	const ts0 = 1_700_000_000_000
	n, el, err := driver(w, func(wr, first, k int) error {
		p := uint32(wr % w.Partitions)
		st := &states[wr]
		if st.b == nil {
			st.key = PebbleKey(st.key, p, wr, first)
			st.val = PebbleValue(st.val, ts0+int64(first), payloads[(wr+first)&63])
			return db.Set(st.key, st.val, wo)
		}
		st.b.Reset()
		for j := 0; j < k; j++ {
			st.key = PebbleKey(st.key, p, wr, first+j)
			st.val = PebbleValue(st.val, ts0+int64(first+j), payloads[(wr+first+j)&63])
			if err := st.b.Set(st.key, st.val, nil); err != nil {
				return err
			}
		}
		return st.b.Commit(wo)
	})
	for _, st := range states {
		if st.b != nil {
			st.b.Close()
		}
	}
	if w.FlushPebble && err == nil {
		err = db.Flush()
	}
	cerr := db.Close()
	if err == nil {
		err = cerr
	}
	res := Result{Events: n, PayloadBytes: n * int64(w.Size), Elapsed: el}
	if w.MeasureIO {
		SyncFS()
		io1, ierr := ReadIO(w.DevStat)
		if err == nil {
			err = ierr
		}
		res.IO = io1.Sub(io0)
	}
	return res, err
}
