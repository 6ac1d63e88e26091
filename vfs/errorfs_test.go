package vfs_test

import (
	"errors"
	"io/fs"
	"os"
	"sync/atomic"
	"testing"

	"github.com/zombihq/zombi/vfs"
)

var errInjected = errors.New("injected")

// opRunner performs one kind of operation on an ErrorFS over a MemFS
// holding /d/a (a 64-byte file) and an open handle f on it.
type opRunner func(efs *vfs.ErrorFS, f vfs.File) error

var ops = map[vfs.Op]opRunner{
	vfs.OpCreate: func(e *vfs.ErrorFS, _ vfs.File) error { _, err := e.Create("/d/new"); return err },
	vfs.OpOpen: func(e *vfs.ErrorFS, _ vfs.File) error {
		f, err := e.Open("/d/a")
		if err == nil {
			f.Close()
		}
		return err
	},
	vfs.OpWrite: func(_ *vfs.ErrorFS, f vfs.File) error { _, err := f.WriteAt([]byte("x"), 0); return err },
	vfs.OpSync: func(_ *vfs.ErrorFS, f vfs.File) error {
		// SyncRange counts as a sync too.
		if err := f.SyncRange(0, 1); err != nil {
			return err
		}
		return f.Sync()
	},
	vfs.OpAllocate: func(_ *vfs.ErrorFS, f vfs.File) error { return f.Allocate(64) },
	vfs.OpTruncate: func(_ *vfs.ErrorFS, f vfs.File) error { return f.Truncate(64) },
	vfs.OpMap: func(_ *vfs.ErrorFS, f vfs.File) error {
		_, err := f.Map(64, false)
		if err == nil {
			f.Unmap()
		}
		return err
	},
	vfs.OpRemove:  func(e *vfs.ErrorFS, _ vfs.File) error { return e.Remove("/d/a") },
	vfs.OpRename:  func(e *vfs.ErrorFS, _ vfs.File) error { return e.Rename("/d/a", "/d/b") },
	vfs.OpMkdir:   func(e *vfs.ErrorFS, _ vfs.File) error { return e.MkdirAll("/d/sub") },
	vfs.OpSyncDir: func(e *vfs.ErrorFS, _ vfs.File) error { return e.SyncDir("/d") },
}

func setupErrorFS(t *testing.T, inject vfs.Injector) (*vfs.ErrorFS, vfs.File) {
	t.Helper()
	m := newMem(t)
	write(t, m, "/d/a", make([]byte, 64), true)
	efs := &vfs.ErrorFS{FS: m, Inject: inject}
	// Wrap the handle the way ErrorFS.OpenRW would, without counting an op.
	inj := efs.Inject
	efs.Inject = nil
	wf, err := efs.OpenRW("/d/a")
	must(t, err)
	t.Cleanup(func() { wf.Close() })
	efs.Inject = inj
	return efs, wf
}

func TestErrorFSOnOp(t *testing.T) {
	for op, run := range ops {
		t.Run(op.String(), func(t *testing.T) {
			var armed atomic.Bool
			efs, f := setupErrorFS(t, vfs.OnOp(op, &armed, errInjected))
			// Disarmed, every op runs.
			for o, r := range ops {
				if o == vfs.OpRemove || o == vfs.OpRename {
					continue // they would take /d/a away
				}
				if err := r(efs, f); err != nil {
					t.Fatalf("%v with the injector disarmed: %v", o, err)
				}
			}
			armed.Store(true)
			err := run(efs, f)
			if !errors.Is(err, errInjected) {
				t.Fatalf("armed %v: %v, want the injected error", op, err)
			}
			var pe *os.PathError
			if !errors.As(err, &pe) || pe.Op != op.String() {
				t.Fatalf("armed %v: %v is not a *PathError for %q", op, err, op)
			}
			// Other kinds of op still run.
			for o, r := range ops {
				if o == op || o == vfs.OpRemove || o == vfs.OpRename {
					continue
				}
				if err := r(efs, f); err != nil {
					t.Fatalf("%v while %v is armed: %v", o, op, err)
				}
			}
			armed.Store(false)
			if err := run(efs, f); err != nil {
				t.Fatalf("disarmed again: %v", err)
			}
		})
	}
}

func TestErrorFSOnIndex(t *testing.T) {
	const n = 3
	efs, f := setupErrorFS(t, vfs.OnIndex(n, vfs.ErrNoSpace))
	seq := []vfs.Op{vfs.OpTruncate, vfs.OpWrite, vfs.OpSyncDir, vfs.OpAllocate, vfs.OpWrite, vfs.OpMkdir} // one fs op each
	for i, op := range seq {
		err := ops[op](efs, f)
		if i < n && err != nil {
			t.Fatalf("op %d (%v) failed before the index: %v", i, op, err)
		}
		if i >= n && !errors.Is(err, vfs.ErrNoSpace) {
			t.Fatalf("op %d (%v) = %v, want ErrNoSpace", i, op, err)
		}
	}
	// List and Stat are not counted and never fail.
	if _, err := efs.List("/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := efs.Stat("/d/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := efs.Stat("/d/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

func TestErrorFSPassesThrough(t *testing.T) {
	efs, f := setupErrorFS(t, nil)
	_, err := f.WriteAt([]byte("hi"), 0)
	must(t, err)
	must(t, f.Sync())
	b, _ := contents(t, efs.FS, "/d/a")
	if string(b[:2]) != "hi" {
		t.Fatalf("write did not reach the wrapped FS: %q", b[:2])
	}
	if f.Name() != "/d/a" {
		t.Fatalf("Name = %q", f.Name())
	}
}

func TestOpNames(t *testing.T) {
	want := map[vfs.Op]string{vfs.OpCreate: "create", vfs.OpSync: "sync", vfs.OpAllocate: "allocate", vfs.OpSyncDir: "syncdir"}
	for op, name := range want {
		if op.String() != name {
			t.Errorf("%d.String() = %q, want %q", op, op.String(), name)
		}
	}
	if len(ops) != int(vfs.OpSyncDir)+1 {
		t.Errorf("the test covers %d ops, there are %d", len(ops), vfs.OpSyncDir+1)
	}
}
