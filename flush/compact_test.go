package flush

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"
	"github.com/minio/minio-go/v7"
	"github.com/parquet-go/parquet-go"

	"github.com/zombihq/zombi/catalog"
)

func newMaintainer(t *testing.T, v *env, opts MaintainOptions) *Maintainer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	m, err := NewMaintainer(v.f, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// smallFlushes appends n events per round to partition round%parts, with
// timestamps moving through two hours, and flushes each round.
func smallFlushes(t *testing.T, v *env, rounds, parts, n int, next *int64, want map[evKey]event) {
	t.Helper()
	for r := 0; r < rounds; r++ {
		p := uint32(r % parts)
		appendN(t, v.e, "events", p, n, func(int) int64 { *next += 7_000; return *next }, want)
		if _, err := v.f.FlushTable(context.Background(), "events"); err != nil {
			t.Fatal(err)
		}
	}
}

// filesPerHour counts the live data files of each partition-hour.
func filesPerHour(t *testing.T, tbl *catalog.Table) map[[2]int32]int {
	t.Helper()
	files, _, err := tbl.LiveFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[[2]int32]int{}
	for _, f := range files {
		out[[2]int32{f.EventDate, f.EventHour}]++
	}
	return out
}

// checkCompactedFiles opens every live data file and checks its rows are
// in (timestamp_ms, sequence, partition) order within one hour, and that
// the committed size and count are the file's.
func checkCompactedFiles(t *testing.T, tbl *catalog.Table) {
	t.Helper()
	files, _, err := tbl.LiveFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, lf := range files {
		u, _ := url.Parse(lf.Path)
		f, err := os.Open(u.Path)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		if st.Size() != lf.SizeBytes {
			t.Fatalf("%s: size %d, committed %d", lf.Path, st.Size(), lf.SizeBytes)
		}
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			t.Fatal(err)
		}
		rows, err := readRows(pf)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(rows)) != lf.Records {
			t.Fatalf("%s: %d rows, committed %d", lf.Path, len(rows), lf.Records)
		}
		for i := 1; i < len(rows); i++ {
			a, b := rows[i-1], rows[i]
			if a.TimestampMs > b.TimestampMs || a.TimestampMs == b.TimestampMs && (a.Sequence > b.Sequence ||
				a.Sequence == b.Sequence && a.Partition >= b.Partition) {
				t.Fatalf("%s: rows %d and %d out of order", lf.Path, i-1, i)
			}
			if a.EventDate != lf.EventDate || a.EventHour != lf.EventHour {
				t.Fatalf("%s: row of another hour", lf.Path)
			}
		}
	}
}

// After 200 small flushes, compaction, run while events keep arriving and
// being flushed, leaves at most 2 files per partition-hour and the same
// rows, each exactly once; the latest snapshot still carries the
// flushed watermarks.
func TestCompactionUnderIngestKeepsEveryRowOnce(t *testing.T) {
	ctx := context.Background()
	v := openEnv(t, t.TempDir(), Options{})
	m := newMaintainer(t, v, MaintainOptions{})
	want := map[evKey]event{}
	next := baseTs + hourMs/2
	smallFlushes(t, v, 200, 3, 20, &next, want)
	tbl, _ := v.f.Table(ctx, "events")
	before := filesPerHour(t, tbl)
	scanTable(t, tbl, want)

	// Ingest and flush concurrently with two compactions.
	var mu sync.Mutex
	more := map[evKey]event{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := 0; ; r++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			appendN(t, v.e, "events", uint32(r%3), 20, func(int) int64 { next += 7_000; return next }, more)
			mu.Unlock()
			if _, err := v.f.FlushTable(ctx, "events"); err != nil {
				errc <- err
				return
			}
		}
	}()
	var res []CompactResult
	for range 2 {
		r, err := m.Compact(ctx, "events")
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	r, err := m.Compact(ctx, "events") // what the concurrent flushes added
	if err != nil {
		t.Fatal(err)
	}
	res = append(res, r)
	for k, e := range more {
		want[k] = e
	}
	t.Logf("compactions: %+v; %d events flushed meanwhile", res, len(more))
	if res[0].FilesCompacted < 150 || res[0].RowsProcessed < 4000 || res[0].SnapshotID == 0 || res[0].BytesRead <= res[0].BytesWritten {
		t.Fatalf("first compaction: %+v", res[0])
	}
	after := filesPerHour(t, tbl)
	for h, n := range after {
		if n > 2 {
			t.Fatalf("partition-hour %v: %d files after compaction (before: %v)", h, n, before)
		}
	}
	t.Logf("files per hour: before %v, after %v", before, after)
	scanTable(t, tbl, want)
	checkWatermarks(t, v, "events")
	checkCompactedFiles(t, tbl)
	// The replace snapshot itself carries the watermarks forward.
	if err := tbl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	cur := tbl.Iceberg().CurrentSnapshot()
	if cur.Summary.Operation != table.OpReplace {
		t.Fatalf("last snapshot is a %s", cur.Summary.Operation)
	}
	w, err := catalog.SnapshotWatermarks(cur)
	if err != nil || len(w) != 3 {
		t.Fatalf("replace snapshot watermarks %v, %v", w, err)
	}
	for _, pi := range v.e.Partitions("events") {
		if w[pi.Partition].Flushed != pi.High {
			t.Fatalf("partition %d: replace snapshot says %d, high %d", pi.Partition, w[pi.Partition].Flushed, pi.High)
		}
	}
	// Nothing small is left: another compaction commits nothing.
	if r, err := m.Compact(ctx, "events"); err != nil || r.Commits != 0 {
		t.Fatalf("idle compaction: %+v, %v", r, err)
	}
	st := m.Stats()
	if st.FilesCompacted != int64(res[0].FilesCompacted+res[1].FilesCompacted+res[2].FilesCompacted) || st.Compactions == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A compaction whose inputs another commit replaced meanwhile commits
// nothing and leaves no output behind.
func TestReplaceRefusesFilesNoLongerLive(t *testing.T) {
	ctx := context.Background()
	v := openEnv(t, t.TempDir(), Options{})
	want := map[evKey]event{}
	next := baseTs
	smallFlushes(t, v, 4, 1, 10, &next, want)
	tbl, _ := v.f.Table(ctx, "events")
	files, _, err := tbl.LiveFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tbl.Replace(ctx, []string{files[0].Path + ".gone"}, []catalog.DataFile{{Path: files[0].Path + ".new", Records: 1}})
	if !errors.Is(err, catalog.ErrNotLive) {
		t.Fatalf("replace of a missing file: %v", err)
	}
	scanTable(t, tbl, want)
}

// Snapshot expiry and orphan cleanup after a compaction: every remaining
// snapshot still reads, replaced files and old orphans are gone, a young
// orphan and every referenced file stay.
func TestExpiryAndOrphanCleanupKeepLiveSnapshotsReadable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v := openEnvCatalog(t, dir, Options{}, func(o *catalog.Options) {
		o.SnapshotMaxAge, o.MinSnapshots = time.Millisecond, 3
	})
	m := newMaintainer(t, v, MaintainOptions{OrphanMinAge: time.Hour})
	want := map[evKey]event{}
	next := baseTs
	smallFlushes(t, v, 12, 2, 10, &next, want)
	if _, err := m.Compact(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	smallFlushes(t, v, 2, 2, 10, &next, want)
	tbl, _ := v.f.Table(ctx, "events")
	loc, _ := url.Parse(tbl.Location())
	// Orphans: an upload that never committed (old), one in progress (young).
	oldOrphan := filepath.Join(loc.Path, "data", "event_date=2026-03-01", "event_hour=22", "0-00000000000000099999-0.parquet")
	youngOrphan := filepath.Join(loc.Path, "data", "event_date=2026-03-01", "event_hour=22", "compact-inflight-0.parquet")
	for _, p := range []string{oldOrphan, youngOrphan} {
		if err := os.WriteFile(p, []byte("PAR1 not committed"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(oldOrphan, old, old); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // every snapshot but the newest 3 is older than SnapshotMaxAge
	res, err := m.Maintain(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("maintenance: %+v", res)
	if res.SnapshotsExpired < 10 || res.SnapshotsRemaining != 3 || res.OrphansRemoved != 1 {
		t.Fatalf("maintenance: %+v", res)
	}
	if _, err := os.Stat(oldOrphan); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old orphan: %v", err)
	}
	if _, err := os.Stat(youngOrphan); err != nil {
		t.Fatalf("young orphan: %v", err)
	}
	if err := tbl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// Every remaining snapshot reads in full.
	snaps := tbl.Iceberg().Metadata().Snapshots()
	live := map[string]bool{}
	for _, s := range snaps {
		tasks, err := tbl.Iceberg().Scan(table.WithSnapshotID(s.SnapshotID)).PlanFiles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			live[catalog.NormalizeLocation(task.File.FilePath())] = true
		}
		at, err := tbl.Iceberg().Scan(table.WithSnapshotID(s.SnapshotID)).ToArrowTable(ctx)
		if err != nil {
			t.Fatalf("snapshot %d (%s): %v", s.SnapshotID, s.Summary.Operation, err)
		}
		t.Logf("snapshot %d (%s): %d rows", s.SnapshotID, s.Summary.Operation, at.NumRows())
		at.Release()
	}
	scanTable(t, tbl, want)
	checkWatermarks(t, v, "events")
	// The data files on disk are those the remaining snapshots reference
	// (the scans above read every one), plus the young orphan: the
	// replaced small files went with the snapshots that held them.
	refs, _, _, err := tbl.ReferencedFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	filepath.WalkDir(filepath.Join(loc.Path, "data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !refs["file://"+p] && p != youngOrphan {
			extra = append(extra, p)
		}
		return nil
	})
	if len(extra) > 0 {
		t.Fatalf("unreferenced data files left: %v", extra)
	}
	var onDisk int
	filepath.WalkDir(filepath.Join(loc.Path, "data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && p != youngOrphan {
			onDisk++
			if !live["file://"+p] {
				t.Errorf("data file %s is live in no remaining snapshot", p)
			}
		}
		return nil
	})
	if onDisk != len(live) {
		t.Fatalf("%d data files on disk, %d live in the remaining snapshots", onDisk, len(live))
	}
	// A second run finds nothing more to do.
	if res, err := m.Maintain(ctx, "events"); err != nil || res.OrphansRemoved != 0 {
		t.Fatalf("second maintenance: %+v, %v", res, err)
	}
}

// The same on MinIO: compaction reads and writes through S3, orphan
// cleanup lists the bucket, and every remaining snapshot still reads.
func TestCompactionAndMaintenanceMinIO(t *testing.T) {
	ms := startMinio(t)
	s := ms.store(t, "zombi")
	ctx := context.Background()
	v := openEnvCatalog(t, t.TempDir(), Options{Store: s}, func(o *catalog.Options) {
		o.SnapshotMaxAge, o.MinSnapshots = time.Millisecond, 2
	})
	m := newMaintainer(t, v, MaintainOptions{OrphanMinAge: time.Nanosecond})
	want := map[evKey]event{}
	next := baseTs
	smallFlushes(t, v, 6, 2, 20, &next, want)
	res, err := m.Compact(ctx, "events")
	if err != nil || res.FilesCompacted != 6 || res.FilesCreated != 1 {
		t.Fatalf("compaction %+v, %v", res, err)
	}
	tbl, _ := v.f.Table(ctx, "events")
	loc := tbl.Location() // s3://zombi/warehouse/zombi.db/events
	orphan := strings.TrimPrefix(loc, "s3://zombi/") + "/data/event_date=2026-03-01/event_hour=22/0-00000000000000099999-0.parquet"
	if _, err := s.Client().PutObject(ctx, "zombi", orphan, strings.NewReader("not committed"), -1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // S3 times have a resolution of 1 s
	mr, err := m.Maintain(ctx, "events")
	if err != nil || mr.SnapshotsRemaining != 2 || mr.SnapshotsExpired < 5 || mr.OrphansRemoved < 1 {
		t.Fatalf("maintenance %+v, %v", mr, err)
	}
	if err := tbl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for _, sn := range tbl.Iceberg().Metadata().Snapshots() {
		tasks, err := tbl.Iceberg().Scan(table.WithSnapshotID(sn.SnapshotID)).PlanFiles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			live[task.File.FilePath()] = true
		}
		at, err := tbl.Iceberg().Scan(table.WithSnapshotID(sn.SnapshotID)).ToArrowTable(ctx)
		if err != nil {
			t.Fatalf("snapshot %d: %v", sn.SnapshotID, err)
		}
		at.Release()
	}
	var data int
	if err := s.List(ctx, loc+"/data", func(o ObjectInfo) error {
		data++
		if !live[o.Location] {
			t.Errorf("%s is live in no remaining snapshot", o.Location)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if data != len(live) {
		t.Fatalf("%d data objects, %d live", data, len(live))
	}
	scanTable(t, tbl, want)
	checkWatermarks(t, v, "events")
}

// The background compacts a partition-hour once it holds more than
// AutoCompactFiles small files, and leaves the others; NoAutoCompact
// turns it off.
func TestBackgroundCompaction(t *testing.T) {
	ctx := context.Background()
	v := openEnv(t, t.TempDir(), Options{})
	want := map[evKey]event{}
	next := baseTs // 22:00: five files in hour 22
	smallFlushes(t, v, 5, 1, 10, &next, want)
	next = baseTs + hourMs // 23:00: three files in hour 23
	smallFlushes(t, v, 3, 1, 10, &next, want)
	off := newMaintainer(t, v, MaintainOptions{CompactInterval: 20 * time.Millisecond, AutoCompactFiles: 4, NoAutoCompact: true})
	off.Start()
	time.Sleep(200 * time.Millisecond)
	if st := off.Stats(); st.Compactions != 0 {
		t.Fatalf("compacted with NoAutoCompact: %+v", st)
	}
	off.Close()
	m := newMaintainer(t, v, MaintainOptions{CompactInterval: 20 * time.Millisecond, AutoCompactFiles: 4})
	m.Start()
	deadline := time.Now().Add(20 * time.Second)
	for m.Stats().Compactions == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no background compaction")
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.Close()
	tbl, _ := v.f.Table(ctx, "events")
	got := filesPerHour(t, tbl)
	if got[[2]int32{20513, 22}] != 1 || got[[2]int32{20513, 23}] != 3 {
		t.Fatalf("files per hour after background compaction: %v", got)
	}
	scanTable(t, tbl, want)
	checkWatermarks(t, v, "events")
}

// cancelStore cancels a context once a compacted file is stored, so that
// the replace commit that follows fails with an outcome the compaction
// cannot know.
type cancelStore struct {
	LocalStore
	cancel context.CancelFunc
}

type cancelObject struct {
	ObjectWriter
	cancel context.CancelFunc
}

func (o cancelObject) Close() error {
	err := o.ObjectWriter.Close()
	o.cancel()
	return err
}

func (s *cancelStore) Create(ctx context.Context, loc string) (ObjectWriter, error) {
	w, err := s.LocalStore.Create(ctx, loc)
	if err != nil || !strings.Contains(loc, "/compact-") {
		return w, err
	}
	return cancelObject{w, s.cancel}, nil
}

// A compaction whose commit fails without a verdict leaves its outputs in
// place (the commit may have landed) and the table as it was.
func TestCompactionCommitFailureKeepsOutputs(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs := &cancelStore{cancel: cancel}
	v := openEnv(t, t.TempDir(), Options{Store: cs})
	m := newMaintainer(t, v, MaintainOptions{})
	want := map[evKey]event{}
	next := baseTs
	smallFlushes(t, v, 4, 2, 10, &next, want)
	_, err := m.Compact(ctx, "events")
	if err == nil || errors.Is(err, catalog.ErrNotLive) {
		t.Fatalf("compaction with its commit cancelled: %v", err)
	}
	tbl, _ := v.f.Table(context.Background(), "events")
	loc, _ := url.Parse(tbl.Location())
	outs, _ := filepath.Glob(filepath.Join(loc.Path, "data", "*", "*", "compact-*.parquet"))
	if len(outs) != 1 {
		t.Fatalf("compacted outputs on disk: %v", outs)
	}
	if got := filesPerHour(t, tbl); got[[2]int32{20513, 22}] != 4 {
		t.Fatalf("files per hour %v", got)
	}
	scanTable(t, tbl, want)
}
