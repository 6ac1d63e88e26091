package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/zombihq/zombi/vfs"
)

// Power loss while partitions write over recycled segment files: the
// cold tier commits prefixes as the appends go on, so flushed segments'
// files are taken for the next segments, whose data ends inside a former
// segment's records. After the reboot every acknowledged offset above the
// committed one is read back with its payload, and nothing else: no
// record of a former segment surfaces, and no offset is handed out twice.
func TestRecycledSegmentsPowerLoss(t *testing.T) {
	for round := range 6 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(round), 9))
			fs := vfs.NewMem()
			e := mustOpen(t, memOpts(fs).WithFsync(FsyncAlways)) // 1 MiB segments
			const parts = 2
			var acked [parts]map[uint64][]byte
			var high, flushed [parts]uint64
			for p := range parts {
				acked[p] = map[uint64][]byte{}
			}
			steps := 300 + rng.IntN(300)
			for i := range steps {
				p := uint32(rng.IntN(parts))
				recs := make([]Record, 1+rng.IntN(60))
				for j := range recs {
					pl := fmt.Appendf(nil, "r%d-s%d-%d-", round, i, j)
					recs[j] = Record{Partition: p, Payload: append(pl, bytes.Repeat([]byte{byte('a' + j%26)}, rng.IntN(1000))...)}
				}
				offs := make([]uint64, len(recs))
				if err := e.AppendBatch("t", recs, offs); err != nil {
					t.Fatal(err)
				}
				for j, off := range offs {
					acked[p][off] = recs[j].Payload
					high[p] = max(high[p], off)
				}
				if rng.IntN(8) == 0 { // the cold tier commits a prefix
					to := flushed[p] + uint64(rng.IntN(int(high[p]-flushed[p])+1))
					if err := e.MarkFlushed("t", p, to); err != nil {
						t.Fatal(err)
					}
					flushed[p] = to
				}
			}
			if e.Stats().Recycled == 0 {
				t.Fatal("no segment was recycled: the test does not test recycling")
			}
			crashed := fs.CrashClone()
			e.Close()

			o := memOpts(crashed).WithFsync(FsyncAlways)
			o.BootID = "boot-2" // the machine rebooted
			e2 := mustOpen(t, o)
			defer e2.Close()
			if q := e2.Stats().Quarantined; q != 0 {
				t.Fatalf("%d segments quarantined", q)
			}
			for p := range uint32(parts) {
				// The former records after a recycled segment's data are
				// not a torn tail: nothing is cut or copied aside.
				names, err := crashed.List(fmt.Sprintf("/data/hot/t/%d", p))
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range names {
					if strings.HasSuffix(n, ".broken") {
						t.Fatalf("partition %d: %s: a recycled segment's former records taken for a torn tail", p, n)
					}
				}
				got := map[uint64]bool{}
				for _, ev := range readAll(t, e2, "t", p) {
					want, ok := acked[p][ev.Offset]
					if !ok || ev.Offset > high[p] {
						t.Fatalf("partition %d: offset %d was never written (high %d)", p, ev.Offset, high[p])
					}
					if !bytes.Equal(ev.Payload, want) {
						t.Fatalf("partition %d: offset %d: payload %.40q, want %.40q", p, ev.Offset, ev.Payload, want)
					}
					got[ev.Offset] = true
				}
				for off := flushed[p] + 1; off <= high[p]; off++ {
					if !got[off] {
						t.Fatalf("partition %d: acked offset %d lost (committed up to %d, high %d)", p, off, flushed[p], high[p])
					}
				}
				next, _, err := e2.Append("t", Record{Partition: p, Payload: []byte("after")})
				if err != nil {
					t.Fatal(err)
				}
				if next <= high[p] {
					t.Fatalf("partition %d: offset %d handed out again (high %d before the crash)", p, next, high[p])
				}
			}
		})
	}
}

// A partition keeps one flushed segment's file for its next segment, and
// lets it go once it has no active segment (idle, or at a clean stop).
func TestRecycleKeepsOneFileWhileActive(t *testing.T) {
	fs := vfs.NewMem()
	e := mustOpen(t, memOpts(fs)) // 1 MiB segments
	defer e.Close()
	kept := "/data/hot/t/0/" + recycleName
	pl := bytes.Repeat([]byte("k"), 900)
	for i := 0; i < 3000; i++ { // ~2.8 MiB: two sealed segments and an active one
		if _, _, err := e.Append("t", Record{Payload: pl}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := e.log("t", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	// Let the background work finish: the seals of the full segments,
	// and the spare's reservation, which would take the kept file.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		busy := l.preparing || l.sealsInFlight > 0
		l.mu.Unlock()
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("background seals or reservation still running after 10 s")
		}
	}
	if err := e.MarkFlushed("t", 0, 2000); err != nil {
		t.Fatal(err)
	}
	if err := l.collect(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(kept); err != nil {
		t.Fatalf("no flushed segment kept for recycling: %v", err)
	}
	if err := l.sealIfIdle(); err != nil { // active: keeps it
		t.Fatal(err)
	}
	if _, err := fs.Stat(kept); err != nil {
		t.Fatalf("the kept file went away while the partition is active: %v", err)
	}
	if err := l.sealActive(0); err != nil {
		t.Fatal(err)
	}
	if err := l.sealIfIdle(); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(kept); err == nil {
		t.Fatal("an idle partition still keeps a flushed segment's file")
	}
}
