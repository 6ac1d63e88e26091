package engine

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash test runs this test binary as a child that appends and prints
// each acked offset; the parent kills it with SIGKILL mid-stream.
const childEnv = "ZOMBI_ENGINE_CRASH_CHILD"

func childMain() {
	dir := os.Getenv(childEnv)
	mode, err := ParseFsyncMode(os.Getenv("ZOMBI_ENGINE_CRASH_FSYNC"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	e, err := Open(Options{Dir: dir, SegmentBytes: 1 << 20, Logger: quiet}.WithFsync(mode))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	out := bufio.NewWriterSize(os.Stdout, 4096)
	deadline := time.Now().Add(20 * time.Second) // bounded even if never killed
	for i := 0; i < 2_000_000 && time.Now().Before(deadline); i++ {
		p := uint32(i % 3)
		recs := []Record{{Partition: p, Payload: crashPayload(p, i, 0)}, {Partition: p, Payload: crashPayload(p, i, 1)}}
		offs := make([]uint64, 2)
		if i%2 == 0 {
			recs = recs[:1]
			offs[0], _, err = e.Append("crash", recs[0])
		} else {
			err = e.AppendBatch("crash", recs, offs)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "append:", err)
			os.Exit(3)
		}
		for j := range recs {
			fmt.Fprintf(out, "%d %d %s\n", p, offs[j], recs[j].Payload)
		}
		out.Flush() // the ack leaves the process only after the append returned
	}
	e.Close()
	os.Exit(0)
}

func crashPayload(p uint32, i, j int) []byte {
	return []byte(fmt.Sprintf("p%d-i%d-j%d-%s", p, i, j, strings.Repeat("z", i%50)))
}

type ack struct {
	p   uint32
	off uint64
	pl  string
}

func TestCrashRecoveryKilledChild(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	for _, mode := range []FsyncMode{FsyncNever, FsyncAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(uint64(mode), 7))
			high := map[uint32]uint64{}
			all := map[[2]uint64]string{}
			for cycle := range 4 {
				acks := runAndKill(t, dir, mode, 200+rng.IntN(3000))
				for _, a := range acks {
					if a.off <= high[a.p] {
						t.Fatalf("cycle %d: partition %d offset %d acked again (previous high %d)", cycle, a.p, a.off, high[a.p])
					}
					high[a.p] = a.off
					all[[2]uint64{uint64(a.p), a.off}] = a.pl
				}
				e := mustOpen(t, Options{Dir: dir, Logger: quiet}.WithFsync(mode))
				for p := uint32(0); p < 3; p++ {
					evs := readAll(t, e, "crash", p)
					got := map[uint64]string{}
					prev := uint64(0)
					for _, ev := range evs {
						if ev.Offset <= prev {
							t.Fatalf("offsets not increasing: %d after %d", ev.Offset, prev)
						}
						prev = ev.Offset
						got[ev.Offset] = string(ev.Payload)
					}
					for k, pl := range all {
						if uint32(k[0]) == p && got[k[1]] != pl {
							t.Fatalf("cycle %d: acked p%d/%d lost: got %q want %q", cycle, p, k[1], got[k[1]], pl)
						}
					}
					pi := e.Partitions("crash")[p]
					if pi.High < high[p] {
						t.Fatalf("high watermark %d below acked %d", pi.High, high[p])
					}
					high[p] = pi.High // offsets written but not acked are not reused either
				}
				if err := e.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// runAndKill starts the child, reads acks until n have arrived, kills it
// with SIGKILL and returns the acks it saw.
func runAndKill(t *testing.T, dir string, mode FsyncMode, n int) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, "ZOMBI_ENGINE_CRASH_FSYNC="+mode.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acks []ack
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue // a torn last line at the kill
		}
		p, _ := strconv.ParseUint(f[0], 10, 32)
		off, _ := strconv.ParseUint(f[1], 10, 64)
		acks = append(acks, ack{uint32(p), off, f[2]})
		if len(acks) >= n {
			cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	for sc.Scan() {
	}
	cmd.Wait()
	if len(acks) < n {
		t.Fatalf("child stopped after %d acks: %s", len(acks), stderr.String())
	}
	return acks
}
