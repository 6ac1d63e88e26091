package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/zombihq/zombi/index"
	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

// openLog recovers a partition log from its directory.
//
// Sealed segments are taken from their index files without reading the
// data (a missing or damaged index is rebuilt by scanning the segment).
// Unsealed segments — the tail at a crash — are scanned; a torn tail is cut
// (segment.Open keeps a .broken copy); all but the last are sealed now.
// A sealed segment found corrupt is renamed *.corrupt and never served.
//
// The next sequence is one past the last record on disk, the flushed
// watermark, and — when the machine rebooted since the lease was written,
// so unsynced records may have vanished with the page cache — the lease,
// so that an offset that may have been handed out is never reused.
func openLog(e *Engine, t *table, p uint32) (*plog, error) {
	l := newLog(e, t, p)
	log := e.opts.Logger.With("table", t.name, "partition", p)
	st, ok, err := loadPartState(e.fs, l.dir)
	if err != nil {
		log.Error("partition state damaged; continuing without it", "err", err)
	}
	names, err := e.fs.List(l.dir)
	if err != nil {
		return nil, err
	}
	var segNames []string
	for _, n := range names {
		switch {
		case strings.HasSuffix(n, ".tmp"), strings.HasSuffix(n, segment.PreallocSuffix):
			e.fs.Remove(filepath.Join(l.dir, n))
		case strings.HasSuffix(n, ".seg"):
			if _, err := strconv.ParseUint(strings.TrimSuffix(n, ".seg"), 10, 64); err == nil {
				segNames = append(segNames, n)
			}
		}
	}
	now := e.nowMs()
	lastOnDisk := uint64(0)
	for i, n := range segNames {
		path := filepath.Join(l.dir, n)
		isLast := i == len(segNames)-1
		sg, err := l.recoverSeg(path, isLast, log)
		if err != nil {
			var ce *segment.CorruptionError
			if errors.As(err, &ce) {
				l.quarantine(path, err, log)
				continue
			}
			if errors.Is(err, segment.ErrNoHeader) {
				log.Warn("removing segment that was never initialised", "path", path)
				e.fs.Remove(path)
				continue
			}
			l.closeSegs()
			return nil, err
		}
		if sg == nil {
			continue
		}
		if len(l.segs) > 0 && sg.base <= l.segs[len(l.segs)-1].last {
			l.closeSegs()
			return nil, fmt.Errorf("segment %s overlaps the one before it", path)
		}
		l.segs = append(l.segs, sg)
		if sg.last >= sg.base {
			lastOnDisk = sg.last
		}
	}

	l.flushed = st.flushed
	l.next = max(lastOnDisk, l.flushed) + 1
	if ok && st.bootID != e.opts.BootID && st.lease > l.next {
		log.Warn("machine rebooted since the last clean stop: skipping offsets that may have been lost with the page cache",
			"from", l.next, "to", st.lease)
		l.next = st.lease
	} else if !ok && len(l.segs) > 0 {
		log.Warn("partition state missing; offsets continue from the data on disk")
	}
	// An empty active segment whose base is behind next cannot take
	// appends in sequence; retire it.
	if act := l.activeLocked(); act != nil && act.last < act.base && act.base != l.next {
		l.segs = l.segs[:len(l.segs)-1]
		act.s.Close()
		act.s = nil
		act.removeFiles(e)
	}
	if act := l.activeLocked(); act != nil && act.s.Next() != l.next {
		act.sealing = true
		if err := l.seal(act); err != nil {
			l.closeSegs()
			return nil, err
		}
	}
	l.high.Store(l.next - 1)
	l.sync.appended, l.sync.written, l.sync.synced = l.next-1, l.next-1, l.next-1
	l.lease = l.next + e.opts.SequenceLease
	if err := l.saveStateLocked(); err != nil {
		l.closeSegs()
		return nil, fmt.Errorf("save partition state: %w", err)
	}
	if err := l.recoverIdempotency(now); err != nil {
		log.Warn("idempotency keys not fully recovered", "err", err)
	}
	return l, nil
}

// recoverSeg opens one segment at recovery. It returns nil for an empty
// unsealed segment that is not the last (nothing to keep).
func (l *plog) recoverSeg(path string, isLast bool, log interface {
	Warn(string, ...any)
}) (*seg, error) {
	e := l.e
	base, _ := strconv.ParseUint(strings.TrimSuffix(filepath.Base(path), ".seg"), 10, 64)
	sg := &seg{path: path, base: base, log: l, last: base - 1}
	if fi, err := e.fs.Stat(path); err == nil {
		sg.mtimeMs = fi.ModTime().UnixMilli()
	}

	// Fast path: a sealed segment with a valid index file; only the
	// header is read.
	if b, err := vfs.ReadFile(e.fs, idxPath(path)); err == nil {
		var idx index.Index
		if _, err := idx.Unmarshal(b); err == nil && idx.Base == base {
			h, err := segment.ReadHeader(e.fs, path)
			if err != nil {
				return nil, err
			}
			if h.Sealed && h.Base == base && h.DataLength == int64(idx.DataLen) {
				sg.idx = idx
				sg.last = idx.Last()
				sg.bytes = int64(idx.DataLen)
				sg.sealing = true
				sg.sealed.Store(true)
				return sg, nil
			}
		}
		log.Warn("segment index damaged; rebuilding it", "path", idxPath(path))
	}

	bld := index.NewBuilder(base, e.opts.IndexIntervalBytes)
	visit := func(pos int64, r *segment.Record) {
		bld.Add(r.Seq, pos, r.EncodedLen(), r.TimestampMs, len(r.Key) > 0)
	}
	s, rec, err := segment.Open(e.fs, path, segment.OpenOptions{Visit: visit})
	if err != nil {
		return nil, err
	}
	if s.Base() != base {
		s.Close()
		return nil, &segment.CorruptionError{Path: path, Err: fmt.Errorf("header base %d does not match the file name", s.Base())}
	}
	if rec.TornBytes > 0 {
		log.Warn("cut a torn tail from segment", "path", path, "at", rec.TornOffset, "bytes", rec.TornBytes, "copy", rec.BrokenPath)
	}
	if s.Sealed() {
		// Sealed but its index was missing: rebuild by a full check.
		if _, err := s.Verify(visit); err != nil {
			s.Close()
			return nil, err
		}
		sg.idx = bld.Index
		sg.idx.DataLen = uint64(s.Size())
		sg.last = sg.idx.Last()
		sg.bytes = s.Size()
		sg.sealing = true
		sg.sealed.Store(true)
		s.Close()
		if err := writeIndexFile(e.fs, path, &sg.idx); err != nil {
			log.Warn("write segment index", "path", idxPath(path), "err", err)
		}
		return sg, nil
	}
	sg.s = s
	sg.bld = bld
	sg.last = s.Next() - 1
	sg.bytes = s.Size()
	if isLast {
		return sg, nil // stays active
	}
	if sg.last < sg.base {
		s.Close()
		sg.s = nil
		sg.removeFiles(e)
		return nil, nil
	}
	// An unsealed segment with a successor: the crash came between a roll
	// and the end of its seal. Finish the seal now.
	sg.sealing = true
	if err := l.seal(sg); err != nil {
		return nil, err
	}
	return sg, nil
}

// quarantine sets a corrupt segment aside so that it is never served.
func (l *plog) quarantine(path string, cause error, log interface {
	Error(string, ...any)
}) {
	log.Error("segment corrupt: quarantined, its records are not served", "path", path, "moved_to", path+".corrupt", "err", cause)
	l.e.setAside(path, log)
	l.e.quarantined.Add(1)
}

// setAside renames a corrupt segment's file to path.corrupt (kept for
// inspection, never served) and removes its index.
func (e *Engine) setAside(path string, log interface {
	Error(string, ...any)
}) {
	if err := e.fs.Rename(path, path+".corrupt"); err != nil {
		log.Error("quarantine segment", "path", path, "err", err)
	}
	e.fs.Remove(idxPath(path))
	e.fs.SyncDir(filepath.Dir(path))
}

// quarantineLive takes a sealed segment found corrupt while it was read
// out of the log and sets its file aside (.corrupt) once no reader holds
// it, as recovery does: its records are not served again, and the cold
// tier sees the gap (flush.Flusher.SkipGap lets an operator pass it).
func (l *plog) quarantineLive(sg *seg, cause error) {
	l.mu.Lock()
	i := slices.Index(l.segs, sg)
	if i < 0 || !sg.sealed.Load() {
		l.mu.Unlock()
		return // gone already, or not final
	}
	l.segs = slices.Concat(l.segs[:i], l.segs[i+1:]) // a new slice, as collect makes
	l.mu.Unlock()
	l.e.opts.Logger.Error("segment corrupt: quarantined, its records are not served", "table", l.table.name,
		"partition", l.part, "path", sg.path, "moved_to", sg.path+".corrupt", "err", cause)
	l.e.quarantined.Add(1)
	sg.omu.Lock()
	sg.corrupt = true
	sg.omu.Unlock()
	l.dropSeg(sg)
}

func (l *plog) closeSegs() {
	for _, sg := range l.segs {
		sg.omu.Lock()
		l.e.forgetOpen(sg)
		sg.closeLocked()
		sg.omu.Unlock()
	}
}

// recoverIdempotency reloads keys saved when segments were deleted, then
// keys of records in segments written within the window.
func (l *plog) recoverIdempotency(now int64) error {
	err := l.idem.load(l.e.fs, l.dir, now)
	window := l.e.opts.IdempotencyWindow.Milliseconds()
	for _, sg := range l.segs {
		flags := sg.idx.Flags
		if sg.bld != nil {
			flags = sg.bld.Flags
		}
		if flags&index.FlagHasKeys == 0 || sg.mtimeMs < now-window {
			continue
		}
		s, rerr := l.e.acquire(sg)
		if rerr != nil {
			err = errors.Join(err, rerr)
			continue
		}
		at := min(sg.mtimeMs, now)
		it := s.Iter(segment.HeaderSize)
		for it.Next() {
			if r := it.Record(); len(r.Key) > 0 {
				l.idem.put(string(r.Key), r.Seq, at)
			}
		}
		err = errors.Join(err, it.Err())
		l.e.release(sg)
	}
	return err
}
