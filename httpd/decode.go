package httpd

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/valyala/fastjson"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zombihq/zombi/engine"
)

// Decoders turn a request body into engine records without reflection.
//
// Slices in the records they return point into the body, into the
// fastjson parser's buffer, or into the decoder's scratch buffer; all of
// them stay valid until the next decode with the same decoder, which is
// longer than the engine needs them (it copies record bytes).

// decodeError is a request the server cannot decode; it answers 400 with
// code.
type decodeError struct {
	code string
	msg  string
}

func (e *decodeError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &decodeError{code: codeBadRequest, msg: fmt.Sprintf(format, args...)}
}

// errNotUTF8 refuses a JSON body that is not UTF-8 (RFC 8259 §8.1), as
// serde_json does in the Rust Zombi. Binary payloads go in payload_base64.
func errNotUTF8() error {
	return badRequest("Invalid JSON: the body is not valid UTF-8 (send binary payloads as payload_base64)")
}

// tooManyRecords refuses a bulk request over Config.MaxBulkRecords; it
// answers 413.
func tooManyRecords(limit int) error {
	return &decodeError{code: codeTooLarge, msg: fmt.Sprintf("Too many records in one bulk request (limit: %d; split the batch or raise ZOMBI_MAX_BULK_RECORDS)", limit)}
}

// tooManyValues refuses a JSON body over decoder.maxValues; it answers
// 413.
func tooManyValues(limit int) error {
	return &decodeError{code: codeTooLarge, msg: fmt.Sprintf("Too many JSON values in one request (limit: %d, 4 × ZOMBI_MAX_BULK_RECORDS; split the batch, or send large documents as payload_base64)", limit)}
}

// tooManyValues reports whether body holds more than d.maxValues JSON
// values, counted before parsing as 1 + the commas and opening brackets
// outside strings (an upper bound of the values fastjson would build).
// A value takes at least 2 bytes, so smaller bodies are not scanned.
func (d *decoder) tooManyValues(body []byte) bool {
	limit := d.maxValues
	if limit <= 0 || len(body) <= 2*limit {
		return false
	}
	n := 1
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case ',', '[', '{':
			if n++; n > limit {
				return true
			}
		case '"':
			for i++; i < len(body) && body[i] != '"'; i++ {
				if body[i] == '\\' {
					i++
				}
			}
		}
	}
	return false
}

func invalidInput(format string, args ...any) error {
	return &decodeError{code: codeInvalidInput, msg: fmt.Sprintf(format, args...)}
}

// decoder holds the reusable state of one request's decoding.
type decoder struct {
	parser  fastjson.Parser
	scratch []byte          // payloads that are not a sub-slice of the input
	fix     []scratchRef    // records whose payload lives in scratch
	recs    []engine.Record // decoded records
	maxRecs int             // records a bulk request may hold; 0: no bound
	// maxValues bounds the JSON values of a body; 0: no bound. fastjson
	// builds a tree of ~100-300 bytes per value before we see any of it,
	// so a 16 MiB body of "1,1,1,…" would take ~4 GB and 20 s of CPU.
	maxValues int
}

// scratchRef says that recs[rec].Payload is scratch[start:end]; it is
// resolved once scratch has stopped growing.
type scratchRef struct {
	rec        int
	start, end int
}

func (d *decoder) reset() {
	d.scratch = d.scratch[:0]
	d.fix = d.fix[:0]
	clear(d.recs)
	d.recs = d.recs[:0]
}

func (d *decoder) resolve() {
	for _, f := range d.fix {
		d.recs[f.rec].Payload = d.scratch[f.start:f.end:f.end]
	}
}

// decodeJSONEvent decodes the body of POST /tables/{t}:
//
//	{"payload": "text" | any JSON value, "payload_base64": "…",
//	 "partition": 0, "timestamp_ms": 1700000000000, "idempotency_key": "k"}
func (d *decoder) decodeJSONEvent(body []byte) (engine.Record, error) {
	d.reset()
	if !utf8.Valid(body) {
		return engine.Record{}, errNotUTF8()
	}
	if d.tooManyValues(body) {
		return engine.Record{}, tooManyValues(d.maxValues)
	}
	v, err := d.parser.ParseBytes(body)
	if err != nil {
		return engine.Record{}, badRequest("Invalid JSON: %v", err)
	}
	if err := d.jsonRecord(v, 0); err != nil {
		return engine.Record{}, err
	}
	d.resolve()
	return d.recs[0], nil
}

// decodeJSONBulk decodes the body of POST /tables/{t}/bulk:
// {"records": [event, …]}.
func (d *decoder) decodeJSONBulk(body []byte) ([]engine.Record, error) {
	d.reset()
	if !utf8.Valid(body) {
		return nil, errNotUTF8()
	}
	if d.tooManyValues(body) {
		return nil, tooManyValues(d.maxValues)
	}
	v, err := d.parser.ParseBytes(body)
	if err != nil {
		return nil, badRequest("Invalid JSON: %v", err)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, badRequest("Invalid JSON: expected an object with a \"records\" array")
	}
	rv := v.Get("records")
	if rv == nil {
		return nil, badRequest("Invalid JSON: missing field `records`")
	}
	arr, err := rv.Array()
	if err != nil {
		return nil, badRequest("Invalid JSON: `records` must be an array")
	}
	if d.maxRecs > 0 && len(arr) > d.maxRecs {
		return nil, tooManyRecords(d.maxRecs)
	}
	for i, rec := range arr {
		if err := d.jsonRecord(rec, i); err != nil {
			var de *decodeError
			if errors.As(err, &de) {
				de.msg = fmt.Sprintf("records[%d]: %s", i, de.msg)
			}
			return nil, err
		}
	}
	d.resolve()
	return d.recs, nil
}

// jsonRecord decodes one event object and appends it to d.recs.
func (d *decoder) jsonRecord(v *fastjson.Value, i int) error {
	if v.Type() != fastjson.TypeObject {
		return badRequest("Invalid JSON: expected an object")
	}
	var r engine.Record
	var pv, bv *fastjson.Value
	var err error
	v.GetObject().Visit(func(key []byte, fv *fastjson.Value) {
		if err != nil {
			return
		}
		switch string(key) {
		case "payload":
			pv = fv
		case "payload_base64":
			bv = fv
		case "partition":
			r.Partition, err = jsonPartition(fv)
		case "timestamp_ms":
			if fv.Type() == fastjson.TypeNull {
				break
			}
			r.TimestampMs, err = fv.Int64()
			if err != nil {
				err = badRequest("Invalid JSON: `timestamp_ms` must be an integer (milliseconds)")
			}
		case "idempotency_key":
			switch fv.Type() {
			case fastjson.TypeNull:
			case fastjson.TypeString:
				r.Key = fv.GetStringBytes()
			default:
				err = badRequest("Invalid JSON: `idempotency_key` must be a string")
			}
		}
	})
	if err != nil {
		return err
	}
	switch {
	case pv != nil && bv != nil:
		return invalidInput("Give either `payload` or `payload_base64`, not both")
	case pv != nil && pv.Type() == fastjson.TypeString:
		r.Payload = pv.GetStringBytes()
	case pv != nil:
		// Any other JSON value is stored as its JSON text.
		start := len(d.scratch)
		d.scratch = pv.MarshalTo(d.scratch)
		d.fix = append(d.fix, scratchRef{i, start, len(d.scratch)})
	case bv != nil:
		s, e := bv.StringBytes()
		if e != nil {
			return badRequest("Invalid JSON: `payload_base64` must be a string")
		}
		start := len(d.scratch)
		d.scratch, e = appendBase64(d.scratch, s)
		if e != nil {
			d.scratch = d.scratch[:start]
			return invalidInput("Invalid `payload_base64`: %v", e)
		}
		d.fix = append(d.fix, scratchRef{i, start, len(d.scratch)})
	default:
		return badRequest("Invalid JSON: missing field `payload`")
	}
	if len(r.Payload) == 0 && r.Payload != nil {
		r.Payload = nil
	}
	d.recs = append(d.recs, r)
	return nil
}

func jsonPartition(v *fastjson.Value) (uint32, error) {
	if v.Type() == fastjson.TypeNull {
		return 0, nil
	}
	n, err := v.Int64()
	if err != nil || n < 0 || n > math.MaxUint32 {
		return 0, badRequest("Invalid JSON: `partition` must be a non-negative integer")
	}
	return uint32(n), nil
}

// appendBase64 decodes standard base64, padded or not, onto dst.
func appendBase64(dst, s []byte) ([]byte, error) {
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	return enc.AppendDecode(dst, s)
}

// Protobuf field numbers of proto/zombi.proto.
const (
	eventPayload     protowire.Number = 1
	eventTimestampMs protowire.Number = 2
	eventIdemKey     protowire.Number = 3
	eventHeaders     protowire.Number = 4

	bulkRecords protowire.Number = 1

	bulkRecPayload     protowire.Number = 1
	bulkRecPartition   protowire.Number = 2
	bulkRecTimestampMs protowire.Number = 3
	bulkRecIdemKey     protowire.Number = 4
)

// decodeProtoEvent decodes a zombi.Event; the partition comes from the
// X-Partition header, not the message. Unknown fields are skipped, as
// proto3 requires. Payload and key are sub-slices of body.
func decodeProtoEvent(body []byte, partition uint32) (engine.Record, error) {
	r := engine.Record{Partition: partition}
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return r, protoError(n)
		}
		body = body[n:]
		switch {
		case num == eventPayload && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return r, protoError(n)
			}
			r.Payload, body = v, body[n:]
		case num == eventTimestampMs && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(body)
			if n < 0 {
				return r, protoError(n)
			}
			r.TimestampMs, body = int64(v), body[n:]
		case num == eventIdemKey && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return r, protoError(n)
			}
			if !utf8.Valid(v) {
				return r, badRequest("Invalid protobuf: idempotency_key is not valid UTF-8")
			}
			r.Key, body = v, body[n:]
		case num == eventHeaders && typ == protowire.BytesType:
			// Headers are accepted, checked for framing, and not stored.
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return r, protoError(n)
			}
			if err := checkMessage(v); err != nil {
				return r, err
			}
			body = body[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, body)
			if n < 0 {
				return r, protoError(n)
			}
			body = body[n:]
		}
	}
	if len(r.Payload) == 0 {
		r.Payload = nil
	}
	return r, nil
}

// decodeProtoBulk decodes a zombi.BulkWriteRequest into d.recs.
func (d *decoder) decodeProtoBulk(body []byte) ([]engine.Record, error) {
	d.reset()
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return nil, protoError(n)
		}
		body = body[n:]
		if num == bulkRecords && typ == protowire.BytesType {
			if d.maxRecs > 0 && len(d.recs) >= d.maxRecs {
				return nil, tooManyRecords(d.maxRecs)
			}
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, protoError(n)
			}
			r, err := decodeProtoBulkRecord(v)
			if err != nil {
				return nil, err
			}
			d.recs = append(d.recs, r)
			body = body[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, body)
		if n < 0 {
			return nil, protoError(n)
		}
		body = body[n:]
	}
	return d.recs, nil
}

func decodeProtoBulkRecord(b []byte) (engine.Record, error) {
	var r engine.Record
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return r, protoError(n)
		}
		b = b[n:]
		switch {
		case num == bulkRecPayload && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return r, protoError(n)
			}
			r.Payload, b = v, b[n:]
		case num == bulkRecPartition && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return r, protoError(n)
			}
			// uint32 fields take the low 32 bits of the varint (proto3).
			r.Partition, b = uint32(v), b[n:]
		case num == bulkRecTimestampMs && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return r, protoError(n)
			}
			r.TimestampMs, b = int64(v), b[n:]
		case num == bulkRecIdemKey && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return r, protoError(n)
			}
			if !utf8.Valid(v) {
				return r, badRequest("Invalid protobuf: idempotency_key is not valid UTF-8")
			}
			r.Key, b = v, b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return r, protoError(n)
			}
			b = b[n:]
		}
	}
	if len(r.Payload) == 0 {
		r.Payload = nil
	}
	return r, nil
}

// checkMessage checks that b is a well-framed protobuf message.
func checkMessage(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protoError(n)
		}
		b = b[n:]
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return protoError(n)
		}
		b = b[n:]
	}
	return nil
}

func protoError(n int) error {
	return badRequest("Invalid protobuf: %v", protowire.ParseError(n))
}
