// Package flush moves sealed hot-tier segments to the cold tier: it reads
// them from the engine, encodes Parquet (ZSTD, Iceberg field IDs, one file
// per partition and event hour, rows sorted by timestamp_ms, sequence),
// streams the files to the object store, commits them to the Iceberg table
// through catalog with the new watermarks, and only then tells the engine
// what is flushed so that it may delete the segments.
//
// # Exactly once
//
// The table's snapshot summary is the authority on what is committed
// (catalog package comment). Before flushing a partition the flusher
// takes its committed watermark C and, when the engine's flushed
// watermark is behind (the process died between commit and MarkFlushed),
// moves the engine up to C. It always flushes from C+1, checks that the
// offsets it reads are contiguous (ErrGap otherwise), and commits the
// range C+1..T as one unit that catalog.Table.Commit refuses to apply
// twice. Files uploaded for a commit that never happened are orphans:
// readers never see them, and their deterministic names
// (<partition>-<from>-<n>.parquet) are overwritten when a range starting
// at the same offset is flushed again.
//
// # Gaps
//
// Offsets after C that the hot tier no longer holds (a segment
// quarantined as corrupt at recovery, or removed by hand) are a gap: the
// partition is committed up to it and stops there, alone; the other
// partitions of the table go on. Only an operator can let it pass
// (SkipGap: POST /tables/{t}/skip-gap?partition=p), and the commit that
// does records the skipped offsets in its snapshot's summary.
//
// # Typed columns
//
// A table configured with typed columns (Options.Columns,
// ZOMBI_TABLE_SCHEMA) has its payload fields extracted into columns of
// their own as its data files are written, never on the write path: a
// layout (layout.go) maps the table's current Iceberg schema to where
// each column's values come from, and the writer (parquet.go) turns each
// chunk of rows into one slice of values per column, running the
// extractor (package columns) once per payload. Compaction rewrites files
// of older schema versions into the current one by field ID (compact.go).
//
// # Files
//
// flush.go: options, the background loop, FlushTable; round.go: one
// round (read, write, commit); reconcile.go: the committed watermarks
// against the hot tier; gap.go: partitions stopped at a gap; files.go,
// parquet.go, layout.go, colstats.go: data files; batch.go: reading the
// hot tier; compact.go, maintain.go: table maintenance; store.go, s3.go:
// object stores.
//
// # Locking
//
// Flusher.mu guards the table map. tableState.mu serialises the flushes
// of one table (the background loop and FlushTable) and guards the
// state's fields.
package flush

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/columns"
	"github.com/zombihq/zombi/engine"
)

// ErrClosed is returned after Close.
var ErrClosed = errors.New("flush: closed")

// Options configures a Flusher. A zero value means "use the default".
type Options struct {
	// Engine is the hot tier. Required.
	Engine *engine.Engine
	// Catalog commits the files. Required.
	Catalog *catalog.Catalog
	// Store receives the data files. Default LocalStore (file://).
	Store Store
	// Interval is how often the active segments are sealed and flushed
	// (ZOMBI_FLUSH_INTERVAL_SECS), so data reaches Iceberg within about
	// Interval + PollInterval + the flush time. Default 30 s.
	Interval time.Duration
	// PollInterval is how often sealed (full) segments are looked for.
	// Default 1 s.
	PollInterval time.Duration
	// TargetFileBytes bounds the raw bytes per data file
	// (ZOMBI_TARGET_FILE_SIZE_MB); the Parquet file is smaller. Default
	// 128 MiB.
	TargetFileBytes int64
	// BatchBytes bounds the raw bytes of one partition read into memory
	// at a time. A file spans batches (a row group each), so this bounds
	// memory, not file size: the flusher's heap is about 7 × BatchBytes
	// plus MaxPendingFiles upload part buffers (measured: ~60 MiB local,
	// ~100 MiB with S3 at the defaults). Default 8 MiB.
	BatchBytes int64
	// RoundBytes bounds the raw bytes of one partition in one commit
	// (consecutive batches); a commit costs ~10–60 ms. Default 128 MiB.
	RoundBytes int64
	// HotMaxBytes is the hot-tier budget (ZOMBI_HOT_MAX_GB): OverBudget
	// reports true beyond it. Default 0: no budget (see
	// DefaultHotMaxBytes).
	HotMaxBytes int64
	// UploadAttempts bounds the attempts to write one data file
	// (ZOMBI_S3_MAX_RETRIES + 1). Default 6.
	UploadAttempts int
	// RetryInitial and RetryMax bound the backoff between upload attempts
	// and between failed background flushes (ZOMBI_S3_RETRY_INITIAL_MS,
	// ZOMBI_S3_RETRY_MAX_MS). Defaults 200 ms and 10 s.
	RetryInitial, RetryMax time.Duration
	// CatalogTimeout bounds each catalog call of a flush: opening the
	// table with its watermarks, and one Commit with its retries. A call
	// that takes longer is cancelled and the flush is retried after
	// backoff, so a catalog or object store that holds a request without
	// answering (iceberg-go's S3 client has no timeout of its own) cannot
	// hang the table's flushes, and keep the hot tier full, after it is
	// back. The outcome of a cancelled commit is settled by the watermark
	// check of the next one. Default 1 min.
	CatalogTimeout time.Duration
	// MaxPendingFiles bounds the data files whose upload (or fsync)
	// completes in the background while the next ones are encoded; with
	// S3 each holds one part buffer. Default 4; set it from
	// ZOMBI_MAX_CONCURRENT_S3_UPLOADS.
	MaxPendingFiles int
	// ZstdLevel is the compression level. Default zstd.SpeedFastest.
	ZstdLevel zstd.Level
	// Columns are the typed columns of the tables that have them
	// (ZOMBI_TABLE_SCHEMA), by table name: their payloads are extracted
	// into columns at flush time. The catalog must be opened with the
	// same columns (catalog.Options.Columns), which shape the tables'
	// schemas. Default none.
	Columns map[string]columns.Table
	// Owns, when set, tells whether this server owns partition p of
	// table now (a node of a cluster), and how it took the partition
	// over. A partition it does not own is not flushed: its events stay
	// in the hot tier, since another node numbers that partition. Default
	// nil: every partition is this server's.
	Owns func(table string, p uint32) (Takeover, bool)
	// OnFlush, when set, is called after every flush that committed
	// something, with its Result (for metrics: the duration histogram).
	OnFlush func(Result)
	// Logger receives flush reports. Default slog.Default().
	Logger *slog.Logger
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Store == nil {
		o.Store = LocalStore{}
	}
	if o.Interval == 0 {
		o.Interval = 30 * time.Second
	}
	if o.PollInterval == 0 {
		o.PollInterval = time.Second
	}
	if o.TargetFileBytes == 0 {
		o.TargetFileBytes = 128 << 20
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = 8 << 20
	}
	if o.RoundBytes == 0 {
		o.RoundBytes = 128 << 20
	}
	if o.UploadAttempts == 0 {
		o.UploadAttempts = 6
	}
	if o.RetryInitial == 0 {
		o.RetryInitial = 200 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 10 * time.Second
	}
	if o.MaxPendingFiles == 0 {
		o.MaxPendingFiles = 4
	}
	if o.CatalogTimeout == 0 {
		o.CatalogTimeout = time.Minute
	}
	if o.ZstdLevel == 0 {
		o.ZstdLevel = zstd.SpeedFastest
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Engine == nil {
		errs = append(errs, errors.New("flush: engine is required"))
	}
	if o.Catalog == nil {
		errs = append(errs, errors.New("flush: catalog is required"))
	}
	if o.Interval < 100*time.Millisecond || o.PollInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("flush: interval %v / poll %v too short", o.Interval, o.PollInterval))
	}
	if o.TargetFileBytes < 1<<20 || o.BatchBytes < 1<<20 {
		errs = append(errs, errors.New("flush: target file size and batch size must be at least 1 MiB"))
	}
	if o.HotMaxBytes < 0 || o.UploadAttempts < 1 || o.MaxPendingFiles < 1 || o.RetryInitial <= 0 || o.RetryMax < o.RetryInitial || o.CatalogTimeout < 0 {
		errs = append(errs, errors.New("flush: budget, attempts, retry delays and catalog timeout must be positive"))
	}
	return errors.Join(errs...)
}

// Flusher flushes every table of an engine. All methods are safe for
// concurrent use.
type Flusher struct {
	opts Options
	e    *engine.Engine
	cat  *catalog.Catalog

	mu     sync.Mutex // guards tables
	tables map[string]*tableState

	writers writerPool // one per round in progress, kept warm
	// pending holds a token per data file being written or completing
	// in the background (MaxPendingFiles).
	pending chan struct{}

	hotBytes atomic.Int64
	stats    counters

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	start  sync.Once
	closed atomic.Bool
	wg     sync.WaitGroup // the background loop
}

// tableState is the flusher's view of one table.
type tableState struct {
	name string

	mu sync.Mutex // serialises flushes of the table; guards the fields below
	// tbl is the catalog table; nil until first used.
	tbl *catalog.Table
	// lay is the layout of the data files, for tbl's schema (layID).
	lay   *layout
	layID int
	// extract counts what extraction could not store as is, in
	// committed data (extractCounts), for metrics.
	extract extractStats
	// committed is the table's committed watermarks; nil when it must be
	// reloaded (at start and after any failure).
	committed catalog.Watermarks
	// reload asks for committed to be read again before the next flush
	// (Reload: a partition was taken over, and another node moved its
	// watermark on).
	reload   atomic.Bool
	batch    batch
	lastSeal time.Time
	failures int
	retryAt  time.Time
	// lastErr is the last flush's error (nil after a success); read
	// without ts.mu by LastError.
	lastErr atomic.Pointer[error]
	// stuck holds the partitions stopped in the flush in progress (at a
	// gap, or not ours: notOursLocked), which its later rounds pass by;
	// stuckN counts those of the last flush, for Stats; gapLogged is the
	// StuckError the background loop logged last, so that it is logged
	// once, not at every poll.
	stuck     map[uint32]error
	stuckN    atomic.Int32
	gapLogged string
	// diverged holds the partitions whose committed watermark does not
	// count this hot tier's offsets (sameHistory), as found at the last
	// reload of committed; the rounds stop them.
	diverged map[uint32]error
	// skip holds the gaps an operator chose to skip (SkipGap): the next
	// commit of partition p records committed+1..skip[p] as skipped and
	// goes on from skip[p]+1. In memory only.
	skip map[uint32]uint64
}

func (ts *tableState) setErr(err error) {
	if err == nil {
		ts.lastErr.Store(nil)
	} else {
		ts.lastErr.Store(&err)
	}
}

type counters struct {
	flushes, events, rawBytes, fileBytes, files, snapshots atomic.Int64
	uploadErrors, commitErrors, gapErrors                  atomic.Int64
}

// New returns a Flusher; Start begins background flushing.
func New(opts Options) (*Flusher, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	f := &Flusher{opts: opts, e: opts.Engine, cat: opts.Catalog, tables: make(map[string]*tableState)}
	f.writers.level = opts.ZstdLevel
	f.pending = make(chan struct{}, opts.MaxPendingFiles)
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.hotBytes.Store(f.e.Stats().HotBytes)
	return f, nil
}

// Start starts the background loop: every PollInterval it flushes the
// tables that have sealed segments, and every Interval it seals the
// active segments first. It first reconciles each table's committed
// watermark with the engine.
func (f *Flusher) Start() {
	f.start.Do(func() {
		f.wg.Add(2)
		go f.loop()
		go f.watchHot()
	})
}

// Close stops the background loop and cancels flushes in progress,
// FlushTable calls included (their ranges are flushed again after the
// restart, exactly once). Close the Flusher before the engine and the
// catalog.
func (f *Flusher) Close() error {
	if !f.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	f.cancel()
	f.wg.Wait()
	return nil
}

func (f *Flusher) state(name string) *tableState {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := f.tables[name]
	if ts == nil {
		ts = &tableState{name: name, lastSeal: f.opts.Now()}
		if cfg := f.tableColumns(name); cfg != nil {
			ts.extract.fields = cfg.Fields
			ts.extract.errors = make([]atomic.Int64, len(cfg.Fields))
		}
		f.tables[name] = ts
	}
	return ts
}

// flushNice is the nice value of the background flusher's thread. Reading
// sealed segments and encoding Parquet take as much CPU as ingest; at nice
// 10 the flusher takes what ingest leaves, so a burst of writes is served
// first and the flusher catches up after it (the hot-tier budget bounds
// how far it may fall behind). On 2 cores this raised bulk ingest with
// the cold tier on by ~20 % (make bench-http, alternating binaries).
const flushNice = 10

func (f *Flusher) loop() {
	defer f.wg.Done()
	lowerPriority(flushNice)
	t := time.NewTicker(f.opts.PollInterval)
	defer t.Stop()
	for {
		f.refreshHot()
		now := f.opts.Now()
		for _, name := range f.e.Tables() {
			if f.ctx.Err() != nil {
				return
			}
			ts := f.state(name)
			ts.mu.Lock()
			if now.Before(ts.retryAt) {
				ts.mu.Unlock()
				continue
			}
			seal := now.Sub(ts.lastSeal) >= f.opts.Interval
			_, err := f.flushLocked(f.ctx, ts, seal)
			var stuck *StuckError
			switch {
			case err == nil && ts.gapLogged != "":
				f.opts.Logger.Info("flush no longer stops at a partition", "table", name)
				ts.gapLogged = ""
			case errors.As(err, &stuck):
				// Only the partitions at a gap (or owned by another
				// server) are stopped; the others were flushed, and go
				// on at every poll, without backoff.
				if msg := err.Error(); msg != ts.gapLogged {
					f.opts.Logger.Error("flush stopped at a partition", "table", name, "err", err)
					ts.gapLogged = msg
				}
			case err != nil && f.ctx.Err() == nil:
				ts.failures++
				d := backoff(ts.failures, f.opts.RetryInitial, f.opts.RetryMax)
				ts.retryAt = now.Add(d)
				f.opts.Logger.Error("flush failed", "table", name, "failures", ts.failures, "retry_in", d, "err", err)
			}
			ts.mu.Unlock()
		}
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchHot refreshes the hot-tier size every PollInterval on its own, so
// that the budget stays current while a flush is slow or failing: a
// flush that waits on an unreachable store takes seconds per attempt
// (the S3 clients' own retries), and the loop refreshes only between
// flushes, so writes went on past the budget meanwhile.
func (f *Flusher) watchHot() {
	defer f.wg.Done()
	t := time.NewTicker(f.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
			f.refreshHot()
		}
	}
}

// Result describes one flush of a table.
type Result struct {
	Table string
	// Partitions lists the ranges committed, by partition.
	Partitions []PartitionResult
	Events     int64
	Files      int
	RawBytes   int64 // bytes of the events read
	FileBytes  int64 // bytes of Parquet written
	Commits    int
	// SnapshotID and MetadataLocation are those of the last commit, or of
	// the current table when nothing was committed.
	SnapshotID       int64
	MetadataLocation string
	// Duration is the whole flush; WriteDuration the reading, encoding
	// and uploading of data files; CommitDuration the catalog commits.
	Duration, WriteDuration, CommitDuration time.Duration
}

// PartitionResult is one partition's part of a Result.
type PartitionResult struct {
	Partition uint32
	From, To  uint64 // offsets committed, inclusive
	// SkippedTo, when not 0, ends the offsets From..SkippedTo committed
	// as skipped: missing from the hot tier (SkipGap).
	SkippedTo uint64
	Events    int64
	Files     int
}

// FlushTable seals the active segments of table, flushes everything not
// yet committed and commits it: what POST /tables/{t}/flush does. It
// returns once the data is committed and the engine's flushed watermark
// is saved. An unknown table yields an empty Result.
func (f *Flusher) FlushTable(ctx context.Context, table string) (Result, error) {
	ctx, ts, unlock, err := f.lockTable(ctx, table)
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	res, err := f.flushLocked(ctx, ts, true)
	if err == nil {
		ts.failures, ts.retryAt = 0, time.Time{}
	}
	return res, err
}

// lockTable checks that the flusher is open and the table name valid,
// and returns the table's state locked, with a context that Close
// cancels too; unlock releases both.
func (f *Flusher) lockTable(ctx context.Context, table string) (context.Context, *tableState, func(), error) {
	if f.closed.Load() {
		return nil, nil, nil, ErrClosed
	}
	if !engine.ValidTableName(table) {
		return nil, nil, nil, engine.ErrInvalidTable
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(f.ctx, cancel)
	ts := f.state(table)
	ts.mu.Lock()
	return ctx, ts, func() {
		ts.mu.Unlock()
		stop()
		cancel()
	}, nil
}

// FlushAll flushes every table as FlushTable does (for shutdown and
// tests) and returns the first error.
func (f *Flusher) FlushAll(ctx context.Context) error {
	var errs []error
	for _, name := range f.e.Tables() {
		if _, err := f.FlushTable(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// maxRounds bounds the commits of one flush call (each commits at most
// RoundBytes per partition); the rest waits for the next call.
const maxRounds = 64

// flushLocked seals (when seal is set) and flushes ts in rounds of one
// commit each until no sealed data is left.
//
// ts.mu should be held.
func (f *Flusher) flushLocked(ctx context.Context, ts *tableState, seal bool) (Result, error) {
	start := time.Now()
	res := Result{Table: ts.name}
	defer f.refreshHot()
	if err := f.prepareLocked(ctx, ts); err != nil {
		ts.setErr(err)
		return res, err
	}
	if seal {
		if err := f.sealAll(ts.name); err != nil {
			ts.setErr(err)
			return res, err
		}
		ts.lastSeal = f.opts.Now()
	}
	if ts.stuck == nil {
		ts.stuck = make(map[uint32]error)
	}
	clear(ts.stuck)
	for round, attempt := 0, 1; round < maxRounds; round++ {
		n, err := f.roundLocked(ctx, ts, &res)
		var werr *writeError
		isWrite := errors.As(err, &werr)
		if isWrite {
			f.stats.uploadErrors.Add(1)
		}
		if isWrite && attempt < f.opts.UploadAttempts && ctx.Err() == nil {
			// Nothing was committed: write the round again.
			f.opts.Logger.Warn("writing data files failed; retrying the round", "table", ts.name, "attempt", attempt, "err", err)
			if serr := sleepCtx(ctx, backoff(attempt, f.opts.RetryInitial, f.opts.RetryMax)); serr == nil {
				attempt++
				round--
				continue
			}
		}
		if err == nil {
			attempt = 1
		}
		if err != nil {
			ts.committed = nil // reload before trusting it again
			ts.setErr(err)
			res.Duration = time.Since(start)
			return res, err
		}
		if n == 0 {
			break
		}
	}
	if res.Commits == 0 {
		res.MetadataLocation = ts.tbl.MetadataLocation()
	}
	res.Duration = time.Since(start)
	ts.failures = 0
	ts.stuckN.Store(int32(len(ts.stuck)))
	err := stuckError(ts.stuck)
	ts.setErr(err)
	if res.Commits > 0 && f.opts.OnFlush != nil {
		f.opts.OnFlush(res)
	}
	return res, err
}

// Stats is a snapshot of the flusher's counters.
type Stats struct {
	Flushes      int64 // commits made
	Events       int64 // events committed
	RawBytes     int64 // bytes of events committed
	FileBytes    int64 // bytes of Parquet committed
	Files        int64 // data files committed
	Snapshots    int64 // Iceberg snapshots created
	UploadErrors int64 // failed data-file writes (each retried)
	CommitErrors int64 // commits that failed after their retries
	GapErrors    int64 // partitions found stopped at a gap, once per flush
	// StuckPartitions counts the partitions that the last flush of their
	// table found stopped (StuckError).
	StuckPartitions int64
	HotBytes        int64
	HotMaxBytes     int64
}

// Stats returns the flusher's counters.
func (f *Flusher) Stats() Stats {
	c := &f.stats
	return Stats{
		Flushes: c.flushes.Load(), Events: c.events.Load(), RawBytes: c.rawBytes.Load(),
		FileBytes: c.fileBytes.Load(), Files: c.files.Load(), Snapshots: c.snapshots.Load(),
		UploadErrors: c.uploadErrors.Load(), CommitErrors: c.commitErrors.Load(), GapErrors: c.gapErrors.Load(),
		HotBytes: f.hotBytes.Load(), HotMaxBytes: f.opts.HotMaxBytes, StuckPartitions: f.stuckPartitions(),
	}
}

func (f *Flusher) stuckPartitions() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, ts := range f.tables {
		n += int64(ts.stuckN.Load())
	}
	return n
}

func (f *Flusher) refreshHot() { f.hotBytes.Store(f.e.Stats().HotBytes) }

// OverBudget reports whether the hot tier holds more than HotMaxBytes
// (as of the last poll, at most PollInterval old): httpd answers writes
// with 503 while it does. Always false without a budget.
func (f *Flusher) OverBudget() bool {
	return f.opts.HotMaxBytes > 0 && f.hotBytes.Load() > f.opts.HotMaxBytes
}

// Table returns the catalog table of name, creating it on first use (for
// GET /tables/{t}/metadata).
func (f *Flusher) Table(ctx context.Context, name string) (*catalog.Table, error) {
	if !engine.ValidTableName(name) {
		return nil, engine.ErrInvalidTable
	}
	return f.cat.Table(ctx, name)
}

// MetadataLocation returns the current metadata file of table, reloaded
// from the catalog.
func (f *Flusher) MetadataLocation(ctx context.Context, table string) (string, error) {
	t, err := f.Table(ctx, table)
	if err != nil {
		return "", err
	}
	if err := t.Refresh(ctx); err != nil {
		return "", err
	}
	return t.MetadataLocation(), nil
}

// Watermarks returns the watermarks committed to table, reloaded from the
// catalog.
func (f *Flusher) Watermarks(ctx context.Context, table string) (catalog.Watermarks, error) {
	t, err := f.Table(ctx, table)
	if err != nil {
		return nil, err
	}
	return t.Watermarks(ctx)
}

// LastError returns the last flush error of table, or nil.
func (f *Flusher) LastError(table string) error {
	if p := f.state(table).lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// errCatalogTimeout is the cause of a catalog call cut by CatalogTimeout.
var errCatalogTimeout = errors.New("flush: no answer from the catalog or the object store within the catalog timeout")

// catalogCtx returns ctx bounded by CatalogTimeout.
func (f *Flusher) catalogCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, f.opts.CatalogTimeout, errCatalogTimeout)
}

func backoff(n int, initial, maxWait time.Duration) time.Duration {
	d := initial
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	return d - d/4 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// crashHook, when set (by tests), is called at the named points of a
// flush: "encoded" (a data file's bytes are written, its upload may not
// be complete), "uploaded" (every file of a round is stored, nothing
// committed), "committed" (the commit is in the table, the engine's
// flushed watermark not yet saved).
var crashHook func(point string)

func crashPoint(point string) {
	if crashHook != nil {
		crashHook(point)
	}
}
