package httpd

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/httpd/param"
)

// coldTimeout bounds a flush, compaction or maintenance started over HTTP.
const coldTimeout = 5 * time.Minute

// ready serves GET /health/ready: 200 when the server can take traffic,
// 503 (same body shape) when it cannot: shutting down, a failed partition
// log, the cold tier not ready, or inflight bytes or write requests at
// 90 % of their budget.
func (s *Server) ready(ctx *fasthttp.RequestCtx) {
	ok := true
	hot, hotErr := "ok", ""
	switch st := s.eng.Stats(); {
	case s.stopping.Load():
		hot, hotErr = "error", "shutting down"
	case st.FailedLogs > 0:
		hot, hotErr = "error", strconv.Itoa(st.FailedLogs)+" partition log(s) failed; restart to recover"
	}
	if hotErr != "" {
		ok = false
	}
	cold, coldErr := "not_configured", ""
	if s.cfg.Cold != nil {
		cold = "ok"
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := s.cfg.Cold.Ready(c); err != nil {
			var deg *DegradedError
			if errors.As(err, &deg) {
				cold, coldErr = "degraded", err.Error()
			} else {
				cold, coldErr, ok = "error", err.Error(), false
			}
		}
		cancel()
	}
	var cl ClusterStatus
	clStatus, clErr := "", ""
	if pl := s.cfg.Placement; pl != nil {
		cl = pl.Status()
		clStatus = "ok"
		switch {
		case cl.Err != nil:
			clStatus, clErr, ok = "error", cl.Err.Error(), false
		case len(cl.DeadNodes) > 0:
			clStatus = "degraded"
			clErr = strconv.Itoa(cl.Orphaned) + " partition(s) of node(s) " + strings.Join(cl.DeadNodes, ", ") +
				" take no writes: the node is down; they come back with it, or with `zombi cluster handoff` once its disk is lost"
		}
	}
	inflight := s.adm.bytes.Load()
	bp := "ok"
	if float64(inflight) >= 0.9*float64(s.adm.maxBytes) || float64(s.adm.writes.Load()) >= 0.9*float64(s.adm.maxWrites) {
		bp, ok = "warning", false
	}

	b := append([]byte(nil), `{"status":`...)
	if ok {
		b = append(b, `"ready"`...)
	} else {
		b = append(b, `"not_ready"`...)
	}
	b = append(b, `,"hot_storage":`...)
	b = appendComponent(b, hot, hotErr)
	b = append(b, `,"cold_storage":`...)
	b = appendComponent(b, cold, coldErr)
	if clStatus != "" {
		b = append(b, `,"cluster":`...)
		b = appendComponent(b, clStatus, clErr)
		b = b[:len(b)-1]
		b = append(b, `,"node":`...)
		b = appendJSONString(b, cl.Node)
		b = append(b, ',')
		b = appendIntField(b, "own_partitions", int64(cl.Own))
		b = append(b, ',')
		b = appendIntField(b, "orphaned_partitions", int64(cl.Orphaned))
		b = append(b, '}')
	}
	b = append(b, `,"backpressure":{"status":"`...)
	b = append(b, bp...)
	b = append(b, `",`...)
	b = appendIntField(b, "inflight_writes", s.adm.maxWrites-s.adm.writes.Load()) // available permits, as the original
	b = append(b, ',')
	b = appendIntField(b, "inflight_bytes", inflight)
	b = append(b, ',')
	b = appendIntField(b, "max_inflight_bytes", s.adm.maxBytes)
	b = append(b, `}}`...)
	if ok {
		writeJSON(ctx, fasthttp.StatusOK, b)
		return
	}
	s.met.errors.Inc()
	writeJSON(ctx, fasthttp.StatusServiceUnavailable, b)
}

func appendComponent(b []byte, status, err string) []byte {
	b = append(b, `{"status":"`...)
	b = append(b, status...)
	b = append(b, '"')
	if err != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, err)
	}
	return append(b, '}')
}

// stats serves GET /stats, the original's shape plus a "hot" summary.
func (s *Server) stats(ctx *fasthttp.RequestCtx) {
	up := time.Since(s.start).Seconds()
	m := s.met
	rate := func(n uint64) float64 {
		if up <= 0 {
			return 0
		}
		return float64(n) / up
	}
	avg := func(sum float64, n uint64) float64 {
		if n == 0 {
			return 0
		}
		return sum / float64(n)
	}
	wn, rn := m.writes.Get(), m.reads.Get()
	b := append([]byte(nil), `{"uptime_secs":`...)
	b = strconv.AppendFloat(b, up, 'f', 3, 64)
	b = append(b, `,"writes":{`...)
	b = appendUintField(b, "total", wn)
	b = append(b, ',')
	b = appendUintField(b, "bytes_total", m.writeBytes.Get())
	b = append(b, `,"rate_per_sec":`...)
	b = strconv.AppendFloat(b, rate(wn), 'f', 2, 64)
	b = append(b, `,"avg_latency_us":`...)
	b = strconv.AppendFloat(b, avg(float64(m.writeLatencySum.Load())/1e3, m.writeRequests.Get()), 'f', 2, 64)
	b = append(b, `},"reads":{`...)
	b = appendUintField(b, "total", rn)
	b = append(b, ',')
	b = appendUintField(b, "records_total", m.readRecords.Get())
	b = append(b, `,"rate_per_sec":`...)
	b = strconv.AppendFloat(b, rate(rn), 'f', 2, 64)
	b = append(b, `,"avg_latency_us":`...)
	b = strconv.AppendFloat(b, avg(float64(m.readLatencySum.Load())/1e3, rn), 'f', 2, 64)
	b = append(b, `},`...)
	b = appendUintField(b, "errors_total", m.errors.Get())
	hs := s.eng.Stats()
	b = append(b, `,"hot":{`...)
	b = appendIntField(b, "tables", int64(hs.Tables))
	b = append(b, ',')
	b = appendIntField(b, "partitions", int64(hs.Partitions))
	b = append(b, ',')
	b = appendIntField(b, "segments", int64(hs.Segments))
	b = append(b, ',')
	b = appendIntField(b, "bytes", hs.HotBytes)
	b = append(b, ',')
	b = appendIntField(b, "failed_logs", int64(hs.FailedLogs))
	b = append(b, ',')
	b = appendIntField(b, "quarantined_segments", hs.Quarantined)
	b = append(b, `}}`...)
	writeJSON(ctx, fasthttp.StatusOK, b)
}

// watermark serves GET /tables/{t}/watermark:
// {"topic":t,"partitions":{"0":{"watermark":flushed,"high_watermark":last}}}.
// In a cluster every partition of the table is listed with its "owner"
// ({"node","address","alive"}); the watermarks are given for this
// node's own partitions, and the owner answers for the others.
func (s *Server) watermark(ctx *fasthttp.RequestCtx, tname []byte) {
	if !param.ValidTableName(tname) {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, invalidTableMsg)
		return
	}
	table := string(tname)
	var owners map[uint32]PartitionOwner
	if pl := s.cfg.Placement; pl != nil {
		c, cancel := context.WithTimeout(ctx, placeTimeout)
		list, err := pl.Owners(c, table)
		cancel()
		if err != nil {
			s.clusterUnavailable(ctx, err)
			return
		}
		owners = make(map[uint32]PartitionOwner, len(list))
		for _, po := range list {
			owners[po.Partition] = po
		}
	}
	b := append([]byte(nil), `{"topic":"`...)
	b = append(b, table...)
	b = append(b, `","partitions":{`...)
	n := 0
	entry := func(p uint32) {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, '"')
		b = strconv.AppendUint(b, uint64(p), 10)
		b = append(b, `":{`...)
	}
	for _, p := range s.eng.Partitions(table) {
		po, listed := owners[p.Partition]
		if owners != nil && (!listed || !po.Mine) {
			continue // a leftover of a partition this node no longer writes
		}
		entry(p.Partition)
		b = appendUintField(b, "watermark", p.Flushed)
		b = append(b, ',')
		b = appendUintField(b, "high_watermark", p.High)
		if listed {
			b = append(b, `,"owner":`...)
			b = appendOwner(b, po)
		}
		b = append(b, '}')
	}
	for _, po := range owners {
		if !po.Mine {
			entry(po.Partition)
			b = append(b, `"owner":`...)
			b = appendOwner(b, po)
			b = append(b, '}')
		}
	}
	b = append(b, `}}`...)
	writeJSON(ctx, fasthttp.StatusOK, b)
}

// metadata serves GET /tables/{t}/metadata.
func (s *Server) metadata(ctx *fasthttp.RequestCtx, tname []byte) {
	if !param.ValidTableName(tname) {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, invalidTableMsg)
		return
	}
	md := TableMetadata{StorageType: "hot_only"}
	if s.cfg.Cold != nil {
		var err error
		md, err = s.cfg.Cold.Metadata(ctx, string(tname))
		if err != nil {
			s.writeError(ctx, fasthttp.StatusInternalServerError, codeStorage, "Cold storage error: "+err.Error())
			return
		}
	}
	b := append([]byte(nil), `{"table":"`...)
	b = append(b, tname...)
	b = append(b, `","storage_type":`...)
	b = appendJSONString(b, md.StorageType)
	b = append(b, `,"iceberg_enabled":`...)
	b = strconv.AppendBool(b, md.IcebergEnabled)
	for _, kv := range [...][2]string{
		{"metadata_location", md.MetadataLocation}, {"bucket", md.Bucket}, {"base_path", md.BasePath},
		{"table_location", md.TableLocation}, {"namespace", md.Namespace},
	} {
		if kv[1] != "" {
			b = append(b, `,"`...)
			b = append(b, kv[0]...)
			b = append(b, `":`...)
			b = appendJSONString(b, kv[1])
		}
	}
	b = append(b, '}')
	writeJSON(ctx, fasthttp.StatusOK, b)
}

// flush serves POST /tables/{t}/flush.
func (s *Server) flush(ctx *fasthttp.RequestCtx, tname []byte) {
	s.coldAction(ctx, tname, "Flush", func(c context.Context, t string) (AdminResult, error) {
		return s.cfg.Cold.Flush(c, t)
	})
}

func (s *Server) coldAction(ctx *fasthttp.RequestCtx, tname []byte, what string, do func(context.Context, string) (AdminResult, error)) {
	if !param.ValidTableName(tname) {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, invalidTableMsg)
		return
	}
	if s.cfg.Cold == nil {
		s.writeError(ctx, fasthttp.StatusServiceUnavailable, codeNoColdTier,
			what+" needs cold storage, which is not configured: this server runs with the hot tier only")
		return
	}
	c, cancel := context.WithTimeout(context.Background(), coldTimeout)
	defer cancel()
	res, err := do(c, string(tname))
	if err != nil {
		if errors.Is(err, ErrNotImplemented) {
			s.writeError(ctx, fasthttp.StatusNotImplemented, codeNotImplemented, what+" failed: "+err.Error())
			return
		}
		if s.stopping.Load() {
			s.overloaded(ctx, what+" interrupted: the server is shutting down")
			return
		}
		s.writeError(ctx, fasthttp.StatusInternalServerError, codeStorage, what+" failed: "+err.Error())
		return
	}
	b := append([]byte(nil), `{"status":`...)
	b = appendJSONString(b, res.Status)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, res.Message)
	if fc := res.Flush; fc != nil {
		b = append(b, `,"table":`...)
		b = appendJSONString(b, tname)
		b = appendFlushCounts(b, fc)
	}
	b = append(b, '}')
	writeJSON(ctx, fasthttp.StatusOK, b)
}

// appendFlushCounts appends the counts of a flush as fields of the
// response object: ,"events":…,"files":…,…,"partitions":[…].
func appendFlushCounts(b []byte, fc *FlushCounts) []byte {
	for _, f := range [...]struct {
		name string
		v    int64
	}{{"events", fc.Events}, {"files", fc.Files}, {"bytes", fc.FileBytes}, {"raw_bytes", fc.RawBytes}, {"commits", fc.Commits}} {
		b = append(b, ',')
		b = appendIntField(b, f.name, f.v)
	}
	if fc.SnapshotID != 0 {
		b = append(b, ',')
		b = appendIntField(b, "snapshot_id", fc.SnapshotID)
	}
	if fc.MetadataLocation != "" {
		b = append(b, `,"metadata_location":`...)
		b = appendJSONString(b, fc.MetadataLocation)
	}
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, fc.DurationMs, 'f', 3, 64)
	b = append(b, `,"partitions":[`...)
	for i, p := range fc.Partitions {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		b = appendUintField(b, "partition", uint64(p.Partition))
		b = append(b, ',')
		b = appendUintField(b, "from", p.From)
		b = append(b, ',')
		b = appendUintField(b, "to", p.To)
		b = append(b, ',')
		b = appendIntField(b, "events", p.Events)
		b = append(b, ',')
		b = appendIntField(b, "files", p.Files)
		b = append(b, '}')
	}
	return append(b, ']')
}

// catalog serves /v1/…, the Iceberg REST catalog view.
func (s *Server) catalog(ctx *fasthttp.RequestCtx) {
	if s.cfg.Catalog == nil {
		s.writeError(ctx, fasthttp.StatusServiceUnavailable, codeNoColdTier,
			"The Iceberg REST catalog view needs cold storage, which is not configured")
		return
	}
	s.cfg.Catalog(ctx)
}

// maxCommitBody bounds the body of POST /consumers/{g}/commit.
const maxCommitBody = 64 << 10

// commitOffset serves POST /consumers/{g}/commit with
// {"topic": t, "partition": 0, "offset": n}.
func (s *Server) commitOffset(ctx *fasthttp.RequestCtx, group []byte) {
	if len(group) == 0 || len(group) > engine.MaxGroupLen {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, "Invalid consumer group: must be 1 to 255 bytes")
		return
	}
	cl := ctx.Request.Header.ContentLength()
	if cl > maxCommitBody {
		s.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, codeTooLarge, "Request body too large")
		return
	}
	st := getState()
	defer putState(st)
	body, err := s.readBody(ctx, st, maxCommitBody, nil)
	if err != nil {
		s.bodyError(ctx, err)
		return
	}
	v, err := st.parser.ParseBytes(body)
	if err != nil {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, "Invalid JSON: "+err.Error())
		return
	}
	tv, ov := v.Get("topic"), v.Get("offset")
	if tv == nil || tv.Type() != fastjson.TypeString {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, "Invalid JSON: missing string field `topic`")
		return
	}
	if ov == nil {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, "Invalid JSON: missing field `offset`")
		return
	}
	off, err := ov.Uint64()
	if err != nil {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, "Invalid JSON: `offset` must be a non-negative integer")
		return
	}
	var part uint32
	if pv := v.Get("partition"); pv != nil {
		if part, err = jsonPartition(pv); err != nil {
			s.decodeError(ctx, err)
			return
		}
	}
	topic := string(tv.GetStringBytes())
	g := string(group)
	if pl := s.cfg.Placement; pl != nil {
		if !param.ValidTableName(tv.GetStringBytes()) {
			s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, invalidTableMsg)
			return
		}
		c, cancel := context.WithTimeout(ctx, placeTimeout)
		err := pl.CommitOffset(c, g, topic, part, off)
		cancel()
		if err != nil {
			s.clusterUnavailable(ctx, err)
			return
		}
	} else if err := s.eng.CommitOffset(g, topic, part, off); err != nil {
		s.engineError(ctx, err)
		return
	}
	b := append([]byte(nil), `{"group":`...)
	b = appendJSONString(b, g)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, topic)
	b = append(b, ',')
	b = appendUintField(b, "partition", uint64(part))
	b = append(b, ',')
	b = appendUintField(b, "offset", off)
	b = append(b, '}')
	writeJSON(ctx, fasthttp.StatusOK, b)
}

// getOffset serves GET /consumers/{g}/offset?topic=t&partition=0:
// {"group","topic","partition","offset": n | null}.
func (s *Server) getOffset(ctx *fasthttp.RequestCtx, group []byte) {
	args := ctx.QueryArgs()
	topic := args.Peek("topic")
	if topic == nil {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, "Missing query parameter `topic`")
		return
	}
	if !param.ValidTableName(topic) {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, invalidTableMsg)
		return
	}
	var part uint32
	if v := args.Peek("partition"); v != nil {
		n, err := parseUint32(v)
		if err != nil {
			s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, "Invalid query parameter `partition`: must be a non-negative integer")
			return
		}
		part = n
	}
	off, ok := uint64(0), false
	if pl := s.cfg.Placement; pl != nil {
		c, cancel := context.WithTimeout(ctx, placeTimeout)
		var err error
		off, ok, err = pl.Offset(c, string(group), string(topic), part)
		cancel()
		if err != nil {
			s.clusterUnavailable(ctx, err)
			return
		}
	} else {
		off, ok = s.eng.ConsumerOffset(string(group), string(topic), part)
	}
	b := append([]byte(nil), `{"group":`...)
	b = appendJSONString(b, group)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, topic)
	b = append(b, ',')
	b = appendUintField(b, "partition", uint64(part))
	b = append(b, `,"offset":`...)
	if ok {
		b = strconv.AppendUint(b, off, 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, '}')
	writeJSON(ctx, fasthttp.StatusOK, b)
}
