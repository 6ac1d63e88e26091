package peer

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// BenchmarkPebbleAppend is the 82 B workload of BenchmarkEngineAppend on
// Pebble with its WAL on: Sync=false with a Set per record and with a
// Batch of 100, and Sync=true with a Batch of 100 and with 64 concurrent
// writers (Pebble's commit pipeline groups their WAL syncs). Keys are
// partition + per-writer sequence, values timestamp + payload.
func BenchmarkPebbleAppend(b *testing.B) {
	cases := []struct {
		sync           bool
		batch, writers int
	}{
		{false, 1, 1},
		{false, 100, 1},
		{false, 1, 64},
		{true, 1, 1},
		{true, 100, 1},
		{true, 1, 64},
		{true, 100, 64},
	}
	for _, c := range cases {
		name := fmt.Sprintf("sync=%t/82B/batch=%d/writers=%d", c.sync, c.batch, c.writers)
		b.Run(name, func(b *testing.B) { benchPebbleAppend(b, c.sync, 82, c.batch, c.writers) })
	}
}

func benchPebbleAppend(b *testing.B, sync bool, size, batch, writers int) {
	dir := benchDir(b)
	iow := startIO(dir)
	db, err := pebble.Open(dir, PebbleOptions())
	if err != nil {
		b.Fatal(err)
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	payloads := Payloads(64, size, 1)
	keys := make([][]byte, writers)
	vals := make([][]byte, writers)
	batches := make([]*pebble.Batch, writers)
	for w := range keys {
		keys[w] = make([]byte, 0, 12)
		vals[w] = make([]byte, 0, 8+size)
		if batch > 1 {
			batches[w] = db.NewBatch()
		}
	}
	op := func(w, i int) error {
		if batch == 1 {
			keys[w] = PebbleKey(keys[w], 0, w, i)
			vals[w] = PebbleValue(vals[w], 1_700_000_000_000+int64(i), payloads[(w+i)&63])
			return db.Set(keys[w], vals[w], wo)
		}
		bt := batches[w]
		bt.Reset()
		for j := 0; j < batch; j++ {
			keys[w] = PebbleKey(keys[w], 0, w, i*batch+j)
			vals[w] = PebbleValue(vals[w], 1_700_000_000_000+int64(i), payloads[(w+j)&63])
			if err := bt.Set(keys[w], vals[w], nil); err != nil {
				return err
			}
		}
		return bt.Commit(wo)
	}
	b.SetBytes(int64(size * batch))
	b.ReportAllocs()
	if writers == 1 {
		i := 0
		for b.Loop() {
			if err := op(0, i); err != nil {
				b.Fatal(err)
			}
			i++
		}
	} else {
		b.ResetTimer()
		parallel(b, writers, op)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
	for _, bt := range batches {
		if bt != nil {
			bt.Close()
		}
	}
	if err := db.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	iow.report(b, int64(b.N*batch*size))
}
