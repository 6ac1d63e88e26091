//go:build linux

package vfs_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/zombihq/zombi/vfs"
)

func TestOSAllocate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seg")
	f, err := vfs.Default.Create(path)
	must(t, err)
	defer f.Close()
	const size = 1 << 20
	must(t, f.Allocate(size))
	if got, err := f.Size(); err != nil || got != size {
		t.Fatalf("Size after Allocate = %d, %v", got, err)
	}
	// The blocks are reserved: the file is not sparse.
	var st syscall.Stat_t
	must(t, syscall.Stat(path, &st))
	if st.Blocks*512 < size {
		t.Fatalf("Allocate reserved %d bytes of %d: the file is sparse", st.Blocks*512, size)
	}
	// Allocating less never shrinks.
	must(t, f.Allocate(10))
	if got, _ := f.Size(); got != size {
		t.Fatalf("Allocate(10) changed the size to %d", got)
	}
	b := make([]byte, 4096)
	_, err = f.ReadAt(b, size-4096)
	must(t, err)
	if !bytes.Equal(b, make([]byte, 4096)) {
		t.Fatal("allocated space is not zero")
	}
}

func TestOSMapAndSync(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "seg")
	f, err := vfs.Default.Create(path)
	must(t, err)
	must(t, f.Allocate(8192))
	mm, err := f.Map(8192, true)
	must(t, err)
	if len(mm) != 8192 {
		t.Fatalf("mapping of %d bytes", len(mm))
	}
	if _, err := f.Map(8192, true); err == nil {
		t.Fatal("a second Map succeeded")
	}
	copy(mm[5000:], "mapped write")
	must(t, f.SyncRange(5000, 12))
	must(t, f.Sync())
	// A write through the mapping is the file's contents.
	got := make([]byte, 12)
	_, err = f.ReadAt(got, 5000)
	must(t, err)
	if string(got) != "mapped write" {
		t.Fatalf("ReadAt after a mapped write: %q", got)
	}
	// And a pwrite shows in the mapping.
	_, err = f.WriteAt([]byte("pwrite"), 100)
	must(t, err)
	if string(mm[100:106]) != "pwrite" {
		t.Fatal("pwrite is not visible through the mapping")
	}
	must(t, f.Unmap())
	must(t, f.Unmap())
	must(t, f.Close())

	raw, err := os.ReadFile(path)
	must(t, err)
	if string(raw[5000:5012]) != "mapped write" || string(raw[100:106]) != "pwrite" {
		t.Fatal("the data did not reach the file")
	}

	r, err := vfs.Default.Open(path)
	must(t, err)
	defer r.Close()
	rm, err := r.Map(8192, false)
	must(t, err)
	if string(rm[5000:5012]) != "mapped write" {
		t.Fatal("read-only mapping")
	}
	if _, err := r.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("WriteAt on a read-only file succeeded")
	}
	if _, err := r.Map(8192, true); err == nil {
		t.Fatal("a second mapping on one handle succeeded")
	}

	z, err := vfs.Default.Create(filepath.Join(dir, "empty"))
	must(t, err)
	defer z.Close()
	if m, err := z.Map(0, false); m != nil || err != nil {
		t.Fatalf("Map(0) = %v, %v", m, err)
	}
}

func TestOSNamespace(t *testing.T) {
	dir := t.TempDir()
	fsys := vfs.Default
	must(t, fsys.MkdirAll(filepath.Join(dir, "a/b")))
	write(t, fsys, filepath.Join(dir, "z"), []byte("zz"), true)
	write(t, fsys, filepath.Join(dir, "m.tmp"), []byte("m"), true)
	must(t, fsys.Rename(filepath.Join(dir, "m.tmp"), filepath.Join(dir, "m")))
	must(t, fsys.SyncDir(dir))
	names, err := fsys.List(dir)
	must(t, err)
	if !slices.Equal(names, []string{"a", "m", "z"}) {
		t.Fatalf("List = %q", names)
	}
	if fi, err := fsys.Stat(filepath.Join(dir, "z")); err != nil || fi.Size() != 2 {
		t.Fatalf("Stat = %v, %v", fi, err)
	}
	f, err := fsys.OpenRW(filepath.Join(dir, "z"))
	must(t, err)
	must(t, f.Truncate(1))
	if size, _ := f.Size(); size != 1 {
		t.Fatalf("size after Truncate = %d", size)
	}
	if f.Name() != filepath.Join(dir, "z") {
		t.Fatalf("Name = %q", f.Name())
	}
	must(t, f.Close())
	if err := f.Sync(); err == nil {
		t.Fatal("Sync of a closed file succeeded")
	}
	must(t, fsys.Remove(filepath.Join(dir, "z")))
	for name, err := range map[string]error{
		"open":    func() error { _, err := fsys.Open(filepath.Join(dir, "z")); return err }(),
		"openrw":  func() error { _, err := fsys.OpenRW(filepath.Join(dir, "z")); return err }(),
		"stat":    func() error { _, err := fsys.Stat(filepath.Join(dir, "z")); return err }(),
		"list":    func() error { _, err := fsys.List(filepath.Join(dir, "nope")); return err }(),
		"syncdir": fsys.SyncDir(filepath.Join(dir, "nope")),
		"rename":  fsys.Rename(filepath.Join(dir, "z"), filepath.Join(dir, "y")),
	} {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s of a missing file: %v", name, err)
		}
	}
}
