package index_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"

	"github.com/zombihq/zombi/index"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rec is one record of a simulated segment.
type rec struct {
	pos int64
	n   int
	ts  int64
	key bool
}

// segmentHeader is where the first record of a segment starts.
const segmentHeader = 64

// randomRecords returns n records with random sizes and non-monotonic
// timestamps: a drifting clock with jitter and occasional far outliers.
func randomRecords(rng *rand.Rand, n int) []rec {
	recs := make([]rec, n)
	pos := int64(segmentHeader)
	ts := int64(1_700_000_000_000)
	for i := range recs {
		size := 26 + rng.IntN(600)
		if rng.IntN(50) == 0 {
			size += rng.IntN(20000) // now and then a record larger than an interval
		}
		ts += int64(rng.IntN(20)) - 5
		t := ts
		switch rng.IntN(40) {
		case 0:
			t -= int64(rng.IntN(1_000_000))
		case 1:
			t += int64(rng.IntN(1_000_000))
		}
		recs[i] = rec{pos: pos, n: size, ts: t, key: rng.IntN(10) == 0}
		pos += int64(size)
	}
	return recs
}

func build(base uint64, interval int, recs []rec) *index.Builder {
	b := index.NewBuilder(base, interval)
	for i, r := range recs {
		b.Add(base+uint64(i), r.pos, r.n, r.ts, r.key)
	}
	return b
}

func TestBuilderInterval(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, interval := range []int{1, 100, 1000, 4096, 1 << 20} {
		recs := randomRecords(rng, 3000)
		b := build(77, interval, recs)
		x := b.Snapshot()
		checkBuilt(t, &x, 77, interval, recs)
	}
}

// checkBuilt checks every field of x built from recs.
func checkBuilt(t *testing.T, x *index.Index, base uint64, interval int, recs []rec) {
	t.Helper()
	if x.Base != base || x.Count != uint32(len(recs)) {
		t.Fatalf("base %d count %d, want %d %d", x.Base, x.Count, base, len(recs))
	}
	if len(recs) == 0 {
		if len(x.Entries) != 0 || x.MinTs != math.MaxInt64 || x.MaxTs != math.MinInt64 || x.Last() != base-1 {
			t.Fatalf("empty index: %+v", x)
		}
		return
	}
	minTs, maxTs, keys := int64(math.MaxInt64), int64(math.MinInt64), false
	for _, r := range recs {
		minTs, maxTs, keys = min(minTs, r.ts), max(maxTs, r.ts), keys || r.key
	}
	last := recs[len(recs)-1]
	if x.MinTs != minTs || x.MaxTs != maxTs || x.DataLen != uint64(last.pos)+uint64(last.n) ||
		(x.Flags&index.FlagHasKeys != 0) != keys || x.Last() != base+uint64(len(recs))-1 {
		t.Fatalf("index %+v does not match its records (min %d max %d keys %v)", *x, minTs, maxTs, keys)
	}
	if e := x.Entries[0]; e.RelSeq != 0 || e.Pos != segmentHeader || e.MaxTsBefore != math.MinInt64 {
		t.Fatalf("first entry %+v", e)
	}
	for k, e := range x.Entries {
		r := recs[e.RelSeq]
		if int64(e.Pos) != r.pos {
			t.Fatalf("entry %d: pos %d, record %d is at %d", k, e.Pos, e.RelSeq, r.pos)
		}
		want := int64(math.MinInt64)
		for _, p := range recs[:e.RelSeq] {
			want = max(want, p.ts)
		}
		if e.MaxTsBefore != want {
			t.Fatalf("entry %d: MaxTsBefore %d, want %d", k, e.MaxTsBefore, want)
		}
		// One entry per ~interval bytes: the next entry starts at the
		// first record boundary at least interval bytes on.
		end := int64(x.DataLen)
		if k+1 < len(x.Entries) {
			next := x.Entries[k+1]
			end = int64(next.Pos)
			gap := end - int64(e.Pos)
			before := recs[next.RelSeq-1]
			if gap < int64(interval) || gap-int64(before.n) >= int64(interval) {
				t.Fatalf("entries %d and %d are %d bytes apart (interval %d, last record %d bytes)", k, k+1, gap, interval, before.n)
			}
		} else if end-int64(e.Pos)-int64(last.n) >= int64(interval) {
			t.Fatalf("no entry in the last %d bytes (interval %d)", end-int64(e.Pos), interval)
		}
	}
}

func TestBuilderDefaultInterval(t *testing.T) {
	b := index.NewBuilder(0, 0)
	for i := range 20 {
		b.Add(uint64(i), segmentHeader+int64(i)*1000, 1000, int64(i), false)
	}
	// 4 records are 4000 bytes (< 4096), 5 are 5000: an entry every 5.
	if len(b.Entries) != 4 {
		t.Fatalf("%d entries, want 4: %+v", len(b.Entries), b.Entries)
	}
	for k, e := range b.Entries {
		if e.RelSeq != uint32(5*k) {
			t.Fatalf("entry %d at record %d, want %d", k, e.RelSeq, 5*k)
		}
	}
}

func TestSnapshot(t *testing.T) {
	b := index.NewBuilder(10, 1)
	b.Add(10, segmentHeader, 30, 5, false)
	snap := b.Snapshot()
	for i := range 100 {
		b.Add(uint64(11+i), segmentHeader+30*int64(i+1), 30, int64(i), true)
	}
	if snap.Count != 1 || len(snap.Entries) != 1 || snap.Flags != 0 || snap.Entries[0] != (index.Entry{RelSeq: 0, Pos: segmentHeader, MaxTsBefore: math.MinInt64}) {
		t.Fatalf("later Adds changed the snapshot: %+v", snap)
	}
}

// TestSeekProperty compares Seek and SeekTime with a brute-force scan of
// random records.
func TestSeekProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for iter := range 40 {
		n := rng.IntN(1500)
		if iter == 0 {
			n = 0
		}
		base := rng.Uint64N(1 << 40)
		recs := randomRecords(rng, n)
		interval := []int{1, 64, 512, 4096, 16384}[rng.IntN(5)]
		b := build(base, interval, recs)
		x := b.Snapshot()
		if n == 0 {
			if _, ok := x.Seek(base); ok {
				t.Fatal("Seek on an empty index")
			}
			if _, ok := x.SeekTime(0); ok {
				t.Fatal("SeekTime on an empty index")
			}
			continue
		}

		// lastEntryAtOrBelow is the brute-force answer: the last entry whose
		// record index is <= j.
		lastEntryAtOrBelow := func(j int) index.Entry {
			e := x.Entries[0]
			for _, c := range x.Entries {
				if int(c.RelSeq) <= j {
					e = c
				}
			}
			return e
		}

		for q := -3; q < n+3; q++ {
			seq := base + uint64(q) // wraps for q < 0 only if base < 3; base-3 is fine otherwise
			if q < 0 && base < 3 {
				continue
			}
			e, ok := x.Seek(seq)
			want := lastEntryAtOrBelow(max(q, 0))
			if !ok || e != want {
				t.Fatalf("Seek(base%+d) = %+v, want %+v", q, e, want)
			}
			if q >= 0 && q < n {
				// Scanning from e reaches the record within one interval.
				scanned := 0
				for i := int(e.RelSeq); i < q; i++ {
					scanned += recs[i].n
				}
				if int64(e.Pos) != recs[e.RelSeq].pos || scanned >= interval+maxSize(recs) {
					t.Fatalf("Seek(base%+d): scan of %d bytes from %+v", q, scanned, e)
				}
			}
		}

		queries := []int64{math.MinInt64, math.MaxInt64, 0}
		for range 200 {
			r := recs[rng.IntN(n)]
			queries = append(queries, r.ts, r.ts-1, r.ts+1)
		}
		for _, ts := range queries {
			first := n // index of the first record with a timestamp >= ts
			for i, r := range recs {
				if r.ts >= ts {
					first = i
					break
				}
			}
			e, ok := x.SeekTime(ts)
			want := lastEntryAtOrBelow(first)
			if !ok || e != want {
				t.Fatalf("SeekTime(%d) = %+v, want %+v (first match at record %d)", ts, e, want, first)
			}
			for _, r := range recs[:e.RelSeq] {
				if r.ts >= ts {
					t.Fatalf("SeekTime(%d) skipped a record at %d", ts, r.ts)
				}
			}
		}
	}
}

func maxSize(recs []rec) int {
	m := 0
	for _, r := range recs {
		m = max(m, r.n)
	}
	return m
}

// TestEncodedSize pins the encoding's sizes.
func TestEncodedSize(t *testing.T) {
	if index.HeaderSize != 48 || index.EntrySize != 16 || index.TrailerSize != 4 {
		t.Fatalf("HeaderSize %d EntrySize %d TrailerSize %d; these are part of the format", index.HeaderSize, index.EntrySize, index.TrailerSize)
	}
	x := index.New(1)
	x.Count, x.DataLen, x.MinTs, x.MaxTs = 3, 200, 1, 3
	x.Entries = []index.Entry{{0, 64, math.MinInt64}, {1, 100, 1}, {2, 150, 2}}
	enc := x.Marshal(nil)
	if len(enc) != 48+3*16+4 || x.EncodedSize() != len(enc) {
		t.Fatalf("3-entry index encodes to %d bytes (EncodedSize %d), want %d", len(enc), x.EncodedSize(), 48+3*16+4)
	}
	empty := index.New(1)
	if n := len(empty.Marshal(nil)); n != 52 || empty.EncodedSize() != 52 {
		t.Fatalf("empty index encodes to %d bytes, want 52", n)
	}
}

// TestMarshalLayout decodes an encoding by hand from the diagram.
func TestMarshalLayout(t *testing.T) {
	x := index.Index{Base: 0x0102030405060708, Flags: index.FlagHasKeys, Count: 9, DataLen: 5000, MinTs: -7, MaxTs: 99,
		Entries: []index.Entry{{0, 64, math.MinInt64}, {5, 4200, 42}}}
	b := x.Marshal(nil)
	le := binary.LittleEndian
	if string(b[:4]) != "ZIDX" || b[4] != 1 || b[5] != index.FlagHasKeys || b[6] != 0 || b[7] != 0 ||
		le.Uint64(b[8:]) != x.Base || le.Uint32(b[16:]) != 9 || le.Uint32(b[20:]) != 2 || le.Uint64(b[24:]) != 5000 ||
		int64(le.Uint64(b[32:])) != -7 || int64(le.Uint64(b[40:])) != 99 {
		t.Fatalf("header % x", b[:48])
	}
	if le.Uint32(b[64:]) != 5 || le.Uint32(b[68:]) != 4200 || int64(le.Uint64(b[72:])) != 42 {
		t.Fatalf("entry 1 % x", b[64:80])
	}
	if le.Uint32(b[80:]) != crc32.Checksum(b[:80], crc32.MakeTable(crc32.Castagnoli)) {
		t.Fatal("crc")
	}
}

func sameIndex(a, b *index.Index) bool {
	if a.Base != b.Base || a.Flags != b.Flags || a.Count != b.Count || a.DataLen != b.DataLen ||
		a.MinTs != b.MinTs || a.MaxTs != b.MaxTs || len(a.Entries) != len(b.Entries) {
		return false
	}
	for i := range a.Entries {
		if a.Entries[i] != b.Entries[i] {
			return false
		}
	}
	return true
}

func TestMarshalRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, 10, 500, 3000} {
		b := build(rng.Uint64(), 1024, randomRecords(rng, n))
		x := b.Snapshot()
		prefix := []byte("prefix")
		enc := x.Marshal(append([]byte(nil), prefix...))
		if !bytes.Equal(enc[:len(prefix)], prefix) || len(enc)-len(prefix) != x.EncodedSize() {
			t.Fatal("Marshal did not append")
		}
		enc = append(enc, "tail"...)
		var y index.Index
		tail, err := y.Unmarshal(enc[len(prefix):])
		if err != nil {
			t.Fatalf("%d records: %v", n, err)
		}
		if string(tail) != "tail" || !sameIndex(&x, &y) {
			t.Fatalf("%d records: round trip gave %+v, tail %q", n, y, tail)
		}
	}
}

// sample returns a valid encoded index with a few entries.
func sample() []byte {
	b := index.NewBuilder(1000, 100)
	for i := range 20 {
		b.Add(1000+uint64(i), segmentHeader+int64(i)*60, 60, int64(100-i*i%7), i == 3)
	}
	return b.Marshal(nil)
}

func TestUnmarshalDamaged(t *testing.T) {
	good := sample()
	check := func(t *testing.T, what string, b []byte) {
		t.Helper()
		x := index.New(5)
		before := x
		if _, err := x.Unmarshal(b); !errors.Is(err, index.ErrCorrupt) {
			t.Fatalf("%s: Unmarshal = %v, want ErrCorrupt", what, err)
		}
		if !sameIndex(&x, &before) {
			t.Fatalf("%s: a failed Unmarshal changed the index", what)
		}
	}
	for i := range good {
		for _, flip := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(good)
			b[i] ^= flip
			check(t, "flip", b)
		}
	}
	for n := range len(good) {
		check(t, "truncated", good[:n])
	}
}

// reCRC recomputes the trailer of an encoding edited in place.
func reCRC(b []byte) []byte {
	end := len(b) - index.TrailerSize
	binary.LittleEndian.PutUint32(b[end:], crc32.Checksum(b[:end], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// TestUnmarshalInvalid feeds encodings with a correct CRC whose content
// breaks an invariant, as a bug in the writer would.
func TestUnmarshalInvalid(t *testing.T) {
	le := binary.LittleEndian
	entry := func(k int) int { return index.HeaderSize + k*index.EntrySize }
	cases := map[string]func(b []byte){
		"reserved_bytes":        func(b []byte) { b[6] = 1 },
		"zero_count":            func(b []byte) { le.PutUint32(b[16:], 0) },
		"min_above_max":         func(b []byte) { le.PutUint64(b[32:], math.MaxInt64) },
		"first_entry_not_zero":  func(b []byte) { le.PutUint32(b[entry(0):], 1) },
		"first_entry_max_ts":    func(b []byte) { le.PutUint64(b[entry(0)+8:], 0) },
		"entry_past_count":      func(b []byte) { le.PutUint32(b[entry(2):], 20) },
		"entry_past_data":       func(b []byte) { le.PutUint32(b[entry(2)+4:], 1<<30) },
		"entries_out_of_order":  func(b []byte) { le.PutUint32(b[entry(2):], 1) },
		"positions_not_rising":  func(b []byte) { le.PutUint32(b[entry(2)+4:], segmentHeader) },
		"max_ts_before_falls":   func(b []byte) { le.PutUint64(b[entry(2)+8:], uint64(1<<63)) },
		"max_ts_before_too_big": func(b []byte) { le.PutUint64(b[entry(9)+8:], math.MaxInt64) }, // the last entry
	}
	if n := binary.LittleEndian.Uint32(sample()[20:]); n != 10 {
		t.Fatalf("sample has %d entries; the cases below assume 10", n)
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(sample())
			edit(b)
			x := index.New(5)
			before := x
			if _, err := x.Unmarshal(reCRC(b)); !errors.Is(err, index.ErrCorrupt) {
				t.Fatalf("Unmarshal = %v, want ErrCorrupt", err)
			}
			if !sameIndex(&x, &before) {
				t.Fatal("a failed Unmarshal changed the index")
			}
		})
	}
	b := bytes.Clone(sample())
	b[4] = 2
	var x index.Index
	if _, err := x.Unmarshal(reCRC(b)); !errors.Is(err, index.ErrVersion) {
		t.Fatalf("version 2: %v, want ErrVersion", err)
	}
}

// FuzzUnmarshal: Unmarshal never panics, and whatever it accepts is a
// valid index that encodes back to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	f.Add(sample())
	empty := index.New(3)
	f.Add(empty.Marshal(nil))
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 50} {
		b := build(9, 256, randomRecords(rng, n))
		f.Add(b.Marshal(nil))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var x index.Index
		tail, err := x.Unmarshal(data)
		if err != nil {
			if !errors.Is(err, index.ErrCorrupt) && !errors.Is(err, index.ErrVersion) {
				t.Fatalf("Unmarshal error %v is neither ErrCorrupt nor ErrVersion", err)
			}
			return
		}
		used := data[:len(data)-len(tail)]
		if enc := x.Marshal(nil); !bytes.Equal(enc, used) {
			t.Fatalf("re-encoding differs:\n% x\n% x", enc, used)
		}
		x.Seek(x.Base)
		x.Seek(x.Last() + 1)
		x.SeekTime(x.MinTs)
		x.SeekTime(x.MaxTs)
	})
}
