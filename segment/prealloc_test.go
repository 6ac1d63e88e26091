package segment_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

func TestPreallocateActivate(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		p, err := segment.Preallocate(fsys, dir+"/next"+segment.PreallocSuffix, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		path := dir + "/00000000000000000007.seg"
		s, err := p.Activate(path, 7, 1)
		if err != nil {
			t.Fatal(err)
		}
		if exists(fsys, dir+"/next"+segment.PreallocSuffix) || !exists(fsys, path) {
			t.Fatal("activate did not rename the file")
		}
		recs := makeRecords(7, 5)
		mustAppend(t, s, recs...)
		if err := s.Seal(); err != nil {
			t.Fatal(err)
		}
		mustClose(t, s)
		s2, _, err := segment.Open(fsys, path, segment.OpenOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer mustClose(t, s2)
		checkRecords(t, readAll(t, s2), recs)
	})
}

// TestActivatedSegmentIsDurableOnlyAfterSync: until the first Sync the
// segment's name may vanish in a power loss; after it, name and records
// survive.
func TestActivatedSegmentIsDurableOnlyAfterSync(t *testing.T) {
	mem, dir := newMem(t)
	p, err := segment.Preallocate(mem, dir+"/next"+segment.PreallocSuffix, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	path := dir + "/00000000000000000001.seg"
	s, err := p.Activate(path, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	recs := makeRecords(1, 4)
	if _, err := s.Append(recs...); err != nil {
		t.Fatal(err)
	}
	if crashed := mem.CrashClone(); exists(crashed, path) {
		t.Fatal("an activated segment's name was durable before any sync")
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	c, got := openRecords(t, mem.CrashClone(), path)
	mustClose(t, c)
	checkRecords(t, got, recs)
}

func TestPreallocateNoSpace(t *testing.T) {
	mem, dir := newMem(t)
	var armed atomic.Bool
	armed.Store(true)
	efs := &vfs.ErrorFS{FS: mem, Inject: vfs.OnOp(vfs.OpAllocate, &armed, vfs.ErrNoSpace)}
	_, err := segment.Preallocate(efs, dir+"/x"+segment.PreallocSuffix, 1<<16)
	if !errors.Is(err, vfs.ErrNoSpace) {
		t.Fatalf("Preallocate on a full disk: %v", err)
	}
	if exists(mem, dir+"/x"+segment.PreallocSuffix) {
		t.Fatal("failed preallocation left its file")
	}
}
