package segment_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

func TestRoundTrip(t *testing.T) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	maxKey := bytes.Repeat([]byte{0xA5}, segment.MaxKeyLen)
	cases := map[string][]segment.Record{
		"single":        {{Seq: 10, TimestampMs: 1, Payload: []byte("hello")}},
		"batch":         makeRecords(10, 50),
		"empty_payload": {{Seq: 10, TimestampMs: 2}, {Seq: 11, TimestampMs: 3, Key: []byte("k")}},
		"max_key":       {{Seq: 10, TimestampMs: 4, Key: maxKey, Payload: []byte("p")}},
		"binary_payload": {
			{Seq: 10, TimestampMs: math.MinInt64, Payload: binary},
			{Seq: 11, TimestampMs: math.MaxInt64, Payload: make([]byte, 1000)}, // all zero
			{Seq: 12, TimestampMs: -1, Key: []byte{0, 0, 0}, Payload: []byte{0}},
		},
	}
	for name, recs := range cases {
		t.Run(name, func(t *testing.T) {
			forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
				path := filepath.Join(dir, "00000000000000000010.seg")
				s := mustCreate(t, fsys, path, 10, 1<<18)
				if got := s.Next(); got != 10 {
					t.Fatalf("Next = %d, want 10", got)
				}
				// The first record alone, the rest as one batch.
				pos0 := mustAppend(t, s, recs[0])
				if pos0 != segment.HeaderSize {
					t.Fatalf("first record at %d, want %d", pos0, segment.HeaderSize)
				}
				var positions []int64
				positions = append(positions, pos0)
				if len(recs) > 1 {
					pos := mustAppend(t, s, recs[1:]...)
					for _, r := range recs[1:] {
						positions = append(positions, pos)
						pos += int64(r.EncodedLen())
					}
				}
				wantSize := int64(segment.HeaderSize)
				for i := range recs {
					wantSize += int64(recs[i].EncodedLen())
				}
				if s.Size() != wantSize {
					t.Fatalf("Size = %d, want %d", s.Size(), wantSize)
				}
				if s.Next() != 10+uint64(len(recs)) {
					t.Fatalf("Next = %d, want %d", s.Next(), 10+len(recs))
				}
				got := readAll(t, s)
				checkRecords(t, got, recs)
				for i, c := range got {
					if c.pos != positions[i] {
						t.Fatalf("record %d at %d, Append said %d", i, c.pos, positions[i])
					}
					r, next, err := s.ReadRecord(c.pos)
					if err != nil || !sameRecord(r, recs[i]) || next != c.pos+int64(recs[i].EncodedLen()) {
						t.Fatalf("ReadRecord(%d) = %+v, %d, %v", c.pos, r, next, err)
					}
				}
				// Iterating from a record boundary in the middle.
				if len(recs) > 1 {
					it := s.Iter(positions[1])
					n := 0
					for it.Next() {
						n++
					}
					if it.Err() != nil || n != len(recs)-1 {
						t.Fatalf("Iter from record 1: %d records, err %v", n, it.Err())
					}
				}
				// The encoding matches AppendRecord.
				var enc []byte
				for i := range recs {
					enc = segment.AppendRecord(enc, &recs[i])
				}
				if !bytes.Equal(s.Bytes(), enc) {
					t.Fatal("Bytes() differs from AppendRecord encoding")
				}
				if n, err := s.Verify(nil); err != nil || n != len(recs) {
					t.Fatalf("Verify = %d, %v", n, err)
				}
				mustClose(t, s)

				// And the same after reopening.
				s, rec, err := segment.Open(fsys, path, segment.OpenOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer mustClose(t, s)
				if rec.Records != len(recs) || rec.TornBytes != 0 {
					t.Fatalf("recovery %+v", rec)
				}
				checkRecords(t, readAll(t, s), recs)
			})
		})
	}
}

func TestAppendFull(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		path := filepath.Join(dir, "full.seg")
		rec := segment.Record{Seq: 1, Payload: make([]byte, 100)}
		n := int64(rec.EncodedLen())
		capacity := segment.HeaderSize + 3*n + n/2 // room for 3.5 records
		s := mustCreate(t, fsys, path, 1, capacity)
		defer mustClose(t, s)
		mustAppend(t, s, makeSized(1, 2, 100)...)
		before := append([]byte(nil), readFile(t, fsys, path)...)
		sizeBefore := s.Size()

		// A batch of two does not fit: nothing of it is written.
		if _, err := s.Append(makeSized(3, 2, 100)...); !errors.Is(err, segment.ErrFull) {
			t.Fatalf("Append of a batch that does not fit: %v, want ErrFull", err)
		}
		if s.Size() != sizeBefore || s.Next() != 3 {
			t.Fatalf("after ErrFull: size %d (was %d), next %d", s.Size(), sizeBefore, s.Next())
		}
		if after := readFile(t, fsys, path); !bytes.Equal(before, after) {
			t.Fatal("ErrFull append modified the file")
		}
		if !s.Fits(int(n)) || s.Fits(int(n)+int(n/2)+1) {
			t.Fatalf("Fits is wrong: size %d capacity %d", s.Size(), s.Capacity())
		}
		// One still fits, exactly filling up to what is left.
		mustAppend(t, s, makeSized(3, 1, 100)...)
		if _, err := s.Append(makeSized(4, 1, 100)...); !errors.Is(err, segment.ErrFull) {
			t.Fatalf("Append to a full segment: %v, want ErrFull", err)
		}
		if n, err := s.Verify(nil); n != 3 || err != nil {
			t.Fatalf("Verify = %d, %v", n, err)
		}
	})
}

func TestAppendExactFit(t *testing.T) {
	fsys, dir := newMem(t)
	recs := makeSized(0, 3, 50)
	capacity := int64(segment.HeaderSize + 3*recs[0].EncodedLen())
	s := mustCreate(t, fsys, dir+"/a.seg", 0, capacity)
	defer mustClose(t, s)
	mustAppend(t, s, recs...)
	if s.Size() != capacity || s.Fits(1) {
		t.Fatalf("size %d capacity %d", s.Size(), capacity)
	}
}

// makeSized returns n records from base whose payloads are size bytes.
func makeSized(base uint64, n, size int) []segment.Record {
	recs := make([]segment.Record, n)
	for i := range recs {
		p := bytes.Repeat([]byte{byte(base) + byte(i) + 1}, size)
		recs[i] = segment.Record{Seq: base + uint64(i), TimestampMs: int64(base) + int64(i), Payload: p}
	}
	return recs
}

func TestAppendRejects(t *testing.T) {
	fsys, dir := newMem(t)
	s := mustCreate(t, fsys, dir+"/a.seg", 100, 1<<20)
	defer mustClose(t, s)
	mustAppend(t, s, segment.Record{Seq: 100})

	cases := map[string]struct {
		recs []segment.Record
		want error
	}{
		"gap":             {[]segment.Record{{Seq: 102}}, segment.ErrSequence},
		"repeat":          {[]segment.Record{{Seq: 100}}, segment.ErrSequence},
		"gap_in_batch":    {[]segment.Record{{Seq: 101}, {Seq: 103}}, segment.ErrSequence},
		"key_too_long":    {[]segment.Record{{Seq: 101, Key: make([]byte, segment.MaxKeyLen+1)}}, segment.ErrTooLarge},
		"payload_too_big": {[]segment.Record{{Seq: 101, Payload: make([]byte, segment.MaxPayloadLen+1)}}, segment.ErrTooLarge},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			size := s.Size()
			if _, err := s.Append(c.recs...); !errors.Is(err, c.want) {
				t.Fatalf("Append: %v, want %v", err, c.want)
			}
			if s.Size() != size || s.Next() != 101 {
				t.Fatalf("a rejected append changed the segment: size %d next %d", s.Size(), s.Next())
			}
		})
	}
	mustAppend(t, s, segment.Record{Seq: 101})
}

func TestCreateCapacityTooSmall(t *testing.T) {
	fsys, dir := newMem(t)
	if _, err := segment.Create(fsys, dir+"/a.seg", 0, segment.HeaderSize, 0); err == nil {
		t.Fatal("Create with no room for a record succeeded")
	}
}

func TestSeal(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		path := filepath.Join(dir, "a.seg")
		recs := makeRecords(5, 20)
		s := mustCreate(t, fsys, path, 5, 1<<16)
		if s.Capacity() != 1<<16 {
			t.Fatalf("Capacity = %d", s.Capacity())
		}
		if fi, err := fsys.Stat(path); err != nil || fi.Size() != 1<<16 {
			t.Fatalf("an active segment is not pre-allocated: %v %v", fi, err)
		}
		mustAppend(t, s, recs...)
		size := s.Size()
		if err := s.Seal(); err != nil {
			t.Fatal(err)
		}
		if !s.Sealed() || s.Capacity() != size {
			t.Fatalf("after Seal: sealed %v capacity %d size %d", s.Sealed(), s.Capacity(), size)
		}
		if err := s.Seal(); err != nil {
			t.Fatalf("second Seal: %v", err)
		}
		if _, err := s.Append(segment.Record{Seq: 25}); !errors.Is(err, segment.ErrSealed) {
			t.Fatalf("Append after Seal: %v, want ErrSealed", err)
		}
		// Reads go on through the same mapping.
		checkRecords(t, readAll(t, s), recs)
		mustClose(t, s)
		if err := s.Close(); !errors.Is(err, segment.ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := s.Append(segment.Record{Seq: 25}); !errors.Is(err, segment.ErrClosed) {
			t.Fatalf("Append after Close: %v", err)
		}

		b := readFile(t, fsys, path)
		if int64(len(b)) != size {
			t.Fatalf("sealed file is %d bytes, want %d", len(b), size)
		}
		if b[5]&segment.FlagSealed == 0 {
			t.Fatal("sealed flag not set in the header")
		}

		for _, ro := range []bool{false, true} {
			s, rec, err := segment.Open(fsys, path, segment.OpenOptions{ReadOnly: ro, Visit: func(int64, *segment.Record) {
				t.Error("Visit called for a sealed segment")
			}})
			if err != nil {
				t.Fatal(err)
			}
			if !s.Sealed() || s.Size() != size || s.Base() != 5 || s.CreatedMs() != 1_700_000_000_000 || rec != (segment.Recovery{}) {
				t.Fatalf("reopened sealed: sealed %v size %d base %d created %d rec %+v", s.Sealed(), s.Size(), s.Base(), s.CreatedMs(), rec)
			}
			checkRecords(t, readAll(t, s), recs)
			if n, err := s.Verify(nil); n != len(recs) || err != nil {
				t.Fatalf("Verify = %d, %v", n, err)
			}
			if _, err := s.Append(segment.Record{Seq: 25}); !errors.Is(err, segment.ErrSealed) {
				t.Fatalf("Append to reopened sealed: %v", err)
			}
			mustClose(t, s)
		}
	})
}

func TestSealEmpty(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		path := filepath.Join(dir, "a.seg")
		s := mustCreate(t, fsys, path, 7, 4096)
		if err := s.Seal(); err != nil {
			t.Fatal(err)
		}
		mustClose(t, s)
		s, _, err := segment.Open(fsys, path, segment.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer mustClose(t, s)
		if n, err := s.Verify(nil); n != 0 || err != nil || s.Size() != segment.HeaderSize {
			t.Fatalf("empty sealed: %d records, %v, size %d", n, err, s.Size())
		}
	})
}

func TestReopenUnsealedContinues(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		path := filepath.Join(dir, "a.seg")
		recs := makeRecords(1000, 30)
		s := mustCreate(t, fsys, path, 1000, 1<<16)
		mustAppend(t, s, recs[:10]...)
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		mustClose(t, s)

		for i := 1; i <= 2; i++ {
			var visited []collected
			s, rec, err := segment.Open(fsys, path, segment.OpenOptions{Visit: func(pos int64, r *segment.Record) {
				visited = append(visited, collected{pos, copyRecord(r)})
			}})
			if err != nil {
				t.Fatal(err)
			}
			n := 10 * i
			if rec.Records != n || rec.TornBytes != 0 || rec.BrokenPath != "" || s.Sealed() {
				t.Fatalf("reopen %d: recovery %+v sealed %v", i, rec, s.Sealed())
			}
			checkRecords(t, visited, recs[:n])
			if s.Next() != 1000+uint64(n) || s.Capacity() != 1<<16 {
				t.Fatalf("reopen %d: Next %d capacity %d", i, s.Next(), s.Capacity())
			}
			if _, err := s.Append(recs[n-1]); !errors.Is(err, segment.ErrSequence) {
				t.Fatalf("re-append of the last sequence: %v", err)
			}
			mustAppend(t, s, recs[n:n+10]...)
			mustClose(t, s)
		}
		if exists(fsys, path+".broken") {
			t.Fatal("a clean reopen wrote a .broken file")
		}
		s, _, err := segment.Open(fsys, path, segment.OpenOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer mustClose(t, s)
		checkRecords(t, readAll(t, s), recs)
		if _, err := s.Append(recs[0]); err == nil {
			t.Fatal("Append to a read-only segment succeeded")
		}
	})
}

func TestOpenMissing(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		if _, _, err := segment.Open(fsys, filepath.Join(dir, "nope.seg"), segment.OpenOptions{}); err == nil {
			t.Fatal("Open of a missing file succeeded")
		}
	})
}

func TestReadRecordOutOfRange(t *testing.T) {
	fsys, dir := newMem(t)
	s := mustCreate(t, fsys, dir+"/a.seg", 0, 4096)
	defer mustClose(t, s)
	mustAppend(t, s, makeRecords(0, 2)...)
	for _, pos := range []int64{0, segment.HeaderSize - 1, s.Size(), s.Size() + 100} {
		if _, _, err := s.ReadRecord(pos); err == nil {
			t.Errorf("ReadRecord(%d) succeeded", pos)
		}
	}
	// A position inside a record is reported as corruption, not a panic.
	if _, _, err := s.ReadRecord(segment.HeaderSize + 3); err == nil {
		t.Error("ReadRecord in the middle of a record succeeded")
	}
}

// ReadIter serves exactly what Iter serves, at the same positions, from
// any record boundary: records that straddle its read chunks, and records
// larger than its buffer, included.
func TestReadIterMatchesIter(t *testing.T) {
	forEachFS(t, func(t *testing.T, fsys vfs.FS, dir string) {
		path := filepath.Join(dir, "00000000000000000001.seg")
		s := mustCreate(t, fsys, path, 1, 8<<20)
		defer mustClose(t, s)
		rng := rand.New(rand.NewPCG(1, 2))
		var want []segment.Record
		for seq := uint64(1); len(want) < 3000; seq++ {
			n := rng.IntN(3000)
			if seq%500 == 0 {
				n = 100<<10 + rng.IntN(200<<10) // more than the read buffer
			}
			r := segment.Record{Seq: seq, TimestampMs: int64(seq), Payload: make([]byte, n)}
			for i := range r.Payload {
				r.Payload[i] = byte(rng.Uint32())
			}
			if seq%7 == 0 {
				r.Key = []byte(fmt.Sprint("key-", seq))
			}
			want = append(want, r)
			if seq%3 == 0 { // a batch through the write buffer, or single stores
				mustAppend(t, s, want[len(want)-3:]...)
			}
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		all := readAll(t, s)
		checkRecords(t, all, want[:len(all)])
		for _, from := range []int{0, 1, 499, 1700, len(all) - 1} {
			it := s.ReadIter(all[from].pos, nil)
			i := from
			for it.Next() {
				if it.Pos() != all[i].pos || !sameRecord(*it.Record(), all[i].rec) {
					t.Fatalf("from %d: record %d differs (pos %d, want %d)", from, i, it.Pos(), all[i].pos)
				}
				i++
			}
			if err := it.Err(); err != nil || i != len(all) {
				t.Fatalf("from %d: ReadIter ended at %d of %d: %v", from, i, len(all), err)
			}
			if len(it.Buffer()) < 100<<10 && from < 1700 {
				t.Fatalf("buffer of %d bytes after records of over 100 KiB", len(it.Buffer()))
			}
		}
	})
}

// BenchmarkIter reads a 64 MiB segment written by bulk appends of 82-byte
// events once, through the mapping (Iter) and with pread (ReadIter).
func BenchmarkIter(b *testing.B) {
	for _, mode := range []string{"mapping", "pread"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			payload := make([]byte, 82)
			recs := make([]segment.Record, 100)
			var buf []byte
			n := 0
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s, err := segment.Create(vfs.Default, filepath.Join(dir, fmt.Sprintf("%020d.seg", i)), 1, 64<<20, 0)
				if err != nil {
					b.Fatal(err)
				}
				for seq := uint64(1); ; seq += uint64(len(recs)) {
					for j := range recs {
						recs[j] = segment.Record{Seq: seq + uint64(j), TimestampMs: 1, Payload: payload}
					}
					if _, err := s.Append(recs...); err != nil {
						break
					}
					if err := s.Flush(); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				it := s.Iter(segment.HeaderSize)
				if mode == "pread" {
					it = s.ReadIter(segment.HeaderSize, buf)
				}
				for it.Next() {
					n++
				}
				buf = it.Buffer()
				b.StopTimer()
				if it.Err() != nil {
					b.Fatal(it.Err())
				}
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/record")
		})
	}
}
