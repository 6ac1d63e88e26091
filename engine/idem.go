package engine

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"

	"github.com/zombihq/zombi/vfs"
)

// idemTable remembers the idempotency keys of one partition: key → the
// offset it was first written at, for a window of time and up to a number
// of keys. It is guarded by the partition log's mutex, so a check and the
// append that follows are one atomic step.
type idemTable struct {
	m      map[string]idemEntry
	q      []idemQueued // insertion order, oldest first from head
	head   int
	window int64 // ms
	max    int
}

type idemEntry struct {
	off uint64
	at  int64 // ms when the key was written
}

type idemQueued struct {
	key string
	at  int64
}

func newIdemTable(windowMs int64, max int) *idemTable {
	return &idemTable{m: make(map[string]idemEntry), window: windowMs, max: max}
}

// get returns the offset key was written at, if it is remembered and not
// expired at now.
func (t *idemTable) get(key []byte, now int64) (uint64, bool) {
	e, ok := t.m[string(key)]
	if !ok || e.at < now-t.window {
		return 0, false
	}
	return e.off, true
}

// put remembers key → off, written at at (ms), and forgets what has
// expired or exceeds the key budget.
func (t *idemTable) put(key string, off uint64, at int64) {
	if t.max <= 0 {
		return
	}
	t.m[key] = idemEntry{off: off, at: at}
	t.q = append(t.q, idemQueued{key: key, at: at})
	t.expire(at)
}

func (t *idemTable) expire(now int64) {
	for t.head < len(t.q) {
		q := t.q[t.head]
		if q.at >= now-t.window && len(t.q)-t.head <= t.max {
			break
		}
		if e, ok := t.m[q.key]; ok && e.at == q.at {
			delete(t.m, q.key)
		}
		t.q[t.head] = idemQueued{}
		t.head++
	}
	if t.head > 1024 && t.head > len(t.q)/2 {
		n := copy(t.q, t.q[t.head:])
		clear(t.q[n:])
		t.q = t.q[:n]
		t.head = 0
	}
}

// idemFile keeps the keys of segments that were deleted after their
// flush, so that a retry within the window still finds them:
//
//	"ZIDM" | count u32 | count × (key len u16 | key | offset u64 | at ms i64) | crc32c
const idemMagic = "ZIDM"

// saveBelow writes every live key with an offset below low to the
// partition's idem file, replacing it.
func (t *idemTable) saveBelow(fsys vfs.FS, dir string, low uint64, now int64) error {
	b := []byte(idemMagic)
	b = append(b, 0, 0, 0, 0)
	n := uint32(0)
	for k, e := range t.m {
		if e.off >= low || e.at < now-t.window {
			continue
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(k)))
		b = append(b, k...)
		b = binary.LittleEndian.AppendUint64(b, e.off)
		b = binary.LittleEndian.AppendUint64(b, uint64(e.at))
		n++
	}
	binary.LittleEndian.PutUint32(b[4:], n)
	return vfs.WriteAtomic(fsys, filepath.Join(dir, "idem"), sealCheckpoint(b))
}

// loadIdemFile adds the keys of the partition's idem file, if any.
func (t *idemTable) load(fsys vfs.FS, dir string, now int64) error {
	b, err := vfs.ReadFile(fsys, filepath.Join(dir, "idem"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	body, err := unsealCheckpoint(b, idemMagic)
	if err != nil || len(body) < 4 {
		return errBadCheckpoint
	}
	n := binary.LittleEndian.Uint32(body)
	body = body[4:]
	for i := uint32(0); i < n; i++ {
		if len(body) < 2 {
			return errBadCheckpoint
		}
		kl := int(binary.LittleEndian.Uint16(body))
		if len(body) < 2+kl+16 {
			return errBadCheckpoint
		}
		key := string(body[2 : 2+kl])
		off := binary.LittleEndian.Uint64(body[2+kl:])
		at := int64(binary.LittleEndian.Uint64(body[10+kl:]))
		body = body[2+kl+16:]
		if at >= now-t.window {
			t.put(key, off, at)
		}
	}
	return nil
}
