package bench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/httpd"
)

// startZombi serves httpd over a fresh engine on 127.0.0.1.
func startZombi(t *testing.T, mod func(*httpd.Config)) string {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := engine.Open(engine.Options{Dir: t.TempDir(), SegmentBytes: 4 << 20, Logger: quiet}.WithFsync(engine.FsyncNever))
	if err != nil {
		t.Fatal(err)
	}
	cfg := httpd.Config{Engine: eng, Logger: quiet}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := httpd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		<-done
		_ = eng.Close()
	})
	return ln.Addr().String()
}

func TestConsistencyAgainstServer(t *testing.T) {
	addr := startZombi(t, nil)
	for _, c := range []Config{
		{Encoding: EncodingJSON, Conns: 4, Batch: 5, Partitions: 2, Requests: 400},
		{Encoding: EncodingProtobuf, Conns: 3, Partitions: 3, Requests: 300, FreshPayloads: true},
		{Encoding: EncodingProtobuf, Conns: 2, Batch: 7, Partitions: 1, Requests: 100},
	} {
		c.Target, c.Scenario, c.Duration = addr, ScenarioConsistency, 10*time.Second
		rep, err := Run(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Violations) > 0 || rep.Consistency == nil {
			t.Fatalf("%s: violations: %v", c.Encoding, rep.Violations)
		}
		want := int(c.Requests) * max(c.Batch, 1)
		if rep.Consistency.Acked != want || rep.Consistency.ReadBack != want {
			t.Fatalf("%s: acked %d, read back %d, want %d", c.Encoding, rep.Consistency.Acked, rep.Consistency.ReadBack, want)
		}
	}
}

// TestConsistencyDetectsLoss runs the check against a server that acks
// writes it never stores: every acked offset must be reported missing.
func TestConsistencyDetectsLoss(t *testing.T) {
	addr, stop := startCeiling(t, CeilingNoop)
	defer stop()
	rep, err := Run(t.Context(), Config{Target: addr, Scenario: ScenarioConsistency, Conns: 2, Requests: 10, Duration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// The noop server acks offset 1 every time: duplicates and order
	// violations, and the read-back fails.
	if len(rep.Violations) == 0 {
		t.Fatal("no violation reported against a server that stores nothing")
	}
}

func TestScenariosReport(t *testing.T) {
	addr := startZombi(t, nil)
	for _, c := range []Config{
		{Scenario: ScenarioSingle, Conns: 4},
		{Scenario: ScenarioBulk, Conns: 2, Batch: 10, Encoding: EncodingProtobuf, FreshPayloads: true},
		{Scenario: ScenarioMixed, Conns: 2},
		{Scenario: ScenarioSingle, Conns: 2, Rate: 2000}, // open loop
		{Scenario: ScenarioSustained, Conns: 2, Size: 1024},
	} {
		c.Target, c.Duration, c.Interval = addr, 300*time.Millisecond, 50*time.Millisecond
		rep, err := Run(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Requests == 0 || rep.Errors > 0 || rep.Latency.N != uint64(rep.Requests) || len(rep.Timeline) == 0 {
			t.Fatalf("%s: %s", c.Scenario, rep.Summary())
		}
		if c.Rate > 0 && rep.ReqPerSec > c.Rate*1.2 {
			t.Fatalf("open loop at %v req/s sent %v req/s", c.Rate, rep.ReqPerSec)
		}
		if c.Scenario == ScenarioMixed && rep.Reads == 0 {
			t.Fatal("mixed: no reads")
		}
		if c.Scenario == ScenarioSustained && rep.Sustained == nil {
			t.Fatal("sustained: no summary")
		}
		var svg bytes.Buffer
		if err := rep.WriteSVG(&svg); err != nil || !strings.Contains(svg.String(), "<polyline") {
			t.Fatalf("svg: %v", err)
		}
	}
}

func TestBackpressureRecovers(t *testing.T) {
	addr := startZombi(t, func(c *httpd.Config) { *c = c.WithMaxInflightBytes(64 << 10) })
	rep, err := Run(t.Context(), Config{Target: addr, Scenario: ScenarioBackpressure, Conns: 8, Size: 1000, Batch: 30, Duration: 900 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	bp := rep.Backpressure
	if len(rep.Violations) > 0 || bp == nil || bp.OverloadRejected == 0 || !bp.Recovered {
		t.Fatalf("%s", rep.Summary())
	}
}

func TestUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Run(t.Context(), Config{Target: addr, Duration: time.Second, Timeout: time.Second}); err == nil {
		t.Fatal("no error for a closed port")
	}
}

// The do-nothing ceilings answer every write, bodies larger than their
// read buffers included (noop-streamed reads them from the stream, as
// zombi does), and the report charges the server's CPU time per request
// (here the server is this process).
func TestNoopCeilings(t *testing.T) {
	for _, kind := range []string{CeilingNoop, CeilingNoopStreamed} {
		addr, stop := startCeiling(t, kind)
		for _, c := range []struct{ size, n int }{{82, 3000}, {40 << 10, 200}} {
			rep, err := Run(t.Context(), Config{Target: addr, Scenario: ScenarioSingle, Conns: 2, Size: c.size,
				Requests: int64(c.n), Duration: 20 * time.Second, ServerPID: os.Getpid()})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Requests != int64(c.n) || rep.Errors > 0 {
				t.Fatalf("%s, %d B: %s", kind, c.size, rep.Summary())
			}
			// /proc counts CPU time in 10 ms ticks: 3000 requests take
			// several, on both sides.
			if c.n >= 3000 && (rep.ServerCPUPerReq <= 0 || rep.ClientCPUPerReq <= 0) {
				t.Fatalf("%s: CPU per request not measured: server %v µs, generator %v µs", kind, rep.ServerCPUPerReq, rep.ClientCPUPerReq)
			}
		}
		stop()
	}
}

// startCeiling serves a ceiling handler in this process on 127.0.0.1; stop
// shuts it down and waits for it.
func startCeiling(t *testing.T, kind string) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = ServeCeiling(ctx, ln, kind); close(done) }()
	return ln.Addr().String(), func() { cancel(); <-done }
}
