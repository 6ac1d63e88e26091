package bench

import (
	"math/rand/v2"
	"strconv"

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

// payloadGen makes the payloads of one worker. With unique set, each
// payload starts with "w<worker>-<seq>-", so a read-back can tell every
// event apart; otherwise every payload is the same filler (the cheapest
// for the generator).
type payloadGen struct {
	worker int
	unique bool
	fresh  bool // new random bytes for every payload
	rng    *rand.PCG
	base   []byte
	buf    []byte
}

func newPayloadGen(worker, size int, unique, fresh bool) *payloadGen {
	return &payloadGen{worker: worker, unique: unique, fresh: fresh, rng: rand.NewPCG(uint64(worker), 0xf4e5),
		base: filler(size, uint64(worker)+1), buf: make([]byte, size)}
}

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
		if !g.unique {
			return b
		}
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

// appendSingleBody appends the body of POST /tables/{t}.
func appendSingleBody(dst []byte, enc string, payload []byte, partition uint32) []byte {
	if enc == EncodingProtobuf {
		dst = protowire.AppendTag(dst, pbEventPayload, protowire.BytesType)
		return protowire.AppendBytes(dst, payload)
	}
	dst = append(dst, `{"payload":"`...)
	dst = append(dst, payload...) // alphanumerics: no escaping needed
	dst = append(dst, `","partition":`...)
	dst = strconv.AppendUint(dst, uint64(partition), 10)
	return append(dst, '}')
}

// appendBulkBody appends the body of POST /tables/{t}/bulk with n records.
func appendBulkBody(dst []byte, enc string, n int, partition uint32, payload func(i int) []byte) []byte {
	if enc == EncodingProtobuf {
		for i := range n {
			p := payload(i)
			size := protowire.SizeTag(pbRecPayload) + protowire.SizeBytes(len(p))
			if partition != 0 {
				size += protowire.SizeTag(pbRecPartition) + protowire.SizeVarint(uint64(partition))
			}
			dst = protowire.AppendTag(dst, pbBulkRecords, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(size))
			dst = protowire.AppendTag(dst, pbRecPayload, protowire.BytesType)
			dst = protowire.AppendBytes(dst, p)
			if partition != 0 {
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
		dst = append(dst, `{"payload":"`...)
		dst = append(dst, payload(i)...)
		dst = append(dst, `","partition":`...)
		dst = strconv.AppendUint(dst, uint64(partition), 10)
		dst = append(dst, '}')
	}
	return append(dst, `]}`...)
}
