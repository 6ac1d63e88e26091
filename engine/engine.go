// Package engine keeps the hot tier: tables of partitions, each partition
// an append-only log of segment files with a sparse index.
//
// It assigns offsets (per partition, from 1, by 1, never reused even after
// a crash), de-duplicates by idempotency key, makes appends durable per the
// fsync mode (with group commit), serves reads by offset and by time,
// tracks watermarks, keeps consumer offsets, and deletes segments once the
// cold tier has committed them. It knows nothing of HTTP, Parquet or
// Iceberg.
//
// # Locking
//
// Engine.mu guards the table map. Each partition log has mu, held by the
// appender for the whole append (so an idempotency check and the append it
// guards are atomic), and sync, a second mutex for group commit that is
// never held across I/O except by the sync leader's own bookkeeping. Lock
// order: Engine.mu → plog.mu → plog.sync → seg.omu → Engine.open.
package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/zombihq/zombi/vfs"
)

var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("engine: closed")
	// ErrInvalidTable is returned for a table name that does not match
	// ^[a-zA-Z][a-zA-Z0-9_-]{0,127}$.
	ErrInvalidTable = errors.New("engine: invalid table name")
	// ErrInvalidPartition is returned for a partition at or above
	// Options.MaxPartitions.
	ErrInvalidPartition = errors.New("engine: invalid partition")
	// ErrTooLarge is returned for a record whose key or payload exceeds
	// the format's limits.
	ErrTooLarge = errors.New("engine: record too large")
	// ErrNoSpace is returned when a new segment cannot be reserved because
	// the disk is full. Nothing was written; the append can be retried.
	ErrNoSpace = errors.New("engine: no space left for a new segment")
	// ErrLogFailed marks a partition log that hit a write or sync error.
	// It takes no more writes until the process restarts and recovers it
	// from disk (a failed fsync cannot be retried: the kernel may already
	// have dropped the dirty pages).
	ErrLogFailed = errors.New("engine: partition log failed")
	// ErrNotFound is returned for a table or partition that does not exist.
	ErrNotFound = errors.New("engine: not found")
	// ErrOffsetRange is returned by MarkFlushed beyond the high watermark.
	ErrOffsetRange = errors.New("engine: offset out of range")
)

// ValidTableName reports whether name matches ^[a-zA-Z][a-zA-Z0-9_-]{0,127}$.
// Such a name can never escape the data directory.
func ValidTableName(name string) bool {
	if len(name) == 0 || len(name) > 128 {
		return false
	}
	c := name[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Record is one event to append.
type Record struct {
	Partition   uint32
	TimestampMs int64  // event time; 0 means now
	Key         []byte // idempotency key; empty means none
	Payload     []byte
}

// Engine is the hot tier. All methods are safe for concurrent use.
type Engine struct {
	opts   Options
	fs     vfs.FS
	hotDir string

	mu     sync.RWMutex // guards tables and closed
	tables map[string]*table
	closed bool

	consumers consumerStore

	open struct { // sealed segments currently mapped, for the open-file bound
		sync.Mutex
		segs []*seg
	}

	quarantined atomic.Int64 // segments set aside as corrupt since Open
	recycled    atomic.Int64 // segments activated in a recycled file since Open
	stop        chan struct{}
	wg          sync.WaitGroup // background goroutines: tickers and sealers
}

type table struct {
	name string
	dir  string
	mu   sync.RWMutex // guards parts
	// parts is indexed by partition; nil where the partition does not exist.
	parts []*plog
}

// Open opens (or creates) the hot tier in opts.Dir and recovers every
// partition log found there.
func Open(opts Options) (*Engine, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("engine options: %w", err)
	}
	e := &Engine{
		opts:   opts,
		fs:     opts.FS,
		hotDir: filepath.Join(opts.Dir, "hot"),
		tables: make(map[string]*table),
		stop:   make(chan struct{}),
	}
	if err := e.fs.MkdirAll(e.hotDir); err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	if err := e.consumers.load(e.fs, filepath.Join(opts.Dir, "consumers")); err != nil {
		return nil, fmt.Errorf("open engine: consumer offsets: %w", err)
	}
	names, err := e.fs.List(e.hotDir)
	if err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	for _, name := range names {
		if !ValidTableName(name) {
			opts.Logger.Warn("ignoring unexpected entry in hot dir", "name", name)
			continue
		}
		t := &table{name: name, dir: filepath.Join(e.hotDir, name)}
		parts, err := e.fs.List(t.dir)
		if err != nil {
			e.closeLogs()
			return nil, fmt.Errorf("open engine: %w", err)
		}
		for _, p := range parts {
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil || strconv.FormatUint(n, 10) != p || uint32(n) >= opts.MaxPartitions {
				opts.Logger.Warn("ignoring unexpected entry in table dir", "table", name, "name", p)
				continue
			}
			l, err := openLog(e, t, uint32(n))
			if err != nil {
				e.closeLogs()
				return nil, fmt.Errorf("open engine: table %s partition %d: %w", name, n, err)
			}
			t.setPart(uint32(n), l)
		}
		e.tables[name] = t
	}
	if opts.Fsync == FsyncInterval {
		e.wg.Add(1)
		go e.intervalSyncer()
	}
	e.wg.Add(1)
	go e.retentionLoop()
	return e, nil
}

func (t *table) setPart(p uint32, l *plog) {
	if int(p) >= len(t.parts) {
		parts := make([]*plog, p+1)
		copy(parts, t.parts)
		t.parts = parts
	}
	t.parts[p] = l
}

func (t *table) part(p uint32) *plog {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if int(p) < len(t.parts) {
		return t.parts[p]
	}
	return nil
}

// logs returns the table's partition logs in partition order.
func (t *table) logs() []*plog {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*plog, 0, len(t.parts))
	for _, l := range t.parts {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}

// log returns the log of (table, partition), creating it when create is
// set. It returns (nil, nil) for a missing log when create is not set.
func (e *Engine) log(tname string, p uint32, create bool) (*plog, error) {
	if !ValidTableName(tname) {
		return nil, ErrInvalidTable
	}
	if p >= e.opts.MaxPartitions {
		return nil, fmt.Errorf("%w: %d is not below the maximum %d", ErrInvalidPartition, p, e.opts.MaxPartitions)
	}
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return nil, ErrClosed
	}
	t := e.tables[tname]
	e.mu.RUnlock()
	if t != nil {
		if l := t.part(p); l != nil || !create {
			return l, nil
		}
	} else if !create {
		return nil, nil
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	t = e.tables[tname]
	if t == nil {
		t = &table{name: tname, dir: filepath.Join(e.hotDir, tname)}
		if err := e.fs.MkdirAll(t.dir); err != nil {
			return nil, fmt.Errorf("create table %s: %w", tname, err)
		}
		if err := e.fs.SyncDir(e.hotDir); err != nil {
			return nil, fmt.Errorf("create table %s: %w", tname, err)
		}
		e.tables[tname] = t
	}
	if l := t.part(p); l != nil {
		return l, nil
	}
	l, err := createLog(e, t, p)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.setPart(p, l)
	t.mu.Unlock()
	return l, nil
}

// Append appends one record to (table, r.Partition) and returns its
// offset, or the original offset and dup=true when its idempotency key was
// seen before. It returns once the record is as durable as the fsync mode
// promises.
func (e *Engine) Append(tname string, r Record) (offset uint64, dup bool, err error) {
	l, err := e.log(tname, r.Partition, true)
	if err != nil {
		return 0, false, err
	}
	var off [1]uint64
	wait, wrote, err := l.append(oneRecord(&r), off[:])
	if err != nil {
		return 0, false, err
	}
	if err := l.waitDurable(wait); err != nil {
		return 0, false, err
	}
	return off[0], !wrote, nil
}

func oneRecord(r *Record) []Record { return unsafe.Slice(r, 1) }

// AppendBatch appends recs, which may name different partitions, and
// writes each one's offset into offsets[i] (len(offsets) >= len(recs)).
// The records of one partition are appended all or none and keep their
// request order; a duplicate idempotency key, also within recs, yields the
// original offset. It returns once everything is as durable as the fsync
// mode promises. On error, offsets of partitions appended before the
// failing one are valid; the others are zero.
func (e *Engine) AppendBatch(tname string, recs []Record, offsets []uint64) error {
	if len(offsets) < len(recs) {
		return fmt.Errorf("engine: %d offsets for %d records", len(offsets), len(recs))
	}
	if len(recs) == 0 {
		return nil
	}
	clear(offsets[:len(recs)])
	p0 := recs[0].Partition
	same := true
	for i := 1; i < len(recs); i++ {
		if recs[i].Partition != p0 {
			same = false
			break
		}
	}
	if same {
		l, err := e.log(tname, p0, true)
		if err != nil {
			return err
		}
		wait, _, err := l.append(recs, offsets)
		if err != nil {
			return err
		}
		return l.waitDurable(wait)
	}

	// Group by partition, keeping request order within each.
	order := make([]int, len(recs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return recs[order[a]].Partition < recs[order[b]].Partition })
	group := make([]Record, 0, len(recs))
	offs := make([]uint64, len(recs))
	type pending struct {
		l    *plog
		last uint64
	}
	var waits []pending
	for i := 0; i < len(order); {
		p := recs[order[i]].Partition
		j := i
		group = group[:0]
		for ; j < len(order) && recs[order[j]].Partition == p; j++ {
			group = append(group, recs[order[j]])
		}
		l, err := e.log(tname, p, true)
		if err != nil {
			return err
		}
		wait, _, err := l.append(group, offs[:len(group)])
		if err != nil {
			return err
		}
		for k := range group {
			offsets[order[i+k]] = offs[k]
		}
		waits = append(waits, pending{l, wait})
		i = j
	}
	for _, w := range waits {
		if err := w.l.waitDurable(w.last); err != nil {
			return err
		}
	}
	return nil
}

// Sync makes everything appended so far durable, whatever the mode.
func (e *Engine) Sync() error {
	var errs []error
	for _, l := range e.allLogs() {
		if err := l.syncAll(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) allLogs() []*plog {
	e.mu.RLock()
	ts := make([]*table, 0, len(e.tables))
	for _, t := range e.tables {
		ts = append(ts, t)
	}
	e.mu.RUnlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	var out []*plog
	for _, t := range ts {
		out = append(out, t.logs()...)
	}
	return out
}

// Tables returns the names of all tables, sorted.
func (e *Engine) Tables() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]string, 0, len(e.tables))
	for n := range e.tables {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// PartitionInfo describes one partition log.
type PartitionInfo struct {
	Partition uint32
	Low       uint64 // first offset in the hot tier; High+1 when it holds none
	High      uint64 // last offset assigned; 0 when none
	Flushed   uint64 // last offset committed to the cold tier
	Segments  int
	Bytes     int64 // bytes of segment data in the hot tier
	Failed    error // non-nil when the log has failed (ErrLogFailed)
}

// MaxPartitions is the bound on partition numbers (Options.MaxPartitions):
// a partition must be below it.
func (e *Engine) MaxPartitions() uint32 { return e.opts.MaxPartitions }

// Partitions describes the partitions of a table, in order. It returns
// nil for an unknown table.
func (e *Engine) Partitions(tname string) []PartitionInfo {
	e.mu.RLock()
	t := e.tables[tname]
	e.mu.RUnlock()
	if t == nil {
		return nil
	}
	logs := t.logs()
	out := make([]PartitionInfo, 0, len(logs))
	for _, l := range logs {
		out = append(out, l.info())
	}
	return out
}

// Stats summarises the hot tier.
type Stats struct {
	Tables       int
	Partitions   int
	Segments     int
	OpenSegments int // sealed segments mapped for reads (active ones not counted)
	HotBytes     int64
	FailedLogs   int
	Quarantined  int64
	// Recycled counts the segments written over a flushed segment's file
	// since the engine opened (Options.NoRecycle).
	Recycled int64
}

// Stats returns a summary of the hot tier.
func (e *Engine) Stats() Stats {
	var s Stats
	e.mu.RLock()
	s.Tables = len(e.tables)
	e.mu.RUnlock()
	for _, l := range e.allLogs() {
		pi := l.info()
		s.Partitions++
		s.Segments += pi.Segments
		s.HotBytes += pi.Bytes
		if pi.Failed != nil {
			s.FailedLogs++
		}
	}
	e.open.Lock()
	s.OpenSegments = len(e.open.segs)
	e.open.Unlock()
	s.Quarantined = e.quarantined.Load()
	s.Recycled = e.recycled.Load()
	return s
}

// Close syncs every log, records a clean shutdown and releases all files.
// Appends that race with Close fail with ErrClosed.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	e.closed = true
	e.mu.Unlock()
	close(e.stop)
	e.wg.Wait()
	return e.closeLogs()
}

func (e *Engine) closeLogs() error {
	var errs []error
	for _, l := range e.allLogs() {
		if err := l.close(); err != nil {
			errs = append(errs, fmt.Errorf("table %s partition %d: %w", l.table.name, l.part, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) nowMs() int64 { return e.opts.Now().UnixMilli() }

// intervalSyncer syncs dirty logs every FsyncInterval (FsyncInterval mode).
func (e *Engine) intervalSyncer() {
	defer e.wg.Done()
	t := time.NewTicker(e.opts.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			for _, l := range e.allLogs() {
				l.syncIfDirty()
			}
		}
	}
}

// retentionLoop deletes segments whose hot retention has passed and seals
// idle active segments, on a jittered ticker so that many servers do not
// act in step.
func (e *Engine) retentionLoop() {
	defer e.wg.Done()
	period := time.Second
	if r := e.opts.HotRetention / 4; r > period {
		period = min(r, time.Minute)
	}
	timer := time.NewTimer(period/2 + rand.N(period))
	defer timer.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-timer.C:
			for _, l := range e.allLogs() {
				if err := l.collect(); err != nil {
					e.opts.Logger.Error("delete flushed segments", "table", l.table.name, "partition", l.part, "err", err)
				}
				if err := l.sealIfIdle(); err != nil {
					e.opts.Logger.Error("seal idle segment", "table", l.table.name, "partition", l.part, "err", err)
				}
			}
			timer.Reset(period/2 + rand.N(period))
		}
	}
}

// isNotExist reports whether err says a file does not exist.
func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
