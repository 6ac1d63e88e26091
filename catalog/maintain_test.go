package catalog

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
)

// Replace swaps files in one replace snapshot that keeps the watermarks;
// repeating it is recognised as done; replacing files that are gone is
// refused. Commits racing it from other goroutines all land.
func TestReplaceKeepsWatermarksAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	c := openTest(t, t.TempDir())
	tbl, err := c.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	var old []string
	for k := uint64(0); k < 4; k++ {
		from, to := k*10+1, k*10+10
		f := fakeFile(tbl, uint32(k%2), from/2+1, to/2)
		f.Path = tbl.Location() + "/data/small-" + string(rune('a'+k)) + ".parquet"
		if _, err := tbl.Commit(ctx, []Range{{Partition: uint32(k % 2), From: k/2*5 + 1, To: k/2*5 + 5, High: 99}}, []DataFile{f}); err != nil {
			t.Fatal(err)
		}
		old = append(old, f.Path)
	}
	before, _ := tbl.Watermarks(ctx)
	merged := DataFile{Path: tbl.Location() + "/data/compact-x-0.parquet", SizeBytes: 2000, Records: 20,
		EventDate: 20000, EventHour: 5, Partition: 0, PartitionMax: 1, Topic: "events", MinSeq: 1, MaxSeq: 10, MinTs: 1, MaxTs: 2}

	// A flusher commits concurrently.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := uint64(0); k < 5; k++ {
			from := 11 + k*5
			if _, err := tbl.Commit(ctx, []Range{{Partition: 1, From: from, To: from + 4, High: 99}}, []DataFile{fakeFile(tbl, 1, from, from+4)}); err != nil {
				t.Error(err)
			}
		}
	}()
	res, err := tbl.Replace(ctx, old, []DataFile{merged})
	if err != nil || res.Already || res.SnapshotID == 0 {
		t.Fatalf("replace: %+v, %v", res, err)
	}
	wg.Wait()
	again, err := tbl.Replace(ctx, old, []DataFile{merged})
	if err != nil || !again.Already {
		t.Fatalf("replace again: %+v, %v", again, err)
	}
	if _, err := tbl.Replace(ctx, old[:1], []DataFile{{Path: merged.Path + "2", Records: 1, EventDate: 20000, EventHour: 5}}); !errors.Is(err, ErrNotLive) {
		t.Fatalf("replace of a replaced file: %v", err)
	}
	w, err := tbl.Watermarks(ctx)
	if err != nil || w[0] != before[0] || w[1].Flushed != 35 {
		t.Fatalf("watermarks %v (before %v), %v", w, before, err)
	}
	files, _, err := tbl.LiveFiles(ctx)
	if err != nil || len(files) != 6 {
		t.Fatalf("%d live files, %v", len(files), err)
	}
	var replaceSnap *table.Snapshot
	for _, s := range tbl.Iceberg().Metadata().Snapshots() {
		if s.Summary.Operation == table.OpReplace {
			replaceSnap = &s
		}
	}
	if replaceSnap == nil {
		t.Fatal("no replace snapshot")
	}
	if rw, err := SnapshotWatermarks(replaceSnap); err != nil || len(rw) != 2 || rw[0].Flushed != 10 {
		t.Fatalf("replace snapshot watermarks %v, %v", rw, err)
	}
}

// ExpireSnapshots keeps the newest MinSnapshots whatever their age, the
// young ones, and never more than RetainSnapshots.
func TestExpireSnapshotsAgeMinimumAndCap(t *testing.T) {
	ctx := context.Background()
	c, err := Open(ctx, Options{DataDir: t.TempDir(), RetainSnapshots: 8, MinSnapshots: 3, SnapshotMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tbl, err := c.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	commit := func(k uint64) {
		from, to := k*10+1, k*10+10
		if _, err := tbl.Commit(ctx, []Range{{Partition: 0, From: from, To: to, High: to}}, []DataFile{fakeFile(tbl, 0, from, to)}); err != nil {
			t.Fatal(err)
		}
	}
	for k := range uint64(6) {
		commit(k)
	}
	// All younger than an hour: nothing expires.
	if r, err := tbl.ExpireSnapshots(ctx, 0, 0); err != nil || r.Expired != 0 || r.Remaining != 6 {
		t.Fatalf("expire young: %+v, %v", r, err)
	}
	time.Sleep(5 * time.Millisecond)
	// Older than 1 ms: all but the newest 3.
	if r, err := tbl.ExpireSnapshots(ctx, time.Millisecond, 0); err != nil || r.Expired != 3 || r.Remaining != 3 {
		t.Fatalf("expire old: %+v, %v", r, err)
	}
	for k := uint64(6); k < 16; k++ {
		commit(k)
	}
	// 13 young snapshots: the cap keeps 8, already applied by Commit
	// (past 8 + 10 %) with the same rules.
	if r, err := tbl.ExpireSnapshots(ctx, 0, 0); err != nil || r.Remaining != 8 {
		t.Fatalf("expire over the cap: %+v, %v", r, err)
	}
	w, err := tbl.Watermarks(ctx)
	if err != nil || w[0].Flushed != 160 {
		t.Fatalf("watermarks %v, %v", w, err)
	}
	tasks, err := tbl.Iceberg().Scan().PlanFiles(ctx)
	if err != nil || len(tasks) != 16 {
		t.Fatalf("%d data files after expiry, %v", len(tasks), err)
	}
}
