// Package segment implements one segment file of one partition's log: an
// append-only run of CRC-protected records with contiguous sequence numbers.
//
// # File format
//
// A segment file is a fixed 64-byte header followed by records. While a
// segment is active its file is pre-allocated to its full capacity with
// fallocate(2), so the bytes after the last record are zero; sealing trims
// the file to its used length and sets the sealed flag.
//
// An active segment may instead live in a recycled file: a sealed segment
// of the same partition whose records were all flushed, reused so that its
// blocks and page-cache pages are written over instead of allocated anew
// (see Recycle). Its header carries the recycled flag, and the bytes after
// its last record are the former segment's records, not zeros. The data of
// a recycled segment ends at the first record that is not valid or not the
// next in sequence: the former records all have sequences below the new
// base (offsets are never reused within a partition), so none can pass for
// a record of the new segment.
//
//	Header (HeaderSize = 64 bytes, little endian):
//	+--------+---------+-------+----------+-----------+------------+-------------+--------+----------+
//	| magic  | version | flags | reserved | base seq  | created ms | data length | crc32c | reserved |
//	| 4 B    | 1 B     | 1 B   | 2 B      | 8 B       | 8 B        | 8 B         | 4 B    | 28 B     |
//	+--------+---------+-------+----------+-----------+------------+-------------+--------+----------+
//	  0        4         5       6          8           16           24            32       36
//
//	magic        "ZSEG"
//	version      FormatVersion (1)
//	flags        bit 0: sealed (data length is final; the file holds nothing else)
//	             bit 1: recycled (active segments only: the bytes after the
//	             last record are a former segment's; sealing clears it)
//	base seq     sequence of the first record in this segment (the file name)
//	created ms   Unix milliseconds when the segment was created
//	data length  bytes of header+records when sealed, 0 while active
//	crc32c       Castagnoli CRC of bytes [0, 32)
//
//	Record (RecordHeaderSize = 26 bytes + key + payload, little endian):
//	+--------+----------+----------+--------------+---------+-------------+-----------+
//	| crc32c | body len | sequence | timestamp ms | key len | key         | payload   |
//	| 4 B    | 4 B      | 8 B      | 8 B (signed) | 2 B     | key len B   | rest      |
//	+--------+----------+----------+--------------+---------+-------------+-----------+
//	  0        4          8          16             24        26
//
//	crc32c       Castagnoli CRC of bytes [4, 8+body len): the length and the body
//	body len     bytes after the length field: 18 + key len + payload len
//	sequence     the record's offset in its partition; base seq + index in segment
//	timestamp ms event time in Unix milliseconds
//	key len      length of the idempotency key, 0 when there is none
//
// A record whose first 8 bytes are zero marks the end of the data: no valid
// record has a body length below MinBodyLen (in a recycled segment, so does
// the first record that is not valid and next in sequence). Records are not
// padded.
//
// These constants are part of the on-disk format and must not be changed;
// a change of layout gets a new FormatVersion. The format is pinned by the
// golden file testdata/golden-v1.seg.
package segment

import (
	"encoding/binary"
	"hash/crc32"
)

const (
	// Magic opens every segment file.
	Magic = "ZSEG"
	// FormatVersion is the version written into new segment headers.
	FormatVersion = 1

	// HeaderSize is the size of the file header; records start here.
	HeaderSize = 64
	// headerCRCOffset is where the header's CRC sits; it covers [0, headerCRCOffset).
	headerCRCOffset = 32

	// FlagSealed marks a segment whose data length is final.
	FlagSealed = 1 << 0
	// FlagRecycled marks a segment written over a former segment's file:
	// its data ends at the first record that is not the next in sequence.
	FlagRecycled = 1 << 1

	// RecordHeaderSize is the fixed part of a record.
	RecordHeaderSize = 26
	// MinBodyLen is the body length of a record with no key and no payload.
	MinBodyLen = RecordHeaderSize - 8
	// MaxKeyLen is the longest idempotency key a record can carry.
	MaxKeyLen = 1<<16 - 1
	// MaxPayloadLen bounds one record's payload (64 MiB).
	MaxPayloadLen = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one event as stored in a segment.
type Record struct {
	Seq         uint64
	TimestampMs int64
	Key         []byte // idempotency key; nil or empty when none
	Payload     []byte
}

// EncodedLen returns the number of bytes r takes in a segment.
func (r *Record) EncodedLen() int { return RecordHeaderSize + len(r.Key) + len(r.Payload) }

// putRecord encodes r into b, which must be at least r.EncodedLen() long,
// and returns the number of bytes written.
func putRecord(b []byte, r *Record) int {
	n := r.EncodedLen()
	b = b[:n]
	binary.LittleEndian.PutUint32(b[4:], uint32(n-8))
	binary.LittleEndian.PutUint64(b[8:], r.Seq)
	binary.LittleEndian.PutUint64(b[16:], uint64(r.TimestampMs))
	binary.LittleEndian.PutUint16(b[24:], uint16(len(r.Key)))
	copy(b[RecordHeaderSize:], r.Key)
	copy(b[RecordHeaderSize+len(r.Key):], r.Payload)
	binary.LittleEndian.PutUint32(b[0:], crc32.Checksum(b[4:], castagnoli))
	return n
}

// AppendRecord appends the encoding of r to dst.
func AppendRecord(dst []byte, r *Record) []byte {
	n := r.EncodedLen()
	dst = growBytes(dst, n)
	putRecord(dst[len(dst)-n:], r)
	return dst
}

func growBytes(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// decodeRecord decodes the record at the start of b. The returned record
// aliases b. It returns the record's encoded length, or an error saying
// why the bytes are not a record: errZeroed when the header is all zero,
// ErrUnexpectedEOF when b ends inside the record, ErrBadLength or
// ErrChecksum otherwise.
func decodeRecord(b []byte) (Record, int, error) {
	if len(b) < 8 {
		if allZero(b) {
			return Record{}, 0, errZeroed
		}
		return Record{}, 0, ErrUnexpectedEOF
	}
	crc := binary.LittleEndian.Uint32(b)
	bodyLen := binary.LittleEndian.Uint32(b[4:])
	if crc == 0 && bodyLen == 0 {
		return Record{}, 0, errZeroed
	}
	if bodyLen < MinBodyLen || bodyLen > MinBodyLen+MaxKeyLen+MaxPayloadLen {
		return Record{}, 0, ErrBadLength
	}
	n := 8 + int(bodyLen)
	if n > len(b) {
		return Record{}, 0, ErrUnexpectedEOF
	}
	if crc32.Checksum(b[4:n], castagnoli) != crc {
		return Record{}, 0, ErrChecksum
	}
	keyLen := int(binary.LittleEndian.Uint16(b[24:]))
	if RecordHeaderSize+keyLen > n {
		return Record{}, 0, ErrBadLength
	}
	r := Record{
		Seq:         binary.LittleEndian.Uint64(b[8:]),
		TimestampMs: int64(binary.LittleEndian.Uint64(b[16:])),
		Payload:     b[RecordHeaderSize+keyLen : n : n],
	}
	if keyLen > 0 {
		r.Key = b[RecordHeaderSize : RecordHeaderSize+keyLen : RecordHeaderSize+keyLen]
	}
	return r, n, nil
}

// header is the decoded file header.
type header struct {
	version    uint8
	flags      uint8
	baseSeq    uint64
	createdMs  int64
	dataLength uint64
}

func (h *header) marshal(b []byte) {
	clear(b[:HeaderSize])
	copy(b, Magic)
	b[4] = h.version
	b[5] = h.flags
	binary.LittleEndian.PutUint64(b[8:], h.baseSeq)
	binary.LittleEndian.PutUint64(b[16:], uint64(h.createdMs))
	binary.LittleEndian.PutUint64(b[24:], h.dataLength)
	binary.LittleEndian.PutUint32(b[headerCRCOffset:], crc32.Checksum(b[:headerCRCOffset], castagnoli))
}

func (h *header) unmarshal(b []byte) error {
	if len(b) < HeaderSize {
		return ErrBadHeader
	}
	if string(b[:4]) != Magic {
		return ErrBadHeader
	}
	if crc32.Checksum(b[:headerCRCOffset], castagnoli) != binary.LittleEndian.Uint32(b[headerCRCOffset:]) {
		return ErrBadHeader
	}
	h.version = b[4]
	if h.version != FormatVersion {
		return ErrVersion
	}
	h.flags = b[5]
	h.baseSeq = binary.LittleEndian.Uint64(b[8:])
	h.createdMs = int64(binary.LittleEndian.Uint64(b[16:]))
	h.dataLength = binary.LittleEndian.Uint64(b[24:])
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
