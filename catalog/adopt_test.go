package catalog

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A partition handed over in a cluster: node-b's commit adopts node-a's
// watermark only from where node-a left off (with a skipped range after
// a handoff), the summary says so, and node-a is then fenced off.
func TestCommitAdoptsAHandedOverPartition(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(owner string) *Table {
		c, err := Open(ctx, Options{DataDir: dir, Owner: owner, RetryInitial: time.Millisecond, RetryMax: 20 * time.Millisecond, CommitAttempts: 50})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		tbl, err := c.Table(ctx, "events")
		if err != nil {
			t.Fatal(err)
		}
		return tbl
	}
	a := open("node-a")
	if _, err := a.Commit(ctx, []Range{{Partition: 2, From: 1, To: 10, High: 12}}, []DataFile{fakeFile(a, 2, 1, 10)}); err != nil {
		t.Fatal(err)
	}
	b := open("node-b")
	// Without Adopt, node-b is refused.
	if _, err := b.Commit(ctx, []Range{{Partition: 2, From: 11, To: 20}}, []DataFile{fakeFile(b, 2, 11, 20)}); !errors.Is(err, ErrForeignOwner) {
		t.Fatalf("commit on another node's partition: %v", err)
	}
	// Adopting from elsewhere than node-a's watermark is a conflict.
	if _, err := b.Commit(ctx, []Range{{Partition: 2, From: 8, To: 20, Adopt: "node-a"}}, []DataFile{fakeFile(b, 2, 8, 20)}); !errors.Is(err, ErrConflict) {
		t.Fatalf("adopt at the wrong offset: %v", err)
	}
	// A handoff that skips node-a's unflushed 11..12: node-b writes from 13.
	if _, err := b.Commit(ctx, []Range{{Partition: 2, From: 11, SkippedTo: 12, To: 20, High: 20, Adopt: "node-a"}}, []DataFile{fakeFile(b, 2, 13, 20)}); err != nil {
		t.Fatal(err)
	}
	s := b.Iceberg().CurrentSnapshot()
	if got := s.Summary.Properties[AdoptedPrefix+"2"]; got != "node-a@10" {
		t.Fatalf("adopted summary %q", got)
	}
	if got := s.Summary.Properties[SkippedPrefix+"2"]; got != "11-12" {
		t.Fatalf("skipped summary %q", got)
	}
	w, err := b.Watermarks(ctx)
	if err != nil || w[2].Owner != "node-b" || w[2].Flushed != 20 {
		t.Fatalf("watermarks after the takeover: %v %v", w, err)
	}
	// node-a, back, is fenced off; node-b's next commit needs no Adopt
	// and records none.
	a = open("node-a")
	if _, err := a.Commit(ctx, []Range{{Partition: 2, From: 11, To: 12, Adopt: "node-b"}}, []DataFile{fakeFile(a, 2, 11, 12)}); !errors.Is(err, ErrConflict) {
		t.Fatalf("the old owner after the takeover: %v", err)
	}
	if _, err := a.Commit(ctx, []Range{{Partition: 2, From: 21, To: 22}}, []DataFile{fakeFile(a, 2, 21, 22)}); !errors.Is(err, ErrForeignOwner) {
		t.Fatalf("the old owner after the takeover: %v", err)
	}
	if _, err := b.Commit(ctx, []Range{{Partition: 2, From: 21, To: 30, Adopt: "node-a"}}, []DataFile{fakeFile(b, 2, 21, 30)}); err != nil {
		t.Fatal(err)
	}
	if got, ok := b.Iceberg().CurrentSnapshot().Summary.Properties[AdoptedPrefix+"2"]; ok {
		t.Fatalf("a commit after the takeover records %q", got)
	}
}
