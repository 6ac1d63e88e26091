package httpd

import (
	"context"
	"strings"
	"testing"
	"time"
)

// POST /tables/{t}/compact through a real server: the original's
// response fields, 409 COMPACTION_IN_PROGRESS while one runs (for a
// second compaction and for maintenance), the rows unchanged, the
// metrics; then POST /tables/{t}/maintenance.
func TestColdCompactOverHTTP(t *testing.T) {
	cs := startColdServer(t, 0, time.Hour)
	const flushes, per = 6, 50
	for i := range flushes {
		if r := cs.post("/tables/events/bulk", bulkBody(i*per, per)); r.status != 202 {
			t.Fatalf("bulk: %d %s", r.status, r.body)
		}
		if r := cs.post("/tables/events/flush", ""); r.status != 200 {
			t.Fatalf("flush: %d %s", r.status, r.body)
		}
	}

	hold := make(chan struct{})
	cs.store.hold.Store(&hold)
	first := make(chan resp, 1)
	go func() { first <- cs.post("/tables/events/compact", "") }()
	select {
	case <-cs.store.held: // the first compaction is writing its output
	case r := <-first:
		t.Fatalf("compaction did not write: %d %s", r.status, r.body)
	case <-time.After(20 * time.Second):
		t.Fatal("compaction did not start")
	}
	expectError(t, cs.post("/tables/events/compact", ""), 409, codeCompactionInProgress)
	expectError(t, cs.post("/tables/events/maintenance", ""), 409, codeCompactionInProgress)
	cs.store.hold.Store(nil)
	close(hold)
	r := <-first
	var cr struct {
		Status, Message, Table string
		FilesCompacted         int64  `json:"files_compacted"`
		FilesCreated           int64  `json:"files_created"`
		RowsProcessed          int64  `json:"rows_processed"`
		BytesSaved             int64  `json:"bytes_saved"`
		SnapshotID             *int64 `json:"snapshot_id"`
	}
	decodeJSON(t, r, &cr)
	// bulkBody spreads records over partitions 0 and 1, each flush
	// writes a file per partition, all in one hour.
	if r.status != 200 || cr.Status != "ok" || cr.Table != "events" || cr.FilesCompacted != 2*flushes ||
		cr.FilesCreated != 1 || cr.RowsProcessed != flushes*per || cr.BytesSaved <= 0 || cr.SnapshotID == nil || *cr.SnapshotID == 0 {
		t.Fatalf("compact: %d %s", r.status, r.body)
	}
	// Nothing left to compact: 200 with a null snapshot_id.
	r = cs.post("/tables/events/compact", "")
	if r.status != 200 || !strings.Contains(r.body, `"files_compacted":0`) || !strings.Contains(r.body, `"snapshot_id":null`) {
		t.Fatalf("second compact: %d %s", r.status, r.body)
	}

	ctx := context.Background()
	tbl, err := cs.cat.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Iceberg().Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if at.NumRows() != flushes*per {
		t.Fatalf("%d rows after compaction, want %d", at.NumRows(), flushes*per)
	}
	at.Release()
	w, err := tbl.Watermarks(ctx)
	if err != nil || w[0].Flushed != flushes*per/2 || w[1].Flushed != flushes*per/2 {
		t.Fatalf("watermarks after compaction: %v, %v", w, err)
	}

	r = cs.post("/tables/events/maintenance", "")
	if r.status != 200 || !strings.Contains(r.body, `"snapshots_remaining":`) || !strings.Contains(r.body, `"orphans_removed":0`) {
		t.Fatalf("maintenance: %d %s", r.status, r.body)
	}
	m := cs.get("/metrics")
	for _, want := range []string{
		"zombi_compaction_files_compacted_total 12", "zombi_compaction_files_created_total 1",
		"zombi_compaction_commits_total 1", "zombi_compaction_bytes_rewritten_total ", "zombi_snapshots_expired_total 0",
		"zombi_orphan_files_removed_total 0", "zombi_maintenance_runs_total 1", "zombi_compaction_duration_seconds_bucket",
		"zombi_maintenance_duration_seconds_bucket",
	} {
		if !strings.Contains(m.body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	expectError(t, cs.post("/tables/bad%20name/compact", ""), 400, codeInvalidInput)
}
