package flush

import (
	"math"
	"testing"

	"github.com/zombihq/zombi/engine"
)

// collect gives every row the (event_date, event_hour) of its own
// timestamp, whatever the order of the timestamps: within an hour, across
// hour and day boundaries, backwards, before 1970 and at the ends of
// int64 (where event_date, an int32, wraps: timestamps are not bounded
// at ingest).
func TestCollectHours(t *testing.T) {
	e, err := engine.Open(engine.Options{Dir: t.TempDir()}.WithFsync(engine.FsyncNever))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const h = 3_600_000
	day := int64(24 * h)
	tss := []int64{
		20514*day + 10*h, 20514*day + 10*h + 1, 20514*day + 11*h - 1, 20514*day + 11*h, // into the next hour
		20514*day + 10*h + 5,                      // back
		20515*day - 1, 20515 * day, 20515*day + 1, // a day boundary
		-1, -h, -h - 1, -day, -day - 1, 1, // 1970 and before
		math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 - h, math.MinInt64, math.MinInt64 + 1,
		0, 0, // stamped by the engine
	}
	recs := make([]engine.Record, len(tss))
	for i, ts := range tss {
		recs[i] = engine.Record{TimestampMs: ts, Payload: []byte("{}")}
	}
	offs := make([]uint64, len(recs))
	if err := e.AppendBatch("t", recs, offs); err != nil {
		t.Fatal(err)
	}
	var b batch
	last, err := collect(e, "t", 0, offs[0], offs[len(offs)-1], 1<<30, &b)
	if err != nil || last != offs[len(offs)-1] || len(b.rows) != len(tss) {
		t.Fatalf("collect: last %d of %d, %d rows, err %v", last, offs[len(offs)-1], len(b.rows), err)
	}
	for i, r := range b.rows {
		if tss[i] != 0 && r.TimestampMs != tss[i] { // 0: stamped by the engine
			t.Fatalf("row %d: timestamp %d, appended %d", i, r.TimestampMs, tss[i])
		}
		hr := floorDiv(r.TimestampMs, h)
		d := floorDiv(hr, 24)
		if r.EventDate != int32(d) || int64(r.EventHour) != hr-d*24 {
			t.Errorf("ts %d: date %d hour %d, want %d %d", r.TimestampMs, r.EventDate, r.EventHour, int32(d), hr-d*24)
		}
	}
}
