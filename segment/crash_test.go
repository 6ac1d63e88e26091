package segment_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

// openRecords opens path on fsys and returns its records, checked.
func openRecords(t *testing.T, fsys vfs.FS, path string) (*segment.Segment, []collected) {
	t.Helper()
	s, rec, err := segment.Open(fsys, path, segment.OpenOptions{})
	if err != nil {
		t.Fatalf("Open after crash: %v", err)
	}
	if rec.TornBytes != 0 {
		t.Fatalf("crash left a torn tail in a MemFS segment: %+v", rec)
	}
	got := readAll(t, s)
	if n, err := s.Verify(nil); err != nil || n != len(got) {
		t.Fatalf("Verify = %d, %v", n, err)
	}
	return s, got
}

func TestPowerLoss(t *testing.T) {
	mem, dir := newMem(t)
	path := dir + "/00000000000000000001.seg"
	recs := makeRecords(1, 8)
	s := mustCreate(t, mem, path, 1, 4096)
	defer mustClose(t, s)

	// Created: the header and the directory entry are durable.
	c, got := openRecords(t, mem.CrashClone(), path)
	checkRecords(t, got, nil)
	mustClose(t, c)

	mustAppend(t, s, recs[:3]...)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, recs[3:5]...) // not synced

	clone := mem.CrashClone()
	c, got = openRecords(t, clone, path)
	checkRecords(t, got, recs[:3])
	if c.Next() != 4 {
		t.Fatalf("Next after crash = %d, want 4", c.Next())
	}
	// The crashed copy takes appends from where its durable data ends.
	mustAppend(t, c, recs[3])
	mustClose(t, c)

	// The live segment still has everything.
	checkRecords(t, readAll(t, s), recs[:5])
	mustAppend(t, s, recs[5:]...)
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	c, got = openRecords(t, mem.CrashClone(), path)
	defer mustClose(t, c)
	if !c.Sealed() {
		t.Fatal("a sealed segment is not sealed after a crash")
	}
	checkRecords(t, got, recs)
}

func TestCreateNoSpace(t *testing.T) {
	forEachFS(t, func(t *testing.T, base vfs.FS, dir string) {
		var armed atomic.Bool
		armed.Store(true)
		efs := &vfs.ErrorFS{FS: base, Inject: vfs.OnOp(vfs.OpAllocate, &armed, vfs.ErrNoSpace)}
		path := filepath.Join(dir, "a.seg")
		s, err := segment.Create(efs, path, 0, 1<<20, 0)
		if s != nil || !errors.Is(err, vfs.ErrNoSpace) {
			t.Fatalf("Create on a full disk = %v, %v; want ErrNoSpace", s, err)
		}
		if _, err := base.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Create left the file behind: %v", err)
		}
		armed.Store(false)
		s, err = segment.Create(efs, path, 0, 1<<20, 0)
		if err != nil {
			t.Fatal(err)
		}
		mustClose(t, s)
	})
}

func TestSealSyncFails(t *testing.T) {
	mem, dir := newMem(t)
	var armed atomic.Bool
	errSync := errors.New("injected sync failure")
	efs := &vfs.ErrorFS{FS: mem, Inject: vfs.OnOp(vfs.OpSync, &armed, errSync)}
	path := dir + "/a.seg"
	s := mustCreate(t, efs, path, 0, 4096)
	defer mustClose(t, s)
	mustAppend(t, s, makeRecords(0, 3)...)
	armed.Store(true)
	if err := s.Sync(); !errors.Is(err, errSync) {
		t.Fatalf("Sync = %v, want the injected error", err)
	}
	if err := s.Seal(); !errors.Is(err, errSync) {
		t.Fatalf("Seal = %v, want the injected error", err)
	}
	if s.Sealed() {
		t.Fatal("a failed Seal marked the segment sealed")
	}
	// Nothing after the header reached the disk.
	c, got := openRecords(t, mem.CrashClone(), path)
	mustClose(t, c)
	checkRecords(t, got, nil)
}

// TestErrorAtEveryOp fails the i-th filesystem operation of a segment's
// life (create, appends, sync, seal) for every i until the run succeeds,
// then simulates a power loss: what was reported durable must be there.
func TestErrorAtEveryOp(t *testing.T) {
	errInjected := errors.New("injected")
	recs := makeRecords(1, 5)
	for i := int64(0); ; i++ {
		if i > 100 {
			t.Fatal("no run succeeded")
		}
		mem, dir := newMem(t)
		efs := &vfs.ErrorFS{FS: mem, Inject: vfs.OnIndex(i, errInjected)}
		path := dir + "/00000000000000000001.seg"
		durable, appended, sealed := -1, 0, false // -1: Create failed
		err := func() error {
			s, err := segment.Create(efs, path, 1, 4096, 0)
			if err != nil {
				return err
			}
			defer s.Close()
			durable = 0
			if _, err := s.Append(recs[:3]...); err != nil { // written by Sync
				t.Fatal(err)
			}
			appended = 3
			if err := s.Sync(); err != nil {
				return err
			}
			durable = 3
			if _, err := s.Append(recs[3:]...); err != nil { // written by Seal
				t.Fatal(err)
			}
			appended = 5
			if err := s.Seal(); err != nil {
				return err
			}
			durable, sealed = 5, true
			return nil
		}()
		if err != nil && !errors.Is(err, errInjected) {
			t.Fatalf("op %d: error %v does not wrap the injected error", i, err)
		}

		clone := mem.CrashClone()
		s, rec, oerr := segment.Open(clone, path, segment.OpenOptions{})
		if oerr != nil {
			if durable >= 0 || !(errors.Is(oerr, fs.ErrNotExist) || errors.Is(oerr, segment.ErrNoHeader)) {
				t.Fatalf("op %d: Open after crash: %v (durable %d)", i, oerr, durable)
			}
		} else {
			got := readAll(t, s)
			if rec.TornBytes != 0 || len(got) < max(durable, 0) || len(got) > appended {
				t.Fatalf("op %d: %d records after crash (%+v); %d were durable, %d appended", i, len(got), rec, durable, appended)
			}
			checkRecords(t, got, recs[:len(got)])
			if sealed && !s.Sealed() {
				t.Fatalf("op %d: Seal succeeded but the crashed segment is not sealed", i)
			}
			mustClose(t, s)
		}
		if err == nil {
			if i < 8 {
				t.Fatalf("the run took only %d filesystem operations", i)
			}
			return
		}
	}
}
