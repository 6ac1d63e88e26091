package httpd

import (
	"context"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/httpd/param"
)

const (
	codeCompactionInProgress = "COMPACTION_IN_PROGRESS" // 409: a compaction or maintenance of the table is running
	codeNoGap                = "NO_GAP"                 // 409: skip-gap of a partition whose flush is not stopped at a gap
)

// compactTable serves POST /tables/{t}/compact: the original's body
// {"status","message","files_compacted","files_created","rows_processed",
// "bytes_saved","snapshot_id"} (snapshot_id null when nothing was
// compacted), plus "table", "commits" and "duration_ms"; 409
// COMPACTION_IN_PROGRESS while one is running for the table.
func (s *Server) compactTable(ctx *fasthttp.RequestCtx, tname []byte) {
	s.maintAction(ctx, tname, "Compaction", s.cfg.Cold != nil, func(c context.Context, t string) (AdminResult, error) {
		return s.cfg.Cold.Compact(c, t)
	})
}

// maintainTable serves POST /tables/{t}/maintenance: snapshot expiry and
// orphan cleanup now, {"status","message","snapshots_expired",
// "snapshots_remaining","orphans_removed","orphan_bytes","duration_ms"}.
func (s *Server) maintainTable(ctx *fasthttp.RequestCtx, tname []byte) {
	m, _ := s.cfg.Cold.(coldMaintainer)
	s.maintAction(ctx, tname, "Maintenance", s.cfg.Cold != nil, func(c context.Context, t string) (AdminResult, error) {
		if m == nil {
			return AdminResult{}, errors.Join(ErrNotImplemented, errors.New("this cold tier has no snapshot expiry or orphan cleanup"))
		}
		return m.Maintain(c, t)
	})
}

// skipGap serves POST /tables/{t}/skip-gap?partition=p: the partition's
// flush goes on past the offsets it is stopped at (lost from the hot
// tier), which the commit records as skipped; {"status","message",
// "table","partition","skipped_from","skipped_to"} and the flush's counts.
// 409 NO_GAP when the partition is not stopped at a gap.
func (s *Server) skipGap(ctx *fasthttp.RequestCtx, tname []byte) {
	v := ctx.QueryArgs().Peek("partition")
	if v == nil {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, "Missing query parameter `partition`: the partition whose gap to skip")
		return
	}
	part, err := parseUint32(v)
	if err != nil {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, "Invalid query parameter `partition`: must be a non-negative integer")
		return
	}
	sk, _ := s.cfg.Cold.(coldGapSkipper)
	s.maintAction(ctx, tname, "Skip", s.cfg.Cold != nil, func(c context.Context, t string) (AdminResult, error) {
		if sk == nil {
			return AdminResult{}, errors.Join(ErrNotImplemented, errors.New("this cold tier cannot skip gaps"))
		}
		return sk.SkipGap(c, t, part)
	})
}

func (s *Server) maintAction(ctx *fasthttp.RequestCtx, tname []byte, what string, cold bool, do func(context.Context, string) (AdminResult, error)) {
	if !param.ValidTableName(tname) {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, invalidTableMsg)
		return
	}
	if !cold {
		s.writeError(ctx, fasthttp.StatusServiceUnavailable, codeNoColdTier,
			what+" needs cold storage, which is not configured: this server runs with the hot tier only")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), coldTimeout)
	defer cancel()
	res, err := do(c, string(tname))
	switch {
	case err == nil:
	case errors.Is(err, ErrInProgress):
		s.writeError(ctx, fasthttp.StatusConflict, codeCompactionInProgress, what+" refused: "+err.Error())
		return
	case errors.Is(err, ErrNoGap):
		s.writeError(ctx, fasthttp.StatusConflict, codeNoGap, what+" refused: "+err.Error())
		return
	case errors.Is(err, engine.ErrNotFound):
		s.writeError(ctx, fasthttp.StatusNotFound, codeNotFound, what+" failed: "+err.Error())
		return
	case errors.Is(err, ErrNotImplemented):
		s.writeError(ctx, fasthttp.StatusNotImplemented, codeNotImplemented, what+" failed: "+err.Error())
		return
	case s.stopping.Load():
		s.overloaded(ctx, what+" interrupted: the server is shutting down")
		return
	default:
		s.writeError(ctx, fasthttp.StatusInternalServerError, codeStorage, what+" failed: "+err.Error())
		return
	}
	b := append([]byte(nil), `{"status":`...)
	b = appendJSONString(b, res.Status)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, res.Message)
	b = append(b, `,"table":`...)
	b = appendJSONString(b, tname)
	if cc := res.Compact; cc != nil {
		for _, f := range [...]struct {
			name string
			v    int64
		}{{"files_compacted", cc.FilesCompacted}, {"files_created", cc.FilesCreated}, {"rows_processed", cc.RowsProcessed},
			{"bytes_saved", cc.BytesSaved}, {"commits", cc.Commits}} {
			b = append(b, ',')
			b = appendIntField(b, f.name, f.v)
		}
		b = append(b, `,"snapshot_id":`...)
		if cc.SnapshotID != 0 {
			b = strconv.AppendInt(b, cc.SnapshotID, 10)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendFloat(b, cc.DurationMs, 'f', 3, 64)
	}
	if mc := res.Maintain; mc != nil {
		for _, f := range [...]struct {
			name string
			v    int64
		}{{"snapshots_expired", mc.SnapshotsExpired}, {"snapshots_remaining", mc.SnapshotsRemaining},
			{"orphans_removed", mc.OrphansRemoved}, {"orphan_bytes", mc.OrphanBytes}} {
			b = append(b, ',')
			b = appendIntField(b, f.name, f.v)
		}
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendFloat(b, mc.DurationMs, 'f', 3, 64)
	}
	if sc := res.Skip; sc != nil {
		b = append(b, ',')
		b = appendUintField(b, "partition", uint64(sc.Partition))
		b = append(b, ',')
		b = appendUintField(b, "skipped_from", sc.From)
		b = append(b, ',')
		b = appendUintField(b, "skipped_to", sc.To)
	}
	if fc := res.Flush; fc != nil {
		b = appendFlushCounts(b, fc)
	}
	b = append(b, '}')
	writeJSON(ctx, fasthttp.StatusOK, b)
}
