package httpd

import (
	"context"
	"errors"
	"fmt"
	"io"
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

const codeNotImplemented = "NOT_IMPLEMENTED" // 501: compaction (not offered yet)

// flushDurationBuckets are the upper bounds, in seconds, of the flush
// duration histogram: a flush of a few events takes ~10-50 ms, one of a
// full round ~1 s, one against a failing object store up to minutes.
var flushDurationBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// IcebergTier is the ColdTier of a flush.Flusher committing to an Iceberg
// catalog. Wire it as
//
//	tier := httpd.NewIcebergTier(eng, bucket, basePath)
//	cat, _ := catalog.Open(…)
//	f, _ := flush.New(flush.Options{…, OnFlush: tier.ObserveFlush})
//	tier.Attach(f, cat)
//
// and set Config.Cold = tier, Config.Catalog = tier.CatalogHandler().
// Until Attach (the catalog may be unreachable when the server starts)
// writes go to the hot tier only, flushes and metadata fail, and
// /health/ready reports the cold tier degraded with the error given to
// SetUnavailable.
type IcebergTier struct {
	eng      *engine.Engine
	bucket   string // "" for a local warehouse
	basePath string // the warehouse prefix in the bucket

	att   atomic.Pointer[attached]
	unav  atomic.Pointer[error] // why the catalog is not attached yet
	views atomic.Pointer[func(*fasthttp.RequestCtx)]

	set      *metrics.Set
	duration *metrics.PrometheusHistogram
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
		duration: set.NewPrometheusHistogramExt("zombi_flush_duration_seconds", flushDurationBuckets),
	}
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
	fc := &FlushCounts{
		Events: res.Events, Files: int64(res.Files), FileBytes: res.FileBytes, RawBytes: res.RawBytes,
		Commits: int64(res.Commits), SnapshotID: res.SnapshotID, MetadataLocation: res.MetadataLocation,
		DurationMs: float64(res.Duration.Microseconds()) / 1e3,
	}
	for _, p := range res.Partitions {
		fc.Partitions = append(fc.Partitions, FlushedRange{Partition: p.Partition, From: p.From, To: p.To,
			Events: p.Events, Files: int64(p.Files)})
	}
	msg := "Nothing to flush: table " + table + " is fully committed"
	if res.Events > 0 {
		msg = fmt.Sprintf("Flushed %d events of table %s to Iceberg in %d data file(s), %d commit(s)",
			res.Events, table, res.Files, res.Commits)
	}
	return AdminResult{Status: "ok", Message: msg, Flush: fc}, nil
}

// Compact implements ColdTier: not offered yet.
func (c *IcebergTier) Compact(context.Context, string) (AdminResult, error) {
	return AdminResult{}, fmt.Errorf("%w: small-file compaction is not available in this version; "+
		"flushes already write one file per partition-hour up to ZOMBI_TARGET_FILE_SIZE_MB", ErrNotImplemented)
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
		{"zombi_hot_tier_bytes", "gauge", "Hot-tier bytes as seen by the flusher's budget check", st.HotBytes},
		{"zombi_hot_tier_max_bytes", "gauge", "Hot-tier budget (ZOMBI_HOT_MAX_GB); 0: none", st.HotMaxBytes},
		{"zombi_hot_tier_over_budget", "gauge", "1 while writes are refused because the hot tier is over its budget", b2i(f.OverBudget())},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", m.name, m.help, m.name, m.typ, m.name, m.v)
	}
	c.set.WritePrometheus(w)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
