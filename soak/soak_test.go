package soak

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildZombi builds cmd/zombi into a temporary directory (or returns
// $ZOMBI_SOAK_BIN, a binary built already).
func buildZombi(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("ZOMBI_SOAK_BIN"); bin != "" {
		return bin
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build zombi: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "zombi")
	start := time.Now()
	out, err := exec.Command(goBin, "build", "-o", bin, "github.com/zombihq/zombi/cmd/zombi").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built zombi in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// TestSoak is the short soak of `make test`: 20 kill -9 cycles of a child
// zombi serve (fsync=always, cold tier flushing every second), then the
// checks of the whole run (see the package comment). ZOMBI_SOAK_CYCLES
// and ZOMBI_SOAK_FSYNC change the cycles and the mode; ZOMBI_SOAK_BIN
// runs a given binary instead of building one.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 soak: starts child processes for about a minute")
	}
	cycles := 20
	if raceEnabled {
		cycles = 6 // the harness's own concurrency, under the race detector
	}
	if v := os.Getenv("ZOMBI_SOAK_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("ZOMBI_SOAK_CYCLES=%q", v)
		}
		cycles = n
	}
	cfg := Config{
		Bin:    buildZombi(t),
		Cycles: cycles, // Dir: a temporary one, kept if the run fails
		Fsync:  os.Getenv("ZOMBI_SOAK_FSYNC"),
		Log:    testLog{t},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if res != nil {
		var b strings.Builder
		res.Print(&b)
		t.Log("\n" + b.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("the soak found violations (data dir and server.log kept in %s)", res.WorkDir)
	}
	if res.Cycles != cycles || res.AckedEvents == 0 || res.IcebergRows < res.AckedEvents {
		t.Fatalf("the soak did not run as planned: %d cycles, %d acked events, %d Iceberg rows", res.Cycles, res.AckedEvents, res.IcebergRows)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func TestResultPrint(t *testing.T) {
	r := Result{Cycles: 3, AckedEvents: 10}
	r.logMsg(`{"time":"x","level":"WARN","msg":"cut a torn tail from segment","table":"t"}`)
	r.logMsg(`{"time":"x","level":"WARN","msg":"cut a torn tail from segment","table":"u"}`)
	r.logMsg(`not json`)
	var b strings.Builder
	r.Print(&b)
	for _, want := range []string{"   2 × WARN cut a torn tail from segment\n", "lost = 0, duplicates = 0, reused offsets = 0", "\nPASS\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	r.Lost = 1
	if b.Reset(); r.OK() {
		t.Error("a lost event is OK")
	}
	r.Print(&b)
	if !strings.HasSuffix(b.String(), "FAIL\n") {
		t.Errorf("no FAIL in\n%s", b.String())
	}
}
