package httpd

import (
	"context"
	"errors"
	"io"

	"github.com/valyala/fasthttp"
)

// ColdTier is what the HTTP API needs of the cold tier (the flush and
// catalog packages). Config.Cold is nil until one is wired in.
//
// A ColdTier may also implement
//
//	OverBudget() bool             the hot tier is over its disk budget: writes answer 503
//	WritePrometheus(w io.Writer)  extra series for /metrics
//	Maintain(ctx, table) (AdminResult, error)
//	                              snapshot expiry and orphan cleanup (POST /tables/{t}/maintenance; 501 without)
//	SkipGap(ctx, table, partition) (AdminResult, error)
//	                              let a partition's flush pass offsets lost from the hot tier
//	                              (POST /tables/{t}/skip-gap?partition=p; 501 without)
//
// which the server looks for once, in New (IcebergTier implements all).
type ColdTier interface {
	// Metadata describes where table lives in the cold tier.
	Metadata(ctx context.Context, table string) (TableMetadata, error)
	// Flush flushes the table's hot data to the cold tier and commits it.
	Flush(ctx context.Context, table string) (AdminResult, error)
	// Compact rewrites the table's small files. An error wrapping
	// ErrInProgress answers 409 COMPACTION_IN_PROGRESS.
	Compact(ctx context.Context, table string) (AdminResult, error)
	// Ready returns nil when the cold tier can take flushes; it feeds
	// /health/ready. A *DegradedError is reported there as "degraded"
	// without failing readiness.
	Ready(ctx context.Context) error
}

// coldBudget is the optional hot-tier budget of a ColdTier.
type coldBudget interface{ OverBudget() bool }

// coldMetrics is the optional /metrics contribution of a ColdTier.
type coldMetrics interface{ WritePrometheus(w io.Writer) }

// DegradedError is a Ready error that does not make the server unready:
// the cold tier is failing, but writes are still taken by the hot tier.
type DegradedError struct{ Err error }

func (e *DegradedError) Error() string { return e.Err.Error() }
func (e *DegradedError) Unwrap() error { return e.Err }

// TableMetadata is the body of GET /tables/{t}/metadata. Empty strings are
// left out of the response.
type TableMetadata struct {
	StorageType      string // e.g. "iceberg"; "hot_only" without a cold tier
	IcebergEnabled   bool
	MetadataLocation string
	Bucket           string
	BasePath         string
	// TableLocation is the Iceberg table location (data files go under
	// it); Namespace the catalog namespace.
	TableLocation string
	Namespace     string
}

// AdminResult is the body of a flush, compact or maintenance:
// {"status","message"}, plus the counts of the action that is set.
type AdminResult struct {
	Status   string
	Message  string
	Flush    *FlushCounts
	Compact  *CompactCounts
	Maintain *MaintainCounts
	Skip     *SkipCounts
}

// SkipCounts are what one POST /tables/{t}/skip-gap skipped: the offsets
// From..To of Partition, committed without data; the flush that
// committed them is in AdminResult.Flush.
type SkipCounts struct {
	Partition uint32
	From, To  uint64
}

// CompactCounts are what one POST /tables/{t}/compact did, in the
// original's response fields.
type CompactCounts struct {
	FilesCompacted int64 // files_compacted: input files replaced
	FilesCreated   int64 // files_created
	RowsProcessed  int64 // rows_processed
	BytesSaved     int64 // bytes_saved: input minus output Parquet bytes
	SnapshotID     int64 // snapshot_id: the last replace snapshot; 0 (null) when nothing was compacted
	Commits        int64
	DurationMs     float64
}

// MaintainCounts are what one POST /tables/{t}/maintenance did.
type MaintainCounts struct {
	SnapshotsExpired   int64
	SnapshotsRemaining int64
	OrphansRemoved     int64
	OrphanBytes        int64
	DurationMs         float64
}

// ErrInProgress is wrapped by a ColdTier's Compact or Maintain error when
// a maintenance task of the table is running already: 409
// COMPACTION_IN_PROGRESS.
var ErrInProgress = errors.New("in progress")

// coldMaintainer is the optional snapshot expiry and orphan cleanup of a
// ColdTier.
type coldMaintainer interface {
	Maintain(ctx context.Context, table string) (AdminResult, error)
}

// coldGapSkipper is the optional gap skip of a ColdTier.
type coldGapSkipper interface {
	SkipGap(ctx context.Context, table string, partition uint32) (AdminResult, error)
}

// ErrNoGap is wrapped by a ColdTier's SkipGap error when the partition is
// not stopped at a gap: 409 NO_GAP.
var ErrNoGap = errors.New("no gap")

// FlushCounts are what one POST /tables/{t}/flush committed.
type FlushCounts struct {
	Events           int64
	Files            int64
	FileBytes        int64 // Parquet bytes written
	RawBytes         int64 // bytes of the events read
	Commits          int64
	SnapshotID       int64
	MetadataLocation string
	DurationMs       float64
	Partitions       []FlushedRange
}

// FlushedRange is one partition's committed offsets, inclusive.
type FlushedRange struct {
	Partition uint32
	From, To  uint64
	Events    int64
	Files     int64
}

// hotFullRetryAfter is the Retry-After of a write refused because the hot
// tier is over its budget: the condition clears only once a flush has
// committed and the flushed segments are deleted, so clients are asked to
// wait longer than for an inflight budget.
const hotFullRetryAfter = "5"

// hotTierFull reports whether writes are refused because the hot tier is
// over its disk budget (ZOMBI_HOT_MAX_GB). Cheap: an atomic load.
func (s *Server) hotTierFull() bool { return s.overBudget != nil && s.overBudget() }

// refuseHotFull answers a write while the hot tier is over its budget:
// 503 SERVER_OVERLOADED with Retry-After, as every other overload, so that
// clients of the original retry it; the message names the cause.
func (s *Server) refuseHotFull(ctx *fasthttp.RequestCtx) {
	s.overloaded(ctx, "Hot tier full: local disk use is over ZOMBI_HOT_MAX_GB while the cold tier "+
		"(object store or catalog) is behind or unreachable; writes resume once flushed data is committed")
	ctx.Response.Header.Set("Retry-After", hotFullRetryAfter)
}
