package httpd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/httpd/param"
	"github.com/zombihq/zombi/httpd/wire"
)

// reqState is the reusable memory of one write request.
type reqState struct {
	body   []byte
	out    []byte
	offs   []uint64
	dec    wire.Decoder
	parser fastjson.Parser // small JSON bodies other than writes
}

var statePool = sync.Pool{New: func() any { return new(reqState) }}

// maxPooledBytes bounds the buffers a pooled reqState keeps, so one large
// request does not pin its memory for good.
const maxPooledBytes = 1 << 20

func getState() *reqState { return statePool.Get().(*reqState) }

func putState(st *reqState) {
	if cap(st.body) > maxPooledBytes {
		st.body = nil
		st.parser = fastjson.Parser{} // it may hold a copy of the body
	}
	if cap(st.offs) > 64<<10 {
		st.offs = nil
	}
	st.dec.Reset(maxPooledBytes)
	statePool.Put(st)
}

// admitWrite runs admission control on the headers of a write: the body
// limit first, then the inflight request and byte budgets. On success it
// returns the bytes reserved (to be released with release) and ok; on
// failure it has answered the request.
func (s *Server) admitWrite(ctx *fasthttp.RequestCtx) (reserved int64, ok bool) {
	cl := ctx.Request.Header.ContentLength() // -1 chunked, -2 no body
	if cl > s.cfg.MaxBodyBytes {
		s.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, codeTooLarge,
			"Request body of "+strconv.Itoa(cl)+" bytes exceeds the limit of "+strconv.Itoa(s.cfg.MaxBodyBytes)+" bytes (ZOMBI_MAX_BODY_MB)")
		return 0, false
	}
	if s.stopping.Load() {
		s.overloaded(ctx, "Server is shutting down")
		return 0, false
	}
	if s.hotTierFull() {
		s.refuseHotFull(ctx)
		return 0, false
	}
	if !s.adm.acquireWrite() {
		s.overloaded(ctx, msgTooManyWrites(s.adm.maxWrites))
		return 0, false
	}
	if cl > 0 {
		if !s.adm.reserveBytes(int64(cl)) {
			s.adm.releaseWrite()
			s.overloaded(ctx, msgTooManyBytes(s.adm.maxBytes))
			return 0, false
		}
		reserved = int64(cl)
	}
	return reserved, true
}

func (s *Server) release(reserved int64) {
	s.adm.releaseBytes(reserved)
	s.adm.releaseWrite()
}

func (s *Server) overloaded(ctx *fasthttp.RequestCtx, msg string) {
	s.met.rejections.Inc()
	s.writeError(ctx, fasthttp.StatusServiceUnavailable, codeOverloaded, msg)
}

// errBodyBudget is returned by readBody when a chunked body crosses the
// inflight byte budget; errBodyLimit when it crosses MaxBodyBytes.
var (
	errBodyBudget = errors.New("body over the inflight byte budget")
	errBodyLimit  = errors.New("body over the size limit")
)

// readBody reads the request body, at most limit bytes, into st.body. A
// body of known length was checked and charged by admitWrite; a chunked
// one is charged here as it arrives, *reserved growing with it (nothing is
// charged when reserved is nil).
func (s *Server) readBody(ctx *fasthttp.RequestCtx, st *reqState, limit int, reserved *int64) ([]byte, error) {
	stream := ctx.RequestBodyStream()
	if stream == nil { // not streaming: fasthttp has read it already
		return ctx.Request.Body(), nil
	}
	cl := ctx.Request.Header.ContentLength()
	if cl > limit {
		return nil, errBodyLimit
	}
	if cl >= 0 {
		if cap(st.body) < cl {
			st.body = make([]byte, cl)
		}
		st.body = st.body[:cl]
		if _, err := io.ReadFull(stream, st.body); err != nil {
			return nil, err
		}
		return st.body, nil
	}
	// Chunked: read in steps, charging each step before keeping it.
	body := st.body[:0]
	for {
		if len(body) == cap(body) {
			nb := make([]byte, len(body), min(max(4096, 2*cap(body)), limit+1))
			copy(nb, body)
			body = nb
		}
		n, err := stream.Read(body[len(body):cap(body)])
		if n > 0 {
			if len(body)+n > limit {
				st.body = body
				return nil, errBodyLimit
			}
			if reserved != nil {
				if !s.adm.reserveBytes(int64(n)) {
					st.body = body
					return nil, errBodyBudget
				}
				*reserved += int64(n)
			}
			body = body[:len(body)+n]
		}
		if err == io.EOF {
			st.body = body
			return body, nil
		}
		if err != nil {
			st.body = body
			return nil, err
		}
	}
}

// bodyError answers a failed body read.
func (s *Server) bodyError(ctx *fasthttp.RequestCtx, err error) {
	var netErr net.Error
	switch {
	case errors.Is(err, errBodyLimit):
		ctx.SetConnectionClose()
		s.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, codeTooLarge, "Request body too large")
	case errors.Is(err, errBodyBudget):
		s.overloaded(ctx, msgTooManyBytes(s.adm.maxBytes))
	case errors.As(err, &netErr) && netErr.Timeout():
		ctx.SetConnectionClose()
		s.writeError(ctx, fasthttp.StatusRequestTimeout, codeTimeout, "Timed out reading the request body")
	default:
		ctx.SetConnectionClose()
		s.writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, "Cannot read the request body: "+err.Error())
	}
}

func isProtobuf(ctx *fasthttp.RequestCtx) bool {
	ct := ctx.Request.Header.ContentType()
	return bytes.HasPrefix(ct, []byte("application/x-protobuf")) || bytes.HasPrefix(ct, []byte("application/protobuf"))
}

// writeOne serves POST /tables/{t}.
func (s *Server) writeOne(ctx *fasthttp.RequestCtx, tname []byte) {
	start := ctx.Time() // fasthttp read the clock when it called the handler
	if !param.ValidTableName(tname) {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, invalidTableMsg)
		return
	}
	reserved, ok := s.admitWrite(ctx)
	if !ok {
		return
	}
	st := getState()
	defer func() {
		putState(st)
		s.release(reserved)
	}()
	body, err := s.readBody(ctx, st, s.cfg.MaxBodyBytes, &reserved)
	if err != nil {
		s.bodyError(ctx, err)
		return
	}
	var rec engine.Record
	st.dec.MarkUnplaced = s.cfg.Placement != nil
	if isProtobuf(ctx) {
		var p uint32
		if p, ok = s.partitionHeader(ctx); !ok {
			return
		}
		rec, err = wire.ProtoEvent(body, p)
	} else {
		rec, err = st.dec.JSONEvent(body)
	}
	if err != nil {
		s.decodeError(ctx, err)
		return
	}
	table := s.names.get(tname)
	if one := [1]engine.Record{rec}; s.cfg.Placement != nil {
		if !s.place(ctx, table, one[:]) {
			return
		}
		rec = one[0]
	}
	off, _, err := s.eng.Append(table, rec)
	if err != nil {
		s.engineError(ctx, err)
		return
	}
	s.met.wrote(table, 1, len(rec.Payload), start)

	b := append(st.out[:0], `{"offset":`...)
	b = strconv.AppendUint(b, off, 10)
	b = append(b, `,"partition":`...)
	b = strconv.AppendUint(b, uint64(rec.Partition), 10)
	b = append(b, `,"table":"`...)
	b = append(b, table...)
	b = append(b, `"}`...)
	st.out = b
	writeJSON(ctx, fasthttp.StatusAccepted, b)
}

// writeBulk serves POST /tables/{t}/bulk.
func (s *Server) writeBulk(ctx *fasthttp.RequestCtx, tname []byte) {
	start := ctx.Time() // fasthttp read the clock when it called the handler
	if !param.ValidTableName(tname) {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, invalidTableMsg)
		return
	}
	reserved, ok := s.admitWrite(ctx)
	if !ok {
		return
	}
	st := getState()
	defer func() {
		putState(st)
		s.release(reserved)
	}()
	body, err := s.readBody(ctx, st, s.cfg.MaxBodyBytes, &reserved)
	if err != nil {
		s.bodyError(ctx, err)
		return
	}
	var recs []engine.Record
	st.dec.MaxRecords = s.cfg.MaxBulkRecords
	st.dec.MarkUnplaced = s.cfg.Placement != nil
	if isProtobuf(ctx) {
		recs, err = st.dec.ProtoBulk(body)
	} else {
		recs, err = st.dec.JSONBulk(body)
	}
	if err != nil {
		s.decodeError(ctx, err)
		return
	}
	table := s.names.get(tname)
	if !s.place(ctx, table, recs) {
		return
	}
	if cap(st.offs) < len(recs) {
		st.offs = make([]uint64, len(recs))
	}
	offs := st.offs[:len(recs)]
	if len(recs) > 0 {
		if err := s.eng.AppendBatch(table, recs, offs); err != nil {
			s.engineError(ctx, err)
			return
		}
	}
	n := 0
	for i := range recs {
		n += len(recs[i].Payload)
	}
	s.met.wrote(table, len(recs), n, start)

	b := append(st.out[:0], `{"offsets":[`...)
	for i, off := range offs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, off, 10)
	}
	b = append(b, `],"count":`...)
	b = strconv.AppendInt(b, int64(len(offs)), 10)
	b = append(b, `,"table":"`...)
	b = append(b, table...)
	b = append(b, `"}`...)
	st.out = b
	writeJSON(ctx, fasthttp.StatusAccepted, b)
}

// partitionHeader parses X-Partition (default 0; in a cluster,
// wire.Unplaced: this node places the record).
func (s *Server) partitionHeader(ctx *fasthttp.RequestCtx) (uint32, bool) {
	v := ctx.Request.Header.Peek("X-Partition")
	if len(v) == 0 {
		if s.cfg.Placement != nil {
			return wire.Unplaced, true
		}
		return 0, true
	}
	n, err := parseUint32(v)
	if err != nil {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, "Invalid X-Partition header: must be a non-negative integer")
		return 0, false
	}
	return n, true
}

func parseUint32(v []byte) (uint32, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || len(v) > 10 {
		return 0, strconv.ErrSyntax
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<32-1 {
		return 0, strconv.ErrRange
	}
	return uint32(n), nil
}

func (s *Server) decodeError(ctx *fasthttp.RequestCtx, err error) {
	var we *wire.Error
	if errors.As(err, &we) {
		switch we.Kind {
		case wire.TooLarge:
			s.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, codeTooLarge, we.Msg)
		case wire.InvalidInput:
			s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, we.Msg)
		default:
			s.writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, we.Msg)
		}
		return
	}
	var de *decodeError
	if errors.As(err, &de) {
		status := fasthttp.StatusBadRequest
		if de.code == codeTooLarge {
			status = fasthttp.StatusRequestEntityTooLarge
		}
		s.writeError(ctx, status, de.code, de.msg)
		return
	}
	s.writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, err.Error())
}

const invalidTableMsg = "Invalid table name: must match ^[a-zA-Z][a-zA-Z0-9_-]{0,127}$"
