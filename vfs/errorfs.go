package vfs

import (
	"os"
	"sync/atomic"
)

// Op names a filesystem operation for fault injection.
type Op uint8

const (
	OpCreate Op = iota
	OpOpen
	OpWrite
	OpSync
	OpAllocate
	OpTruncate
	OpMap
	OpRemove
	OpRename
	OpMkdir
	OpSyncDir
)

var opNames = [...]string{"create", "open", "write", "sync", "allocate", "truncate", "map", "remove", "rename", "mkdir", "syncdir"}

func (o Op) String() string { return opNames[o] }

// Injector decides whether an operation fails. A nil error lets it run.
type Injector func(op Op, path string) error

// ErrorFS wraps an FS and consults an Injector before every operation,
// in the manner of pebble's errorfs.
type ErrorFS struct {
	FS     FS
	Inject Injector
}

// OnOp returns an Injector that fails every op of the given kind with err
// once armed is true.
func OnOp(op Op, armed *atomic.Bool, err error) Injector {
	return func(o Op, _ string) error {
		if o == op && armed.Load() {
			return err
		}
		return nil
	}
}

// OnIndex returns an Injector that fails the n-th operation (counting from
// 0, over all ops) and every one after it with err.
func OnIndex(n int64, err error) Injector {
	var i atomic.Int64
	return func(Op, string) error {
		if i.Add(1)-1 >= n {
			return err
		}
		return nil
	}
}

func (e *ErrorFS) check(op Op, name string) error {
	if e.Inject == nil {
		return nil
	}
	if err := e.Inject(op, name); err != nil {
		return &os.PathError{Op: op.String(), Path: name, Err: err}
	}
	return nil
}

func (e *ErrorFS) Create(name string) (File, error) {
	if err := e.check(OpCreate, name); err != nil {
		return nil, err
	}
	f, err := e.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &errFile{File: f, e: e}, nil
}

func (e *ErrorFS) Open(name string) (File, error) {
	if err := e.check(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return &errFile{File: f, e: e}, nil
}

func (e *ErrorFS) OpenRW(name string) (File, error) {
	if err := e.check(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.FS.OpenRW(name)
	if err != nil {
		return nil, err
	}
	return &errFile{File: f, e: e}, nil
}

func (e *ErrorFS) Remove(name string) error {
	if err := e.check(OpRemove, name); err != nil {
		return err
	}
	return e.FS.Remove(name)
}

func (e *ErrorFS) Rename(oldname, newname string) error {
	if err := e.check(OpRename, newname); err != nil {
		return err
	}
	return e.FS.Rename(oldname, newname)
}

func (e *ErrorFS) MkdirAll(dir string) error {
	if err := e.check(OpMkdir, dir); err != nil {
		return err
	}
	return e.FS.MkdirAll(dir)
}

func (e *ErrorFS) List(dir string) ([]string, error)     { return e.FS.List(dir) }
func (e *ErrorFS) Stat(name string) (os.FileInfo, error) { return e.FS.Stat(name) }

func (e *ErrorFS) SyncDir(dir string) error {
	if err := e.check(OpSyncDir, dir); err != nil {
		return err
	}
	return e.FS.SyncDir(dir)
}

type errFile struct {
	File
	e *ErrorFS
}

func (f *errFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.e.check(OpWrite, f.Name()); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *errFile) Sync() error {
	if err := f.e.check(OpSync, f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *errFile) SyncRange(off, n int64) error {
	if err := f.e.check(OpSync, f.Name()); err != nil {
		return err
	}
	return f.File.SyncRange(off, n)
}

func (f *errFile) Allocate(size int64) error {
	if err := f.e.check(OpAllocate, f.Name()); err != nil {
		return err
	}
	return f.File.Allocate(size)
}

func (f *errFile) Truncate(size int64) error {
	if err := f.e.check(OpTruncate, f.Name()); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f *errFile) Map(size int, writable bool) ([]byte, error) {
	if err := f.e.check(OpMap, f.Name()); err != nil {
		return nil, err
	}
	return f.File.Map(size, writable)
}
