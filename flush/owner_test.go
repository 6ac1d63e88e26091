package flush

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/engine"
)

// Two servers with their own data directories share one catalog and one
// table, each feeding partitions of its own: the supported way (README,
// "One writer per partition"). Offsets are per server, so when one of
// them also writes a partition the other one owns, its flush must not
// take the other's watermark for its own: it would call its events
// committed and delete them from its hot tier (which it did), and its
// data files, named by partition and first offset, would overwrite the
// other's committed ones. It is refused at the commit and at the reload,
// keeps every event, and only that partition stops; the table holds
// exactly what was committed.
func TestTwoServersNeverTakeEachOthersPartitions(t *testing.T) {
	ctx := context.Background()
	catDir := t.TempDir()
	shared := func(owner string) func(*catalog.Options) {
		return func(o *catalog.Options) { o.DataDir, o.Owner = catDir, owner }
	}
	a := openEnvCatalog(t, t.TempDir(), Options{}, shared("node-a"))
	b := openEnvCatalog(t, t.TempDir(), Options{}, shared("node-b"))
	ts := func(i int) int64 { return baseTs + int64(i) }
	// B loads the table while it is empty, so that its later flushes go
	// by the cached watermarks to the commit, which checks them again.
	if _, err := b.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	want := map[evKey]event{}
	appendN(t, a.e, "events", 0, 1000, ts, want)
	if _, err := a.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	appendN(t, b.e, "events", 1, 500, ts, want)
	if _, err := b.f.FlushTable(ctx, "events"); err != nil {
		t.Fatalf("B's flush of its own partition: %v", err)
	}
	w, err := a.f.Watermarks(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if w[0].Flushed != 1000 || w[0].Owner != "node-a" || w[1].Flushed != 500 || w[1].Owner != "node-b" || w[0].Check == "" || w[1].Check == "" {
		t.Fatalf("watermarks %+v", w)
	}

	appendN(t, b.e, "events", 0, 1200, ts, map[evKey]event{}) // A's partition
	for _, path := range []string{"commit", "reload"} {
		if _, err := b.f.FlushTable(ctx, "events"); !errors.Is(err, catalog.ErrForeignOwner) {
			t.Fatalf("flush (%s) into a partition another server writes: %v, want ErrForeignOwner", path, err)
		}
	}
	if _, err := b.f.SkipGap(ctx, "events", 0); !errors.Is(err, catalog.ErrForeignOwner) {
		t.Fatalf("skip-gap of a partition another server writes: %v, want ErrForeignOwner", err)
	}
	// Only that partition stops: B's own goes on, as at a gap.
	appendN(t, b.e, "events", 1, 50, ts, want)
	_, err = b.f.FlushTable(ctx, "events")
	var stuck *StuckError
	if !errors.As(err, &stuck) || !errors.Is(err, catalog.ErrForeignOwner) {
		t.Fatalf("flush beside the foreign partition: %v, want a StuckError", err)
	}
	if w, _ := b.f.Watermarks(ctx, "events"); w[1].Flushed != 550 || w[0].Owner != "node-a" || w[0].Flushed != 1000 {
		t.Fatalf("watermarks after B's own partition was flushed beside the foreign one: %+v", w)
	}
	if pi := b.e.Partitions("events")[0]; pi.Flushed != 0 || pi.High != 1200 {
		t.Fatalf("the refused partition: %+v, want nothing marked flushed", pi)
	}
	n := 0
	if err := b.e.Scan("events", 0, 1, 1200, func(*engine.Event) error { n++; return nil }); err != nil || n != 1200 {
		t.Fatalf("the refused server holds %d events (%v), want all 1200", n, err)
	}
	tbl, err := a.f.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	scanTable(t, tbl, want)

	// The owner's flushes go on.
	appendN(t, a.e, "events", 0, 10, ts, want)
	if _, err := a.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	scanTable(t, tbl, want)
}

// A data directory restored from a backup taken before a commit hands
// the committed offsets out again, to other events. The committed
// watermark must not be taken for its own (it would mark those events
// committed and delete them): the event the table committed at the
// watermark is checked against the one the hot tier holds there, and
// the partition stops, keeping every event.
func TestRestoredDataDirKeepsItsNewEvents(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	hot := filepath.Join(dir, "hot")
	ts := func(i int) int64 { return baseTs + int64(i) }
	want := map[evKey]event{}
	v := openEnv(t, dir, Options{})
	appendN(t, v.e, "events", 0, 300, ts, want)
	v.close()
	backup := filepath.Join(t.TempDir(), "hot")
	cp(t, hot, backup)

	v = openEnv(t, dir, Options{})
	appendN(t, v.e, "events", 0, 300, ts, want)
	if _, err := v.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	v.close()
	if err := os.RemoveAll(hot); err != nil {
		t.Fatal(err)
	}
	cp(t, backup, hot) // the hot tier is back at offset 300, nothing flushed

	v = openEnv(t, dir, Options{})
	later := func(i int) int64 { return baseTs + 10_000 + int64(i) }
	appendN(t, v.e, "events", 0, 400, later, map[evKey]event{}) // offsets 301..700: other events
	_, err := v.f.FlushTable(ctx, "events")
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("flush of a restored data dir: %v, want ErrDiverged", err)
	}
	if pi := v.e.Partitions("events")[0]; pi.Flushed != 0 || pi.High != 700 {
		t.Fatalf("the restored partition: %+v, want nothing marked flushed", pi)
	}
	n := 0
	if err := v.e.Scan("events", 0, 1, 700, func(*engine.Event) error { n++; return nil }); err != nil || n != 700 {
		t.Fatalf("the restored hot tier holds %d events (%v), want all 700", n, err)
	}
	if _, err := v.f.SkipGap(ctx, "events", 0); !errors.Is(err, ErrDiverged) {
		t.Fatalf("skip-gap of the restored partition: %v, want ErrDiverged", err)
	}
	tbl, err := v.f.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	scanTable(t, tbl, want)
}
