package vfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/zombihq/zombi/vfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newMem(t *testing.T) *vfs.MemFS {
	t.Helper()
	m := vfs.NewMem()
	if err := m.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// write creates name with contents b, syncing the file if sync is set.
func write(t *testing.T, fsys vfs.FS, name string, b []byte, sync bool) {
	t.Helper()
	f, err := fsys.Create(name)
	must(t, err)
	_, err = f.WriteAt(b, 0)
	must(t, err)
	if sync {
		must(t, f.Sync())
	}
	must(t, f.Close())
}

// contents returns the contents of name, or nil and false if it does not
// exist.
func contents(t *testing.T, fsys vfs.FS, name string) ([]byte, bool) {
	t.Helper()
	f, err := fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	must(t, err)
	defer f.Close()
	size, err := f.Size()
	must(t, err)
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); n != len(b) {
		t.Fatalf("read %s: %d bytes, %v", name, n, err)
	}
	return b, true
}

func TestMemCreateNeedsSyncDir(t *testing.T) {
	m := newMem(t)
	write(t, m, "/d/a", []byte("hello"), true)
	if _, ok := contents(t, m.CrashClone(), "/d/a"); ok {
		t.Fatal("a file whose directory was never synced survived a crash")
	}
	must(t, m.SyncDir("/d"))
	b, ok := contents(t, m.CrashClone(), "/d/a")
	if !ok || string(b) != "hello" {
		t.Fatalf("after SyncDir: %q %v", b, ok)
	}
}

func TestMemOnlySyncedContentsSurvive(t *testing.T) {
	m := newMem(t)
	f, err := m.Create("/d/a")
	must(t, err)
	defer f.Close()
	must(t, m.SyncDir("/d"))
	if b, ok := contents(t, m.CrashClone(), "/d/a"); !ok || len(b) != 0 {
		t.Fatalf("a never-synced file: %q %v", b, ok)
	}
	_, err = f.WriteAt([]byte("aaa"), 0)
	must(t, err)
	must(t, f.Sync())
	_, err = f.WriteAt([]byte("bbb"), 3)
	must(t, err)
	_, err = f.WriteAt([]byte("A"), 0)
	must(t, err)
	clone := m.CrashClone()
	if b, _ := contents(t, clone, "/d/a"); string(b) != "aaa" {
		t.Fatalf("after a crash: %q, want the synced %q", b, "aaa")
	}
	if b, _ := contents(t, m, "/d/a"); string(b) != "Aaabbb" {
		t.Fatalf("the live file: %q", b)
	}
	// The clone is independent of the original, and crashing it again
	// keeps its synced state.
	write(t, clone, "/d/a", []byte("zz"), true)
	if b, _ := contents(t, m, "/d/a"); string(b) != "Aaabbb" {
		t.Fatalf("writing the clone changed the original: %q", b)
	}
	if b, _ := contents(t, clone.CrashClone(), "/d/a"); string(b) != "zz" {
		t.Fatalf("clone of a clone: %q", b)
	}
}

func TestMemMapWritesNeedSync(t *testing.T) {
	m := newMem(t)
	f, err := m.Create("/d/seg")
	must(t, err)
	defer f.Close()
	must(t, f.Allocate(4096))
	must(t, f.Sync())
	must(t, m.SyncDir("/d"))
	mm, err := f.Map(4096, true)
	must(t, err)
	copy(mm[100:], "through the map")

	// Visible to readers at once, as with a shared mapping ...
	got := make([]byte, 15)
	_, err = f.ReadAt(got, 100)
	must(t, err)
	if string(got) != "through the map" {
		t.Fatalf("ReadAt after a store into the map: %q", got)
	}
	// ... but lost in a crash until synced.
	b, _ := contents(t, m.CrashClone(), "/d/seg")
	if len(b) != 4096 || !bytes.Equal(b, make([]byte, 4096)) {
		t.Fatal("unsynced writes through a mapping survived a crash")
	}
	must(t, f.Sync())
	b, _ = contents(t, m.CrashClone(), "/d/seg")
	if string(b[100:115]) != "through the map" {
		t.Fatal("synced writes through a mapping were lost")
	}
}

func TestMemRenameDurability(t *testing.T) {
	m := newMem(t)
	write(t, m, "/d/state", []byte("old"), true)
	must(t, m.SyncDir("/d"))
	// write temp, fsync, rename: not durable until the directory is synced.
	write(t, m, "/d/state.tmp", []byte("new"), true)
	must(t, m.Rename("/d/state.tmp", "/d/state"))
	if b, _ := contents(t, m, "/d/state"); string(b) != "new" {
		t.Fatalf("live after rename: %q", b)
	}
	if _, ok := contents(t, m, "/d/state.tmp"); ok {
		t.Fatal("the old name is still there")
	}
	clone := m.CrashClone()
	if b, _ := contents(t, clone, "/d/state"); string(b) != "old" {
		t.Fatalf("rename without SyncDir survived a crash: %q", b)
	}
	if _, ok := contents(t, clone, "/d/state.tmp"); ok {
		t.Fatal("an unsynced temp file survived a crash")
	}
	must(t, m.SyncDir("/d"))
	clone = m.CrashClone()
	if b, _ := contents(t, clone, "/d/state"); string(b) != "new" {
		t.Fatalf("after SyncDir: %q", b)
	}
	if names, _ := clone.List("/d"); !slices.Equal(names, []string{"state"}) {
		t.Fatalf("after SyncDir the directory holds %q", names)
	}
}

func TestMemRemoveDurability(t *testing.T) {
	m := newMem(t)
	write(t, m, "/d/a", []byte("x"), true)
	must(t, m.SyncDir("/d"))
	must(t, m.Remove("/d/a"))
	if _, ok := contents(t, m, "/d/a"); ok {
		t.Fatal("removed file still there")
	}
	if _, ok := contents(t, m.CrashClone(), "/d/a"); !ok {
		t.Fatal("a remove without SyncDir was durable")
	}
	must(t, m.SyncDir("/d"))
	if _, ok := contents(t, m.CrashClone(), "/d/a"); ok {
		t.Fatal("a synced remove was undone by a crash")
	}
}

func TestMemNamespace(t *testing.T) {
	m := newMem(t)
	must(t, m.MkdirAll("/d/sub/deeper"))
	write(t, m, "/d/b", []byte("12345"), false)
	write(t, m, "/d/a", nil, false)
	names, err := m.List("/d")
	must(t, err)
	if !slices.Equal(names, []string{"a", "b", "sub"}) {
		t.Fatalf("List = %q", names)
	}
	if fi, err := m.Stat("/d/b"); err != nil || fi.Size() != 5 || fi.IsDir() || fi.Name() != "b" {
		t.Fatalf("Stat file: %v %v", fi, err)
	}
	if fi, err := m.Stat("/d/sub"); err != nil || !fi.IsDir() {
		t.Fatalf("Stat dir: %v %v", fi, err)
	}
	for name, err := range map[string]error{
		"stat missing":       func() error { _, err := m.Stat("/d/nope"); return err }(),
		"open missing":       func() error { _, err := m.Open("/d/nope"); return err }(),
		"openrw missing":     func() error { _, err := m.OpenRW("/d/nope"); return err }(),
		"remove missing":     m.Remove("/d/nope"),
		"rename missing":     m.Rename("/d/nope", "/d/x"),
		"list missing":       func() error { _, err := m.List("/nope"); return err }(),
		"create in missing":  func() error { _, err := m.Create("/nope/a"); return err }(),
		"rename into absent": m.Rename("/d/a", "/nope/a"),
		"syncdir missing":    m.SyncDir("/nope"),
	} {
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want ErrNotExist", name, err)
		}
	}
	if err := m.Remove("/d"); err == nil {
		t.Error("removed a non-empty directory")
	}
	if _, err := m.Create("/d/sub"); err == nil {
		t.Error("created a file over a directory")
	}
	if err := m.MkdirAll("/d/b/c"); err == nil {
		t.Error("made a directory under a file")
	}
	must(t, m.Remove("/d/sub/deeper"))
	// Create truncates an existing file.
	write(t, m, "/d/b", []byte("9"), false)
	if b, _ := contents(t, m, "/d/b"); string(b) != "9" {
		t.Fatalf("Create did not truncate: %q", b)
	}
}

func TestMemFileErrors(t *testing.T) {
	m := newMem(t)
	write(t, m, "/d/a", []byte("abc"), true)
	ro, err := m.Open("/d/a")
	must(t, err)
	defer ro.Close()
	if _, err := ro.WriteAt([]byte("x"), 0); err == nil {
		t.Error("WriteAt on a read-only file succeeded")
	}
	if err := ro.Truncate(0); err == nil {
		t.Error("Truncate on a read-only file succeeded")
	}
	if err := ro.Allocate(100); err == nil {
		t.Error("Allocate on a read-only file succeeded")
	}
	if _, err := ro.Map(3, true); err == nil {
		t.Error("writable Map of a read-only file succeeded")
	}
	if b, _ := contents(t, m, "/d/a"); string(b) != "abc" {
		t.Fatalf("read-only handle changed the file: %q", b)
	}

	buf := make([]byte, 5)
	if n, err := ro.ReadAt(buf, 1); n != 2 || err != io.EOF {
		t.Errorf("short ReadAt = %d, %v; want 2, EOF", n, err)
	}
	if n, err := ro.ReadAt(buf, 10); n != 0 || err != io.EOF {
		t.Errorf("ReadAt past the end = %d, %v", n, err)
	}

	f, err := m.OpenRW("/d/a")
	must(t, err)
	must(t, f.Close())
	for name, err := range map[string]error{
		"read":     func() error { _, err := f.ReadAt(buf, 0); return err }(),
		"write":    func() error { _, err := f.WriteAt(buf, 0); return err }(),
		"sync":     f.Sync(),
		"truncate": f.Truncate(0),
		"allocate": f.Allocate(10),
		"size":     func() error { _, err := f.Size(); return err }(),
		"map":      func() error { _, err := f.Map(1, false); return err }(),
		"close":    f.Close(),
	} {
		if err == nil {
			t.Errorf("%s on a closed file succeeded", name)
		}
	}
}

func TestMemMapRules(t *testing.T) {
	m := newMem(t)
	f, err := m.Create("/d/a")
	must(t, err)
	defer f.Close()
	must(t, f.Allocate(100))
	for _, size := range []int{-1, 101} {
		if _, err := f.Map(size, false); err == nil {
			t.Errorf("Map(%d) of a 100-byte file succeeded", size)
		}
	}
	mm, err := f.Map(100, true)
	must(t, err)
	if _, err := f.Map(100, true); err == nil {
		t.Error("a second Map on one handle succeeded")
	}
	// A mapped file cannot grow (the mapping would stop aliasing it) but can
	// shrink, as Seal does.
	if _, err := f.WriteAt([]byte("x"), 100); err == nil {
		t.Error("WriteAt past the end of a mapped file succeeded")
	}
	if err := f.Truncate(200); err == nil {
		t.Error("growing a mapped file succeeded")
	}
	if err := f.Allocate(200); err == nil {
		t.Error("Allocate growing a mapped file succeeded")
	}
	if _, err := m.Create("/d/a"); err == nil {
		t.Error("Create truncated a mapped file")
	}

	// A second handle maps the same file; unmapping the first must not
	// let the file grow under the second's mapping.
	g, err := m.Open("/d/a")
	must(t, err)
	defer g.Close()
	gm, err := g.Map(100, false)
	must(t, err)
	must(t, f.Unmap())
	must(t, f.Unmap()) // idempotent
	if err := f.Truncate(200); err == nil {
		t.Fatal("the file grew while another handle still maps it")
	}
	_, err = f.WriteAt([]byte("shared"), 10)
	must(t, err)
	if string(gm[10:16]) != "shared" || string(mm[10:16]) != "shared" {
		t.Fatal("mappings do not alias the file")
	}
	must(t, g.Unmap())
	must(t, f.Truncate(200))
	if size, _ := f.Size(); size != 200 {
		t.Fatalf("size %d after unmapping and growing", size)
	}
}

// TestMemConcurrent runs writers, syncs, directory operations and crash
// clones at once; go test -race checks the locking.
func TestMemConcurrent(t *testing.T) {
	m := newMem(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("/d/f%d", w)
			f, err := m.Create(name)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for i := range 200 {
				if _, err := f.WriteAt([]byte{byte(i)}, int64(i)); err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					f.Sync()
					m.SyncDir("/d")
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			c := m.CrashClone()
			if _, err := c.List("/d"); err != nil {
				t.Error(err)
			}
			m.Stat("/d/f0")
		}
	}()
	wg.Wait()
	for w := range 4 {
		if b, _ := contents(t, m, fmt.Sprintf("/d/f%d", w)); len(b) != 200 {
			t.Fatalf("file %d has %d bytes", w, len(b))
		}
	}
}

func TestMemSyncRange(t *testing.T) {
	m := newMem(t)
	f, err := m.Create("/d/a")
	must(t, err)
	defer f.Close()
	must(t, m.SyncDir("/d"))
	_, err = f.WriteAt([]byte("0123456789"), 0)
	must(t, err)
	must(t, f.SyncRange(0, 4))
	if b, _ := contents(t, m.CrashClone(), "/d/a"); string(b) != "0123" {
		t.Fatalf("after SyncRange(0, 4): %q", b)
	}
	// A later range leaves the earlier one alone; a range past the end is
	// clamped, even one whose end overflows.
	_, err = f.WriteAt([]byte("ab"), 0)
	must(t, err)
	must(t, f.SyncRange(6, math.MaxInt64))
	if b, _ := contents(t, m.CrashClone(), "/d/a"); string(b) != "0123\x00\x00"+"6789" {
		t.Fatalf("after SyncRange(6, max): %q", b)
	}
	must(t, f.SyncRange(10, 0))
	for _, r := range [][2]int64{{-1, 1}, {11, 1}, {0, -1}} {
		if err := f.SyncRange(r[0], r[1]); err == nil {
			t.Errorf("SyncRange(%d, %d) succeeded", r[0], r[1])
		}
	}
	must(t, f.Sync())
	if b, _ := contents(t, m.CrashClone(), "/d/a"); string(b) != "ab23456789" {
		t.Fatalf("after Sync: %q", b)
	}
}
