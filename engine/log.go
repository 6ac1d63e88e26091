package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zombihq/zombi/index"
	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

// seg is one segment of a partition log.
type seg struct {
	path string
	base uint64
	log  *plog

	// Guarded by plog.mu.
	last      uint64         // last sequence; base-1 while empty
	bytes     int64          // header + records
	bld       *index.Builder // index being built while active; nil once sealed
	idx       index.Index    // final index once sealed
	sealing   bool           // no longer takes appends; Seal may be running
	flushedAt int64          // ms when the cold tier committed all of it; 0 if not yet
	mtimeMs   int64          // last write, for the idempotency window at recovery

	sealed atomic.Bool // Seal finished: the data is durable and final

	omu     sync.Mutex // guards s, refs, deleted, corrupt, lastUse
	s       *segment.Segment
	refs    int
	deleted bool
	corrupt bool // found corrupt while read: its files are set aside, not removed
	lastUse int64
}

func segName(base uint64) string { return fmt.Sprintf("%020d.seg", base) }

// plog is the log of one partition.
type plog struct {
	e     *Engine
	table *table
	part  uint32
	dir   string

	mu      sync.Mutex // held for a whole append; guards the fields below
	segs    []*seg     // ascending by base; the last one takes appends unless sealing
	next    uint64     // sequence of the next record
	lease   uint64     // every assigned sequence is below it (persisted)
	flushed uint64     // last sequence committed to the cold tier (persisted)
	idem    *idemTable
	closed  bool
	scratch []segment.Record // batch appends' encoding list, reused

	spare         *segment.Preallocated // the next segment's file, reserved ahead
	preparing     bool                  // a goroutine is reserving spare
	spareRetryMs  int64                 // after a failed reservation: no new attempt before this time
	spareBackoff  time.Duration         // wait after the last failed reservation; 0 after a success
	sealsInFlight int                   // background seals running

	// kept is set when a flushed segment's file is kept for recycling
	// (recycleName), and cleared by whatever takes or removes it.
	kept atomic.Bool

	// stateMu serialises writes of the state file. Lock order: mu, then
	// stateMu; MarkFlushed releases mu while it writes, so appends do not
	// wait for the fsyncs.
	stateMu  sync.Mutex
	sealDone sync.Cond // on mu; broadcast when a background seal ends

	high   atomic.Uint64         // next-1, readable without mu
	failed atomic.Pointer[error] // sticky ErrLogFailed

	// Group commit. Appended records are acknowledged once a leader — the
	// first waiter to find none running — has written them to the file
	// (all modes) and, in FsyncAlways mode, synced them; one pwrite and
	// one fdatasync serve every appender waiting at that moment.
	sync struct {
		sync.Mutex
		cond     sync.Cond
		appended uint64 // last sequence appended (in a segment's buffer)
		written  uint64 // last sequence written to the file (page cache)
		synced   uint64 // last sequence known durable
		running  bool   // a leader is at work
		dirty    []*seg // segments appended to since the last write
		unsynced []*seg // segments written since the last sync (not FsyncAlways)
		spare    []*seg
	}
}

func newLog(e *Engine, t *table, p uint32) *plog {
	l := &plog{e: e, table: t, part: p, dir: filepath.Join(t.dir, strconv.FormatUint(uint64(p), 10))}
	l.sync.cond.L = &l.sync.Mutex
	l.sealDone.L = &l.mu
	l.idem = newIdemTable(e.opts.IdempotencyWindow.Milliseconds(), e.opts.IdempotencyMaxKeys)
	return l
}

// createLog creates the directory and state of a new partition log.
func createLog(e *Engine, t *table, p uint32) (*plog, error) {
	l := newLog(e, t, p)
	if err := e.fs.MkdirAll(l.dir); err != nil {
		return nil, fmt.Errorf("create partition: %w", err)
	}
	if err := e.fs.SyncDir(t.dir); err != nil {
		return nil, fmt.Errorf("create partition: %w", err)
	}
	l.next = 1
	l.lease = 1 + e.opts.SequenceLease
	if err := l.saveStateLocked(); err != nil {
		return nil, fmt.Errorf("create partition: %w", err)
	}
	return l, nil
}

// saveStateLocked writes the partition state durably. l.mu must be held.
func (l *plog) saveStateLocked() error {
	l.stateMu.Lock()
	defer l.stateMu.Unlock()
	return l.writeState(l.stateLocked())
}

func (l *plog) stateLocked() partState {
	return partState{flushed: l.flushed, lease: l.lease, bootID: l.e.opts.BootID}
}

// writeState writes st as the partition's state file. l.stateMu must be
// held; it orders the writes, so the last one written carries the newest
// values (each writer takes its snapshot under l.mu after taking stateMu).
func (l *plog) writeState(st partState) error {
	return vfs.WriteAtomic(l.e.fs, filepath.Join(l.dir, "state"), st.marshal())
}

// fail makes err sticky: the log takes no more writes.
func (l *plog) fail(err error) error {
	ferr := fmt.Errorf("%w: table %s partition %d: %w", ErrLogFailed, l.table.name, l.part, err)
	if l.failed.CompareAndSwap(nil, &ferr) {
		l.e.opts.Logger.Error("partition log failed; it takes no more writes until restart",
			"table", l.table.name, "partition", l.part, "err", err)
		return ferr
	}
	return *l.failed.Load()
}

func (l *plog) failure() error {
	if p := l.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// activeLocked returns the segment taking appends, or nil.
func (l *plog) activeLocked() *seg {
	if n := len(l.segs); n > 0 && !l.segs[n-1].sealing {
		return l.segs[n-1]
	}
	return nil
}

// append appends recs under the log's lock. offsets[i] receives each
// record's offset. It returns the sequence to wait for before
// acknowledging — the last one appended, or the highest original offset
// of a duplicate, so that a retry is never acked before the original is
// durable — and whether anything was appended.
func (l *plog) append(recs []Record, offsets []uint64) (uint64, bool, error) {
	if err := l.failure(); err != nil {
		return 0, false, err
	}
	need := 0
	for i := range recs {
		r := &recs[i]
		if len(r.Key) > segment.MaxKeyLen || len(r.Payload) > maxRecordBytes {
			return 0, false, ErrTooLarge
		}
		need += segment.RecordHeaderSize + len(r.Key) + len(r.Payload)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, false, ErrClosed
	}
	// The clock is read under the lock, so that the timestamps the server
	// assigns rise with the offsets: the flusher then finds a batch in
	// (timestamp, offset) order and skips its sort.
	now := l.e.nowMs()
	if l.next+uint64(len(recs)) > l.lease {
		l.lease = l.next + uint64(len(recs)) + l.e.opts.SequenceLease
		if err := l.saveStateLocked(); err != nil {
			return 0, false, l.fail(fmt.Errorf("extend sequence lease: %w", err))
		}
	}
	act := l.activeLocked()
	if act == nil || !act.s.Fits(need) {
		var err error
		if act, err = l.rollLocked(need, now); err != nil {
			return 0, false, err
		}
	}
	// Encode the whole group with one segment Append: a single small event
	// is stored straight through the mapping, a bulk group is buffered and
	// written with one pwrite (see segment.Append). Duplicates, also within
	// the group, get the original offset and are not stored.
	s := act.s
	maxDup := uint64(0)
	srs := l.scratch[:0]
	for i := range recs {
		r := &recs[i]
		if len(r.Key) > 0 {
			if off, ok := l.idem.get(r.Key, now); ok {
				offsets[i] = off
				maxDup = max(maxDup, off)
				continue
			}
		}
		ts := r.TimestampMs
		if ts == 0 {
			ts = now
		}
		seq := l.next + uint64(len(srs))
		srs = append(srs, segment.Record{Seq: seq, TimestampMs: ts, Key: r.Key, Payload: r.Payload})
		offsets[i] = seq
		if len(r.Key) > 0 {
			l.idem.put(string(r.Key), seq, now)
		}
	}
	if len(srs) == 0 {
		l.scratch = srs
		return maxDup, false, nil
	}
	pos, err := s.Append(srs...)
	if err != nil {
		// Cannot happen: the space was checked and sequences are ours.
		panic(fmt.Sprintf("BUG: append to %s: %v", act.path, err))
	}
	for k := range srs {
		n := srs[k].EncodedLen()
		act.bld.Add(srs[k].Seq, pos, n, srs[k].TimestampMs, len(srs[k].Key) > 0)
		pos += int64(n)
	}
	l.next += uint64(len(srs))
	clear(srs) // drop the references to the caller's bytes
	if cap(srs) > 4096 {
		srs = nil // one huge request must not pin its list
	}
	l.scratch = srs[:0]
	last := l.next - 1
	act.last = last
	act.bytes = s.End()
	act.mtimeMs = now
	if l.spare == nil && !l.preparing && now >= l.spareRetryMs && act.bytes > s.Capacity()/2 {
		l.prepareSpareLocked()
	}
	l.high.Store(last)
	l.sync.Lock()
	l.sync.appended = last
	if s.Size() == s.End() {
		// Stored straight into the page cache: written already.
		l.sync.written = max(l.sync.written, last)
	}
	if n := len(l.sync.dirty); n == 0 || l.sync.dirty[n-1] != act {
		l.sync.dirty = append(l.sync.dirty, act)
	}
	l.sync.Unlock()
	return last, true, nil
}

// rollLocked retires the active segment (sealing it in the background, or
// removing it when empty) and creates a new one with room for need bytes.
func (l *plog) rollLocked(need int, now int64) (*seg, error) {
	l.retireActiveLocked()
	capacity := l.e.opts.SegmentBytes
	if c := int64(segment.HeaderSize + need); c > capacity {
		capacity = c
	}
	path := filepath.Join(l.dir, segName(l.next))
	var s *segment.Segment
	var err error
	if sp := l.spare; sp != nil && sp.Capacity() >= capacity {
		l.spare = nil
		s, err = sp.Activate(path, l.next, now)
		if err != nil {
			l.e.opts.Logger.Warn("activate preallocated segment", "path", path, "err", err)
		}
	}
	if s == nil && !l.preparing && capacity == l.e.opts.SegmentBytes {
		// No spare: a flushed segment's file, if one is kept, costs one
		// sync to take where a new file costs two.
		if p := l.recycle(filepath.Join(l.dir, "roll"+segment.PreallocSuffix)); p != nil {
			s, err = p.Activate(path, l.next, now)
			if err != nil {
				l.e.opts.Logger.Warn("activate recycled segment", "path", path, "err", err)
			}
		}
	}
	if s == nil {
		s, err = segment.Create(l.e.fs, path, l.next, capacity, now)
	}
	if err != nil {
		if errors.Is(err, vfs.ErrNoSpace) {
			return nil, fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return nil, err
	}
	if s.Recycled() {
		l.e.recycled.Add(1)
	}
	sg := &seg{path: path, base: l.next, log: l, last: l.next - 1, bytes: segment.HeaderSize, s: s,
		bld: index.NewBuilder(l.next, l.e.opts.IndexIntervalBytes), mtimeMs: now}
	l.segs = append(l.segs, sg)
	return sg, nil
}

// retireActiveLocked stops the active segment taking appends: it is
// sealed in the background, or removed when empty.
func (l *plog) retireActiveLocked() {
	act := l.activeLocked()
	if act == nil {
		return
	}
	act.sealing = true
	if act.last < act.base {
		l.segs = l.segs[:len(l.segs)-1]
		l.dropSeg(act)
		return
	}
	l.e.wg.Add(1)
	l.sealsInFlight++
	go func() {
		defer l.e.wg.Done()
		l.seal(act)
		l.mu.Lock()
		l.sealsInFlight--
		l.sealDone.Broadcast()
		l.mu.Unlock()
	}()
}

// Retry delays after a failed reservation of the next segment's file
// (a full disk, most likely): doubling from the first to the last, so a
// partition that keeps appending to its active segment does not try (and
// log) a 64 MiB fallocate per append.
const (
	spareRetryFirst = time.Second
	spareRetryMax   = 30 * time.Second
)

// prepareSpareLocked reserves the next segment's file in the background,
// so that the roll on the append path does not wait for fallocate and
// fsyncs. After a failure the next attempt waits (see spareRetryFirst).
func (l *plog) prepareSpareLocked() {
	l.preparing = true
	l.e.wg.Add(1)
	go func() {
		defer l.e.wg.Done()
		next := filepath.Join(l.dir, "next"+segment.PreallocSuffix)
		p := l.recycle(next)
		var err error
		if p == nil {
			p, err = segment.Preallocate(l.e.fs, next, l.e.opts.SegmentBytes)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.preparing = false
		if err != nil {
			l.spareBackoff = min(max(2*l.spareBackoff, spareRetryFirst), spareRetryMax)
			l.spareRetryMs = l.e.nowMs() + l.spareBackoff.Milliseconds()
			l.e.opts.Logger.Warn("preallocate next segment", "table", l.table.name, "partition", l.part,
				"err", err, "retry_in", l.spareBackoff)
			return
		}
		l.spareBackoff = 0
		if l.closed {
			p.Discard()
			return
		}
		l.spare = p
	}()
}

// recycleName is the file of a flushed segment kept for the partition's
// next segment (removeFiles keeps it, recycle takes it). Its suffix makes
// recovery remove it, so a recycled file never outlives the process that
// kept it: the sequences of its records are all below the partition's
// next offset, which segment.Recycle relies on.
const recycleName = "recycle" + segment.PreallocSuffix

// recycle turns the partition's kept flushed segment, if any, into its
// next segment's file at path; nil when there is none or it fails.
func (l *plog) recycle(path string) *segment.Preallocated {
	if l.e.opts.NoRecycle || !l.kept.Swap(false) {
		return nil
	}
	p, err := segment.Recycle(l.e.fs, filepath.Join(l.dir, recycleName), path, l.e.opts.SegmentBytes)
	if isNotExist(err) {
		return nil // taken or removed meanwhile
	}
	if err != nil {
		l.e.opts.Logger.Warn("recycle a flushed segment's file; allocating a new one", "table", l.table.name,
			"partition", l.part, "err", err)
		return nil
	}
	return p
}

// seal seals sg (which no longer takes appends), writes its index file and
// makes it eligible for the flusher. A failure is sticky for the log.
func (l *plog) seal(sg *seg) error {
	if sg.sealed.Load() {
		return nil
	}
	if err := sg.s.Seal(); err != nil {
		return l.fail(err)
	}
	l.mu.Lock()
	sg.idx = sg.bld.Index
	sg.bld = nil
	sg.bytes = sg.s.Size()
	idx := sg.idx
	l.mu.Unlock()
	sg.sealed.Store(true)
	l.e.noteOpen(sg)
	if err := writeIndexFile(l.e.fs, sg.path, &idx); err != nil {
		// The index is rebuilt from the segment when it is missing.
		l.e.opts.Logger.Warn("write segment index", "path", sg.path, "err", err)
	}
	return nil
}

// writeIndexFile writes the .idx next to a sealed segment. It is not
// synced: a damaged or missing index is rebuilt from the segment.
func writeIndexFile(fsys vfs.FS, segPath string, idx *index.Index) error {
	f, err := fsys.Create(idxPath(segPath))
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(idx.Marshal(nil), 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func idxPath(segPath string) string { return strings.TrimSuffix(segPath, ".seg") + ".idx" }

// dropSeg removes a segment that left the log: now if nobody reads it,
// else when the last reader releases it.
func (l *plog) dropSeg(sg *seg) {
	sg.omu.Lock()
	sg.deleted = true
	if sg.refs > 0 {
		sg.omu.Unlock()
		return
	}
	l.e.forgetOpen(sg)
	sg.closeLocked()
	sg.omu.Unlock()
	sg.removeFiles(l.e)
}

func (sg *seg) closeLocked() {
	if sg.s != nil {
		sg.s.Close()
		sg.s = nil
	}
}

func (sg *seg) removeFiles(e *Engine) {
	if sg.corrupt {
		e.setAside(sg.path, e.opts.Logger)
		return
	}
	// A flushed segment is kept for the partition's next one (recycle),
	// replacing the one kept before.
	keep := !e.opts.NoRecycle && sg.sealed.Load()
	if keep && e.fs.Rename(sg.path, filepath.Join(sg.log.dir, recycleName)) == nil {
		sg.log.kept.Store(true)
	} else if err := e.fs.Remove(sg.path); err != nil && !isNotExist(err) {
		e.opts.Logger.Warn("remove segment", "path", sg.path, "err", err)
	}
	if err := e.fs.Remove(idxPath(sg.path)); err != nil && !isNotExist(err) {
		e.opts.Logger.Warn("remove segment index", "path", idxPath(sg.path), "err", err)
	}
}

// waitDurable returns once seq is as durable as the fsync mode promises:
// written to the file (in the page cache: survives a process crash) in
// every mode, and synced in FsyncAlways mode.
func (l *plog) waitDurable(seq uint64) error {
	always := l.e.opts.Fsync == FsyncAlways
	l.sync.Lock()
	defer l.sync.Unlock()
	for {
		done := l.sync.written
		if always {
			done = l.sync.synced
		}
		if done >= seq {
			return nil
		}
		if err := l.failure(); err != nil {
			return err
		}
		if l.sync.running {
			l.sync.cond.Wait()
			continue
		}
		l.leadLocked(always)
	}
}

// leadLocked writes every dirty segment's buffer to its file and, when
// sync is set, syncs those and the ones written since the last sync; then
// publishes the result to the waiters. Called with l.sync held and no
// leader running; it releases l.sync during the I/O.
func (l *plog) leadLocked(sync bool) {
	l.sync.running = true
	if sync {
		// Let appenders that are runnable reach the queue first, so that
		// the sync covers them too.
		l.sync.Unlock()
		runtime.Gosched()
		l.sync.Lock()
	}
	target := l.sync.appended
	dirty := l.sync.dirty
	l.sync.dirty = l.sync.spare[:0]
	l.sync.spare = nil
	var unsynced []*seg
	if sync {
		unsynced, l.sync.unsynced = l.sync.unsynced, nil
	}
	l.sync.Unlock()

	var err error
	for _, sg := range dirty {
		if sg.sealed.Load() {
			continue // Seal wrote and synced it
		}
		if sync {
			err = l.syncSeg(sg)
		} else {
			err = sg.s.Flush()
		}
		if err != nil {
			break
		}
	}
	for _, sg := range unsynced {
		if err != nil {
			break
		}
		if !sg.sealed.Load() {
			err = l.syncSeg(sg)
		}
	}

	l.sync.Lock()
	l.sync.running = false
	if err != nil {
		l.fail(err)
	} else {
		l.sync.written = max(l.sync.written, target)
		if sync {
			l.sync.synced = max(l.sync.synced, target)
		} else {
			for _, sg := range dirty {
				if n := len(l.sync.unsynced); n == 0 || l.sync.unsynced[n-1] != sg {
					l.sync.unsynced = append(l.sync.unsynced, sg)
				}
			}
		}
	}
	clear(dirty)
	l.sync.spare = dirty[:0]
	l.sync.cond.Broadcast()
}

// syncSeg syncs one segment and reports the duration to Options.OnSync.
func (l *plog) syncSeg(sg *seg) error {
	start := time.Now()
	err := sg.s.Sync()
	if err == nil && l.e.opts.OnSync != nil {
		l.e.opts.OnSync(time.Since(start))
	}
	return err
}

// syncIfDirty syncs what was written since the last sync (FsyncInterval).
// It does not take the group-commit lead: appenders waiting for their
// records to be written (one pwrite) must not wait behind an fdatasync.
func (l *plog) syncIfDirty() {
	l.sync.Lock()
	if l.sync.written <= l.sync.synced || l.failure() != nil {
		l.sync.Unlock()
		return
	}
	target := l.sync.written
	segs := l.sync.unsynced
	l.sync.unsynced = nil
	for _, sg := range l.sync.dirty { // direct stores are written without a leader
		if !slices.Contains(segs, sg) {
			segs = append(segs, sg)
		}
	}
	l.sync.Unlock()
	var err error
	for _, sg := range segs {
		if sg.sealed.Load() {
			continue // Seal synced it
		}
		if err = l.syncSeg(sg); err != nil {
			break
		}
	}
	l.sync.Lock()
	if err != nil {
		l.fail(err)
	} else {
		l.sync.synced = max(l.sync.synced, target)
	}
	l.sync.cond.Broadcast()
	l.sync.Unlock()
}

// syncAll makes every record appended before the call durable, whatever
// the mode.
func (l *plog) syncAll() error {
	l.sync.Lock()
	defer l.sync.Unlock()
	for l.sync.running {
		l.sync.cond.Wait()
	}
	if err := l.failure(); err != nil {
		return err
	}
	l.leadLocked(true)
	return l.failure()
}

// info reports the log's watermarks and size.
func (l *plog) info() PartitionInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	pi := PartitionInfo{Partition: l.part, High: l.next - 1, Flushed: l.flushed, Low: l.next, Failed: l.failure()}
	for _, sg := range l.segs {
		if sg.last >= sg.base && sg.base < pi.Low {
			pi.Low = sg.base
		}
		pi.Segments++
		pi.Bytes += sg.bytes
	}
	return pi
}

// close syncs the active segment, records a clean shutdown (lease = next,
// so the next start continues exactly here) and closes every segment.
func (l *plog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	clean := l.failure() == nil
	for _, sg := range l.segs {
		sg.omu.Lock()
		if sg.s != nil && !sg.sealed.Load() {
			if err := sg.s.Sync(); err != nil {
				errs = append(errs, err)
				clean = false
			}
		}
		l.e.forgetOpen(sg)
		sg.closeLocked()
		sg.omu.Unlock()
	}
	if l.spare != nil {
		l.spare.Discard()
		l.spare = nil
	}
	// The kept flushed segment would be removed at the next start.
	if err := l.e.fs.Remove(filepath.Join(l.dir, recycleName)); err != nil && !isNotExist(err) {
		errs = append(errs, err)
	}
	if clean {
		l.lease = l.next
		if err := l.saveStateLocked(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
