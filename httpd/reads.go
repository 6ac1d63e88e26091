package httpd

import (
	"bytes"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/valyala/fasthttp"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/httpd/param"
)

// read serves GET /tables/{t}: a read of the hot tail.
//
// Without `partition` it merges every partition ordered by (timestamp_ms,
// partition, offset); `offset` is inclusive; `limit` defaults to 100 and
// is capped at MaxReadLimit. An unknown table reads as empty.
func (s *Server) read(ctx *fasthttp.RequestCtx, tname []byte) {
	start := time.Now()
	if !param.ValidTableName(tname) {
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, invalidTableMsg)
		return
	}
	f := param.Negotiate(ctx.Request.Header.Peek("Accept"))
	if f == param.FormatNone {
		s.writeError(ctx, fasthttp.StatusNotAcceptable, codeNotAcceptable,
			"None of the Accept types is available: use application/json or "+param.MediaArrow)
		return
	}
	rq, err := parseReadQuery(ctx.QueryArgs())
	if err != nil {
		s.decodeError(ctx, err)
		return
	}
	table := s.names.get(tname)
	if !s.readElsewhere(ctx, table, rq.q.Partition) {
		return
	}
	var events []engine.Event
	more := false
	if rq.q.Limit == 0 {
		// A limit of 0 returns no record but still says whether any match.
		rq.q.Limit = 1
		var evs []engine.Event
		evs, more, err = s.eng.Read(table, rq.q)
		more = more || len(evs) > 0
	} else {
		events, more, err = s.eng.Read(table, rq.q)
	}
	if err != nil {
		s.engineError(ctx, err)
		return
	}
	if f == param.FormatArrow {
		fs := rq.fields
		if fs == 0 {
			fs = param.AllFields
		}
		if err := writeArrow(ctx, table, events, fs); err != nil {
			s.writeError(ctx, fasthttp.StatusInternalServerError, codeStorage, "Cannot encode Arrow IPC: "+err.Error())
			return
		}
	} else {
		fs := rq.fields
		if fs == 0 {
			fs = jsonDefaultFields
		}
		b := appendReadJSON(ctx.Response.Body()[:0], table, events, more, fs)
		writeJSON(ctx, fasthttp.StatusOK, b)
	}
	s.met.read(table, len(events), start)
}

// appendReadJSON appends {"records":[…],"count":n,"has_more":bool}. Each
// record has the selected fields in schema order; a payload that is not
// valid UTF-8 is given as payload_base64.
func appendReadJSON(b []byte, table string, events []engine.Event, more bool, fs param.FieldSet) []byte {
	b = append(b, `{"records":[`...)
	for i := range events {
		e := &events[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		sep := false
		comma := func() {
			if sep {
				b = append(b, ',')
			}
			sep = true
		}
		if fs.Has(param.FieldSequence) {
			comma()
			b = appendUintField(b, "sequence", e.Offset)
		}
		if fs.Has(param.FieldTopic) {
			comma()
			b = append(b, `"topic":`...)
			b = appendJSONString(b, table)
		}
		if fs.Has(param.FieldPartition) {
			comma()
			b = appendUintField(b, "partition", uint64(e.Partition))
		}
		if fs.Has(param.FieldPayload) {
			comma()
			b = appendPayloadField(b, e.Payload)
		}
		if fs.Has(param.FieldTimestamp) {
			comma()
			b = appendIntField(b, "timestamp_ms", e.TimestampMs)
		}
		if fs.Has(param.FieldKey) {
			comma()
			b = append(b, `"idempotency_key":`...)
			if e.Key == nil {
				b = append(b, "null"...)
			} else {
				b = appendJSONString(b, e.Key)
			}
		}
		b = append(b, '}')
	}
	b = append(b, `],`...)
	b = appendUintField(b, "count", uint64(len(events)))
	if more {
		b = append(b, `,"has_more":true}`...)
	} else {
		b = append(b, `,"has_more":false}`...)
	}
	return b
}

// arrowFields are the Arrow columns, in schema order, matching the
// Iceberg schema's types (sequence long, partition int, payload binary…).
var arrowFields = [param.NumFields]arrow.Field{
	{Name: "sequence", Type: arrow.PrimitiveTypes.Int64},
	{Name: "topic", Type: arrow.BinaryTypes.String},
	{Name: "partition", Type: arrow.PrimitiveTypes.Int32},
	{Name: "payload", Type: arrow.BinaryTypes.Binary},
	{Name: "timestamp_ms", Type: arrow.PrimitiveTypes.Int64},
	{Name: "idempotency_key", Type: arrow.BinaryTypes.String, Nullable: true},
}

// writeArrow answers with an Arrow IPC stream of one record batch (a
// schema message only when there are no events).
func writeArrow(ctx *fasthttp.RequestCtx, table string, events []engine.Event, fs param.FieldSet) error {
	var cols []arrow.Field
	for f := range param.NumFields {
		if fs.Has(f) {
			cols = append(cols, arrowFields[f])
		}
	}
	schema := arrow.NewSchema(cols, nil)
	mem := memory.DefaultAllocator
	rb := array.NewRecordBuilder(mem, schema)
	defer rb.Release()
	ci := 0
	for f := range param.NumFields {
		if !fs.Has(f) {
			continue
		}
		switch f {
		case param.FieldSequence:
			bld := rb.Field(ci).(*array.Int64Builder)
			bld.Reserve(len(events))
			for i := range events {
				bld.UnsafeAppend(int64(events[i].Offset))
			}
		case param.FieldTopic:
			bld := rb.Field(ci).(*array.StringBuilder)
			for range events {
				bld.Append(table)
			}
		case param.FieldPartition:
			bld := rb.Field(ci).(*array.Int32Builder)
			bld.Reserve(len(events))
			for i := range events {
				bld.UnsafeAppend(int32(events[i].Partition))
			}
		case param.FieldPayload:
			bld := rb.Field(ci).(*array.BinaryBuilder)
			for i := range events {
				bld.Append(events[i].Payload)
			}
		case param.FieldTimestamp:
			bld := rb.Field(ci).(*array.Int64Builder)
			bld.Reserve(len(events))
			for i := range events {
				bld.UnsafeAppend(events[i].TimestampMs)
			}
		case param.FieldKey:
			bld := rb.Field(ci).(*array.StringBuilder)
			for i := range events {
				if events[i].Key == nil {
					bld.AppendNull()
				} else {
					bld.BinaryBuilder.Append(events[i].Key)
				}
			}
		}
		ci++
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()

	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if len(events) > 0 {
		if err := w.Write(rec); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(param.MediaArrow)
	ctx.SetBody(buf.Bytes())
	return nil
}
