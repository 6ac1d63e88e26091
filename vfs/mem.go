package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
)

// MemFS is an in-memory FS that remembers what has been made durable.
//
// A file's contents become durable on File.Sync; a directory entry
// (create, rename, remove) becomes durable on SyncDir of its parent.
// CrashClone returns what a machine would find after a power loss at this
// instant: only the durable state. Writes through a mapping land in the
// file's contents immediately, as on a shared mapping, and are durable only
// after Sync.
type MemFS struct {
	mu      sync.Mutex
	dirs    map[string]bool     // directories (always durable)
	cur     map[string]*memNode // namespace now
	durable map[string]*memNode // namespace as of the last SyncDir of each dir
}

type memNode struct {
	mu     sync.Mutex
	data   []byte // contents now; a mapping aliases it
	synced []byte // contents as of the last Sync
	mapped int    // live mappings of this file, over all its open handles
	mtime  time.Time
}

// NewMem returns an empty MemFS.
func NewMem() *MemFS {
	return &MemFS{dirs: map[string]bool{"/": true, ".": true}, cur: map[string]*memNode{}, durable: map[string]*memNode{}}
}

func clean(name string) string { return path.Clean(name) }

// CrashClone returns a new MemFS holding only the durable state of m: the
// directory entries present at their parent's last SyncDir, each with the
// contents of its last Sync.
func (m *MemFS) CrashClone() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMem()
	for d := range m.dirs {
		c.dirs[d] = true
	}
	for name, n := range m.durable {
		n.mu.Lock()
		nn := &memNode{data: append([]byte(nil), n.synced...), mtime: n.mtime}
		nn.synced = append([]byte(nil), nn.data...)
		n.mu.Unlock()
		c.cur[name] = nn
		c.durable[name] = nn
	}
	return c
}

func (m *MemFS) parentExists(name string) error {
	if !m.dirs[path.Dir(name)] {
		return &os.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return nil
}

func (m *MemFS) Create(name string) (File, error) {
	name = clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.parentExists(name); err != nil {
		return nil, err
	}
	if m.dirs[name] {
		return nil, &os.PathError{Op: "create", Path: name, Err: errors.New("is a directory")}
	}
	n, ok := m.cur[name]
	if ok {
		n.mu.Lock()
		if n.mapped > 0 {
			n.mu.Unlock()
			return nil, fmt.Errorf("vfs: create %s: file is mapped", name)
		}
		n.data = n.data[:0]
		n.mtime = time.Now()
		n.mu.Unlock()
	} else {
		n = &memNode{mtime: time.Now()}
		m.cur[name] = n
	}
	return &memFile{n: n, name: name, writable: true}, nil
}

func (m *MemFS) open(name string, writable bool) (File, error) {
	name = clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.cur[name]
	if !ok {
		return nil, &os.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{n: n, name: name, writable: writable}, nil
}

func (m *MemFS) Open(name string) (File, error)   { return m.open(name, false) }
func (m *MemFS) OpenRW(name string) (File, error) { return m.open(name, true) }

func (m *MemFS) Remove(name string) error {
	name = clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.cur[name]; ok {
		delete(m.cur, name)
		return nil
	}
	if m.dirs[name] {
		prefix := name + "/"
		for k := range m.cur {
			if strings.HasPrefix(k, prefix) {
				return &os.PathError{Op: "remove", Path: name, Err: errors.New("directory not empty")}
			}
		}
		delete(m.dirs, name)
		return nil
	}
	return &os.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
}

func (m *MemFS) Rename(oldname, newname string) error {
	oldname, newname = clean(oldname), clean(newname)
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.cur[oldname]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	if err := m.parentExists(newname); err != nil {
		return err
	}
	delete(m.cur, oldname)
	m.cur[newname] = n
	return nil
}

func (m *MemFS) MkdirAll(dir string) error {
	dir = clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	for d := dir; ; d = path.Dir(d) {
		if _, ok := m.cur[d]; ok {
			return &os.PathError{Op: "mkdir", Path: d, Err: errors.New("not a directory")}
		}
		m.dirs[d] = true
		if d == "/" || d == "." {
			return nil
		}
	}
}

func (m *MemFS) List(dir string) ([]string, error) {
	dir = clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[dir] {
		return nil, &os.PathError{Op: "open", Path: dir, Err: fs.ErrNotExist}
	}
	var names []string
	for k := range m.cur {
		if path.Dir(k) == dir {
			names = append(names, path.Base(k))
		}
	}
	for d := range m.dirs {
		if d != dir && path.Dir(d) == dir {
			names = append(names, path.Base(d))
		}
	}
	sort.Strings(names)
	return names, nil
}

func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	name = clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dirs[name] {
		return memInfo{name: path.Base(name), dir: true}, nil
	}
	n, ok := m.cur[name]
	if !ok {
		return nil, &os.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return memInfo{name: path.Base(name), size: int64(len(n.data)), mtime: n.mtime}, nil
}

func (m *MemFS) SyncDir(dir string) error {
	dir = clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dirs[dir] {
		return &os.PathError{Op: "open", Path: dir, Err: fs.ErrNotExist}
	}
	for k := range m.durable {
		if path.Dir(k) == dir {
			delete(m.durable, k)
		}
	}
	for k, n := range m.cur {
		if path.Dir(k) == dir {
			m.durable[k] = n
		}
	}
	return nil
}

type memInfo struct {
	name  string
	size  int64
	dir   bool
	mtime time.Time
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() fs.FileMode {
	return map[bool]fs.FileMode{true: fs.ModeDir | 0o755, false: 0o644}[i.dir]
}
func (i memInfo) ModTime() time.Time { return i.mtime }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }

type memFile struct {
	n        *memNode
	name     string
	writable bool
	mapped   bool
	closed   bool
}

var errClosedFile = errors.New("vfs: file already closed")

func (f *memFile) Name() string { return f.name }

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.closed {
		return 0, errClosedFile
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.closed {
		return 0, errClosedFile
	}
	if !f.writable {
		return 0, fmt.Errorf("vfs: %s opened read-only", f.name)
	}
	end := off + int64(len(p))
	if end > int64(len(f.n.data)) {
		if f.n.mapped > 0 {
			return 0, fmt.Errorf("vfs: write past the end of mapped file %s", f.name)
		}
		f.n.data = grow(f.n.data, int(end))
	}
	copy(f.n.data[off:], p)
	f.n.mtime = time.Now()
	return len(p), nil
}

func grow(b []byte, n int) []byte {
	if n <= cap(b) {
		old := len(b)
		b = b[:n]
		clear(b[old:])
		return b
	}
	nb := make([]byte, n)
	copy(nb, b)
	return nb
}

func (f *memFile) Sync() error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.closed {
		return errClosedFile
	}
	f.n.synced = append(f.n.synced[:0], f.n.data...)
	return nil
}

func (f *memFile) SyncRange(off, n int64) error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.closed {
		return errClosedFile
	}
	size := int64(len(f.n.data))
	if off < 0 || n < 0 || off > size {
		return fmt.Errorf("vfs: sync range [%d, +%d) of %s out of bounds", off, n, f.name)
	}
	end := size
	if n < size-off { // not off+n < size, which overflows for a huge n
		end = off + n
	}
	if int64(len(f.n.synced)) < end {
		f.n.synced = grow(f.n.synced, int(end))
	}
	copy(f.n.synced[off:end], f.n.data[off:end])
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.closed {
		return errClosedFile
	}
	if !f.writable {
		return fmt.Errorf("vfs: truncate %s: opened read-only", f.name)
	}
	if size <= int64(len(f.n.data)) {
		f.n.data = f.n.data[:size]
		return nil
	}
	if f.n.mapped > 0 {
		return fmt.Errorf("vfs: grow mapped file %s", f.name)
	}
	f.n.data = grow(f.n.data, int(size))
	return nil
}

func (f *memFile) Allocate(size int64) error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.closed {
		return errClosedFile
	}
	if !f.writable {
		return fmt.Errorf("vfs: allocate %s: opened read-only", f.name)
	}
	if size > int64(len(f.n.data)) {
		if f.n.mapped > 0 {
			return fmt.Errorf("vfs: grow mapped file %s", f.name)
		}
		f.n.data = grow(f.n.data, int(size))
	}
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.closed {
		return 0, errClosedFile
	}
	return int64(len(f.n.data)), nil
}

func (f *memFile) Map(size int, writable bool) ([]byte, error) {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.closed {
		return nil, errClosedFile
	}
	if f.mapped {
		return nil, fmt.Errorf("vfs: %s already mapped", f.name)
	}
	if size < 0 || size > len(f.n.data) {
		return nil, fmt.Errorf("vfs: map %d bytes of %s, which has %d", size, f.name, len(f.n.data))
	}
	if writable && !f.writable {
		return nil, fmt.Errorf("vfs: writable map of read-only %s", f.name)
	}
	f.mapped = true
	f.n.mapped++
	return f.n.data[:size:size], nil
}

func (f *memFile) Unmap() error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.mapped {
		f.mapped = false
		f.n.mapped--
	}
	return nil
}

func (f *memFile) Close() error {
	f.n.mu.Lock()
	defer f.n.mu.Unlock()
	if f.closed {
		return errClosedFile
	}
	if f.mapped {
		f.mapped = false
		f.n.mapped--
	}
	f.closed = true
	return nil
}
