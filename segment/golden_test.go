package segment_test

import (
	"bytes"
	"encoding/binary"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/zombihq/zombi/segment"
	"github.com/zombihq/zombi/vfs"
)

// update regenerates golden files: go test ./segment -run Golden -update
// (or ZOMBI_UPDATE_GOLDEN=1). Regenerating is a format change: bump
// FormatVersion and keep the old file unless the old format was never
// released.
var update = flag.Bool("update", false, "rewrite testdata golden files")

func updateGolden() bool { return *update || os.Getenv("ZOMBI_UPDATE_GOLDEN") == "1" }

const (
	goldenPath    = "testdata/golden-v1.seg"
	goldenBase    = 42
	goldenCreated = 1_700_000_000_123
)

// goldenRecords are the fixed records of testdata/golden-v1.seg.
func goldenRecords() []segment.Record {
	return []segment.Record{
		{Seq: 42, TimestampMs: 1_700_000_000_200, Payload: []byte(`{"event":"signup","user":1}`)},
		{Seq: 43, TimestampMs: 1_700_000_000_100, Key: []byte("idem-43"), Payload: []byte("second")},
		{Seq: 44, TimestampMs: 0},
		{Seq: 45, TimestampMs: -5, Key: []byte{0xff}, Payload: []byte{0, 1, 2, 0xfe, 0xff}},
	}
}

// buildGolden writes the golden segment on a MemFS and returns its bytes.
func buildGolden(t testing.TB) []byte {
	fsys := vfs.NewMem()
	if err := fsys.MkdirAll("/g"); err != nil {
		t.Fatal(err)
	}
	s, err := segment.Create(fsys, "/g/golden.seg", goldenBase, 4096, goldenCreated)
	if err != nil {
		t.Fatal(err)
	}
	recs := goldenRecords()
	if _, err := s.Append(recs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(recs[1:]...); err != nil {
		t.Fatal(err)
	}
	if err := s.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Open("/g/golden.seg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, _ := f.Size()
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGolden(t *testing.T) {
	got := buildGolden(t)
	if updateGolden() {
		if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", goldenPath, len(got))
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("segment encoding differs from %s at byte %d (got %d bytes, want %d); a format change needs a new FormatVersion", goldenPath, i, len(got), len(want))
			}
		}
		t.Fatalf("segment encoding is %d bytes, %s has %d", len(got), goldenPath, len(want))
	}
}

// TestGoldenLayout decodes the golden file by hand, field by field, from
// the offsets in the diagram in format.go.
func TestGoldenLayout(t *testing.T) {
	b, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	crc := func(p []byte) uint32 { return crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)) }
	if string(b[0:4]) != "ZSEG" || b[4] != 1 || b[5] != segment.FlagSealed || le.Uint16(b[6:]) != 0 {
		t.Fatalf("header magic/version/flags: % x", b[:8])
	}
	if le.Uint64(b[8:]) != goldenBase || int64(le.Uint64(b[16:])) != goldenCreated || le.Uint64(b[24:]) != uint64(len(b)) {
		t.Fatalf("header base/created/length: % x", b[8:32])
	}
	if le.Uint32(b[32:]) != crc(b[:32]) {
		t.Fatal("header crc")
	}
	if !bytes.Equal(b[36:64], make([]byte, 28)) {
		t.Fatal("reserved header bytes are not zero")
	}
	pos := segment.HeaderSize
	for i, r := range goldenRecords() {
		bodyLen := int(le.Uint32(b[pos+4:]))
		if bodyLen != 18+len(r.Key)+len(r.Payload) {
			t.Fatalf("record %d: body len %d", i, bodyLen)
		}
		rec := b[pos : pos+8+bodyLen]
		if le.Uint32(rec) != crc(rec[4:]) {
			t.Fatalf("record %d: crc", i)
		}
		kl := int(le.Uint16(rec[24:]))
		if le.Uint64(rec[8:]) != r.Seq || int64(le.Uint64(rec[16:])) != r.TimestampMs || kl != len(r.Key) ||
			!bytes.Equal(rec[26:26+kl], r.Key) || !bytes.Equal(rec[26+kl:], r.Payload) {
			t.Fatalf("record %d fields: % x", i, rec)
		}
		pos += len(rec)
	}
	if pos != len(b) {
		t.Fatalf("records end at %d, file is %d bytes", pos, len(b))
	}
}

// TestGoldenOpen reads the golden file from disk through the OS filesystem.
func TestGoldenOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "00000000000000000042.seg")
	b, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s, _, err := segment.Open(vfs.Default, path, segment.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, s)
	if !s.Sealed() || s.Base() != goldenBase || s.CreatedMs() != goldenCreated {
		t.Fatalf("sealed %v base %d created %d", s.Sealed(), s.Base(), s.CreatedMs())
	}
	checkRecords(t, readAll(t, s), goldenRecords())
}
