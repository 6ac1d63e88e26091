// Package index is the sparse offset and time index of one segment.
//
// One Entry is kept for about every IntervalBytes of records (like Kafka's
// index.interval.bytes): the sequence and byte position of the record that
// starts there, and the largest timestamp of all records before it. A read
// by sequence starts at the last entry at or below it and scans at most one
// interval; a read by time starts at the last entry whose preceding records
// are all older than the wanted time. Timestamps need not be monotonic: the
// running maximum is.
//
// # Encoding
//
//	+-------+---------+----------+----------+--------+-----------+----------+--------+--------+--------------------+--------+
//	| magic | version | flags    | base seq | count  | n entries | data len | min ts | max ts | entries            | crc32c |
//	| 4 B   | 1 B     | 1 B + 2  | 8 B      | 4 B    | 4 B       | 8 B      | 8 B    | 8 B    | n × EntrySize      | 4 B    |
//	+-------+---------+----------+----------+--------+-----------+----------+--------+--------+--------------------+--------+
//
//	flags bit 0 (FlagHasKeys): some record carries an idempotency key.
//	Entry (EntrySize = 16 bytes): rel seq u32 | position u32 | max ts before i64
//
// All integers are little endian; the CRC (Castagnoli) covers every byte
// before it. These constants are part of the on-disk format.
package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"sort"
)

const (
	// Magic opens every index file.
	Magic = "ZIDX"
	// FormatVersion is the encoding version.
	FormatVersion = 1
	// HeaderSize is the fixed part before the entries.
	HeaderSize = 48
	// EntrySize is the size of one encoded entry.
	EntrySize = 16
	// TrailerSize is the CRC after the entries.
	TrailerSize = 4
	// DefaultIntervalBytes is the record bytes between two entries.
	DefaultIntervalBytes = 4096
	// FlagHasKeys marks a segment in which some record has an idempotency key.
	FlagHasKeys = 1 << 0
)

var (
	// ErrCorrupt means the encoded index is damaged or inconsistent.
	ErrCorrupt = errors.New("index: corrupt")
	// ErrVersion means the encoding has a version we do not read.
	ErrVersion = errors.New("index: unsupported format version")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Entry is one sparse index point.
type Entry struct {
	RelSeq      uint32 // sequence - base of the record at Pos
	Pos         uint32 // byte position of that record in the segment
	MaxTsBefore int64  // largest timestamp of the records before Pos (math.MinInt64 if none)
}

// Index is the index of one segment.
type Index struct {
	Base    uint64  // sequence of the segment's first record
	Flags   uint8   // FlagHasKeys
	Count   uint32  // records in the segment
	DataLen uint64  // segment bytes (header + records) the index covers
	MinTs   int64   // smallest timestamp (math.MaxInt64 when empty)
	MaxTs   int64   // largest timestamp (math.MinInt64 when empty)
	Entries []Entry // ascending by RelSeq and Pos
}

// New returns an empty index of a segment starting at base.
func New(base uint64) Index {
	return Index{Base: base, MinTs: math.MaxInt64, MaxTs: math.MinInt64}
}

// Last returns the sequence of the last record. It is Base-1 when empty.
func (x *Index) Last() uint64 { return x.Base + uint64(x.Count) - 1 }

// Builder adds entries to an index as records are appended.
type Builder struct {
	Index
	interval int
	since    int // record bytes since the last entry
}

// NewBuilder returns a builder for a segment starting at base, with one
// entry per interval bytes (DefaultIntervalBytes when interval <= 0).
func NewBuilder(base uint64, interval int) *Builder {
	if interval <= 0 {
		interval = DefaultIntervalBytes
	}
	return &Builder{Index: New(base), interval: interval}
}

// Add records that the record seq, of length n, was written at pos and
// that the segment's data now ends at pos+n. Records must be added in order.
func (b *Builder) Add(seq uint64, pos int64, n int, ts int64, hasKey bool) {
	if hasKey {
		b.Flags |= FlagHasKeys
	}
	if b.Count == 0 || b.since >= b.interval {
		b.Entries = append(b.Entries, Entry{RelSeq: uint32(seq - b.Base), Pos: uint32(pos), MaxTsBefore: b.MaxTs})
		b.since = 0
	}
	b.since += n
	b.Count++
	b.DataLen = uint64(pos) + uint64(n)
	if ts < b.MinTs {
		b.MinTs = ts
	}
	if ts > b.MaxTs {
		b.MaxTs = ts
	}
}

// Snapshot returns a copy of the index so far that shares the entries
// array; later Adds only append beyond its length, so it stays valid.
func (b *Builder) Snapshot() Index {
	x := b.Index
	x.Entries = x.Entries[:len(x.Entries):len(x.Entries)]
	return x
}

// Seek returns the entry to start a scan for sequence seq: the last entry
// at or below it, or the first entry when seq is below the base. ok is
// false when the index is empty.
func (x *Index) Seek(seq uint64) (Entry, bool) {
	if len(x.Entries) == 0 {
		return Entry{}, false
	}
	if seq <= x.Base {
		return x.Entries[0], true
	}
	rel := seq - x.Base
	i := sort.Search(len(x.Entries), func(i int) bool { return uint64(x.Entries[i].RelSeq) > rel })
	if i == 0 {
		i = 1
	}
	return x.Entries[i-1], true
}

// SeekTime returns the entry to start a scan for the first record with a
// timestamp >= ts: the last entry all of whose preceding records are older
// than ts. ok is false when the index is empty.
func (x *Index) SeekTime(ts int64) (Entry, bool) {
	if len(x.Entries) == 0 {
		return Entry{}, false
	}
	i := sort.Search(len(x.Entries), func(i int) bool { return x.Entries[i].MaxTsBefore >= ts })
	if i == 0 {
		i = 1
	}
	return x.Entries[i-1], true
}

// EncodedSize returns the length of the encoding of x.
func (x *Index) EncodedSize() int { return HeaderSize + len(x.Entries)*EntrySize + TrailerSize }

// Marshal appends the encoding of x to dst.
func (x *Index) Marshal(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, Magic...)
	dst = append(dst, FormatVersion, x.Flags, 0, 0)
	dst = binary.LittleEndian.AppendUint64(dst, x.Base)
	dst = binary.LittleEndian.AppendUint32(dst, x.Count)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(x.Entries)))
	dst = binary.LittleEndian.AppendUint64(dst, x.DataLen)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(x.MinTs))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(x.MaxTs))
	for _, e := range x.Entries {
		dst = binary.LittleEndian.AppendUint32(dst, e.RelSeq)
		dst = binary.LittleEndian.AppendUint32(dst, e.Pos)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.MaxTsBefore))
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// Unmarshal decodes an index from the start of src and returns the bytes
// after it. The result is validated; damage is reported as ErrCorrupt.
func (x *Index) Unmarshal(src []byte) ([]byte, error) {
	if len(src) < HeaderSize+TrailerSize {
		return src, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(src))
	}
	if string(src[:4]) != Magic {
		return src, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	n := binary.LittleEndian.Uint32(src[20:])
	if uint64(n) > uint64(len(src)-HeaderSize-TrailerSize)/EntrySize {
		return src, fmt.Errorf("%w: %d entries do not fit in %d bytes", ErrCorrupt, n, len(src))
	}
	end := HeaderSize + int(n)*EntrySize
	if crc32.Checksum(src[:end], castagnoli) != binary.LittleEndian.Uint32(src[end:]) {
		return src, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if src[4] != FormatVersion {
		return src, ErrVersion
	}
	// The reserved bytes are written as zero; anything else would not
	// survive a re-encoding.
	if src[6] != 0 || src[7] != 0 {
		return src, fmt.Errorf("%w: reserved bytes set", ErrCorrupt)
	}
	// Decode into a copy so that x is left alone when the data is bad.
	y := Index{
		Flags:   src[5],
		Base:    binary.LittleEndian.Uint64(src[8:]),
		Count:   binary.LittleEndian.Uint32(src[16:]),
		DataLen: binary.LittleEndian.Uint64(src[24:]),
		MinTs:   int64(binary.LittleEndian.Uint64(src[32:])),
		MaxTs:   int64(binary.LittleEndian.Uint64(src[40:])),
		Entries: make([]Entry, n),
	}
	b := src[HeaderSize:end]
	for i := range y.Entries {
		y.Entries[i] = Entry{
			RelSeq:      binary.LittleEndian.Uint32(b),
			Pos:         binary.LittleEndian.Uint32(b[4:]),
			MaxTsBefore: int64(binary.LittleEndian.Uint64(b[8:])),
		}
		b = b[EntrySize:]
	}
	if err := y.validate(); err != nil {
		return src, err
	}
	*x = y
	return src[end+TrailerSize:], nil
}

// validate checks the invariants an index must hold whatever its source.
func (x *Index) validate() error {
	if x.Count == 0 {
		if len(x.Entries) != 0 {
			return fmt.Errorf("%w: entries without records", ErrCorrupt)
		}
		return nil
	}
	if len(x.Entries) == 0 || x.Entries[0].RelSeq != 0 || x.Entries[0].MaxTsBefore != math.MinInt64 {
		return fmt.Errorf("%w: first entry missing", ErrCorrupt)
	}
	if x.MinTs > x.MaxTs {
		return fmt.Errorf("%w: min ts above max ts", ErrCorrupt)
	}
	for i, e := range x.Entries {
		if e.RelSeq >= x.Count || uint64(e.Pos) >= x.DataLen || e.MaxTsBefore > x.MaxTs {
			return fmt.Errorf("%w: entry %d out of range", ErrCorrupt, i)
		}
		if i > 0 {
			p := x.Entries[i-1]
			if e.RelSeq <= p.RelSeq || e.Pos <= p.Pos || e.MaxTsBefore < p.MaxTsBefore {
				return fmt.Errorf("%w: entry %d out of order", ErrCorrupt, i)
			}
		}
	}
	return nil
}
