package bench

import (
	"math/rand/v2"
	"strconv"

	"github.com/valyala/fastjson"
	"google.golang.org/protobuf/encoding/protowire"
)

// Encodings of write requests.
const (
	EncodingJSON     = "json"
	EncodingProtobuf = "protobuf"
)

// Protobuf field numbers of proto/zombi.proto (Event, BulkWriteRequest,
// BulkWriteRecord); the server's decoder in httpd/decode.go uses the same.
const (
	pbEventPayload   protowire.Number = 1
	pbBulkRecords    protowire.Number = 1
	pbRecPayload     protowire.Number = 1
	pbRecPartition   protowire.Number = 2
	jsonContentType                   = "application/json"
	protoContentType                  = "application/x-protobuf"
)

// filler returns size random alphanumerics (JSON-safe, not compressible).
func filler(size int, seed uint64) []byte {
	const alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r := rand.New(rand.NewPCG(seed, 0x10ad))
	b := make([]byte, size)
	for i := range b {
		b[i] = alpha[r.IntN(len(alpha))]
	}
	return b
}

// The ids of payloads. A run with acks (Config.Acks) tags every payload
// with an id unique across runs, and the payload is a JSON object of
// exactly Config.Size bytes, stored by the server as it was sent:
//
//	{"id":"<tag>-w<worker>-<seq>","pad":"<filler>"}
//
// where tag is the run's tag (Config.RunTag: 8 random hex digits unless
// set), worker the connection's number and seq the event's number within
// the worker's run, from 0. The consistency scenario without acks starts
// the payload's text with "w<worker>-<seq>-" instead. PayloadID reads both.
const (
	idOpen  = `{"id":"`
	idClose = `","pad":"`
	padEnd  = `"}`
	// minTaggedSize is the smallest payload that holds a tagged id: the
	// JSON around it (18 B), a tag of up to maxTagLen, "-w", a worker
	// number up to 10000 and a seq of up to 20 digits.
	minTaggedSize = 64
	maxTagLen     = 16
)

// payloadID returns the id of payload seq of worker: "<tag>-w<worker>-<seq>",
// or "w<worker>-<seq>" with no tag.
func payloadID(tag string, worker int, seq uint64) string {
	return string(appendPayloadID(nil, tag, worker, seq))
}

func appendPayloadID(dst []byte, tag string, worker int, seq uint64) []byte {
	if tag != "" {
		dst = append(dst, tag...)
		dst = append(dst, '-')
	}
	dst = append(dst, 'w')
	dst = strconv.AppendInt(dst, int64(worker), 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, seq, 10)
}

// idParsers parse the payloads PayloadID is given.
var idParsers fastjson.ParserPool

// PayloadID returns the id carried by a payload `zombi load` sent: the
// "id" string of a JSON object payload (the runs with --acks, whose ids
// are the lines of the acks file), or the "w<worker>-<seq>" that starts a
// consistency run's payload ("w<worker>-<seq>-…"). ok is false when the
// payload carries neither.
func PayloadID(payload []byte) (id string, ok bool) {
	if len(payload) > 0 && payload[0] == '{' {
		p := idParsers.Get()
		defer idParsers.Put(p)
		v, err := p.ParseBytes(payload)
		if err != nil {
			return "", false
		}
		b := v.GetStringBytes("id")
		return string(b), len(b) > 0
	}
	// "w<worker>-<seq>-…"
	if len(payload) == 0 || payload[0] != 'w' {
		return "", false
	}
	i := 1
	for part := range 2 {
		start := i
		for i < len(payload) && payload[i] >= '0' && payload[i] <= '9' {
			i++
		}
		if i == start || i == len(payload) || payload[i] != '-' {
			return "", false
		}
		if part == 1 {
			return string(payload[:i]), true
		}
		i++
	}
	return "", false
}

// payloadGen makes the payloads of one worker. With a tag, each payload
// is a JSON object carrying the id "<tag>-w<worker>-<seq>" (see the ids
// above); with unique set and no tag, each starts with "w<worker>-<seq>-",
// so a read-back can tell every event apart; otherwise every payload is
// the same filler (the cheapest for the generator).
type payloadGen struct {
	worker int
	unique bool
	tag    string
	fresh  bool // new random bytes for every payload
	rng    *rand.PCG
	base   []byte
	buf    []byte
}

func newPayloadGen(worker, size int, unique, fresh bool, tag string) *payloadGen {
	return &payloadGen{worker: worker, unique: unique, tag: tag, fresh: fresh, rng: rand.NewPCG(uint64(worker), 0xf4e5),
		base: filler(size, uint64(worker)+1), buf: make([]byte, size)}
}

// object reports whether the payloads are JSON objects (sent as a JSON
// value, not a string).
func (g *payloadGen) object() bool { return g.tag != "" }

// next returns payload number seq; valid until the next call.
func (g *payloadGen) next(seq uint64) []byte {
	if g.fresh {
		// Random alphanumerics (~6 bits of entropy a byte), so that a
		// compressor downstream (Parquet ZSTD) sees realistic data.
		const alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
		b := g.base
		for i := 0; i < len(b); i += 10 {
			r := g.rng.Uint64()
			for j := i; j < min(i+10, len(b)); j++ {
				b[j] = alpha[r&63]
				r >>= 6
			}
		}
		if !g.unique && g.tag == "" {
			return b
		}
	}
	if g.tag != "" {
		// Config.Validate keeps Size >= minTaggedSize, so the pad is
		// never negative.
		b := append(g.buf[:0], idOpen...)
		b = appendPayloadID(b, g.tag, g.worker, seq)
		b = append(b, idClose...)
		b = append(b, g.base[:len(g.base)-len(b)-len(padEnd)]...)
		b = append(b, padEnd...)
		g.buf = b
		return b
	}
	if !g.unique {
		return g.base
	}
	b := append(g.buf[:0], 'w')
	b = strconv.AppendInt(b, int64(g.worker), 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '-')
	if len(b) < len(g.base) {
		b = append(b, g.base[len(b):]...)
	}
	g.buf = b
	return b
}

// appendJSONPayload appends "payload":… to a JSON event: the payload as a
// JSON string, or, when it is a JSON object (object set), as that object,
// which the server stores as its compact text: the bytes sent.
func appendJSONPayload(dst, payload []byte, object bool) []byte {
	if object {
		dst = append(dst, `"payload":`...)
		return append(dst, payload...)
	}
	dst = append(dst, `"payload":"`...)
	dst = append(dst, payload...) // alphanumerics: no escaping needed
	return append(dst, '"')
}

// noPartition, as the partition of a body, names none: the server
// places the write (Config.Unplaced).
const noPartition = -1

// appendSingleBody appends the body of POST /tables/{t}; object tells
// whether the payload is a JSON object (see appendJSONPayload).
// partition may be noPartition.
func appendSingleBody(dst []byte, enc string, payload []byte, object bool, partition int64) []byte {
	if enc == EncodingProtobuf {
		dst = protowire.AppendTag(dst, pbEventPayload, protowire.BytesType)
		return protowire.AppendBytes(dst, payload)
	}
	dst = append(dst, '{')
	dst = appendJSONPayload(dst, payload, object)
	if partition != noPartition {
		dst = append(dst, `,"partition":`...)
		dst = strconv.AppendInt(dst, partition, 10)
	}
	return append(dst, '}')
}

// appendBulkBody appends the body of POST /tables/{t}/bulk with n records.
// partition may be noPartition (protobuf names none for 0 too: proto3).
func appendBulkBody(dst []byte, enc string, n int, partition int64, object bool, payload func(i int) []byte) []byte {
	if enc == EncodingProtobuf {
		for i := range n {
			p := payload(i)
			size := protowire.SizeTag(pbRecPayload) + protowire.SizeBytes(len(p))
			if partition > 0 {
				size += protowire.SizeTag(pbRecPartition) + protowire.SizeVarint(uint64(partition))
			}
			dst = protowire.AppendTag(dst, pbBulkRecords, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(size))
			dst = protowire.AppendTag(dst, pbRecPayload, protowire.BytesType)
			dst = protowire.AppendBytes(dst, p)
			if partition > 0 {
				dst = protowire.AppendTag(dst, pbRecPartition, protowire.VarintType)
				dst = protowire.AppendVarint(dst, uint64(partition))
			}
		}
		return dst
	}
	dst = append(dst, `{"records":[`...)
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '{')
		dst = appendJSONPayload(dst, payload(i), object)
		if partition != noPartition {
			dst = append(dst, `,"partition":`...)
			dst = strconv.AppendInt(dst, partition, 10)
		}
		dst = append(dst, '}')
	}
	return append(dst, `]}`...)
}
