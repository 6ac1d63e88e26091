package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/zombihq/zombi/vfs"
)

// Power loss in FsyncInterval mode. The engine runs inside a synctest
// bubble, so its interval syncer ticks on the bubble's fake clock: the
// test advances time with time.Sleep (instant) and knows exactly which
// ticks have run. A MemFS CrashClone is what a machine finds after a
// power loss at that instant: only synced data.
//
// The promise checked: every record acknowledged before the last interval
// sync survives; the records lost are only some of those acknowledged
// since then (at most one interval's worth); the survivors of each
// partition are a gap-free prefix with the right payloads; and no offset
// is handed out again after the reboot.

const plInterval = 100 * time.Millisecond

func plOpts(fs vfs.FS, boot string) Options {
	o := memOpts(fs).WithFsync(FsyncInterval)
	o.FsyncInterval = plInterval
	o.SequenceLease = 4096
	o.BootID = boot
	return o
}

// plAck is one acknowledged record: its payload and the fake time of the
// acknowledgement.
type plAck struct {
	payload []byte
	at      time.Time
}

func TestPowerLossIntervalLossIsBoundedByTheInterval(t *testing.T) {
	for round := range 8 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { powerLossIntervalRound(t, uint64(round)) })
		})
	}
}

func powerLossIntervalRound(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	fs := vfs.NewMem()
	opened := time.Now()
	e := mustOpen(t, plOpts(fs, "boot-1"))
	const parts = 3
	acked := [parts]map[uint64]plAck{{}, {}, {}}
	var high [parts]uint64
	n := 0
	steps := 20 + rng.IntN(40)
	for step := range steps {
		// A burst of appends, single or batched, at the current instant.
		for range rng.IntN(30) {
			now := time.Now()
			p := uint32(rng.IntN(parts))
			if rng.IntN(2) == 0 {
				pl := []byte(fmt.Sprintf("s%d-n%d-%s", seed, n, bytes.Repeat([]byte("x"), rng.IntN(200))))
				off, _, err := e.Append("t", Record{Partition: p, Payload: pl})
				if err != nil {
					t.Fatal(err)
				}
				acked[p][off] = plAck{pl, now}
				high[p] = max(high[p], off)
				n++
				continue
			}
			recs := make([]Record, 1+rng.IntN(8))
			for i := range recs {
				recs[i] = Record{Partition: uint32(rng.IntN(parts)), Payload: []byte(fmt.Sprintf("b%d-n%d", seed, n))}
				n++
			}
			offs := make([]uint64, len(recs))
			if err := e.AppendBatch("t", recs, offs); err != nil {
				t.Fatal(err)
			}
			for i, r := range recs {
				acked[r.Partition][offs[i]] = plAck{r.Payload, now}
				high[r.Partition] = max(high[r.Partition], offs[i])
			}
		}
		if step == steps-1 {
			break // crash right after a burst: something is in flight
		}
		// Let the fake clock run for 0 to 2.5 intervals; the syncer runs
		// every tick that falls in it before Wait returns.
		time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond)
		synctest.Wait()
	}

	// Power loss now. The last tick at or before now synced everything
	// acknowledged before it (appends at a tick's instant happen after the
	// tick ran: the test appends only once synctest.Wait returned).
	now := time.Now()
	lastTick := opened.Add(now.Sub(opened) / plInterval * plInterval)
	crashed := fs.CrashClone()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e2 := mustOpen(t, plOpts(crashed, "boot-2")) // the machine rebooted
	defer e2.Close()
	lost, mustSurvive := 0, 0
	for p := range uint32(parts) {
		got := map[uint64][]byte{}
		prev := uint64(0)
		for _, ev := range readAll(t, e2, "t", p) {
			if ev.Offset != prev+1 {
				t.Fatalf("partition %d: offset %d after %d: survivors are not a gap-free prefix", p, ev.Offset, prev)
			}
			prev = ev.Offset
			got[ev.Offset] = ev.Payload
		}
		for off, a := range acked[p] {
			synced := a.at.Before(lastTick)
			if synced {
				mustSurvive++
			}
			g, ok := got[off]
			switch {
			case ok && !bytes.Equal(g, a.payload):
				t.Fatalf("partition %d offset %d: got %q, want %q", p, off, g, a.payload)
			case !ok && synced:
				t.Fatalf("partition %d offset %d acked at +%v was lost, though the sync at +%v came after it",
					p, off, a.at.Sub(opened), lastTick.Sub(opened))
			case !ok:
				lost++
				if now.Sub(a.at) >= plInterval {
					t.Fatalf("lost a record acked %v before the crash (interval %v)", now.Sub(a.at), plInterval)
				}
			}
		}
		// Offsets acked (and lost) before the crash are never handed out again.
		if high[p] > 0 {
			off, _, err := e2.Append("t", Record{Partition: p, Payload: []byte("after")})
			if err != nil {
				t.Fatal(err)
			}
			if off <= high[p] {
				t.Fatalf("partition %d: offset %d reused after the power loss (acked up to %d)", p, off, high[p])
			}
		}
	}
	t.Logf("seed %d: %d acked, %d synced by the last tick, %d lost (all acked in the last %v)", seed, n, mustSurvive, lost, now.Sub(lastTick))
}

// The bound is tight: what was acked after the last tick is exactly what
// a power loss takes, and one more tick makes it durable.
func TestPowerLossIntervalLosesOnlyWhatFollowsTheLastSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := vfs.NewMem()
		e := mustOpen(t, plOpts(fs, "boot-1"))
		defer e.Close()
		appendN := func(from, n int) {
			for i := from; i < from+n; i++ {
				if _, _, err := e.Append("t", Record{Payload: payload(0, i)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		survivors := func(fs *vfs.MemFS) int {
			e2 := mustOpen(t, plOpts(fs, "boot-2"))
			defer e2.Close()
			evs := readAll(t, e2, "t", 0)
			for i, ev := range evs {
				if !bytes.Equal(ev.Payload, payload(0, i)) {
					t.Fatalf("event %d: %q", i, ev.Payload)
				}
			}
			return len(evs)
		}

		appendN(0, 50)
		time.Sleep(plInterval) // one tick: the 50 are synced
		synctest.Wait()
		appendN(50, 30) // acked into the page cache only
		if got := survivors(fs.CrashClone()); got != 50 {
			t.Fatalf("power loss after 50 synced + 30 unsynced: %d survived, want 50", got)
		}
		time.Sleep(plInterval)
		synctest.Wait()
		if got := survivors(fs.CrashClone()); got != 80 {
			t.Fatalf("power loss after the next tick: %d survived, want 80", got)
		}
	})
}

// An fsync failure on the interval syncer is sticky: the log refuses every
// later write (fsyncgate) instead of acknowledging data it may have lost,
// and a later successful fsync does not clear it. Other partitions go on.
func TestPowerLossIntervalSyncErrorIsSticky(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var armed atomic.Bool
		efs := &vfs.ErrorFS{FS: vfs.NewMem(), Inject: func(op vfs.Op, path string) error {
			if op == vfs.OpSync && armed.Load() && bytes.Contains([]byte(path), []byte("/t/0/")) {
				return errors.New("EIO")
			}
			return nil
		}}
		e := mustOpen(t, plOpts(efs, "boot-1"))
		defer e.Close()
		for p := range uint32(2) {
			if _, _, err := e.Append("t", Record{Partition: p, Payload: []byte("ok")}); err != nil {
				t.Fatal(err)
			}
		}
		armed.Store(true)
		// Acked into the page cache: interval mode does not wait for the sync.
		if _, _, err := e.Append("t", Record{Payload: []byte("unsynced")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(plInterval) // the tick's fsync of partition 0 fails
		synctest.Wait()
		armed.Store(false)
		if _, _, err := e.Append("t", Record{Payload: []byte("refused")}); !errors.Is(err, ErrLogFailed) {
			t.Fatalf("append after a failed interval fsync: %v, want ErrLogFailed", err)
		}
		time.Sleep(plInterval)
		synctest.Wait()
		if _, _, err := e.Append("t", Record{Payload: []byte("still refused")}); !errors.Is(err, ErrLogFailed) {
			t.Fatalf("append after a later tick: %v, want ErrLogFailed", err)
		}
		if _, _, err := e.Append("t", Record{Partition: 1, Payload: []byte("fine")}); err != nil {
			t.Fatalf("other partition: %v", err)
		}
		if pi := e.Partitions("t"); pi[0].Failed == nil || pi[1].Failed != nil {
			t.Fatalf("failure not isolated to partition 0: %+v", pi)
		}
	})
}
