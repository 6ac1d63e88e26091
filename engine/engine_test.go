package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

func TestOffsetsStartAtOneAndSurviveRestart(t *testing.T) {
	for _, mode := range []FsyncMode{FsyncNever, FsyncInterval, FsyncAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			fs := vfs.NewMem()
			o := memOpts(fs).WithFsync(mode)
			e := mustOpen(t, o)
			for i := 0; i < 30000; i++ { // ~1 MB: several segment rolls
				off, dup, err := e.Append("events", Record{Payload: payload(0, i)})
				if err != nil || dup || off != uint64(i+1) {
					t.Fatalf("append %d: off=%d dup=%v err=%v", i, off, dup, err)
				}
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			e = mustOpen(t, o)
			defer e.Close()
			off, _, err := e.Append("events", Record{Payload: []byte("after")})
			if err != nil || off != 30001 {
				t.Fatalf("after restart: off=%d err=%v", off, err)
			}
			evs := readAll(t, e, "events", 0)
			if len(evs) != 30001 {
				t.Fatalf("read %d events, want 30001", len(evs))
			}
			for i, ev := range evs[:30000] {
				if ev.Offset != uint64(i+1) || !bytes.Equal(ev.Payload, payload(0, i)) {
					t.Fatalf("event %d: %d %q", i, ev.Offset, ev.Payload)
				}
			}
			if pi := e.Partitions("events"); len(pi) != 1 || pi[0].High != 30001 || pi[0].Low != 1 || pi[0].Segments < 2 {
				t.Fatalf("partition info %+v", pi)
			}
		})
	}
}

func TestAppendBatchAcrossPartitionsKeepsRequestOrder(t *testing.T) {
	e := mustOpen(t, memOpts(vfs.NewMem()).WithFsync(FsyncAlways))
	defer e.Close()
	recs := []Record{
		{Partition: 2, Payload: []byte("a")},
		{Partition: 0, Payload: []byte("b")},
		{Partition: 2, Payload: []byte("c")},
		{Partition: 1, Payload: []byte("d")},
		{Partition: 0, Payload: []byte("e")},
	}
	offs := make([]uint64, len(recs))
	if err := e.AppendBatch("t", recs, offs); err != nil {
		t.Fatal(err)
	}
	want := []uint64{1, 1, 2, 1, 2}
	for i := range want {
		if offs[i] != want[i] {
			t.Fatalf("offsets %v, want %v", offs, want)
		}
	}
	evs := readAll(t, e, "t", 2)
	if len(evs) != 2 || string(evs[0].Payload) != "a" || string(evs[1].Payload) != "c" {
		t.Fatalf("partition 2: %+v", evs)
	}
}

func TestInvalidInput(t *testing.T) {
	e := mustOpen(t, memOpts(vfs.NewMem()))
	defer e.Close()
	for _, name := range []string{"", "1abc", "a/b", "../x", "a b", "é", string(make([]byte, 129))} {
		if _, _, err := e.Append(name, Record{Payload: []byte("x")}); !errors.Is(err, ErrInvalidTable) {
			t.Errorf("table %q: err %v", name, err)
		}
	}
	long := bytes.Repeat([]byte("a"), 128)
	long[0] = 'A'
	if _, _, err := e.Append(string(long), Record{Payload: []byte("x")}); err != nil {
		t.Errorf("128-char name: %v", err)
	}
	if _, _, err := e.Append("t", Record{Partition: 1024, Payload: []byte("x")}); !errors.Is(err, ErrInvalidPartition) {
		t.Errorf("partition 1024: %v", err)
	}
	if _, _, err := e.Append("t", Record{Key: make([]byte, 70000)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge key: %v", err)
	}
	if evs, more, err := e.Read("nope", Query{Partition: AllPartitions}); err != nil || more || len(evs) != 0 {
		t.Errorf("unknown table: %v %v %v", evs, more, err)
	}
	if _, _, err := e.Read("nope", Query{Partition: 5000}); !errors.Is(err, ErrInvalidPartition) {
		t.Errorf("read of partition 5000 of an unknown table: %v", err)
	}
}

func TestIdempotency(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	e := mustOpen(t, o)
	off1, dup, err := e.Append("t", Record{Key: []byte("k1"), Payload: []byte("one")})
	if err != nil || dup || off1 != 1 {
		t.Fatal(off1, dup, err)
	}
	off, dup, err := e.Append("t", Record{Key: []byte("k1"), Payload: []byte("retry")})
	if err != nil || !dup || off != off1 {
		t.Fatalf("retry: off=%d dup=%v err=%v", off, dup, err)
	}
	// Scoped to the partition.
	if off, dup, _ := e.Append("t", Record{Partition: 1, Key: []byte("k1")}); dup || off != 1 {
		t.Fatalf("other partition: off=%d dup=%v", off, dup)
	}
	// Within one batch, and against earlier keys.
	recs := []Record{{Key: []byte("k2")}, {Key: []byte("k1")}, {Key: []byte("k2")}, {}}
	offs := make([]uint64, 4)
	if err := e.AppendBatch("t", recs, offs); err != nil {
		t.Fatal(err)
	}
	if offs[0] != 2 || offs[1] != 1 || offs[2] != 2 || offs[3] != 3 {
		t.Fatalf("batch offsets %v", offs)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// Survives restart.
	e = mustOpen(t, o)
	if off, dup, _ := e.Append("t", Record{Key: []byte("k2")}); !dup || off != 2 {
		t.Fatalf("after restart: off=%d dup=%v", off, dup)
	}
	// Survives the deletion of the flushed segments.
	if err := e.Seal("t", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.MarkFlushed("t", 0, 3); err != nil {
		t.Fatal(err)
	}
	if segs, _ := e.Segments("t", 0); len(segs) != 0 {
		t.Fatalf("segments left after flush: %+v", segs)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = mustOpen(t, o)
	defer e.Close()
	if off, dup, _ := e.Append("t", Record{Key: []byte("k1")}); !dup || off != 1 {
		t.Fatalf("after deletion: off=%d dup=%v", off, dup)
	}
	if off, dup, _ := e.Append("t", Record{Key: []byte("k3")}); dup || off != 4 {
		t.Fatalf("new key after deletion: off=%d dup=%v", off, dup)
	}
}

func TestIdempotencyWindowExpires(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	o := memOpts(vfs.NewMem())
	o.IdempotencyWindow = time.Minute
	o.Now = func() time.Time { return time.UnixMilli(now.Load()) }
	e := mustOpen(t, o)
	defer e.Close()
	e.Append("t", Record{Key: []byte("k")})
	now.Add(30_000)
	if _, dup, _ := e.Append("t", Record{Key: []byte("k")}); !dup {
		t.Fatal("key forgotten inside the window")
	}
	now.Add(61_000)
	if off, dup, _ := e.Append("t", Record{Key: []byte("k")}); dup || off != 2 {
		t.Fatalf("key remembered past the window: off=%d dup=%v", off, dup)
	}
}

func TestIdempotencyIsAtomicUnderConcurrency(t *testing.T) {
	e := mustOpen(t, memOpts(vfs.NewMem()).WithFsync(FsyncNever))
	defer e.Close()
	const writers, keys = 8, 200
	results := make([][]uint64, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				off, _, err := e.Append("t", Record{Key: []byte(fmt.Sprint("key-", k)), Payload: []byte{byte(w)}})
				if err != nil {
					t.Error(err)
					return
				}
				results[w] = append(results[w], off)
			}
		}()
	}
	wg.Wait()
	for w := 1; w < writers; w++ {
		for k := range keys {
			if results[w][k] != results[0][k] {
				t.Fatalf("key %d got offsets %d and %d", k, results[0][k], results[w][k])
			}
		}
	}
	if pi := e.Partitions("t"); pi[0].High != keys {
		t.Fatalf("high watermark %d, want %d (one record per key)", pi[0].High, keys)
	}
}

func TestConcurrentAppendersGetUniqueGapFreeOffsets(t *testing.T) {
	for _, mode := range []FsyncMode{FsyncNever, FsyncAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			e := mustOpen(t, memOpts(vfs.NewMem()).WithFsync(mode))
			defer e.Close()
			const writers, per = 16, 500
			var mu sync.Mutex
			seen := map[uint64][]byte{}
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						p := payload(uint32(w), i)
						var off uint64
						var err error
						if i%5 == 0 {
							offs := make([]uint64, 3)
							err = e.AppendBatch("t", []Record{{Payload: p}, {Payload: p}, {Payload: p}}, offs)
							off = offs[0]
							mu.Lock()
							seen[offs[1]], seen[offs[2]] = p, p
							mu.Unlock()
						} else {
							off, _, err = e.Append("t", Record{Payload: p})
						}
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						if _, ok := seen[off]; ok {
							t.Errorf("offset %d handed out twice", off)
						}
						seen[off] = p
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			total := uint64(writers * (per + per/5*2))
			if uint64(len(seen)) != total {
				t.Fatalf("%d offsets, want %d", len(seen), total)
			}
			for off := uint64(1); off <= total; off++ {
				if _, ok := seen[off]; !ok {
					t.Fatalf("gap at offset %d", off)
				}
			}
			for _, ev := range readAll(t, e, "t", 0) {
				if !bytes.Equal(ev.Payload, seen[ev.Offset]) {
					t.Fatalf("offset %d holds %q, acked %q", ev.Offset, ev.Payload, seen[ev.Offset])
				}
			}
		})
	}
}

func TestReadByOffsetAndTime(t *testing.T) {
	o := memOpts(vfs.NewMem()).WithFsync(FsyncNever)
	o.IndexIntervalBytes = 256
	e := mustOpen(t, o)
	defer e.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	type ev struct {
		off uint64
		ts  int64
	}
	var all []ev
	base := int64(1_700_000_000_000)
	for i := range 40000 {
		// Mostly increasing, with jitter so timestamps are not monotonic.
		ts := base + int64(i)*10 + rng.Int64N(5000) - 2500
		off, _, err := e.Append("t", Record{TimestampMs: ts, Payload: payload(0, i)})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ev{off, ts})
	}
	for range 200 {
		from := uint64(rng.IntN(41000)) + 1
		since := base + rng.Int64N(420000)
		limit := 1 + rng.IntN(300)
		var want []uint64
		for _, x := range all {
			if x.off >= from && x.ts >= since {
				want = append(want, x.off)
			}
		}
		more := len(want) > limit
		if more {
			want = want[:limit]
		}
		got, gotMore, err := e.Read("t", Query{Partition: 0, Offset: from, Since: since, HasSince: true, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if gotMore != more || len(got) != len(want) {
			t.Fatalf("from=%d since=%d limit=%d: %d events more=%v, want %d more=%v", from, since, limit, len(got), gotMore, len(want), more)
		}
		for i := range want {
			if got[i].Offset != want[i] {
				t.Fatalf("event %d: offset %d, want %d", i, got[i].Offset, want[i])
			}
		}
	}
}

func TestMergedReadOrdersByTimestamp(t *testing.T) {
	e := mustOpen(t, memOpts(vfs.NewMem()).WithFsync(FsyncNever))
	defer e.Close()
	e.Append("t", Record{Partition: 1, TimestampMs: 30, Payload: []byte("c")})
	e.Append("t", Record{Partition: 0, TimestampMs: 20, Payload: []byte("b")})
	e.Append("t", Record{Partition: 0, TimestampMs: 40, Payload: []byte("d")})
	e.Append("t", Record{Partition: 1, TimestampMs: 10, Payload: []byte("a")})
	e.Append("t", Record{Partition: 2, TimestampMs: 40, Payload: []byte("e")})
	evs, more, err := e.Read("t", Query{Partition: AllPartitions, Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, ev := range evs {
		got += string(ev.Payload)
	}
	if got != "abcd" || !more {
		t.Fatalf("merged read %q more=%v, want abcd more=true", got, more)
	}
}

func TestFlushedSegmentsAreDeletedAfterRetention(t *testing.T) {
	var now atomic.Int64
	now.Store(1_000_000)
	o := memOpts(vfs.NewMem()).WithFsync(FsyncNever)
	o.HotRetention = time.Hour
	o.Now = func() time.Time { return time.UnixMilli(now.Load()) }
	e := mustOpen(t, o)
	defer e.Close()
	for i := range 80000 {
		e.Append("t", Record{Payload: payload(0, i)})
	}
	if err := e.Seal("t", 0); err != nil {
		t.Fatal(err)
	}
	segs, _ := e.Segments("t", 0)
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	for _, s := range segs {
		if !s.Sealed {
			t.Fatalf("segment %s not sealed", s.Path)
		}
	}
	upTo := segs[1].Last // the first two segments
	if err := e.MarkFlushed("t", 0, upTo); err != nil {
		t.Fatal(err)
	}
	if err := e.MarkFlushed("t", 0, 1_000_000); !errors.Is(err, ErrOffsetRange) {
		t.Fatalf("flush beyond high: %v", err)
	}
	l, _ := e.log("t", 0, false)
	l.collect()
	if s, _ := e.Segments("t", 0); len(s) != len(segs) {
		t.Fatal("segments deleted before the retention passed")
	}
	now.Add(time.Hour.Milliseconds())
	l.collect()
	left, _ := e.Segments("t", 0)
	if len(left) != len(segs)-2 || left[0].First != upTo+1 {
		t.Fatalf("after retention: %d segments starting at %d", len(left), left[0].First)
	}
	pi := e.Partitions("t")[0]
	if pi.Low != upTo+1 || pi.Flushed != upTo || pi.High != 80000 {
		t.Fatalf("watermarks %+v", pi)
	}
	// Reads below the low watermark return what is left.
	evs, _, _ := e.Read("t", Query{Partition: 0, Offset: 1, Limit: 1})
	if len(evs) != 1 || evs[0].Offset != upTo+1 {
		t.Fatalf("read from 1 after deletion: %+v", evs)
	}
}

func TestFlushedWatermarkAndNextOffsetSurviveDeletionOfEverything(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs).WithFsync(FsyncNever)
	e := mustOpen(t, o)
	for i := range 100 {
		e.Append("t", Record{Payload: payload(0, i)})
	}
	e.Seal("t", 0)
	if err := e.MarkFlushed("t", 0, 100); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e = mustOpen(t, o)
	defer e.Close()
	pi := e.Partitions("t")[0]
	if pi.Flushed != 100 || pi.High != 100 || pi.Segments != 0 {
		t.Fatalf("after restart %+v", pi)
	}
	if off, _, _ := e.Append("t", Record{}); off != 101 {
		t.Fatalf("next offset %d, want 101", off)
	}
}

func TestConsumerOffsetsPersist(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs)
	e := mustOpen(t, o)
	if err := e.CommitOffset("g1", "t", 3, 42); err != nil {
		t.Fatal(err)
	}
	e.CommitOffset("g1", "t", 3, 43)
	e.CommitOffset("g2", "t", 0, 7)
	if err := e.CommitOffset("", "t", 0, 1); !errors.Is(err, ErrInvalidGroup) {
		t.Fatalf("empty group: %v", err)
	}
	e.Close()
	e = mustOpen(t, o)
	defer e.Close()
	if off, ok := e.ConsumerOffset("g1", "t", 3); !ok || off != 43 {
		t.Fatalf("g1: %d %v", off, ok)
	}
	if off, ok := e.ConsumerOffset("g2", "t", 0); !ok || off != 7 {
		t.Fatalf("g2: %d %v", off, ok)
	}
	if _, ok := e.ConsumerOffset("g3", "t", 0); ok {
		t.Fatal("unknown group has an offset")
	}
	all := e.ConsumerOffsets()
	if len(all) != 2 || all[0] != (ConsumerOffset{"g1", "t", 3, 43}) || all[1] != (ConsumerOffset{"g2", "t", 0, 7}) {
		t.Fatalf("ConsumerOffsets %+v", all)
	}
}

func TestSyncErrorIsSticky(t *testing.T) {
	var armed atomic.Bool
	efs := &vfs.ErrorFS{FS: vfs.NewMem(), Inject: vfs.OnOp(vfs.OpSync, &armed, errors.New("EIO"))}
	o := memOpts(efs).WithFsync(FsyncAlways)
	e := mustOpen(t, o)
	defer e.Close()
	if _, _, err := e.Append("t", Record{Payload: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	e.Append("t", Record{Partition: 1, Payload: []byte("ok")})
	armed.Store(true)
	if _, _, err := e.Append("t", Record{Payload: []byte("lost")}); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("append with failing fsync: %v", err)
	}
	armed.Store(false) // a later success must not hide the failure
	if _, _, err := e.Append("t", Record{Payload: []byte("again")}); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("append after fsync failure: %v", err)
	}
	if pi := e.Partitions("t"); pi[0].Failed == nil || pi[1].Failed != nil {
		t.Fatalf("failure not isolated to partition 0: %+v", pi)
	}
	if _, _, err := e.Append("t", Record{Partition: 1, Payload: []byte("fine")}); err != nil {
		t.Fatalf("other partition: %v", err)
	}
	if st := e.Stats(); st.FailedLogs != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDiskFullOnNewSegmentIsCleanAndRecovers(t *testing.T) {
	var armed atomic.Bool
	efs := &vfs.ErrorFS{FS: vfs.NewMem(), Inject: vfs.OnOp(vfs.OpAllocate, &armed, vfs.ErrNoSpace)}
	e := mustOpen(t, memOpts(efs).WithFsync(FsyncNever))
	defer e.Close()
	armed.Store(true)
	if _, _, err := e.Append("t", Record{Payload: []byte("x")}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("append on a full disk: %v", err)
	}
	armed.Store(false)
	off, _, err := e.Append("t", Record{Payload: []byte("x")})
	if err != nil || off != 1 {
		t.Fatalf("append after space freed: off=%d err=%v", off, err)
	}
}

func TestOpenSegmentsAreBounded(t *testing.T) {
	o := memOpts(vfs.NewMem()).WithFsync(FsyncNever)
	o.MaxOpenSegments = 3
	e := mustOpen(t, o)
	defer e.Close()
	big := bytes.Repeat([]byte("x"), 100_000)
	for range 100 { // ~10 MB: ~10 segments
		e.Append("t", Record{Payload: big})
	}
	e.Seal("t", 0)
	if evs := readAll(t, e, "t", 0); len(evs) != 100 {
		t.Fatalf("read %d", len(evs))
	}
	if st := e.Stats(); st.OpenSegments > 3 || st.Segments < 8 {
		t.Fatalf("stats %+v", st)
	}
}

// Sealing (background seals note their segment as open and close the
// least recently used ones) and reads (which reopen closed segments) race
// over the open-segment budget. A seal once sorted the open list by use
// time under the list's lock, taking each segment's lock after it, while a
// seal closing a victim took them the other way round: the engine
// deadlocked, and Close hung waiting for the seals.
func TestOpenSegmentBudgetUnderConcurrentSealsAndReads(t *testing.T) {
	o := memOpts(vfs.NewMem()).WithFsync(FsyncNever)
	o.SegmentBytes = 1 << 20
	o.MaxOpenSegments = 2
	e := mustOpen(t, o)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := []byte(strings.Repeat("x", 4000))
			for i := range 1500 {
				if _, _, err := e.Append("t", Record{Partition: uint32(w), Payload: p}); err != nil {
					t.Errorf("append %d: %v", i, err)
					return
				}
			}
		}()
	}
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				_ = e.Scan("t", uint32(r), 1, 1<<62, func(*Event) error { return nil })
			}
		}()
	}
	// The writers end on their own (the readers run until done).
	waitWriters := make(chan struct{})
	go func() {
		for {
			total := uint64(0)
			for _, p := range e.Partitions("t") {
				total += p.High
			}
			if total >= 8*1500 {
				close(waitWriters)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	select {
	case <-waitWriters:
	case <-time.After(60 * time.Second):
		t.Fatal("appends stalled: the engine is deadlocked")
	}
	close(done)
	closed := make(chan error, 1)
	go func() { wg.Wait(); closed <- e.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Close hung: the engine is deadlocked")
	}
}

func TestRecoveryRebuildsMissingIndexAndSealsOrphans(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs).WithFsync(FsyncNever)
	e := mustOpen(t, o)
	for i := range 30000 {
		e.Append("t", Record{TimestampMs: int64(i + 1), Payload: payload(0, i)})
	}
	segs, _ := e.Segments("t", 0)
	e.Close()
	fs.Remove(idxPath(segs[0].Path))
	e = mustOpen(t, o)
	defer e.Close()
	evs, _, err := e.Read("t", Query{Partition: 0, Since: 6, HasSince: true, Limit: 2})
	if err != nil || len(evs) != 2 || evs[0].Offset != 6 {
		t.Fatalf("read after index rebuild: %+v %v", evs, err)
	}
	if _, err := fs.Stat(idxPath(segs[0].Path)); err != nil {
		t.Fatalf("index not rewritten: %v", err)
	}
}

func TestQuarantineCorruptSealedSegment(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs).WithFsync(FsyncNever)
	e := mustOpen(t, o)
	for i := range 30000 {
		e.Append("t", Record{Payload: payload(0, i)})
	}
	segs, _ := e.Segments("t", 0)
	e.Close()
	// Damage the header of the first (sealed) segment.
	f, _ := fs.OpenRW(segs[0].Path)
	f.WriteAt([]byte("XXXX"), 0)
	f.Close()
	e = mustOpen(t, o)
	defer e.Close()
	if st := e.Stats(); st.Quarantined != 1 {
		t.Fatalf("quarantined %d", st.Quarantined)
	}
	if _, err := fs.Stat(segs[0].Path + ".corrupt"); err != nil {
		t.Fatalf("no quarantined copy: %v", err)
	}
	evs, _, _ := e.Read("t", Query{Partition: 0, Limit: 1})
	if len(evs) != 1 || evs[0].Offset != segs[1].First {
		t.Fatalf("first readable event %+v, want offset %d", evs, segs[1].First)
	}
	if off, _, _ := e.Append("t", Record{}); off != 30001 {
		t.Fatalf("next offset %d", off)
	}
}

func TestCorruptionInsideSealedSegmentIsReportedThenQuarantined(t *testing.T) {
	fs := vfs.NewMem()
	o := memOpts(fs).WithFsync(FsyncNever)
	e := mustOpen(t, o)
	for i := range 30000 {
		e.Append("t", Record{Payload: payload(0, i)})
	}
	segs, _ := e.Segments("t", 0)
	e.Close()
	f, _ := fs.OpenRW(segs[0].Path)
	// Flip the bits of a byte mid-segment (the index stays intact).
	// Writing a fixed 0xff changed nothing about once a run in a hundred:
	// the byte is part of a timestamp, and was 0xff already.
	b := []byte{0}
	if _, err := f.ReadAt(b, 5000); err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{^b[0]}, 5000)
	f.Close()
	e = mustOpen(t, o)
	defer e.Close()
	_, _, err := e.Read("t", Query{Partition: 0, Offset: 1, Limit: 1000})
	var ce *segment.CorruptionError
	if !errors.As(err, &ce) {
		t.Fatalf("read of a corrupt record: %v, want a CorruptionError", err)
	}
	// Then the segment is set aside, as recovery would have: never served
	// again, the rest of the log readable, the gap visible to the flusher.
	if st := e.Stats(); st.Quarantined != 1 {
		t.Fatalf("quarantined %d", st.Quarantined)
	}
	if _, err := fs.Stat(segs[0].Path + ".corrupt"); err != nil {
		t.Fatalf("no quarantined copy: %v", err)
	}
	if _, err := fs.Stat(segs[0].Path); err == nil {
		t.Fatal("the corrupt segment is still in place")
	}
	if now, _ := e.Segments("t", 0); len(now) != len(segs)-1 || now[0].First != segs[1].First {
		t.Fatalf("segments after the quarantine: %+v", now)
	}
	evs, _, err := e.Read("t", Query{Partition: 0, Offset: 1, Limit: 1})
	if err != nil || len(evs) != 1 || evs[0].Offset != segs[1].First {
		t.Fatalf("first readable event %+v (%v), want offset %d", evs, err, segs[1].First)
	}
	n := 0
	if err := e.Scan("t", 0, 1, 30000, func(*Event) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if want := 30000 - int(segs[0].Last); n != want {
		t.Fatalf("scan after the quarantine: %d events, want %d", n, want)
	}
	e.Close()
	e = mustOpen(t, o) // and it stays aside after a restart
	defer e.Close()
	if now, _ := e.Segments("t", 0); len(now) != len(segs)-1 {
		t.Fatalf("segments after restart: %+v", now)
	}
}

// TestPowerLossAlwaysLosesNothingAcked appends from several goroutines in
// FsyncAlways mode and takes a crash snapshot of the filesystem at a random
// moment: every append acked before the snapshot must be in the recovered
// log, and no offset handed out before it may be handed out again.
func TestPowerLossAlwaysLosesNothingAcked(t *testing.T) {
	for round := range 5 {
		fs := vfs.NewMem()
		o := memOpts(fs).WithFsync(FsyncAlways)
		o.SequenceLease = 2048
		e := mustOpen(t, o)
		var (
			mu       sync.Mutex
			acked    = map[uint64][]byte{}
			maxGiven atomic.Uint64
			stop     atomic.Bool
			wg       sync.WaitGroup
		)
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load() && i < 5000; i++ {
					p := payload(uint32(w), i)
					off, _, err := e.Append("t", Record{Payload: p})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					acked[off] = p
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(20+round*15) * time.Millisecond)
		mu.Lock()
		snapshot := make(map[uint64][]byte, len(acked))
		for k, v := range acked {
			snapshot[k] = v
		}
		mu.Unlock()
		maxGiven.Store(e.Partitions("t")[0].High)
		crashed := fs.CrashClone()
		stop.Store(true)
		wg.Wait()
		e.Close()

		o2 := memOpts(crashed).WithFsync(FsyncAlways)
		o2.BootID = "boot-2" // the machine rebooted
		o2.SequenceLease = 2048
		e2 := mustOpen(t, o2)
		got := map[uint64][]byte{}
		for _, ev := range readAll(t, e2, "t", 0) {
			got[ev.Offset] = ev.Payload
		}
		for off, p := range snapshot {
			if !bytes.Equal(got[off], p) {
				t.Fatalf("round %d: acked offset %d lost (got %q)", round, off, got[off])
			}
		}
		next, _, err := e2.Append("t", Record{})
		if err != nil {
			t.Fatal(err)
		}
		if next <= maxGiven.Load() {
			t.Fatalf("round %d: offset %d reused (handed out up to %d before the crash)", round, next, maxGiven.Load())
		}
		e2.Close()
		t.Logf("round %d: %d acked before the crash, next offset %d", round, len(snapshot), next)
	}
}

func TestEngineSortedOutput(t *testing.T) {
	// Tables() and Partitions() are sorted and complete.
	e := mustOpen(t, memOpts(vfs.NewMem()).WithFsync(FsyncNever))
	defer e.Close()
	for _, n := range []string{"zeta", "alpha", "mid"} {
		for _, p := range []uint32{3, 0, 7} {
			e.Append(n, Record{Partition: p})
		}
	}
	if got := e.Tables(); !sort.StringsAreSorted(got) || len(got) != 3 {
		t.Fatalf("tables %v", got)
	}
	pi := e.Partitions("mid")
	if len(pi) != 3 || pi[0].Partition != 0 || pi[1].Partition != 3 || pi[2].Partition != 7 {
		t.Fatalf("partitions %+v", pi)
	}
}

func TestIdleActiveSegmentIsSealed(t *testing.T) {
	var now atomic.Int64
	now.Store(1_000_000)
	o := memOpts(vfs.NewMem()).WithFsync(FsyncNever)
	o.IdleSeal = time.Minute
	o.Now = func() time.Time { return time.UnixMilli(now.Load()) }
	e := mustOpen(t, o)
	defer e.Close()
	e.Append("t", Record{Payload: []byte("x")})
	l, _ := e.log("t", 0, false)
	now.Add(30_000)
	l.sealIfIdle()
	if segs, _ := e.Segments("t", 0); segs[0].Sealed {
		t.Fatal("sealed before the idle time passed")
	}
	now.Add(31_000)
	l.sealIfIdle()
	if segs, _ := e.Segments("t", 0); !segs[0].Sealed {
		t.Fatal("idle segment not sealed")
	}
	if off, _, _ := e.Append("t", Record{Payload: []byte("y")}); off != 2 {
		t.Fatalf("append after idle seal: offset %d", off)
	}
}

func TestOnSyncReportsEverySync(t *testing.T) {
	var n atomic.Int64
	o := memOpts(vfs.NewMem()).WithFsync(FsyncAlways)
	o.OnSync = func(d time.Duration) {
		if d < 0 {
			t.Error("negative duration")
		}
		n.Add(1)
	}
	e := mustOpen(t, o)
	defer e.Close()
	for range 5 {
		e.Append("t", Record{Payload: []byte("x")})
	}
	if n.Load() != 5 {
		t.Fatalf("OnSync called %d times for 5 serial appends in always mode", n.Load())
	}
}

// Timestamps the engine assigns rise with the offsets, whatever the
// interleaving of concurrent appenders: the clock is read under the log's
// lock. (The flusher relies on it to find batches sorted.)
func TestAssignedTimestampsRiseWithOffsets(t *testing.T) {
	o := memOpts(vfs.NewMem())
	var tick atomic.Int64
	base := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	o.Now = func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Millisecond) }
	e := mustOpen(t, o)
	defer e.Close()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs := make([]Record, 10)
			offs := make([]uint64, len(recs))
			for i := range 300 {
				for j := range recs {
					recs[j] = Record{Payload: payload(0, w*10_000+i*10+j)}
				}
				if err := e.AppendBatch("t", recs, offs); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	evs := readAll(t, e, "t", 0)
	if len(evs) != 8*300*10 {
		t.Fatalf("%d events", len(evs))
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].TimestampMs < evs[i-1].TimestampMs {
			t.Fatalf("offset %d has timestamp %d, before offset %d's %d", evs[i].Offset, evs[i].TimestampMs, evs[i-1].Offset, evs[i-1].TimestampMs)
		}
	}
}

// On a full disk the next segment's file cannot be reserved. A partition
// that keeps appending to its active segment retried (and logged) that
// reservation on every append; it now waits 1 s after a failure, doubling
// up to 30 s, and starts over after a success.
func TestSpareReservationBacksOff(t *testing.T) {
	var full atomic.Bool
	var attempts atomic.Int64
	efs := &vfs.ErrorFS{FS: vfs.NewMem(), Inject: func(op vfs.Op, path string) error {
		if op == vfs.OpAllocate && strings.HasSuffix(path, segment.PreallocSuffix) {
			attempts.Add(1)
			if full.Load() {
				return vfs.ErrNoSpace
			}
		}
		return nil
	}}
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC).UnixMilli())
	o := memOpts(efs).WithFsync(FsyncNever)
	o.Now = func() time.Time { return time.UnixMilli(now.Load()) }
	e := mustOpen(t, o)
	defer e.Close()
	l, err := e.log("t", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	settled := func() { // the reservation goroutine, if any, has finished
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			l.mu.Lock()
			busy := l.preparing
			l.mu.Unlock()
			if !busy {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("reservation still running after 5 s")
			}
		}
	}
	appendN := func(n int) {
		t.Helper()
		for range n {
			if _, _, err := e.Append("t", Record{Payload: make([]byte, 4000)}); err != nil {
				t.Fatal(err)
			}
			settled()
		}
	}
	full.Store(true)
	appendN(200) // 800 KB, past half of the 1 MiB segment: the reservation is due
	if n := attempts.Load(); n != 1 {
		t.Fatalf("%d reservation attempts within the first second after a failure; want 1", n)
	}
	now.Add(1100)
	appendN(1)
	if n := attempts.Load(); n != 2 {
		t.Fatalf("%d attempts 1.1 s later; want 2", n)
	}
	now.Add(1100) // the second failure doubled the wait to 2 s
	appendN(1)
	if n := attempts.Load(); n != 2 {
		t.Fatalf("%d attempts 1.1 s after the second failure; want still 2", n)
	}
	full.Store(false)
	now.Add(1000)
	appendN(1)
	l.mu.Lock()
	spare, backoff := l.spare, l.spareBackoff
	l.mu.Unlock()
	if n := attempts.Load(); n != 3 || spare == nil || backoff != 0 {
		t.Fatalf("after space was freed: %d attempts, spare %v, backoff %v; want 3, a spare, 0", n, spare != nil, backoff)
	}
}
