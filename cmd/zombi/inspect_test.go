package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/segment"
)

// buildDataDir writes a data directory with the engine: events/0 has a
// sealed segment of 10 records (10-byte payloads, no keys) partly flushed
// and an active one; events/1 and clicks/0 have active segments only,
// with a key and a binary payload. The engine is returned open, as a
// running server would hold it.
func buildDataDir(t *testing.T) (string, *engine.Engine) {
	t.Helper()
	dir := t.TempDir()
	opts := engine.Options{Dir: dir, SegmentBytes: 1 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	e, err := engine.Open(opts.WithFsync(engine.FsyncNever))
	if err != nil {
		t.Fatal(err)
	}
	app := func(table string, r engine.Record) {
		t.Helper()
		if _, _, err := e.Append(table, r); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		app("events", engine.Record{TimestampMs: 1_700_000_000_000 + int64(i), Payload: []byte(fmt.Sprintf("payload-%02d", i))})
	}
	if err := e.Seal("events", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.MarkFlushed("events", 0, 4); err != nil {
		t.Fatal(err)
	}
	app("events", engine.Record{TimestampMs: 1_700_000_000_100, Payload: []byte("tail")})
	app("events", engine.Record{Partition: 1, TimestampMs: 1_700_000_000_200, Key: []byte("k-1"), Payload: []byte("with key")})
	app("clicks", engine.Record{TimestampMs: 1_700_000_000_300, Payload: []byte{0xff, 0x00, 0x01}})
	if err := e.Sync(); err != nil {
		t.Fatal(err)
	}
	return dir, e
}

func runInspect(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"inspect"}, args...), &out, &errb, env(nil))
	return code, out.String(), errb.String()
}

func TestInspectListsWhileRunning(t *testing.T) {
	dir, e := buildDataDir(t)
	defer e.Close()

	code, out, errs := runInspect(t, "tables", dir)
	if code != 0 {
		t.Fatalf("tables: exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "clicks") || !strings.HasPrefix(lines[2], "events") {
		t.Fatalf("tables:\n%s", out)
	}
	if f := strings.Fields(lines[2]); f[1] != "2" || f[2] != "3" || f[3] != "12" || f[5] != "8" {
		t.Errorf("events row %q: want 2 partitions, 3 segments, 12 records, 8 unflushed", lines[2])
	}

	code, out, errs = runInspect(t, "partitions", dir, "events", "--json")
	if code != 0 {
		t.Fatalf("partitions: exit %d: %s", code, errs)
	}
	var parts []struct {
		Partition uint32 `json:"partition"`
		Low       uint64 `json:"low"`
		High      uint64 `json:"high_watermark"`
		Flushed   uint64 `json:"watermark"`
		Unflushed uint64 `json:"unflushed"`
		Segments  int    `json:"segments"`
		Lease     uint64 `json:"lease"`
		Notes     []string
	}
	if err := json.Unmarshal([]byte(out), &parts); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(parts) != 2 {
		t.Fatalf("partitions: %+v", parts)
	}
	if p := parts[0]; p.Low != 1 || p.High != 11 || p.Flushed != 4 || p.Unflushed != 7 || p.Segments != 2 || p.Lease <= 11 || len(p.Notes) != 0 {
		t.Errorf("events/0: %+v", p)
	}
	if p := parts[1]; p.Partition != 1 || p.Low != 1 || p.High != 1 || p.Flushed != 0 || p.Unflushed != 1 {
		t.Errorf("events/1: %+v", p)
	}

	code, out, errs = runInspect(t, "segments", dir, "events", "0")
	if code != 0 {
		t.Fatalf("segments: exit %d: %s", code, errs)
	}
	for _, want := range []string{"00000000000000000001.seg", "sealed", "2023-11-14T22:13:20.000Z", "00000000000000000011.seg", "active", "ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("segments output lacks %q:\n%s", want, out)
		}
	}

	// Verify is clean while the engine still has the data dir open.
	code, out, errs = runInspect(t, "verify", dir, "-v")
	if code != 0 || !strings.Contains(out, "0 corrupt") || !strings.Contains(out, "13 records") {
		t.Fatalf("verify of a healthy dir: exit %d\n%s%s", code, out, errs)
	}

	// dump: text and JSON, --from and --limit, key and binary payloads.
	seg := filepath.Join(dir, "hot", "events", "0", "00000000000000000001.seg")
	code, out, errs = runInspect(t, "dump", seg, "--from", "3", "--limit", "2")
	if code != 0 {
		t.Fatalf("dump: exit %d: %s", code, errs)
	}
	want := "offset=3 time=2023-11-14T22:13:20.002Z (1700000000002) payload=\"payload-02\"\n" +
		"offset=4 time=2023-11-14T22:13:20.003Z (1700000000003) payload=\"payload-03\"\n"
	if out != want {
		t.Errorf("dump:\n%s\nwant:\n%s", out, want)
	}
	code, out, _ = runInspect(t, "dump", "--json", filepath.Join(dir, "hot", "events", "1", "00000000000000000001.seg"))
	if code != 0 || out != `{"offset":1,"timestamp_ms":1700000000200,"idempotency_key":"k-1","payload":"with key"}`+"\n" {
		t.Errorf("dump of an active segment with a key: %d %q", code, out)
	}
	code, out, _ = runInspect(t, "dump", filepath.Join(dir, "hot", "clicks", "0", "00000000000000000001.seg"))
	if code != 0 || !strings.Contains(out, "payload_base64=/wAB") {
		t.Errorf("dump of a binary payload: %d %q", code, out)
	}
}

func TestInspectVerifyFindsCorruption(t *testing.T) {
	dir, e := buildDataDir(t)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// Flip a payload byte of the third record of the sealed segment.
	// Records are 26 header bytes + 10 payload bytes, after the 64-byte
	// segment header: the third starts at byte 136.
	seg := filepath.Join(dir, "hot", "events", "0", "00000000000000000001.seg")
	recStart := int64(segment.HeaderSize + 2*(segment.RecordHeaderSize+10))
	flipByte(t, seg, recStart+segment.RecordHeaderSize+3)

	code, out, errs := runInspect(t, "verify", dir)
	if code != 1 {
		t.Fatalf("verify of a corrupt segment: exit %d\n%s%s", code, out, errs)
	}
	if want := "CORRUPT  " + seg + ": at byte " + strconv.FormatInt(recStart, 10) + ": segment: checksum mismatch (after 2 good records)"; !strings.Contains(out, want) {
		t.Errorf("verify output lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, "1 corrupt") {
		t.Errorf("summary:\n%s", out)
	}

	// dump prints the good records, then the damage, and fails.
	code, out, errs = runInspect(t, "dump", seg)
	if code != 1 || strings.Count(out, "\n") != 2 || !strings.Contains(errs, "corrupt at byte "+strconv.FormatInt(recStart, 10)) {
		t.Errorf("dump of a corrupt segment: exit %d\n%s%s", code, out, errs)
	}

	// The listing still works and points at the damage.
	code, out, _ = runInspect(t, "segments", dir, "events")
	if code != 0 || !strings.Contains(out, "CORRUPT") && !strings.Contains(out, "ok") {
		t.Errorf("segments of a corrupt dir: %d\n%s", code, out)
	}

	// A damaged partition state file is corruption too.
	flipByte(t, filepath.Join(dir, "hot", "clicks", "0", "state"), 5)
	code, out, _ = runInspect(t, "verify", dir)
	if code != 1 || !strings.Contains(out, filepath.Join(dir, "hot", "clicks", "0", "state")+": checksum mismatch") {
		t.Errorf("verify of a damaged state file: %d\n%s", code, out)
	}
}

// A segment missing before it was flushed is named, with the way out.
func TestInspectNotesAnUnflushedGap(t *testing.T) {
	dir, e := buildDataDir(t)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runInspect(t, "partitions", dir, "events")
	if code != 0 || strings.Contains(out, "missing") {
		t.Fatalf("partitions before the loss: exit %d\n%s", code, out)
	}
	// events/0: offsets 1..10 sealed, flushed up to 4; 11 in the active segment.
	seg := filepath.Join(dir, "hot", "events", "0", "00000000000000000001.seg")
	if err := os.Remove(seg); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runInspect(t, "partitions", dir, "events")
	if want := "offsets 5..10 missing, never flushed: the flush stops at 5 (POST /tables/events/skip-gap?partition=0)"; code != 0 || !strings.Contains(out, want) {
		t.Fatalf("partitions after the loss: exit %d, want %q in\n%s", code, want, out)
	}
}

func TestInspectUsageErrors(t *testing.T) {
	if code, _, _ := runInspect(t); code != 2 {
		t.Errorf("no command: exit %d", code)
	}
	if code, _, _ := runInspect(t, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	if code, _, errs := runInspect(t, "tables", t.TempDir()); code != 1 || !strings.Contains(errs, "not a zombi data directory") {
		t.Errorf("empty dir: exit %d %s", code, errs)
	}
	if code, _, _ := runInspect(t, "dump"); code != 2 {
		t.Errorf("dump without a file: exit %d", code)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
