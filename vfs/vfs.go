// Package vfs is the filesystem seam of the hot tier.
//
// segment and engine never touch *os.File directly: they go through FS and
// File so that tests can inject write and sync errors (ErrorFS) and simulate
// a power loss that drops everything not yet synced (MemFS.CrashClone). The OS
// implementation (Default) is a thin layer over open(2), pwrite(2),
// fdatasync(2), fallocate(2) and mmap(2).
package vfs

import (
	"errors"
	"io"
	"os"
)

// ErrNoSpace is returned (wrapped) when the filesystem has no room left.
// Callers test for it with errors.Is; the OS implementation maps ENOSPC and
// EDQUOT onto it.
var ErrNoSpace = errors.New("vfs: no space left on device")

// FS is the set of filesystem operations the hot tier needs.
//
// Names are slash-separated paths as the OS uses them. Directory entries
// (create, rename, remove) are durable only after SyncDir of their parent,
// exactly as on a POSIX filesystem; MemFS enforces that in CrashClone.
type FS interface {
	// Create creates or truncates name and opens it read-write.
	Create(name string) (File, error)
	// Open opens an existing file read-only.
	Open(name string) (File, error)
	// OpenRW opens an existing file read-write.
	OpenRW(name string) (File, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	MkdirAll(dir string) error
	// List returns the names (not paths) of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// Stat reports whether name exists, its size and whether it is a dir.
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes the entries of dir durable.
	SyncDir(dir string) error
}

// File is an open file.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	// Sync makes the file's data durable (fdatasync), including data
	// written through a shared mapping.
	Sync() error
	// SyncRange makes at least [off, off+n) of the file's data durable.
	// The OS implementation syncs all of the file's data (fdatasync; a
	// sync_file_range(2) alone would not be durable). MemFS syncs only the
	// range, which lets a writer keep appending beyond it while another
	// goroutine syncs, and is the stricter model of durability.
	SyncRange(off, n int64) error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Allocate reserves disk blocks for [0, size) and grows the file to
	// size, so that later writes in that range, including writes through a
	// mapping, cannot fail for lack of space.
	Allocate(size int64) error
	// Size returns the current size of the file.
	Size() (int64, error)
	// Map maps [0, size) of the file shared. A writable mapping writes the
	// file's contents. The slice stays valid until Unmap or Close.
	Map(size int, writable bool) ([]byte, error)
	// Unmap releases the mapping made by Map, if any.
	Unmap() error
	// Name returns the path the file was opened with.
	Name() string
}

// Default is the operating system's filesystem.
var Default FS = osFS{}
