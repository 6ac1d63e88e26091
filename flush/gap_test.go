package flush

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/engine"
)

// makeGap fills partition 0 of table events with 2000 events and
// partition 1 with 30000 (~3 MiB, segments of 1 MiB), seals both, and
// removes the second segment of partition 1 with the engine closed. It
// returns that segment and the events the table should end up with.
func makeGap(t *testing.T, dir string) (engine.SegmentInfo, map[evKey]event) {
	t.Helper()
	want := map[evKey]event{}
	ts := func(i int) int64 { return baseTs + int64(i) }
	v := openEnv(t, dir, Options{})
	appendN(t, v.e, "events", 0, 2000, ts, want)
	appendN(t, v.e, "events", 1, 30000, ts, want)
	for _, p := range []uint32{0, 1} {
		if err := v.e.Seal("events", p); err != nil {
			t.Fatal(err)
		}
	}
	segs, err := v.e.Segments("events", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 3 {
		t.Fatalf("partition 1 has %d segments, want 3 or more", len(segs))
	}
	lost := segs[1]
	v.close()
	for _, f := range []string{lost.Path, strings.TrimSuffix(lost.Path, ".seg") + ".idx"} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for off := lost.First; off <= lost.Last; off++ {
		delete(want, evKey{1, off})
	}
	return lost, want
}

// A segment lost from the middle of a partition's log (quarantined as
// corrupt at recovery, or removed by hand) stops that partition at the
// gap, after committing what precedes it, and only that partition: the
// others keep flushing, at every poll. SkipGap lets it go on, and the
// commit that does says what it skipped.
func TestGapStopsOnlyItsPartitionUntilSkipped(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	lost, want := makeGap(t, dir)
	ts := func(i int) int64 { return baseTs + int64(i) }

	v := openEnv(t, dir, Options{})
	appendN(t, v.e, "events", 0, 500, ts, want)
	res, err := v.f.FlushTable(ctx, "events")
	if !errors.Is(err, ErrGap) || !strings.Contains(err.Error(), "skip-gap?partition=1") {
		t.Fatalf("flush with a gap in partition 1: %v, want ErrGap naming the way out", err)
	}
	w, werr := v.f.Watermarks(ctx, "events")
	if werr != nil {
		t.Fatal(werr)
	}
	if w[0].Flushed != 2500 || w[1].Flushed != lost.First-1 {
		t.Fatalf("committed %+v after the flush; want partition 0 at 2500, partition 1 at %d, before the gap", w, lost.First-1)
	}
	if want := 2500 + int64(lost.First) - 1; res.Events != want { // offsets start at 1
		t.Fatalf("flushed %d events, want %d", res.Events, want)
	}
	if st := v.f.Stats(); st.StuckPartitions != 1 || st.GapErrors == 0 {
		t.Fatalf("stats %+v: want 1 stuck partition and a gap error", st)
	}
	if err := v.f.LastError("events"); !errors.Is(err, ErrGap) {
		t.Fatalf("LastError = %v, want the gap", err)
	}

	// The stuck partition does not hold the others back.
	appendN(t, v.e, "events", 0, 100, ts, want)
	if _, err := v.f.FlushTable(ctx, "events"); !errors.Is(err, ErrGap) {
		t.Fatalf("second flush: %v, want ErrGap again", err)
	}
	if w, _ := v.f.Watermarks(ctx, "events"); w[0].Flushed != 2600 || w[1].Flushed != lost.First-1 {
		t.Fatalf("committed %+v after the second flush", w)
	}
	if _, err := v.f.SkipGap(ctx, "events", 0); !errors.Is(err, ErrNoGap) {
		t.Fatalf("SkipGap of a partition without a gap: %v, want ErrNoGap", err)
	}

	gs, err := v.f.SkipGap(ctx, "events", 1)
	if err != nil {
		t.Fatal(err)
	}
	if gs.From != lost.First || gs.To != lost.Last {
		t.Fatalf("skipped %d..%d, want the lost segment's %d..%d", gs.From, gs.To, lost.First, lost.Last)
	}
	checkWatermarks(t, v, "events")
	if st := v.f.Stats(); st.StuckPartitions != 0 {
		t.Fatalf("%d stuck partitions after the skip", st.StuckPartitions)
	}
	if err := v.f.LastError("events"); err != nil {
		t.Fatalf("LastError after the skip: %v", err)
	}
	tbl, err := v.f.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	props := tbl.Iceberg().CurrentSnapshot().Summary.Properties
	if got, wantSkip := props[catalog.SkippedPrefix+"1"], strconv.FormatUint(lost.First, 10)+"-"+strconv.FormatUint(lost.Last, 10); got != wantSkip {
		t.Fatalf("snapshot summary %s1 = %q, want %q", catalog.SkippedPrefix, got, wantSkip)
	}
	scanTable(t, tbl, want)

	// Later commits carry no skip, and nothing is left to skip.
	appendN(t, v.e, "events", 1, 10, ts, want)
	if _, err := v.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	if err := tbl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got, ok := tbl.Iceberg().CurrentSnapshot().Summary.Properties[catalog.SkippedPrefix+"1"]; ok {
		t.Fatalf("a later snapshot still says skipped %q", got)
	}
	if _, err := v.f.SkipGap(ctx, "events", 1); !errors.Is(err, ErrNoGap) {
		t.Fatalf("SkipGap after the gap was passed: %v, want ErrNoGap", err)
	}
	scanTable(t, tbl, want)
	if _, err := v.f.SkipGap(ctx, "events", 7); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("SkipGap of an unknown partition: %v, want engine.ErrNotFound", err)
	}
}

// The background loop flushes the other partitions at every poll while
// one is stopped at a gap: no backoff (here it would be an hour), and the
// gap is logged once, not at every poll.
func TestGapDoesNotHoldBackTheBackgroundLoop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	lost, want := makeGap(t, dir)
	var logs lockedBuffer
	v := openEnv(t, dir, Options{PollInterval: 10 * time.Millisecond, Interval: 100 * time.Millisecond,
		RetryInitial: time.Hour, RetryMax: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	v.f.Start()
	waitFor := func(p0 uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			w, err := v.f.Watermarks(ctx, "events")
			if err != nil {
				t.Fatal(err)
			}
			if w[0].Flushed == p0 && w[1].Flushed == lost.First-1 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("committed %+v; want partition 0 at %d, partition 1 at %d\n%s", w, p0, lost.First-1, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(2000)
	for round := 1; round <= 3; round++ { // partition 0 keeps flushing
		appendN(t, v.e, "events", 0, 100, func(i int) int64 { return baseTs + int64(i) }, want)
		waitFor(2000 + 100*uint64(round))
	}
	out := logs.String()
	if n := strings.Count(out, "flush stopped at a partition"); n != 1 {
		t.Fatalf("the gap was logged %d times, want once:\n%s", n, out)
	}
	if strings.Contains(out, "flush failed") {
		t.Fatalf("the gap was handled as a failure (with backoff):\n%s", out)
	}
	if st := v.f.Stats(); st.StuckPartitions != 1 {
		t.Fatalf("%d stuck partitions, want 1", st.StuckPartitions)
	}
}

// lockedBuffer is a bytes.Buffer safe for the loop's logger and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
