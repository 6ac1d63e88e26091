package segment_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fsCase is one filesystem the tests run on, with a directory to use.
type fsCase struct {
	name string
	new  func(t *testing.T) (vfs.FS, string)
}

var filesystems = []fsCase{
	{"os", func(t *testing.T) (vfs.FS, string) { return vfs.Default, t.TempDir() }},
	{"mem", func(t *testing.T) (vfs.FS, string) {
		fs := vfs.NewMem()
		if err := fs.MkdirAll("/data"); err != nil {
			t.Fatal(err)
		}
		return fs, "/data"
	}},
}

// forEachFS runs fn once on the real filesystem and once on a MemFS.
func forEachFS(t *testing.T, fn func(t *testing.T, fsys vfs.FS, dir string)) {
	t.Helper()
	for _, c := range filesystems {
		t.Run(c.name, func(t *testing.T) {
			fsys, dir := c.new(t)
			fn(t, fsys, dir)
		})
	}
}

func newMem(t *testing.T) (*vfs.MemFS, string) {
	t.Helper()
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/data"); err != nil {
		t.Fatal(err)
	}
	return fs, "/data"
}

// makeRecords returns n records with sequences from base and payloads that
// differ in size and content.
func makeRecords(base uint64, n int) []segment.Record {
	recs := make([]segment.Record, n)
	for i := range recs {
		r := segment.Record{
			Seq:         base + uint64(i),
			TimestampMs: 1_700_000_000_000 + int64(i)*7,
			Payload:     []byte(fmt.Sprintf("payload-%d-%s", i, bytes.Repeat([]byte{'x'}, i*3))),
		}
		if i%2 == 1 {
			r.Key = []byte(fmt.Sprintf("key-%d", i))
		}
		recs[i] = r
	}
	return recs
}

func mustCreate(t *testing.T, fsys vfs.FS, path string, base uint64, capacity int64) *segment.Segment {
	t.Helper()
	s, err := segment.Create(fsys, path, base, capacity, 1_700_000_000_000)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return s
}

func mustAppend(t *testing.T, s *segment.Segment, recs ...segment.Record) int64 {
	t.Helper()
	pos, err := s.Append(recs...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return pos
}

func mustClose(t *testing.T, s *segment.Segment) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// collected is a record copied out of a mapping, with its position.
type collected struct {
	pos int64
	rec segment.Record
}

func copyRecord(r *segment.Record) segment.Record {
	c := segment.Record{Seq: r.Seq, TimestampMs: r.TimestampMs, Payload: append([]byte{}, r.Payload...)}
	if len(r.Key) > 0 {
		c.Key = append([]byte{}, r.Key...)
	}
	return c
}

// readAll iterates s from the start and returns copies of its records.
func readAll(t *testing.T, s *segment.Segment) []collected {
	t.Helper()
	var out []collected
	it := s.Iter(segment.HeaderSize)
	for it.Next() {
		out = append(out, collected{it.Pos(), copyRecord(it.Record())})
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate %s: %v", s.Path(), err)
	}
	return out
}

func sameRecord(a, b segment.Record) bool {
	return a.Seq == b.Seq && a.TimestampMs == b.TimestampMs && bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Payload, b.Payload)
}

// checkRecords fails unless got holds exactly want, in order.
func checkRecords(t *testing.T, got []collected, want []segment.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !sameRecord(got[i].rec, want[i]) {
			t.Fatalf("record %d: got %+v, want %+v", i, got[i].rec, want[i])
		}
	}
}

// readFile returns the whole contents of name.
func readFile(t *testing.T, fsys vfs.FS, name string) []byte {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); n != len(b) && !errors.Is(err, io.EOF) {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

// writeFile replaces the contents of name with b, synced.
func writeFile(t *testing.T, fsys vfs.FS, name string, b []byte) {
	t.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir(filepath.Dir(name)); err != nil {
		t.Fatal(err)
	}
}

func exists(fsys vfs.FS, name string) bool {
	_, err := fsys.Stat(name)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}
