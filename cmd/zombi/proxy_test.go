package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zombihq/zombi/bench"
	"github.com/zombihq/zombi/internal/testsvc"
)

// node is one zombi serve of a test cluster, on a fixed port and data
// directory so that it comes back at the same address.
type node struct {
	t    *testing.T
	port int
	dir  string
	env  []string
	mu   sync.Mutex
	c    *child
}

func (n *node) start() {
	n.t.Helper()
	c := startChildOn(n.t, n.port, n.dir, n.env...)
	c.waitReady()
	n.mu.Lock()
	n.c = c
	n.mu.Unlock()
}

func (n *node) child() *child {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.c
}

// loadRun is a `zombi load` run in the background.
type loadRun struct {
	acks string
	code chan int
	out  bytes.Buffer
	errb bytes.Buffer
}

// startLoad runs zombi load (in process) through target for d: bulk
// JSON writes of 100 events that name no partition, each acked event's
// id written to the acks file.
func startLoad(t *testing.T, target, table string, d time.Duration) *loadRun {
	t.Helper()
	l := &loadRun{acks: filepath.Join(t.TempDir(), "acks"), code: make(chan int, 1)}
	args := []string{"--target", target, "--scenario", "bulk", "--table", table, "--partitions", "0",
		"--conns", "6", "--size", "82", "--rate", "300", "--duration", d.String(), "--timeout", "5s", "--progress", "off", "--acks", l.acks}
	go func() { l.code <- load(args, &l.out, &l.errb) }()
	return l
}

// wait waits for the run and returns the ids it acked.
func (l *loadRun) wait(t *testing.T) []string {
	t.Helper()
	select {
	case <-l.code: // failed requests (a node killed under it) fail the run: the acks say what was taken
	case <-time.After(2 * time.Minute):
		t.Fatal("zombi load did not stop")
	}
	f, err := os.Open(l.acks)
	if err != nil {
		t.Fatalf("acks: %v\n%s\n%s", err, l.out.String(), l.errb.String())
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ids = append(ids, sc.Text())
	}
	if len(ids) == 0 {
		t.Fatalf("zombi load acked nothing\n%s\n%s", l.out.String(), l.errb.String())
	}
	return ids
}

// Three nodes behind HAProxy (deploy/haproxy.cfg, round robin) on one
// PostgreSQL catalog and one MinIO bucket, loaded by zombi load through
// the proxy with writes that name no partition: one node is killed with
// SIGKILL mid-load and restarted on its data directory, then all three
// are restarted one after the other (SIGTERM: final flush, release)
// under load. The table, read back with iceberg-go, holds every acked
// event exactly once, and no event twice.
func TestClusterBehindProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	pg := testsvc.StartPostgres(t)
	m := testsvc.StartMinIO(t)
	env := clusterEnv(pg, m, "ZOMBI_FLUSH_INTERVAL_SECS=1", "ZOMBI_SEGMENT_SIZE_MB=4")
	nodes := make([]*node, 3)
	backends := make([]string, 3)
	for i := range nodes {
		nodes[i] = &node{t: t, port: freePort(t), dir: t.TempDir(), env: env}
		backends[i] = "127.0.0.1:" + strconv.Itoa(nodes[i].port)
		nodes[i].start()
	}
	proxy := testsvc.StartHAProxy(t, backends)
	const table = "load"
	var acked []string

	// kill -9 of one node mid-load, and its restart.
	l := startLoad(t, proxy.Addr(), table, 8*time.Second)
	time.Sleep(2 * time.Second)
	nodes[1].child().kill()
	time.Sleep(1500 * time.Millisecond)
	nodes[1].start()
	acked = append(acked, l.wait(t)...)
	t.Logf("kill -9 phase: %d events acked\n%s", len(acked), l.out.String())

	// A rolling restart of all three under load.
	l = startLoad(t, proxy.Addr(), table, 15*time.Second)
	time.Sleep(time.Second)
	for _, n := range nodes {
		n.child().stop()
		n.start()
		time.Sleep(time.Second)
	}
	before := len(acked)
	acked = append(acked, l.wait(t)...)
	t.Logf("rolling restart phase: %d events acked\n%s", len(acked)-before, l.out.String())

	// Every node flushes what it holds; the table then holds every
	// acked event once.
	for _, n := range nodes {
		n.child().flushTable(table)
	}
	count := map[string]int{}
	rows := 0
	scanPayloads(t, nodes[0].child(), table, func(p []byte) {
		rows++
		id, ok := bench.PayloadID(p)
		if !ok {
			t.Fatalf("a row without a load id: %q", p)
		}
		count[id]++
	})
	var missing, dup []string
	for _, id := range acked {
		if count[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id, n := range count {
		if n > 1 {
			dup = append(dup, fmt.Sprintf("%s×%d", id, n))
		}
	}
	if len(missing) > 0 || len(dup) > 0 {
		t.Fatalf("%d acked events, %d rows: %d acked events missing (%s), %d events more than once (%s)",
			len(acked), rows, len(missing), firstFew(missing), len(dup), firstFew(dup))
	}
	t.Logf("%d acked events, %d rows in the table (%d written but not acked: their request failed)", len(acked), rows, rows-len(acked))
	_, _, status := nodes[0].child().do("GET", "/health/ready", "")
	if !strings.Contains(status, `"cluster":{"status":"ok"`) {
		t.Fatalf("ready after the restarts: %s", status)
	}
}

func firstFew(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], ", ") + ", …"
	}
	return strings.Join(s, ", ")
}
