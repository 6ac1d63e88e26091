package wire

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zombihq/zombi/engine"
)

// The protobuf bodies of the write API (proto/zombi.proto): zombi.Event
// for POST /tables/{t}, zombi.BulkWriteRequest for /bulk.

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

// ProtoEvent decodes a zombi.Event; the partition comes from the
// X-Partition header, not the message. Unknown fields are skipped, as
// proto3 requires. Payload and key are sub-slices of body.
func ProtoEvent(body []byte, partition uint32) (engine.Record, error) {
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

// ProtoBulk decodes a zombi.BulkWriteRequest. Payloads and keys are
// sub-slices of body.
func (d *Decoder) ProtoBulk(body []byte) ([]engine.Record, error) {
	d.reset()
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return nil, protoError(n)
		}
		body = body[n:]
		if num == bulkRecords && typ == protowire.BytesType {
			if d.MaxRecords > 0 && len(d.recs) >= d.MaxRecords {
				return nil, tooManyRecords(d.MaxRecords)
			}
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, protoError(n)
			}
			r, err := decodeProtoBulkRecord(v, d.defaultPartition())
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

func decodeProtoBulkRecord(b []byte, partition uint32) (engine.Record, error) {
	r := engine.Record{Partition: partition}
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
			// uint32 fields take the low 32 bits of the varint (proto3);
			// 0 names no partition (what proto3 writers send for it).
			if p := uint32(v); p != 0 {
				r.Partition = p
			}
			b = b[n:]
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

func protoError(n int) *Error {
	return badRequest("Invalid protobuf: %v", protowire.ParseError(n))
}
