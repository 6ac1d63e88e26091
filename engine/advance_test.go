package engine

import (
	"testing"

	"github.com/zombihq/zombi/vfs"
)

// Advance continues a partition at a given offset: a new partition and
// one with events alike, the jump survives a restart (and a reboot, which
// moves past the sequence lease), and an Advance behind what the
// partition handed out changes nothing.
func TestAdvance(t *testing.T) {
	fs := vfs.NewMem()
	e := mustOpen(t, memOpts(fs))
	if high, err := e.Advance("t", 3, 500); err != nil || high != 500 {
		t.Fatalf("advance a new partition: %d, %v", high, err)
	}
	off, _, err := e.Append("t", Record{Partition: 3, Payload: []byte("a")})
	if err != nil || off != 501 {
		t.Fatalf("first append after advance: %d, %v", off, err)
	}
	for i := 0; i < 10; i++ {
		if _, _, err := e.Append("t", Record{Partition: 0, Payload: payload(0, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if high, err := e.Advance("t", 0, 5); err != nil || high != 10 {
		t.Fatalf("advance behind the high watermark: %d, %v", high, err)
	}
	if high, err := e.Advance("t", 0, 100); err != nil || high != 100 {
		t.Fatalf("advance partition 0: %d, %v", high, err)
	}
	offs := make([]uint64, 2)
	if err := e.AppendBatch("t", []Record{{Partition: 0, Payload: []byte("x")}, {Partition: 0, Payload: []byte("y")}}, offs); err != nil {
		t.Fatal(err)
	}
	if offs[0] != 101 || offs[1] != 102 {
		t.Fatalf("offsets after advance %v", offs)
	}
	check := func(e *Engine) {
		t.Helper()
		evs := readAll(t, e, "t", 0)
		if len(evs) != 12 || evs[9].Offset != 10 || evs[10].Offset != 101 || string(evs[11].Payload) != "y" {
			t.Fatalf("partition 0 reads %d events: %+v", len(evs), evs)
		}
		for _, pi := range e.Partitions("t") {
			if pi.Partition == 0 && (pi.High != 102 || pi.Flushed != 100) {
				t.Fatalf("partition 0 after advance: %+v", pi)
			}
			if pi.Partition == 3 && (pi.High != 501 || pi.Flushed != 500) {
				t.Fatalf("partition 3 after advance: %+v", pi)
			}
		}
	}
	check(e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = mustOpen(t, memOpts(fs))
	check(e)
	e.Close()
	o := memOpts(fs)
	o.BootID = "boot-2" // a reboot: unsynced records may be gone, the lease is skipped
	e = mustOpen(t, o)
	defer e.Close()
	if off, _, err := e.Append("t", Record{Partition: 3, Payload: []byte("b")}); err != nil || off <= 501 {
		t.Fatalf("append after reboot: %d, %v", off, err)
	}
}
