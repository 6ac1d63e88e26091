package flush

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestCrashChild is the child of TestCrashPoints: it flushes the table in
// ZOMBI_CRASH_DIR and kills itself with SIGKILL at the n-th (1-based)
// passage of ZOMBI_CRASH_POINT.
func TestCrashChild(t *testing.T) {
	dir, point := os.Getenv("ZOMBI_CRASH_DIR"), os.Getenv("ZOMBI_CRASH_POINT")
	if dir == "" {
		t.Skip("child of TestCrashPoints")
	}
	n, _ := strconv.Atoi(os.Getenv("ZOMBI_CRASH_AT"))
	var seen atomic.Int32
	crashHook = func(p string) {
		if p == point && int(seen.Add(1)) >= n {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // wait for the signal
		}
	}
	v := openEnv(t, dir, Options{BatchBytes: 1 << 20, RoundBytes: 2 << 20})
	if _, err := v.f.FlushTable(context.Background(), "events"); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("flush finished without reaching %s #%d", point, n)
}

// A flusher process is killed at each crash point (while encoding, after
// the upload before the commit, after the commit before the engine saved
// its flushed watermark), on the first round and on a later one; after
// the restart the table holds every event exactly once.
func TestCrashPoints(t *testing.T) {
	if os.Getenv("ZOMBI_CRASH_DIR") != "" {
		t.Skip("in the child")
	}
	for _, point := range []string{"encoded", "uploaded", "committed"} {
		for _, at := range []int{1, 2} {
			t.Run(point+"/"+strconv.Itoa(at), func(t *testing.T) {
				dir := t.TempDir()
				want := map[evKey]event{}
				v := openEnv(t, dir, Options{})
				fillTable(t, v.e, "events", 30000, want)
				v.close()

				cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), "ZOMBI_CRASH_DIR="+dir, "ZOMBI_CRASH_POINT="+point, "ZOMBI_CRASH_AT="+strconv.Itoa(at))
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("child was not killed at %s #%d: %v\n%s", point, at, err, out)
				}

				v = openEnv(t, dir, Options{})
				appendN(t, v.e, "events", 1, 300, func(i int) int64 { return baseTs + int64(i) }, want)
				if _, err := v.f.FlushTable(context.Background(), "events"); err != nil {
					t.Fatal(err)
				}
				tbl, _ := v.f.Table(context.Background(), "events")
				scanTable(t, tbl, want)
				checkWatermarks(t, v, "events")
				checkDataFiles(t, tbl, openLocal(t))
			})
		}
	}
}
