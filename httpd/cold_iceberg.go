package httpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/flush"
)

// ErrNotImplemented is returned by a ColdTier action the server does not
// offer yet; it answers 501 NOT_IMPLEMENTED.
var ErrNotImplemented = errors.New("not implemented")

const codeNotImplemented = "NOT_IMPLEMENTED" // 501: an action this cold tier does not offer

// flushDurationBuckets are the upper bounds, in seconds, of the flush
// duration histogram: a flush of a few events takes ~10-50 ms, one of a
// full round ~1 s, one against a failing object store up to minutes.
var flushDurationBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// maintainDurationBuckets are the upper bounds, in seconds, of the
// compaction and maintenance duration histograms: a few small files take
// ~0.1 s, a partition-hour of GBs minutes.
var maintainDurationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// IcebergTier is the ColdTier of a flush.Flusher committing to an Iceberg
// catalog. Wire it as
//
//	tier := httpd.NewIcebergTier(eng, bucket, basePath)
//	cat, _ := catalog.Open(…)
//	f, _ := flush.New(flush.Options{…, OnFlush: tier.ObserveFlush})
//	tier.Attach(f, cat)
//	m, _ := flush.NewMaintainer(f, flush.MaintainOptions{…,
//		OnCompact: tier.ObserveCompaction, OnMaintain: tier.ObserveMaintenance})
//	tier.AttachMaintainer(m)
//
// and set Config.Cold = tier, Config.Catalog = tier.CatalogHandler().
// Without a Maintainer, compact and maintenance answer 501.
// Until Attach (the catalog may be unreachable when the server starts)
// writes go to the hot tier only, flushes and metadata fail, and
// /health/ready reports the cold tier degraded with the error given to
// SetUnavailable.
type IcebergTier struct {
	eng      *engine.Engine
	bucket   string // "" for a local warehouse
	basePath string // the warehouse prefix in the bucket

	att   atomic.Pointer[attached]
	maint atomic.Pointer[flush.Maintainer]
	unav  atomic.Pointer[error] // why the catalog is not attached yet
	views atomic.Pointer[func(*fasthttp.RequestCtx)]

	set             *metrics.Set
	duration        *metrics.PrometheusHistogram
	compactDuration *metrics.PrometheusHistogram
	maintDuration   *metrics.PrometheusHistogram
}

// attached is the flusher and catalog of an attached IcebergTier.
type attached struct {
	f   *flush.Flusher
	cat *catalog.Catalog
}

// NewIcebergTier returns the cold tier of eng; bucket and basePath
// (ZOMBI_S3_BUCKET, ZOMBI_STORAGE_PATH) are reported by
// GET /tables/{t}/metadata.
func NewIcebergTier(eng *engine.Engine, bucket, basePath string) *IcebergTier {
	set := metrics.NewSet()
	return &IcebergTier{
		eng: eng, bucket: bucket, basePath: basePath, set: set,
		duration:        set.NewPrometheusHistogramExt("zombi_flush_duration_seconds", flushDurationBuckets),
		compactDuration: set.NewPrometheusHistogramExt("zombi_compaction_duration_seconds", maintainDurationBuckets),
		maintDuration:   set.NewPrometheusHistogramExt("zombi_maintenance_duration_seconds", maintainDurationBuckets),
	}
}

// AttachMaintainer connects the tier to the Maintainer of its flusher
// (compaction, snapshot expiry, orphan cleanup); call it once, after
// Attach.
func (c *IcebergTier) AttachMaintainer(m *flush.Maintainer) { c.maint.Store(m) }

// ObserveCompaction records a compaction that committed something (it is
// flush.MaintainOptions.OnCompact).
func (c *IcebergTier) ObserveCompaction(r flush.CompactResult) {
	c.compactDuration.Update(r.Duration.Seconds())
}

// ObserveMaintenance records a snapshot expiry and orphan cleanup (it is
// flush.MaintainOptions.OnMaintain).
func (c *IcebergTier) ObserveMaintenance(r flush.MaintainResult) {
	c.maintDuration.Update(r.Duration.Seconds())
}

// Attach connects the tier to its flusher and catalog; call it once.
func (c *IcebergTier) Attach(f *flush.Flusher, cat *catalog.Catalog) {
	view := NewCatalogView(cat)
	c.views.Store(&view)
	c.att.Store(&attached{f: f, cat: cat})
	c.unav.Store(nil)
}

// SetUnavailable records why the tier is not attached yet (the catalog
// cannot be opened); /health/ready and the cold routes report it.
func (c *IcebergTier) SetUnavailable(err error) { c.unav.Store(&err) }

// CatalogHandler returns the handler of the /v1 Iceberg REST catalog view
// (Config.Catalog): NewCatalogView once attached, 503 before.
func (c *IcebergTier) CatalogHandler() func(*fasthttp.RequestCtx) {
	return func(ctx *fasthttp.RequestCtx) {
		if v := c.views.Load(); v != nil {
			(*v)(ctx)
			return
		}
		icebergError(ctx, fasthttp.StatusServiceUnavailable, "ServiceUnavailableException", c.notAttached().Error())
	}
}

// ObserveFlush records a flush that committed something (it is
// flush.Options.OnFlush).
func (c *IcebergTier) ObserveFlush(r flush.Result) { c.duration.Update(r.Duration.Seconds()) }

func (c *IcebergTier) notAttached() error {
	if p := c.unav.Load(); p != nil {
		return fmt.Errorf("the Iceberg catalog is not connected yet (retrying): %w", *p)
	}
	return errors.New("the Iceberg catalog is not connected yet")
}

func (c *IcebergTier) attached() (*attached, error) {
	if a := c.att.Load(); a != nil {
		return a, nil
	}
	return nil, c.notAttached()
}

// Metadata implements ColdTier. A table without a commit yet (or never
// written) has no metadata location.
func (c *IcebergTier) Metadata(ctx context.Context, table string) (TableMetadata, error) {
	a, err := c.attached()
	if err != nil {
		return TableMetadata{}, err
	}
	md := TableMetadata{StorageType: "iceberg", IcebergEnabled: true, Bucket: c.bucket, BasePath: c.basePath,
		Namespace: a.cat.Namespace()}
	loc, tloc, err := a.cat.Locations(ctx, table)
	switch {
	case catalog.IsNotFound(err):
		return md, nil
	case err != nil:
		return md, err
	}
	md.MetadataLocation, md.TableLocation = loc, tloc
	return md, nil
}

// Flush implements ColdTier: it seals the table's active segments,
// flushes everything not yet committed, commits it and returns the
// counts.
func (c *IcebergTier) Flush(ctx context.Context, table string) (AdminResult, error) {
	a, err := c.attached()
	if err != nil {
		return AdminResult{}, err
	}
	res, err := a.f.FlushTable(ctx, table)
	if err != nil {
		return AdminResult{}, err
	}
	fc := flushCounts(&res)
	msg := "Nothing to flush: table " + table + " is fully committed"
	if res.Events > 0 {
		msg = fmt.Sprintf("Flushed %d events of table %s to Iceberg in %d data file(s), %d commit(s)",
			res.Events, table, res.Files, res.Commits)
	}
	return AdminResult{Status: "ok", Message: msg, Flush: fc}, nil
}

func flushCounts(res *flush.Result) *FlushCounts {
	fc := &FlushCounts{
		Events: res.Events, Files: int64(res.Files), FileBytes: res.FileBytes, RawBytes: res.RawBytes,
		Commits: int64(res.Commits), SnapshotID: res.SnapshotID, MetadataLocation: res.MetadataLocation,
		DurationMs: float64(res.Duration.Microseconds()) / 1e3,
	}
	for _, p := range res.Partitions {
		fc.Partitions = append(fc.Partitions, FlushedRange{Partition: p.Partition, From: p.From, To: p.To,
			Events: p.Events, Files: int64(p.Files)})
	}
	return fc
}

// SkipGap implements POST /tables/{t}/skip-gap (flush.Flusher.SkipGap).
func (c *IcebergTier) SkipGap(ctx context.Context, table string, partition uint32) (AdminResult, error) {
	a, err := c.attached()
	if err != nil {
		return AdminResult{}, err
	}
	gs, err := a.f.SkipGap(ctx, table, partition)
	if errors.Is(err, flush.ErrNoGap) {
		return AdminResult{}, fmt.Errorf("%w: %w", ErrNoGap, err)
	}
	if err != nil {
		return AdminResult{}, err
	}
	msg := fmt.Sprintf("Skipped offsets %d..%d of table %s partition %d (missing from the hot tier) and flushed %d events",
		gs.From, gs.To, table, partition, gs.Result.Events)
	return AdminResult{Status: "ok", Message: msg, Flush: flushCounts(&gs.Result),
		Skip: &SkipCounts{Partition: partition, From: gs.From, To: gs.To}}, nil
}

// maintainer returns the attached Maintainer.
func (c *IcebergTier) maintainer() (*flush.Maintainer, error) {
	if _, err := c.attached(); err != nil {
		return nil, err
	}
	m := c.maint.Load()
	if m == nil {
		return nil, fmt.Errorf("%w: table maintenance is not configured on this server", ErrNotImplemented)
	}
	return m, nil
}

// Compact implements ColdTier: it rewrites the small files of every
// partition-hour that holds two or more into files of about
// ZOMBI_COMPACTED_FILE_SIZE_MB, one replace snapshot per partition-hour.
func (c *IcebergTier) Compact(ctx context.Context, table string) (AdminResult, error) {
	m, err := c.maintainer()
	if err != nil {
		return AdminResult{}, err
	}
	res, err := m.Compact(ctx, table)
	if errors.Is(err, flush.ErrCompactionInProgress) {
		return AdminResult{}, fmt.Errorf("%w: %w", ErrInProgress, err)
	}
	if err != nil {
		return AdminResult{}, err
	}
	cc := &CompactCounts{FilesCompacted: int64(res.FilesCompacted), FilesCreated: int64(res.FilesCreated),
		RowsProcessed: res.RowsProcessed, BytesSaved: res.BytesRead - res.BytesWritten, SnapshotID: res.SnapshotID,
		Commits: int64(res.Commits), DurationMs: float64(res.Duration.Microseconds()) / 1e3}
	msg := "Nothing to compact: no partition-hour of table " + table + " holds two or more small files"
	if res.Commits > 0 {
		msg = fmt.Sprintf("Compacted %d files into %d (%d rows) in %d partition-hour(s) of table %s",
			res.FilesCompacted, res.FilesCreated, res.RowsProcessed, res.Commits, table)
	}
	return AdminResult{Status: "ok", Message: msg, Compact: cc}, nil
}

// Maintain expires the table's old snapshots (ZOMBI_SNAPSHOT_RETAIN_HOURS,
// ZOMBI_SNAPSHOT_RETAIN_MIN) and removes its orphan files
// (ZOMBI_ORPHAN_MIN_AGE_HOURS) now: POST /tables/{t}/maintenance.
func (c *IcebergTier) Maintain(ctx context.Context, table string) (AdminResult, error) {
	m, err := c.maintainer()
	if err != nil {
		return AdminResult{}, err
	}
	res, err := m.Maintain(ctx, table)
	if errors.Is(err, flush.ErrCompactionInProgress) {
		return AdminResult{}, fmt.Errorf("%w: %w", ErrInProgress, err)
	}
	if err != nil {
		return AdminResult{}, err
	}
	mc := &MaintainCounts{SnapshotsExpired: int64(res.SnapshotsExpired), SnapshotsRemaining: int64(res.SnapshotsRemaining),
		OrphansRemoved: int64(res.OrphansRemoved), OrphanBytes: res.OrphanBytes,
		DurationMs: float64(res.Duration.Microseconds()) / 1e3}
	msg := fmt.Sprintf("Expired %d snapshot(s) (%d remain) and removed %d orphan file(s) of table %s",
		res.SnapshotsExpired, res.SnapshotsRemaining, res.OrphansRemoved, table)
	return AdminResult{Status: "ok", Message: msg, Maintain: mc}, nil
}

// Ready implements ColdTier: an error (not ready) while the hot tier is
// over its budget, so writes are refused; a *DegradedError naming the
// tables whose last flush failed (or why the catalog is not connected)
// otherwise.
func (c *IcebergTier) Ready(context.Context) error {
	a, err := c.attached()
	if err != nil {
		return &DegradedError{Err: err}
	}
	f := a.f
	var failed []string
	for _, t := range c.eng.Tables() {
		if err := f.LastError(t); err != nil {
			failed = append(failed, t+": "+err.Error())
		}
	}
	sort.Strings(failed)
	const maxShown = 3
	more := ""
	if len(failed) > maxShown {
		more = fmt.Sprintf(" (and %d more)", len(failed)-maxShown)
		failed = failed[:maxShown]
	}
	if f.OverBudget() {
		st := f.Stats()
		msg := fmt.Sprintf("hot tier over its budget (%d of %d bytes, ZOMBI_HOT_MAX_GB): writes are refused until the cold tier catches up", st.HotBytes, st.HotMaxBytes)
		if len(failed) > 0 {
			msg += "; last flush errors: " + strings.Join(failed, "; ") + more
		}
		return errors.New(msg)
	}
	if len(failed) > 0 {
		return &DegradedError{Err: errors.New("flush failing, data stays in the hot tier: " + strings.Join(failed, "; ") + more)}
	}
	return nil
}

// OverBudget reports whether the hot tier is over its disk budget: writes
// answer 503 while it is. An atomic load.
func (c *IcebergTier) OverBudget() bool {
	a := c.att.Load()
	return a != nil && a.f.OverBudget()
}

// WritePrometheus writes the cold tier's series for /metrics.
func (c *IcebergTier) WritePrometheus(w io.Writer) {
	a := c.att.Load()
	if a == nil {
		return
	}
	f := a.f
	st := f.Stats()
	for _, m := range [...]struct {
		name, typ, help string
		v               int64
	}{
		{"zombi_flush_total", "counter", "Flush commits made to Iceberg", st.Flushes},
		{"zombi_flush_events_total", "counter", "Events committed to Iceberg", st.Events},
		{"zombi_flush_bytes_total", "counter", "Bytes of Parquet committed to Iceberg", st.FileBytes},
		{"zombi_flush_raw_bytes_total", "counter", "Bytes of events (as stored in the hot tier) committed to Iceberg", st.RawBytes},
		{"zombi_parquet_files_written_total", "counter", "Parquet data files committed", st.Files},
		{"zombi_iceberg_snapshots_committed_total", "counter", "Iceberg snapshots created", st.Snapshots},
		{"zombi_iceberg_commit_errors_total", "counter", "Iceberg commits that failed after their retries", st.CommitErrors},
		{"zombi_s3_errors_total", "counter", "Failed data-file writes to the object store (each retried)", st.UploadErrors},
		{"zombi_flush_gap_errors_total", "counter", "Flushes stopped by a gap between the committed and the hot-tier offsets", st.GapErrors},
		{"zombi_flush_partitions_stuck", "gauge", "Partitions whose flush is stopped: at offsets lost from the hot tier (POST /tables/{t}/skip-gap), owned by another server, or whose committed offsets are not this hot tier's", st.StuckPartitions},
		{"zombi_hot_tier_bytes", "gauge", "Hot-tier bytes as seen by the flusher's budget check", st.HotBytes},
		{"zombi_hot_tier_max_bytes", "gauge", "Hot-tier budget (ZOMBI_HOT_MAX_GB); 0: none", st.HotMaxBytes},
		{"zombi_hot_tier_over_budget", "gauge", "1 while writes are refused because the hot tier is over its budget", b2i(f.OverBudget())},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", m.name, m.help, m.name, m.typ, m.name, m.v)
	}
	// The typed-column families are exported (empty) also without typed
	// columns, so that dashboards find them.
	{
		errs, nonObject := f.ExtractStats()
		fmt.Fprintf(w, "# HELP zombi_extract_errors_total Values of typed columns (ZOMBI_TABLE_SCHEMA) not stored as they were, in committed events: "+
			"present with a type that does not fit (NULL, or the zero value in a column that is not nullable) or missing from a column that is not nullable; "+
			"the payload member stays in _payload_overflow\n# TYPE zombi_extract_errors_total counter\n")
		for _, e := range errs {
			fmt.Fprintf(w, "zombi_extract_errors_total{table=%q,column=%q} %d\n", e.Table, e.Column, e.Count)
		}
		fmt.Fprintf(w, "# HELP zombi_extract_non_object_total Committed events of tables with typed JSON columns whose payload is not a JSON object (every typed column NULL, the payload in _payload_overflow)\n# TYPE zombi_extract_non_object_total counter\n")
		for _, t := range slices.Sorted(maps.Keys(nonObject)) {
			fmt.Fprintf(w, "zombi_extract_non_object_total{table=%q} %d\n", t, nonObject[t])
		}
	}
	if mt := c.maint.Load(); mt != nil {
		ms := mt.Stats()
		for _, m := range [...]struct {
			name, help string
			v          int64
		}{
			{"zombi_compaction_commits_total", "Compaction replace snapshots committed (one per partition-hour)", ms.Compactions},
			{"zombi_compaction_files_compacted_total", "Small data files replaced by compaction", ms.FilesCompacted},
			{"zombi_compaction_files_created_total", "Data files written by compaction", ms.FilesCreated},
			{"zombi_compaction_rows_total", "Rows rewritten by compaction", ms.RowsCompacted},
			{"zombi_compaction_bytes_rewritten_total", "Parquet bytes read and rewritten by compaction", ms.BytesRead},
			{"zombi_compaction_bytes_written_total", "Parquet bytes written by compaction", ms.BytesWritten},
			{"zombi_compaction_errors_total", "Compactions that failed", ms.CompactErrors},
			{"zombi_maintenance_runs_total", "Snapshot expiry and orphan cleanup runs", ms.Expiries},
			{"zombi_snapshots_expired_total", "Iceberg snapshots expired", ms.SnapshotsExpired},
			{"zombi_orphan_files_removed_total", "Orphan files removed from the table locations", ms.OrphansRemoved},
			{"zombi_orphan_bytes_removed_total", "Bytes of orphan files removed", ms.OrphanBytes},
			{"zombi_maintenance_errors_total", "Snapshot expiry or orphan cleanup runs that failed", ms.MaintainErrors},
		} {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, m.v)
		}
	}
	c.set.WritePrometheus(w)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
