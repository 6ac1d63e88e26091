package flush

// Table maintenance next to the flusher: compaction of small files
// (compact.go), snapshot expiry (catalog.Table.ExpireSnapshots) and
// orphan cleanup, on demand and on a schedule.
//
// # What deletes which files
//
// Compaction deletes nothing: the files it replaces stay referenced by the
// snapshots before the replace. Snapshot expiry deletes, after its commit,
// the manifest lists, manifests and data files that only expired
// snapshots reference (iceberg-go's post-commit cleanup), so replaced
// files go once every snapshot that held them has expired. Orphan cleanup
// deletes the files under the table location that no snapshot and no
// metadata file references (uploads of a flush or compaction that never
// committed, files a failed post-commit cleanup left), once they are
// older than OrphanMinAge, so that files of a commit in progress are
// never taken for orphans. A file that a live snapshot references is
// never deleted by any of them.
//
// # Locking
//
// Maintainer.mu guards busy: a table has at most one maintenance task
// (compaction, or expiry and orphan cleanup) at a time; another one is
// refused with ErrCompactionInProgress (on demand) or skipped (in the
// background). Commits are serialised with the flusher's by the catalog
// table's committer lock. The orphan cleanup also holds the flusher's
// tableState.mu (taken before the catalog table's lock, as flushes do),
// so no upload of a flush is in flight while it lists and deletes.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/engine"
)

// MaintainOptions configures a Maintainer. A zero value means "use the
// default". Snapshot retention (age, minimum count, cap) is the
// catalog's: catalog.Options.SnapshotMaxAge, MinSnapshots and
// RetainSnapshots.
type MaintainOptions struct {
	// CompactedFileBytes is the size of the files compaction writes
	// (ZOMBI_COMPACTED_FILE_SIZE_MB), in Parquet bytes. Default 512 MiB.
	CompactedFileBytes int64
	// SmallFileBytes: data files smaller than this are compacted.
	// Default CompactedFileBytes / 2.
	SmallFileBytes int64
	// AutoCompactFiles: the background compacts a partition-hour once
	// it holds more than this many small files
	// (ZOMBI_COMPACTION_MIN_FILES). Default 8.
	AutoCompactFiles int
	// NoAutoCompact turns background compaction off
	// (ZOMBI_AUTO_COMPACTION=false); POST /tables/{t}/compact still
	// works.
	NoAutoCompact bool
	// CompactInterval is how often the background looks for
	// partition-hours to compact. Default 5 min.
	CompactInterval time.Duration
	// Interval is how often the background expires snapshots and
	// removes orphans (ZOMBI_MAINTENANCE_INTERVAL_SECS). Default 1 h;
	// negative: never in the background.
	Interval time.Duration
	// OrphanMinAge is how old an unreferenced file must be before the
	// orphan cleanup deletes it (ZOMBI_ORPHAN_MIN_AGE_HOURS): longer than
	// any flush or compaction takes from upload to commit. Default 24 h.
	OrphanMinAge time.Duration
	// TaskTimeout bounds one compaction of a table, or one expiry and
	// orphan cleanup, so that an object store or catalog that holds a
	// request without answering cannot keep the table's maintenance
	// busy forever. Default 1 h.
	TaskTimeout time.Duration
	// OnCompact and OnMaintain, when set, receive the result of every
	// compaction that committed something and of every expiry and
	// orphan cleanup (for metrics).
	OnCompact  func(CompactResult)
	OnMaintain func(MaintainResult)
	// Logger receives reports. Default: the flusher's.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults.
func (o *MaintainOptions) EnsureDefaults() {
	if o.CompactedFileBytes == 0 {
		o.CompactedFileBytes = 512 << 20
	}
	if o.SmallFileBytes == 0 {
		o.SmallFileBytes = o.CompactedFileBytes / 2
	}
	if o.AutoCompactFiles == 0 {
		o.AutoCompactFiles = 8
	}
	if o.CompactInterval == 0 {
		o.CompactInterval = 5 * time.Minute
	}
	if o.Interval == 0 {
		o.Interval = time.Hour
	}
	if o.OrphanMinAge == 0 {
		o.OrphanMinAge = 24 * time.Hour
	}
	if o.TaskTimeout == 0 {
		o.TaskTimeout = time.Hour
	}
}

// Validate reports every problem with the options at once.
func (o *MaintainOptions) Validate() error {
	var errs []error
	if o.CompactedFileBytes < 1<<20 || o.SmallFileBytes < 1 {
		errs = append(errs, errors.New("flush: compacted file size must be at least 1 MiB"))
	}
	if o.AutoCompactFiles < 1 || o.CompactInterval < 10*time.Millisecond {
		errs = append(errs, errors.New("flush: compaction threshold and interval must be positive"))
	}
	if o.OrphanMinAge < 0 || o.TaskTimeout < 0 {
		errs = append(errs, errors.New("flush: orphan minimum age and task timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// MaintainResult describes one snapshot expiry and orphan cleanup.
type MaintainResult struct {
	Table              string
	SnapshotsExpired   int
	SnapshotsRemaining int
	OrphansRemoved     int
	OrphanBytes        int64
	Duration           time.Duration
}

// Maintainer compacts, expires snapshots and removes orphans for the
// tables of a Flusher. All methods are safe for concurrent use.
type Maintainer struct {
	f    *Flusher
	opts MaintainOptions
	log  *slog.Logger

	mu   sync.Mutex        // guards busy
	busy map[string]string // table → the task running ("compaction", "maintenance")

	stats maintCounters

	ctx    context.Context
	cancel context.CancelFunc
	start  sync.Once
	closed atomic.Bool
	wg     sync.WaitGroup
}

type maintCounters struct {
	compactions, filesCompacted, filesCreated, rows, bytesRead, bytesWritten, compactErrors atomic.Int64
	expiries, snapshotsExpired, orphansRemoved, orphanBytes, maintainErrors                 atomic.Int64
}

// MaintainStats is a snapshot of a Maintainer's counters.
type MaintainStats struct {
	Compactions      int64 // replace snapshots committed
	FilesCompacted   int64 // input files replaced
	FilesCreated     int64 // files written by compaction
	RowsCompacted    int64
	BytesRead        int64 // Parquet bytes rewritten
	BytesWritten     int64
	CompactErrors    int64
	Expiries         int64 // expiry and orphan cleanup runs
	SnapshotsExpired int64
	OrphansRemoved   int64
	OrphanBytes      int64
	MaintainErrors   int64
}

// NewMaintainer returns the Maintainer of f's tables; Start begins the
// background work. Close it before f.
func NewMaintainer(f *Flusher, opts MaintainOptions) (*Maintainer, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	m := &Maintainer{f: f, opts: opts, log: opts.Logger, busy: map[string]string{}}
	if m.log == nil {
		m.log = f.opts.Logger
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// Start starts the background loop: every CompactInterval it compacts the
// partition-hours with more than AutoCompactFiles small files (unless
// NoAutoCompact), every Interval it expires snapshots and removes
// orphans.
func (m *Maintainer) Start() {
	m.start.Do(func() {
		m.wg.Add(1)
		go m.loop()
	})
}

// Close stops the background loop and cancels the tasks in progress
// (a compaction cancelled before its commit leaves orphans, removed
// later).
func (m *Maintainer) Close() error {
	if !m.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	m.cancel()
	m.wg.Wait()
	return nil
}

func (m *Maintainer) loop() {
	defer m.wg.Done()
	ct := time.NewTicker(m.opts.CompactInterval)
	defer ct.Stop()
	var mc <-chan time.Time
	if m.opts.Interval > 0 {
		t := time.NewTicker(m.opts.Interval)
		defer t.Stop()
		mc = t.C
	}
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-ct.C:
			if m.opts.NoAutoCompact {
				continue
			}
			for _, name := range m.f.e.Tables() {
				_, err := m.run(m.ctx, name, "compaction", func(ctx context.Context) error {
					res, err := m.compactTable(ctx, name, m.opts.AutoCompactFiles+1)
					m.observeCompact(res, err)
					return err
				})
				if err != nil && !errors.Is(err, ErrCompactionInProgress) && m.ctx.Err() == nil {
					m.log.Error("background compaction failed", "table", name, "err", err)
				}
			}
		case <-mc:
			for _, name := range m.f.e.Tables() {
				if _, err := m.Maintain(m.ctx, name); err != nil && !errors.Is(err, ErrCompactionInProgress) && m.ctx.Err() == nil {
					m.log.Error("background snapshot expiry or orphan cleanup failed", "table", name, "err", err)
				}
			}
		}
	}
}

// run runs task as table's one maintenance task, under a context that
// Close cancels too.
func (m *Maintainer) run(ctx context.Context, table, what string, task func(context.Context) error) (bool, error) {
	if m.closed.Load() {
		return false, ErrClosed
	}
	if !engine.ValidTableName(table) {
		return false, engine.ErrInvalidTable
	}
	m.mu.Lock()
	if cur, ok := m.busy[table]; ok {
		m.mu.Unlock()
		return false, fmt.Errorf("%w: table %s: %s running", ErrCompactionInProgress, table, cur)
	}
	m.busy[table] = what
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.busy, table)
		m.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, m.opts.TaskTimeout)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel)
	defer stop()
	return true, task(ctx)
}

// Compact compacts every partition-hour of table that holds two or more
// small files: what POST /tables/{t}/compact does. It returns
// ErrCompactionInProgress when a maintenance task of the table is
// running.
func (m *Maintainer) Compact(ctx context.Context, table string) (CompactResult, error) {
	var res CompactResult
	_, err := m.run(ctx, table, "compaction", func(ctx context.Context) error {
		var err error
		res, err = m.compactTable(ctx, table, 2)
		m.observeCompact(res, err)
		return err
	})
	res.Table = table
	return res, err
}

func (m *Maintainer) observeCompact(res CompactResult, err error) {
	c := &m.stats
	if err != nil {
		c.compactErrors.Add(1)
	}
	if res.Commits == 0 {
		return
	}
	c.compactions.Add(int64(res.Commits))
	c.filesCompacted.Add(int64(res.FilesCompacted))
	c.filesCreated.Add(int64(res.FilesCreated))
	c.rows.Add(res.RowsProcessed)
	c.bytesRead.Add(res.BytesRead)
	c.bytesWritten.Add(res.BytesWritten)
	m.log.Info("compaction committed", "table", res.Table, "files_compacted", res.FilesCompacted,
		"files_created", res.FilesCreated, "rows", res.RowsProcessed, "bytes_read", res.BytesRead,
		"bytes_written", res.BytesWritten, "snapshot_id", res.SnapshotID, "took", res.Duration.Round(time.Millisecond))
	if m.opts.OnCompact != nil {
		m.opts.OnCompact(res)
	}
}

// Maintain expires table's snapshots (catalog.Table.ExpireSnapshots with
// the catalog's retention) and then removes its orphan files. It returns
// ErrCompactionInProgress when a maintenance task of the table is
// running.
func (m *Maintainer) Maintain(ctx context.Context, table string) (MaintainResult, error) {
	res := MaintainResult{Table: table}
	_, err := m.run(ctx, table, "maintenance", func(ctx context.Context) error {
		start := time.Now()
		defer func() { res.Duration = time.Since(start) }()
		tbl, err := m.f.Table(ctx, table)
		if err != nil {
			return err
		}
		er, err := tbl.ExpireSnapshots(ctx, 0, 0)
		if err != nil {
			return err
		}
		res.SnapshotsExpired, res.SnapshotsRemaining = er.Expired, er.Remaining
		res.OrphansRemoved, res.OrphanBytes, err = m.removeOrphans(ctx, tbl)
		return err
	})
	if errors.Is(err, ErrCompactionInProgress) || errors.Is(err, ErrClosed) {
		return res, err
	}
	c := &m.stats
	c.expiries.Add(1)
	c.snapshotsExpired.Add(int64(res.SnapshotsExpired))
	c.orphansRemoved.Add(int64(res.OrphansRemoved))
	c.orphanBytes.Add(res.OrphanBytes)
	if err != nil {
		c.maintainErrors.Add(1)
	}
	if res.SnapshotsExpired > 0 || res.OrphansRemoved > 0 {
		m.log.Info("table maintenance", "table", table, "snapshots_expired", res.SnapshotsExpired,
			"snapshots", res.SnapshotsRemaining, "orphans_removed", res.OrphansRemoved, "orphan_bytes", res.OrphanBytes)
	}
	if m.opts.OnMaintain != nil {
		m.opts.OnMaintain(res)
	}
	return res, err
}

// removeOrphans deletes the files under the table location that the
// table's metadata does not reference and that are older than
// OrphanMinAge. As a guard against two spellings of one location, it
// deletes nothing unless the listing found every live data file.
func (m *Maintainer) removeOrphans(ctx context.Context, tbl *catalog.Table) (int, int64, error) {
	lister, ok := m.f.opts.Store.(Lister)
	if !ok {
		return 0, 0, nil
	}
	// No flush of the table runs meanwhile: a flush that writes a range
	// again after a failed round reuses its file names, and could
	// otherwise replace an old orphan between the listing and the
	// removal. (Compactions are excluded by busy; their names are new.)
	ts := m.f.state(tbl.Name())
	ts.mu.Lock()
	defer ts.mu.Unlock()
	refs, live, loc, err := tbl.ReferencedFiles(ctx)
	if err != nil {
		return 0, 0, err
	}
	cutoff := time.Now().Add(-m.opts.OrphanMinAge)
	liveSet := make(map[string]bool, len(live))
	for _, p := range live {
		liveSet[p] = false
	}
	var orphans []ObjectInfo
	err = lister.List(ctx, loc, func(o ObjectInfo) error {
		n := catalog.NormalizeLocation(o.Location)
		if refs[n] {
			if _, ok := liveSet[n]; ok {
				liveSet[n] = true
			}
			return nil
		}
		if o.ModTime.Before(cutoff) {
			o.Location = n
			orphans = append(orphans, o)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	prefix := loc + "/"
	for p, found := range liveSet {
		if !found && len(p) > len(prefix) && p[:len(prefix)] == prefix {
			return 0, 0, fmt.Errorf("flush: orphan cleanup of %s: live data file %s was not listed; deleting nothing", tbl.Name(), p)
		}
	}
	var n int
	var bytes int64
	var errs []error
	for _, o := range orphans {
		if err := m.f.opts.Store.Remove(ctx, o.Location); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
		bytes += o.Size
	}
	return n, bytes, errors.Join(errs...)
}

// Stats returns the Maintainer's counters.
func (m *Maintainer) Stats() MaintainStats {
	c := &m.stats
	return MaintainStats{
		Compactions: c.compactions.Load(), FilesCompacted: c.filesCompacted.Load(), FilesCreated: c.filesCreated.Load(),
		RowsCompacted: c.rows.Load(), BytesRead: c.bytesRead.Load(), BytesWritten: c.bytesWritten.Load(),
		CompactErrors: c.compactErrors.Load(), Expiries: c.expiries.Load(), SnapshotsExpired: c.snapshotsExpired.Load(),
		OrphansRemoved: c.orphansRemoved.Load(), OrphanBytes: c.orphanBytes.Load(), MaintainErrors: c.maintainErrors.Load(),
	}
}
