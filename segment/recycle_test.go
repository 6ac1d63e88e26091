package segment_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

// formerSegment writes a sealed segment of n records from base 1 in dir, as a flushed segment waiting to be recycled.
func formerSegment(t *testing.T, fsys vfs.FS, dir string, n int) string {
	t.Helper()
	path := dir + "/00000000000000000001.seg"
	s, err := segment.Create(fsys, path, 1, 1<<16, 1)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, makeRecords(1, n)...)
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	return path
}

// A recycled segment holds only its own records, however it is opened
// after a crash: the former segment's records after them (whose
// sequences are below the new base) are never taken for records, and
// appends go on after the last one.
func TestRecycledSegmentRecovery(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		former := formerSegment(t, fsys, dir, 60)
		p, err := segment.Recycle(fsys, former, dir+"/next"+segment.PreallocSuffix, 1<<16)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Recycled() || exists(fsys, former) {
			t.Fatal("Recycle did not take the former segment's file")
		}
		path := dir + "/00000000000000000061.seg"
		s, err := p.Activate(path, 61, 2)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Recycled() {
			t.Fatal("an activated recycled file is not marked recycled")
		}
		// A batch (written with pwrite) and single records (stored
		// through the mapping), fewer bytes than the former segment's.
		recs := makeRecords(61, 8)
		mustAppend(t, s, recs[:5]...)
		for _, r := range recs[5:] {
			mustAppend(t, s, r)
		}
		mustClose(t, s) // a crash: no seal

		ro, rec, err := segment.Open(fsys, path, segment.OpenOptions{ReadOnly: true})
		if err != nil {
			t.Fatalf("read-only open of a recycled segment: %v", err)
		}
		checkRecords(t, readAll(t, ro), recs)
		mustClose(t, ro)
		if rec.FormerFrom == 0 || rec.TornBytes != 0 {
			t.Fatalf("recovery %+v: want the former bytes found where the data ends, nothing cut", rec)
		}

		s2, rec, err := segment.Open(fsys, path, segment.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rec.Records != len(recs) || rec.BrokenPath != "" || exists(fsys, path+".broken") || s2.Next() != 69 {
			t.Fatalf("recovery %+v, next %d: want %d records, no torn tail, next 69", rec, s2.Next(), len(recs))
		}
		more := makeRecords(69, 3)
		mustAppend(t, s2, more...)
		mustClose(t, s2)
		s3, _, err := segment.Open(fsys, path, segment.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, readAll(t, s3), append(recs, more...))
		// Sealing trims the former bytes away and clears the flag.
		if err := s3.Seal(); err != nil {
			t.Fatal(err)
		}
		size := s3.Size()
		mustClose(t, s3)
		h, err := segment.ReadHeader(fsys, path)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := fsys.Stat(path); err != nil || st.Size() != size || !h.Sealed || h.DataLength != size {
			t.Fatalf("sealed recycled segment: header %+v, file %v (%v), data %d", h, st.Size(), err, size)
		}
	})
}

// Power loss: until the recycled segment's first sync, its name may or may
// not have survived, but the former segment's header never has — a file
// found under either name reads as never initialised — and once synced its
// records survive, ending where they end.
func TestRecycledSegmentPowerLoss(t *testing.T) {
	mem, dir := newMem(t)
	former := formerSegment(t, mem, dir, 60)
	if err := mem.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	next := dir + "/next" + segment.PreallocSuffix
	p, err := segment.Recycle(mem, former, next, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	path := dir + "/00000000000000000061.seg"
	s, err := p.Activate(path, 61, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	recs := makeRecords(61, 6)
	if _, err := s.Append(recs...); err != nil {
		t.Fatal(err)
	}
	crashed := mem.CrashClone()
	for _, name := range []string{former, next, path} {
		if !exists(crashed, name) {
			continue
		}
		if _, err := segment.ReadHeader(crashed, name); !errors.Is(err, segment.ErrNoHeader) {
			t.Fatalf("%s after a power loss before the first sync: %v, want ErrNoHeader", name, err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	c, rec, err := segment.Open(mem.CrashClone(), path, segment.OpenOptions{})
	if err != nil {
		t.Fatalf("open after a power loss: %v", err)
	}
	defer mustClose(t, c)
	checkRecords(t, readAll(t, c), recs)
	if rec.FormerFrom == 0 {
		t.Fatalf("recovery %+v: the former records should follow the data", rec)
	}
}

// A failed Recycle leaves neither file behind (the caller allocates a
// new one).
func TestRecycleFailureRemovesTheFile(t *testing.T) {
	mem, dir := newMem(t)
	former := formerSegment(t, mem, dir, 10)
	var armed atomic.Bool
	armed.Store(true)
	efs := &vfs.ErrorFS{FS: mem, Inject: vfs.OnOp(vfs.OpAllocate, &armed, vfs.ErrNoSpace)}
	next := dir + "/next" + segment.PreallocSuffix
	if _, err := segment.Recycle(efs, former, next, 1<<16); !errors.Is(err, vfs.ErrNoSpace) {
		t.Fatalf("Recycle with no space: %v", err)
	}
	if exists(mem, former) || exists(mem, next) {
		t.Fatal("a failed Recycle left a file behind")
	}
}
