package segment_test

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

// fuzzSeeds returns the golden file, clean segments and every case of the
// corruption table, sealed and unsealed.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	if b, err := os.ReadFile(goldenPath); err == nil {
		seeds = append(seeds, b)
	}
	for _, sealed := range []bool{false, true} {
		fsys := vfs.NewMem()
		if err := fsys.MkdirAll("/s"); err != nil {
			t.Fatal(err)
		}
		pos := buildCorruptible(t, fsys, "/s/a.seg", sealed)
		clean := readFileTB(t, fsys, "/s/a.seg")
		seeds = append(seeds, clean)
		for _, c := range corruptions {
			b := bytes.Clone(clean)
			c.corrupt(b, pos)
			seeds = append(seeds, b)
		}
	}
	return seeds
}

func readFileTB(t testing.TB, fsys vfs.FS, name string) []byte {
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Size()
	b := make([]byte, size)
	f.ReadAt(b, 0)
	return b
}

// FuzzOpen runs segment recovery over arbitrary file contents. Open must
// never panic; every record it serves must be intact and in sequence; a
// read-only open changes nothing; Open is idempotent, and a repaired
// segment takes appends.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := vfs.NewMem()
		if err := mem.MkdirAll("/f"); err != nil {
			t.Fatal(err)
		}
		const path = "/f/a.seg"
		writeFile(t, mem, path, data)

		// Read-only first: it must not touch the file.
		ro, roRec, roErr := segment.Open(mem, path, segment.OpenOptions{ReadOnly: true})
		if roErr != nil && ro != nil {
			t.Fatal("read-only Open returned a segment with an error")
		}
		var roSealed bool
		if ro != nil {
			roSealed = ro.Sealed()
			if err := ro.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(readFile(t, mem, path), data) || exists(mem, path+".broken") {
			t.Fatal("read-only Open modified the file")
		}

		first := openChecked(t, mem, path, data)
		if first.err != nil {
			// A bad header: both opens fail alike and nothing is changed.
			if roErr == nil || errors.Is(roErr, segment.ErrNoHeader) != errors.Is(first.err, segment.ErrNoHeader) {
				t.Fatalf("read-write Open: %v; read-only Open: %v", first.err, roErr)
			}
			if !bytes.Equal(readFile(t, mem, path), data) {
				t.Fatal("a failed Open modified the file")
			}
			return
		}
		if first.sealed != roSealed && roErr == nil {
			t.Fatal("read-only and read-write Open disagree on sealed")
		}
		if !first.sealed {
			torn := first.rec.BrokenPath != ""
			if torn != (roErr != nil) {
				t.Fatalf("repaired %v, but the read-only Open said %v", torn, roErr)
			}
			if roErr == nil && roRec.Records != first.rec.Records {
				t.Fatalf("read-only Open found %d records, read-write %d", roRec.Records, first.rec.Records)
			}
			var ce *segment.CorruptionError
			if roErr != nil && (!errors.As(roErr, &ce) || ce.Offset != first.rec.TornOffset) {
				t.Fatalf("read-only Open: %v; torn tail at %d", roErr, first.rec.TornOffset)
			}
		}

		// Open again: the same records and nothing left to repair.
		after := readFile(t, mem, path)
		second := openChecked(t, mem, path, after)
		if second.err != nil {
			t.Fatalf("second Open: %v", second.err)
		}
		if second.rec.TornBytes != 0 || second.sealed != first.sealed || len(second.recs) != len(first.recs) || second.next != first.next {
			t.Fatalf("Open is not idempotent: %+v then %+v", first, second)
		}
		if first.sealed {
			return
		}
		// A recovered segment takes appends.
		s, _, err := segment.Open(mem, path, segment.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := segment.Record{Seq: s.Next(), TimestampMs: 1, Payload: []byte("after")}
		_, err = s.Append(r)
		if err != nil && !errors.Is(err, segment.ErrFull) {
			t.Fatalf("Append after recovery: %v", err)
		}
		appended := err == nil
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		third := openChecked(t, mem, path, readFile(t, mem, path))
		if third.err != nil || third.rec.TornBytes != 0 {
			t.Fatalf("Open after append: %v %+v", third.err, third.rec)
		}
		if appended && (len(third.recs) != len(first.recs)+1 || !sameRecord(third.recs[len(third.recs)-1], r)) {
			t.Fatalf("the appended record is not there: %d records, had %d", len(third.recs), len(first.recs))
		}
	})
}

type openResult struct {
	err    error
	rec    segment.Recovery
	sealed bool
	next   uint64
	recs   []segment.Record
}

// openChecked opens path read-write, collects its records (by Visit when
// unsealed, by Verify when sealed), checks each against the file bytes
// data as they were before Open, and closes the segment.
func openChecked(t *testing.T, fsys vfs.FS, path string, data []byte) openResult {
	t.Helper()
	var res openResult
	var base uint64
	want := int64(segment.HeaderSize)
	visit := func(pos int64, r *segment.Record) {
		if pos != want {
			t.Fatalf("record %d at %d, want %d", len(res.recs), pos, want)
		}
		if r.Seq != base+uint64(len(res.recs)) {
			t.Fatalf("record %d has sequence %d, base %d", len(res.recs), r.Seq, base)
		}
		// Re-encoding gives the stored bytes back, CRC included.
		enc := segment.AppendRecord(nil, r)
		if pos+int64(len(enc)) > int64(len(data)) || !bytes.Equal(enc, data[pos:pos+int64(len(enc))]) {
			t.Fatalf("record %d at %d does not re-encode to the stored bytes", len(res.recs), pos)
		}
		res.recs = append(res.recs, copyRecord(r))
		want += int64(len(enc))
	}
	if len(data) >= 16 {
		base = uint64(data[8]) | uint64(data[9])<<8 | uint64(data[10])<<16 | uint64(data[11])<<24 |
			uint64(data[12])<<32 | uint64(data[13])<<40 | uint64(data[14])<<48 | uint64(data[15])<<56
	}
	s, rec, err := segment.Open(fsys, path, segment.OpenOptions{Visit: visit})
	if err != nil {
		if s != nil {
			t.Fatal("Open returned a segment with an error")
		}
		if len(res.recs) != 0 {
			t.Fatal("a failed Open visited records")
		}
		res.err = err
		return res
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	if s.Base() != base {
		t.Fatalf("Base %d, header says %d", s.Base(), base)
	}
	res.rec, res.sealed = rec, s.Sealed()
	if res.sealed {
		n, err := s.Verify(visit)
		var ce *segment.CorruptionError
		if err != nil && (!errors.As(err, &ce) || ce.Path != path || ce.Offset != want) {
			t.Fatalf("Verify: %v, after the record ending at %d", err, want)
		}
		if n != len(res.recs) {
			t.Fatalf("Verify counted %d, visited %d", n, len(res.recs))
		}
		return res
	}
	res.next = s.Next()
	if rec.Records != len(res.recs) || s.Size() != want || res.next != base+uint64(len(res.recs)) {
		t.Fatalf("recovery %+v, size %d, next %d; visited %d records ending at %d", rec, s.Size(), res.next, len(res.recs), want)
	}
	if rec.BrokenPath != "" && rec.TornOffset != want {
		t.Fatalf("torn tail at %d, records end at %d", rec.TornOffset, want)
	}
	return res
}
