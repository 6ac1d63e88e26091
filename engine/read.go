package engine

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/zombihq/zombi/index"
	"github.com/zombihq/zombi/segment"
)

var errSegGone = errors.New("engine: segment deleted")

// acquire returns sg's open segment, opening (mapping) it if it was closed
// to stay within the open-file budget. Every acquire is paired with release.
func (e *Engine) acquire(sg *seg) (*segment.Segment, error) {
	sg.omu.Lock()
	if sg.deleted {
		sg.omu.Unlock()
		return nil, errSegGone
	}
	opened := false
	if sg.s == nil {
		s, _, err := segment.Open(e.fs, sg.path, segment.OpenOptions{ReadOnly: true})
		if err != nil {
			sg.omu.Unlock()
			return nil, err
		}
		sg.s = s
		opened = true
	}
	sg.refs++
	sg.lastUse = e.nowMs()
	s := sg.s
	sg.omu.Unlock()
	if opened {
		e.noteOpen(sg)
	}
	return s, nil
}

func (e *Engine) release(sg *seg) {
	sg.omu.Lock()
	sg.refs--
	gone := sg.refs == 0 && sg.deleted
	if gone {
		e.forgetOpen(sg)
		sg.closeLocked()
	}
	sg.omu.Unlock()
	if gone {
		sg.removeFiles(e)
	}
}

// noteOpen records a sealed segment as open and closes the least recently
// used idle ones beyond MaxOpenSegments.
//
// Lock order: a segment's omu before e.open, never the other way round
// (release, dropSeg and close hold omu when they call forgetOpen). So the
// use times are read after e.open is released.
func (e *Engine) noteOpen(sg *seg) {
	e.open.Lock()
	if slices.Contains(e.open.segs, sg) {
		e.open.Unlock()
		return
	}
	e.open.segs = append(e.open.segs, sg)
	over := len(e.open.segs) - e.opts.MaxOpenSegments
	var cand []*seg
	if over > 0 {
		cand = slices.Clone(e.open.segs)
	}
	e.open.Unlock()
	if over <= 0 {
		return
	}
	type aged struct {
		sg  *seg
		use int64
	}
	byUse := make([]aged, 0, len(cand))
	for _, c := range cand {
		if c != sg && c.sealed.Load() {
			byUse = append(byUse, aged{c, c.useTime()})
		}
	}
	slices.SortFunc(byUse, func(a, b aged) int { return cmp.Compare(a.use, b.use) })
	for _, a := range byUse[:min(over, len(byUse))] {
		v := a.sg
		v.omu.Lock()
		if v.refs == 0 && v.s != nil && v.sealed.Load() {
			v.closeLocked()
			e.forgetOpen(v)
		}
		v.omu.Unlock()
	}
}

func (sg *seg) useTime() int64 {
	sg.omu.Lock()
	defer sg.omu.Unlock()
	return sg.lastUse
}

func (e *Engine) forgetOpen(sg *seg) {
	e.open.Lock()
	for i, o := range e.open.segs {
		if o == sg {
			e.open.segs = append(e.open.segs[:i], e.open.segs[i+1:]...)
			break
		}
	}
	e.open.Unlock()
}

// Event is one stored event as returned by reads.
type Event struct {
	Partition   uint32
	Offset      uint64
	TimestampMs int64
	Key         []byte // nil when none
	Payload     []byte
}

// Query selects events of a table.
type Query struct {
	// Partition selects one partition; AllPartitions merges all of them
	// ordered by (timestamp, partition, offset).
	Partition int64
	// Offset is the first offset to return (inclusive); 0 or 1 = the start.
	Offset uint64
	// Since, when HasSince, keeps only events with TimestampMs >= Since.
	Since    int64
	HasSince bool
	// Limit bounds the events returned; 0 means 100.
	Limit int
}

// AllPartitions is Query.Partition for a merged read of every partition.
const AllPartitions = -1

// Read returns the events of a table that match q, and whether more match
// beyond the limit. An unknown table yields no events. The events' bytes
// are copies owned by the caller.
func (e *Engine) Read(tname string, q Query) ([]Event, bool, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	if !ValidTableName(tname) {
		return nil, false, ErrInvalidTable
	}
	if q.Partition != AllPartitions && (q.Partition < 0 || q.Partition >= int64(e.opts.MaxPartitions)) {
		return nil, false, fmt.Errorf("%w: %d", ErrInvalidPartition, q.Partition)
	}
	e.mu.RLock()
	t := e.tables[tname]
	closed := e.closed
	e.mu.RUnlock()
	if closed {
		return nil, false, ErrClosed
	}
	if t == nil {
		return nil, false, nil
	}
	var ar arena
	if q.Partition != AllPartitions {
		l := t.part(uint32(q.Partition))
		if l == nil {
			return nil, false, nil
		}
		return l.read(q, nil, &ar)
	}
	var all []Event
	more := false
	for _, l := range t.logs() {
		var m bool
		var err error
		all, m, err = l.read(q, all, &ar)
		if err != nil {
			return nil, false, err
		}
		more = more || m
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := &all[i], &all[j]
		if a.TimestampMs != b.TimestampMs {
			return a.TimestampMs < b.TimestampMs
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	if len(all) > q.Limit {
		all, more = all[:q.Limit], true
	}
	return all, more, nil
}

// arena hands out copies of event bytes from chunks that double from 4 KiB
// to 64 KiB, so a read makes few allocations, a small read allocates
// little, and earlier slices stay valid.
type arena struct{ buf []byte }

func (a *arena) copy(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if len(b) > 16<<10 {
		return append([]byte(nil), b...)
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, max(min(2*cap(a.buf), 64<<10), 4<<10, len(b)))
	}
	n := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[n:len(a.buf):len(a.buf)]
}

// segView is a reader's snapshot of one segment.
type segView struct {
	sg     *seg
	idx    index.Index
	active bool
}

// views snapshots the segments that may hold offsets >= from.
func (l *plog) views(from uint64) []segView {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []segView
	for _, sg := range l.segs {
		if sg.last < sg.base || sg.last < from {
			continue
		}
		v := segView{sg: sg}
		if sg.bld != nil {
			v.idx, v.active = sg.bld.Snapshot(), true
		} else {
			v.idx = sg.idx
		}
		out = append(out, v)
	}
	return out
}

// read appends to dst the events of this partition that match q, at most
// q.Limit, and reports whether more match.
func (l *plog) read(q Query, dst []Event, ar *arena) ([]Event, bool, error) {
	from := max(q.Offset, 1)
	n := 0
	more := false
	err := l.scan(from, math.MaxUint64, q.HasSince, q.Since, nil, func(r *segment.Record) error {
		if q.HasSince && r.TimestampMs < q.Since {
			return nil
		}
		if n == q.Limit {
			more = true
			return errStop
		}
		dst = append(dst, Event{Partition: l.part, Offset: r.Seq, TimestampMs: r.TimestampMs, Key: ar.copy(r.Key), Payload: ar.copy(r.Payload)})
		n++
		return nil
	})
	if err != nil {
		return dst, false, err
	}
	return dst, more, nil
}

var errStop = errors.New("stop")

// scan calls fn for each record with from <= offset <= to, in order,
// seeking with each segment's index (by offset, and by time when hasSince).
// The record aliases the segment and is valid only during fn. fn may
// return errStop to end the scan early. With buf nil the records are read
// through the mapping (a short read of the hot tail); otherwise with pread
// into *buf (segment.ReadIter: a long pass, as the flusher's), which may
// be grown.
func (l *plog) scan(from, to uint64, hasSince bool, since int64, buf *[]byte, fn func(*segment.Record) error) error {
	for _, v := range l.views(from) {
		if v.sg.base > to {
			break
		}
		if hasSince && !v.active && v.idx.MaxTs < since {
			continue
		}
		s, err := l.e.acquire(v.sg)
		if errors.Is(err, errSegGone) {
			continue // flushed and deleted meanwhile
		}
		if err != nil {
			return err
		}
		pos := int64(segment.HeaderSize)
		if ent, ok := v.idx.Seek(from); ok {
			pos = int64(ent.Pos)
		}
		if hasSince {
			if ent, ok := v.idx.SeekTime(since); ok && int64(ent.Pos) > pos {
				pos = int64(ent.Pos)
			}
		}
		var it segment.Iterator
		if buf == nil {
			it = s.Iter(pos)
		} else {
			it = s.ReadIter(pos, *buf)
		}
		for it.Next() {
			r := it.Record()
			if r.Seq < from {
				continue
			}
			if r.Seq > to {
				break
			}
			if err = fn(r); err != nil {
				break
			}
		}
		if err == nil {
			err = it.Err()
		}
		if buf != nil {
			*buf = it.Buffer()
		}
		l.e.release(v.sg)
		if ce := (*segment.CorruptionError)(nil); !v.active && errors.As(err, &ce) {
			l.quarantineLive(v.sg, err)
		}
		if err == errStop {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Scan calls fn for every event of (table, partition) with from <= offset
// <= to, in offset order. The event's bytes alias the segment and are
// valid only during fn; returning an error from fn stops the scan and is
// returned. The flusher uses it to read sealed segments: a long pass, so
// the records are read with pread into a pooled buffer rather than
// through the mapping (segment.ReadIter).
func (e *Engine) Scan(tname string, partition uint32, from, to uint64, fn func(*Event) error) error {
	l, err := e.log(tname, partition, false)
	if err != nil {
		return err
	}
	if l == nil {
		return ErrNotFound
	}
	var ev Event
	ev.Partition = partition
	var ferr error
	buf := scanBufs.Get().(*[]byte)
	defer func() {
		if cap(*buf) > maxScanBuf {
			*buf = nil // grown for a large record: do not keep it
		}
		scanBufs.Put(buf)
	}()
	err = l.scan(from, to, false, 0, buf, func(r *segment.Record) error {
		ev.Offset, ev.TimestampMs, ev.Key, ev.Payload = r.Seq, r.TimestampMs, r.Key, r.Payload
		if ferr = fn(&ev); ferr != nil {
			return errStop
		}
		return nil
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// scanBufs are Scan's read buffers; ReadIter grows one that is too small.
var scanBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxScanBuf = 1 << 20

// SegmentInfo describes one segment for the flusher and for inspection.
type SegmentInfo struct {
	Path      string
	First     uint64 // first offset
	Last      uint64 // last offset; First-1 when empty
	Records   int
	MinTs     int64
	MaxTs     int64
	Bytes     int64
	Sealed    bool // sealed and durable: ready for the flusher
	FlushedAt int64
}

// Segments describes the segments of (table, partition) in offset order.
func (e *Engine) Segments(tname string, partition uint32) ([]SegmentInfo, error) {
	l, err := e.log(tname, partition, false)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, ErrNotFound
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]SegmentInfo, 0, len(l.segs))
	for _, sg := range l.segs {
		si := SegmentInfo{Path: sg.path, First: sg.base, Last: sg.last, Bytes: sg.bytes, Sealed: sg.sealed.Load(), FlushedAt: sg.flushedAt}
		x := &sg.idx
		if sg.bld != nil {
			x = &sg.bld.Index
		}
		si.Records, si.MinTs, si.MaxTs = int(x.Count), x.MinTs, x.MaxTs
		out = append(out, si)
	}
	return out, nil
}

// Seal seals the active segment of (table, partition) now, if it holds
// records, and waits for seals already under way, so that when it returns
// every record appended before the call is in a sealed segment the flusher
// can take. The next append starts a new segment.
func (e *Engine) Seal(tname string, partition uint32) error {
	l, err := e.log(tname, partition, false)
	if err != nil {
		return err
	}
	if l == nil {
		return ErrNotFound
	}
	return l.sealActive(0)
}

// sealIfIdle seals the active segment when it has taken no append for
// Options.IdleSeal.
func (l *plog) sealIfIdle() error {
	l.mu.Lock()
	idle := l.activeLocked() == nil
	l.mu.Unlock()
	if idle && l.kept.Swap(false) {
		// No active segment: a flushed segment's file kept for the next
		// one would only hold disk space.
		if err := l.e.fs.Remove(filepath.Join(l.dir, recycleName)); err != nil && !isNotExist(err) {
			return err
		}
	}
	return l.sealActive(l.e.nowMs() - l.e.opts.IdleSeal.Milliseconds())
}

// sealActive seals the active segment if its last append is at or before
// lastWriteBefore (0: whatever its age), after waiting for background
// seals.
func (l *plog) sealActive(lastWriteBefore int64) error {
	if err := l.failure(); err != nil {
		return err
	}
	l.mu.Lock()
	if lastWriteBefore != 0 {
		if act := l.activeLocked(); act == nil || act.mtimeMs > lastWriteBefore {
			l.mu.Unlock()
			return nil
		}
		if l.spare != nil { // an idle log keeps no reserved file either
			l.spare.Discard()
			l.spare = nil
		}
	}
	for l.sealsInFlight > 0 {
		l.sealDone.Wait()
	}
	act := l.activeLocked()
	if act == nil {
		l.mu.Unlock()
		return l.failure()
	}
	act.sealing = true
	if act.last < act.base {
		l.segs = l.segs[:len(l.segs)-1]
		l.mu.Unlock()
		l.dropSeg(act)
		return nil
	}
	l.mu.Unlock()
	return l.seal(act)
}

// MarkFlushed records that the cold tier has committed (table, partition)
// up to offset upTo, durably, and lets segments wholly at or below it be
// deleted once HotRetention has passed. A lower upTo than before is
// ignored; one beyond the high watermark is ErrOffsetRange.
func (e *Engine) MarkFlushed(tname string, partition uint32, upTo uint64) error {
	l, err := e.log(tname, partition, false)
	if err != nil {
		return err
	}
	if l == nil {
		return ErrNotFound
	}
	l.mu.Lock()
	if upTo >= l.next {
		l.mu.Unlock()
		return fmt.Errorf("%w: flushed %d beyond high watermark %d", ErrOffsetRange, upTo, l.next-1)
	}
	if upTo <= l.flushed {
		l.mu.Unlock()
		return nil
	}
	l.flushed = upTo
	l.stateMu.Lock()
	st := l.stateLocked()
	l.mu.Unlock()
	err = l.writeState(st)
	l.stateMu.Unlock()
	if err != nil {
		return fmt.Errorf("save flushed watermark: %w", err)
	}
	now := e.nowMs()
	l.mu.Lock()
	for _, sg := range l.segs {
		if sg.sealed.Load() && sg.last <= upTo && sg.flushedAt == 0 {
			sg.flushedAt = now
		}
	}
	l.mu.Unlock()
	if e.opts.HotRetention == 0 {
		return l.collect()
	}
	return nil
}

// Advance moves partition p of table on to offset to, creating the
// partition when it is new: the next append gets to+1, and every offset
// up to to counts as flushed. It is how a partition goes on with a
// numbering that another server began and committed to the cold tier up
// to to (a partition taken over in a cluster), so that its offsets are
// never handed out twice. The active segment is retired (sealed, or
// removed when empty), since a segment's records are consecutive. A
// partition that has handed out to already is left as it is: Advance
// returns its high watermark, which is at or beyond to.
func (e *Engine) Advance(tname string, p uint32, to uint64) (high uint64, err error) {
	l, err := e.log(tname, p, true)
	if err != nil {
		return 0, err
	}
	if err := l.failure(); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if l.next > to {
		return l.next - 1, nil
	}
	l.retireActiveLocked()
	old := l.next
	l.next, l.flushed = to+1, to
	l.lease = max(l.lease, l.next+e.opts.SequenceLease)
	if err := l.saveStateLocked(); err != nil {
		return 0, l.fail(fmt.Errorf("advance to %d: %w", to, err))
	}
	// The group commit's marks stay: writers waiting for records
	// before old still wait for their write, and the next append
	// moves the marks past to.
	l.high.Store(to)
	e.opts.Logger.Info("partition advanced", "table", tname, "partition", p, "from", old, "next", l.next)
	return to, nil
}

// collect deletes the segments whose hot retention after flush has
// passed. Keys of deleted records still inside the idempotency window are
// saved first, so retries keep being recognised.
func (l *plog) collect() error {
	l.mu.Lock()
	now := l.e.nowMs()
	ret := l.e.opts.HotRetention.Milliseconds()
	i := 0
	for i < len(l.segs) {
		sg := l.segs[i]
		if sg.flushedAt == 0 || now-sg.flushedAt < ret {
			break
		}
		i++
	}
	if i == 0 {
		l.mu.Unlock()
		return nil
	}
	gone := append([]*seg(nil), l.segs[:i]...)
	low := l.next
	if i < len(l.segs) {
		low = l.segs[i].base
	}
	if len(l.idem.m) > 0 {
		if err := l.idem.saveBelow(l.e.fs, l.dir, low, now); err != nil {
			l.mu.Unlock()
			return fmt.Errorf("save idempotency keys: %w", err)
		}
	}
	l.segs = append(l.segs[:0:0], l.segs[i:]...)
	l.mu.Unlock()
	for _, sg := range gone {
		l.dropSeg(sg)
	}
	return l.e.fs.SyncDir(l.dir)
}
