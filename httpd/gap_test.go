package httpd

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// POST /tables/{t}/skip-gap: a partition whose flush is stopped at
// offsets lost from the hot tier (here: a segment removed while the
// server was down) is reported by the flush and /metrics, refuses a skip
// of the wrong partition, and goes on after the skip of its own.
func TestColdSkipGap(t *testing.T) {
	dir := t.TempDir()
	cs := startColdServerIn(t, dir, 0, time.Hour)
	pad := strings.Repeat("x", 1000)
	for i := range 30 { // ~3 MiB into partition 1: segments of 1 MiB
		var b strings.Builder
		b.WriteString(`{"records":[`)
		for j := range 100 {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"payload":"%d-%d-%s","partition":1}`, i, j, pad)
		}
		b.WriteString(`]}`)
		if r := cs.post("/tables/events/bulk", b.String()); r.status != http.StatusAccepted {
			t.Fatalf("bulk: %d %s", r.status, r.body)
		}
	}
	if r := cs.post("/tables/events", `{"payload":"p0","partition":0}`); r.status != http.StatusAccepted {
		t.Fatalf("write: %d %s", r.status, r.body)
	}
	segs, err := cs.eng.Segments("events", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 3 {
		t.Fatalf("%d segments in partition 1, want 3 or more", len(segs))
	}
	lost := segs[1]
	cs.close()
	if err := os.Remove(lost.Path); err != nil {
		t.Fatal(err)
	}
	os.Remove(strings.TrimSuffix(lost.Path, ".seg") + ".idx")

	cs = startColdServerIn(t, dir, 0, time.Hour)
	r := cs.post("/tables/events/flush", "")
	expectError(t, r, http.StatusInternalServerError, codeStorage)
	if !strings.Contains(r.body, "skip-gap?partition=1") {
		t.Fatalf("flush error does not say the way out: %s", r.body)
	}
	if m := cs.get("/metrics"); !strings.Contains(m.body, "\nzombi_flush_partitions_stuck 1\n") {
		t.Fatalf("metrics do not show the stuck partition:\n%s", m.body)
	}
	var wm struct {
		Partitions map[string]struct {
			Watermark     uint64 `json:"watermark"`
			HighWatermark uint64 `json:"high_watermark"`
		} `json:"partitions"`
	}
	decodeJSON(t, cs.get("/tables/events/watermark"), &wm)
	if p0, p1 := wm.Partitions["0"], wm.Partitions["1"]; p0.Watermark != p0.HighWatermark || p1.Watermark != lost.First-1 {
		t.Fatalf("watermarks %+v: want partition 0 flushed, partition 1 up to %d", wm.Partitions, lost.First-1)
	}

	expectError(t, cs.post("/tables/events/skip-gap", ""), http.StatusBadRequest, codeInvalidInput)
	expectError(t, cs.post("/tables/events/skip-gap?partition=x", ""), http.StatusBadRequest, codeInvalidInput)
	expectError(t, cs.post("/tables/events/skip-gap?partition=0", ""), http.StatusConflict, codeNoGap)
	expectError(t, cs.post("/tables/events/skip-gap?partition=9", ""), http.StatusNotFound, codeNotFound)
	expectError(t, cs.get("/tables/events/skip-gap?partition=1"), http.StatusMethodNotAllowed, codeMethodNotAllowed)

	r = cs.post("/tables/events/skip-gap?partition=1", "")
	var sk struct {
		Status      string `json:"status"`
		Partition   uint32 `json:"partition"`
		SkippedFrom uint64 `json:"skipped_from"`
		SkippedTo   uint64 `json:"skipped_to"`
		Events      int64  `json:"events"`
	}
	decodeJSON(t, r, &sk)
	if r.status != http.StatusOK || sk.Status != "ok" || sk.Partition != 1 || sk.SkippedFrom != lost.First || sk.SkippedTo != lost.Last {
		t.Fatalf("skip-gap: %d %s; want offsets %d..%d skipped", r.status, r.body, lost.First, lost.Last)
	}
	if want := int64(3000 - lost.Last); sk.Events != want {
		t.Fatalf("skip-gap flushed %d events, want the %d after the gap", sk.Events, want)
	}
	decodeJSON(t, cs.get("/tables/events/watermark"), &wm)
	if p1 := wm.Partitions["1"]; p1.Watermark != p1.HighWatermark {
		t.Fatalf("partition 1 after the skip: %+v", p1)
	}
	if m := cs.get("/metrics"); !strings.Contains(m.body, "\nzombi_flush_partitions_stuck 0\n") {
		t.Fatal("metrics still show a stuck partition")
	}
	expectError(t, cs.post("/tables/events/skip-gap?partition=1", ""), http.StatusConflict, codeNoGap)
	if r := cs.post("/tables/events/flush", ""); r.status != http.StatusOK {
		t.Fatalf("flush after the skip: %d %s", r.status, r.body)
	}
}
