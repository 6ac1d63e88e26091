package segment

import (
	"fmt"
	"path/filepath"

	"github.com/zombihq/zombi/vfs"
)

// Preallocated is a segment file reserved ahead of need, so that rolling to
// a new segment costs a header write and a rename instead of an
// fallocate, two fsyncs and a directory sync on the append path (~18 ms
// measured here for 64 MiB). Its name is temporary; recovery removes such
// files (see IsTemp).
type Preallocated struct {
	fs       vfs.FS
	path     string
	f        vfs.File
	capacity int64
	recycled bool // a former segment's file (Recycle)
}

// PreallocSuffix ends the name of a preallocated, not yet activated file.
const PreallocSuffix = ".prealloc"

// Preallocate creates path (which should end in PreallocSuffix) and
// reserves capacity bytes for it.
func Preallocate(fsys vfs.FS, path string, capacity int64) (*Preallocated, error) {
	if capacity < HeaderSize+RecordHeaderSize {
		return nil, fmt.Errorf("segment: capacity %d too small", capacity)
	}
	f, err := fsys.Create(path)
	if err != nil {
		return nil, fmt.Errorf("preallocate segment: %w", err)
	}
	if err := f.Allocate(capacity); err != nil {
		f.Close()
		fsys.Remove(path)
		return nil, fmt.Errorf("preallocate segment: reserve %d bytes: %w", capacity, err)
	}
	return &Preallocated{fs: fsys, path: path, f: f, capacity: capacity}, nil
}

// Recycle turns the file at from — a sealed segment of the same
// partition, every record of which is flushed and below the sequences the
// new segment will hold — into a preallocated file at path (which should
// end in PreallocSuffix), reserving capacity bytes for it. Writing over a
// file whose blocks are allocated and whose pages are in the page cache
// costs a copy, where a fresh file costs a block and a page-cache page
// for every 4 KiB (a page fault into memory the host may have reclaimed,
// in a VM: BenchmarkSegmentRecycle).
//
// The former header is zeroed and synced before Recycle returns, so that
// once Activate has named the file, a crash before its first sync leaves
// a header that recovery reads as never initialised (ErrNoHeader), never
// the former segment's. On failure the file at from (or path) is removed:
// the caller falls back to Preallocate.
func Recycle(fsys vfs.FS, from, path string, capacity int64) (*Preallocated, error) {
	if capacity < HeaderSize+RecordHeaderSize {
		return nil, fmt.Errorf("segment: capacity %d too small", capacity)
	}
	if err := fsys.Rename(from, path); err != nil {
		fsys.Remove(from)
		return nil, fmt.Errorf("recycle segment: %w", err)
	}
	f, err := fsys.OpenRW(path)
	if err != nil {
		fsys.Remove(path)
		return nil, fmt.Errorf("recycle segment: %w", err)
	}
	fail := func(err error) (*Preallocated, error) {
		f.Close()
		fsys.Remove(path)
		return nil, fmt.Errorf("recycle segment: %w", err)
	}
	size, err := f.Size()
	if err != nil {
		return fail(err)
	}
	var hdr [HeaderSize]byte
	if _, err := f.WriteAt(hdr[:], 0); err != nil {
		return fail(err)
	}
	switch {
	case size < capacity:
		// A sealed segment was trimmed to its data: reserve the rest.
		if err := f.Allocate(capacity); err != nil {
			return fail(err)
		}
	case size > capacity:
		if err := f.Truncate(capacity); err != nil {
			return fail(err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return &Preallocated{fs: fsys, path: path, f: f, capacity: capacity, recycled: true}, nil
}

// Recycled reports whether the file is a former segment's (Recycle).
func (p *Preallocated) Recycled() bool { return p.recycled }

// Capacity returns the bytes reserved.
func (p *Preallocated) Capacity() int64 { return p.capacity }

// Activate turns the file into the active segment at path whose first
// record will have sequence base. The file and its directory entry are
// made durable by the segment's first Sync (or Seal), before anything in
// it is acknowledged as durable; until then a crash leaves either no file
// or one whose header recovery reads as never initialised. p must not be
// used afterwards, whatever the result.
func (p *Preallocated) Activate(path string, base uint64, createdMs int64) (*Segment, error) {
	fail := func(err error) (*Segment, error) {
		p.Discard()
		return nil, fmt.Errorf("activate segment: %w", err)
	}
	var hdr [HeaderSize]byte
	h := header{version: FormatVersion, baseSeq: base, createdMs: createdMs}
	if p.recycled {
		h.flags = FlagRecycled
	}
	h.marshal(hdr[:])
	if _, err := p.f.WriteAt(hdr[:], 0); err != nil {
		return fail(err)
	}
	if err := p.fs.Rename(p.path, path); err != nil {
		return fail(err)
	}
	p.path = path
	mm, err := p.f.Map(int(p.capacity), true)
	if err != nil {
		return fail(err)
	}
	s := &Segment{fs: p.fs, path: path, f: p.f, mm: mm, base: base, created: createdMs,
		capacity: p.capacity, next: base, writable: true, dirDirty: true, recycled: p.recycled}
	s.size.Store(HeaderSize)
	s.end.Store(HeaderSize)
	p.f = nil
	return s, nil
}

// Discard closes and removes a preallocated file that will not be used.
func (p *Preallocated) Discard() error {
	if p.f == nil {
		return nil
	}
	err := p.f.Close()
	p.f = nil
	if rerr := p.fs.Remove(p.path); err == nil {
		err = rerr
	}
	return err
}

// syncDirLocked makes the segment's directory entry durable once, after
// Activate. Called with fmu held.
func (s *Segment) syncDirLocked() error {
	if !s.dirDirty {
		return nil
	}
	if err := s.fs.SyncDir(filepath.Dir(s.path)); err != nil {
		return err
	}
	s.dirDirty = false
	return nil
}
