package engine

import (
	"fmt"
	"testing"

	"github.com/zombihq/zombi/vfs"
)

// TestBatchAppendMixedWithSingles interleaves key-less batches (encoded
// with one segment append, past DirectMax), batches with keys (record by
// record), and single appends, across segment rolls; every offset must
// read back with its payload and timestamp, by scan and by seeking into
// the middle of a batch, before and after a reopen.
func TestBatchAppendMixedWithSingles(t *testing.T) {
	for _, mode := range []FsyncMode{FsyncNever, FsyncInterval, FsyncAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			fs := vfs.NewMem()
			e := mustOpen(t, memOpts(fs).WithFsync(mode))
			type want struct {
				payload string
				ts      int64
			}
			var all []want
			next := uint64(1)
			for round := range 60 {
				switch round % 3 {
				case 0: // big key-less batch, some explicit timestamps
					recs := make([]Record, 40+round)
					for i := range recs {
						recs[i].Payload = []byte(fmt.Sprintf("batch-%02d-%03d-%02000d", round, i, i))
						if i%7 == 0 {
							recs[i].TimestampMs = int64(1_700_000_000_000 + round*1000 + i)
						}
					}
					offs := make([]uint64, len(recs))
					if err := e.AppendBatch("t", recs, offs); err != nil {
						t.Fatal(err)
					}
					for i, o := range offs {
						if o != next {
							t.Fatalf("round %d record %d: offset %d, want %d", round, i, o, next)
						}
						next++
						all = append(all, want{string(recs[i].Payload), recs[i].TimestampMs})
					}
				case 1: // batch with a key: the per-record path
					recs := []Record{{Payload: []byte("k1")}, {Payload: []byte("k2"), Key: []byte(fmt.Sprint("key-", round))}}
					offs := make([]uint64, 2)
					if err := e.AppendBatch("t", recs, offs); err != nil {
						t.Fatal(err)
					}
					for i := range recs {
						all = append(all, want{string(recs[i].Payload), 0})
					}
					next += 2
				default:
					off, _, err := e.Append("t", Record{Payload: []byte(fmt.Sprint("single-", round))})
					if err != nil || off != next {
						t.Fatalf("single: %d %v, want %d", off, err, next)
					}
					all = append(all, want{fmt.Sprint("single-", round), 0})
					next++
				}
			}
			check := func(e *Engine) {
				evs := readAll(t, e, "t", 0)
				if len(evs) != len(all) {
					t.Fatalf("read %d events, want %d", len(evs), len(all))
				}
				for i, ev := range evs {
					w := all[i]
					if ev.Offset != uint64(i+1) || string(ev.Payload) != w.payload || (w.ts != 0 && ev.TimestampMs != w.ts) {
						t.Fatalf("event %d: offset %d payload %.30q ts %d, want %.30q ts %d", i, ev.Offset, ev.Payload, ev.TimestampMs, w.payload, w.ts)
					}
				}
				for _, off := range []uint64{2, 17, 45, uint64(len(all) / 2), uint64(len(all))} {
					evs, _, err := e.Read("t", Query{Partition: 0, Offset: off, Limit: 1})
					if err != nil || len(evs) != 1 || evs[0].Offset != off || string(evs[0].Payload) != all[off-1].payload {
						t.Fatalf("seek to %d: %+v %v", off, evs, err)
					}
				}
			}
			check(e)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			e = mustOpen(t, memOpts(fs).WithFsync(mode))
			defer e.Close()
			check(e)
		})
	}
}
