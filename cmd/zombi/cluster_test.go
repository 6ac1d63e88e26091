package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/catalog/rest"

	"github.com/zombihq/zombi/internal/testsvc"
)

// clusterEnv is the environment of a node of a test cluster on pg and
// the MinIO m, with a short lease and no background flush.
func clusterEnv(pg string, m *testsvc.MinIO, extra ...string) []string {
	return append([]string{"ZOMBI_CATALOG_URL=" + pg, "ZOMBI_S3_BUCKET=zombi", "ZOMBI_S3_ENDPOINT=http://" + m.Addr,
		"AWS_ACCESS_KEY_ID=" + minioUser, "AWS_SECRET_ACCESS_KEY=" + minioSecret,
		"ZOMBI_LEASE_SECS=2", "ZOMBI_FLUSH_INTERVAL_SECS=3600", "ZOMBI_SEGMENT_SIZE_MB=64"}, extra...)
}

// writeReply is a 202 of POST /tables/{t}.
type writeReply struct {
	Offset    uint64 `json:"offset"`
	Partition uint32 `json:"partition"`
}

// writeEvent posts one event with payload (and partition p when p >= 0)
// to table events and returns the status, headers and body.
func (c *child) writeEvent(payload string, p int) (int, writeReply, string, string) {
	c.t.Helper()
	body := `{"payload":` + strconv.Quote(payload)
	if p >= 0 {
		body += `,"partition":` + strconv.Itoa(p)
	}
	st, h, b := c.do("POST", "/tables/events", body+"}")
	var r writeReply
	if st == 202 {
		if err := json.Unmarshal([]byte(b), &r); err != nil {
			c.t.Fatalf("write reply %s: %v", b, err)
		}
	}
	return st, r, h.Get("X-Zombi-Owner"), b
}

// waitReady waits until the node's /health/ready reports the cluster ok
// (it has joined, and its lease is live).
func (c *child) waitReady() string {
	c.t.Helper()
	for i := 0; ; i++ {
		st, _, body := c.do("GET", "/health/ready", "")
		if st == 200 && strings.Contains(body, `"cluster":{"status":"`) {
			return body
		}
		if i == 300 {
			c.t.Fatalf("node never ready: %d %s\n%s", st, body, c.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tablePayloads reads table events back from Iceberg (the REST catalog
// view of node c, data files from MinIO) and counts each payload.
func tablePayloads(t *testing.T, c *child) map[string]int {
	t.Helper()
	got := map[string]int{}
	scanPayloads(t, c, "events", func(p []byte) { got[string(p)]++ })
	return got
}

// scanPayloads reads table back from Iceberg with iceberg-go (the REST
// catalog view of node c, data files from MinIO) and calls fn with every
// payload.
func scanPayloads(t testing.TB, c *child, table string, fn func(payload []byte)) {
	t.Helper()
	ctx := context.Background()
	rc, err := rest.NewCatalog(ctx, "zombi", c.base, rest.WithAdditionalProps(map[string]string{
		"s3.access-key-id": minioUser, "s3.secret-access-key": minioSecret,
	}))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := rc.LoadTable(ctx, []string{"zombi", table})
	if err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	rd := array.NewTableReader(at, 0)
	defer rd.Release()
	for rd.Next() {
		rec := rd.RecordBatch()
		pl := rec.Column(rec.Schema().FieldIndices("payload")[0]).(*array.Binary)
		for i := range int(rec.NumRows()) {
			fn(pl.Value(i))
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
}

// Two nodes on one PostgreSQL catalog and one bucket: each writes its own
// partition of a table when a write names none; one that names the other
// node's partition is refused with 421 and the owner's address; a clean
// stop releases a node's flushed partitions and the other node goes on
// with them past their last offset; a killed node keeps its partitions
// (readiness and metrics say so) until an operator hands them off; and
// the table holds every acked event exactly once.
func TestClusterTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	pg := testsvc.StartPostgres(t)
	m := testsvc.StartMinIO(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startChild(t, dirA, clusterEnv(pg, m)...)
	b := startChild(t, dirB, clusterEnv(pg, m)...)
	a.waitReady()
	b.waitReady()
	acked := map[string]bool{}
	write := func(c *child, payload string, p int) writeReply {
		t.Helper()
		st, r, _, body := c.writeEvent(payload, p)
		if st != 202 {
			t.Fatalf("write %s (partition %d): %d %s\n%s", payload, p, st, body, c.log())
		}
		acked[payload] = true
		return r
	}
	ra := write(a, "a-1", -1)
	rb := write(b, "b-1", -1)
	if ra.Partition == rb.Partition {
		t.Fatalf("both nodes write partition %d", ra.Partition)
	}
	pa, pb := int(ra.Partition), int(rb.Partition)
	for i := 2; i <= 50; i++ {
		if r := write(a, fmt.Sprintf("a-%d", i), -1); r.Partition != ra.Partition || r.Offset != uint64(i) {
			t.Fatalf("write %d on node a: %+v", i, r)
		}
	}
	write(b, "b-2", pb)

	// The other node's partition: 421, with the owner.
	st, _, owner, body := b.writeEvent("misdirected", pa)
	if st != 421 || owner != strings.TrimPrefix(a.base, "http://") || !strings.Contains(body, `"code":"WRONG_NODE"`) ||
		!strings.Contains(body, `"alive":true`) {
		t.Fatalf("write to the other node's partition: %d owner %q %s", st, owner, body)
	}
	if st, _, body := b.do("POST", "/tables/events/bulk", fmt.Sprintf(`{"records":[{"payload":"x"},{"payload":"y","partition":%d}]}`, pa)); st != 421 {
		t.Fatalf("bulk naming the other node's partition: %d %s", st, body)
	}
	if st, _, body := b.do("GET", fmt.Sprintf("/tables/events?partition=%d", pa), ""); st != 421 {
		t.Fatalf("read of the other node's partition: %d %s", st, body)
	}
	if _, h, _ := b.do("GET", "/tables/events", ""); !strings.Contains(h.Get("X-Zombi-Partitions-Elsewhere"), fmt.Sprintf("%d=%s", pa, strings.TrimPrefix(a.base, "http://"))) {
		t.Fatalf("read of every partition: X-Zombi-Partitions-Elsewhere %q", h.Get("X-Zombi-Partitions-Elsewhere"))
	}
	_, _, wm := b.do("GET", "/tables/events/watermark", "")
	if !strings.Contains(wm, fmt.Sprintf(`"%d":{"owner":{"node":`, pa)) || !strings.Contains(wm, fmt.Sprintf(`"%d":{"watermark":0,"high_watermark":2,"owner":{`, pb)) {
		t.Fatalf("watermark: %s", wm)
	}
	// Consumer offsets are shared.
	if st, _, body := a.do("POST", "/consumers/g1/commit", `{"topic":"events","partition":1,"offset":42}`); st != 200 {
		t.Fatalf("commit offset: %d %s", st, body)
	}
	if _, _, body := b.do("GET", "/consumers/g1/offset?topic=events&partition=1", ""); !strings.Contains(body, `"offset":42`) {
		t.Fatalf("offset committed on a, read on b: %s", body)
	}

	// A clean stop of a: its partition is flushed and released; b takes
	// it when a write names it, and goes on after a's last offset.
	a.stop()
	if r := write(b, "b-takes-a", pa); r.Offset != 51 || int(r.Partition) != pa {
		t.Fatalf("write to the released partition: %+v", r)
	}
	a = startChild(t, dirA, clusterEnv(pg, m)...)
	a.waitReady()
	rc := write(a, "a-after-restart", -1)
	if int(rc.Partition) == pa || int(rc.Partition) == pb {
		t.Fatalf("a after its restart writes partition %d (a had %d, b has %d and %d)", rc.Partition, pa, pa, pb)
	}
	pc := int(rc.Partition)

	// b flushes, writes more, and dies: its partitions stay its own.
	b.flush()
	write(b, "b-lost-1", pb) // acked, never flushed: lost with b's disk
	delete(acked, "b-lost-1")
	b.kill()
	time.Sleep(2500 * time.Millisecond) // b's lease expires
	for i := 0; ; i++ {
		st, _, body := a.do("GET", "/health/ready", "")
		if st == 200 && strings.Contains(body, `"cluster":{"status":"degraded"`) && strings.Contains(body, "zombi cluster handoff") {
			break
		}
		if i == 100 {
			t.Fatalf("ready on a with b dead: %d %s", st, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := a.metric(`zombi_cluster_partitions{state="orphaned"}`); n != 2 {
		t.Fatalf("orphaned partitions metric %d, want 2", n)
	}
	st, _, _, body = a.writeEvent("to-the-dead", pb)
	if st != 421 || !strings.Contains(body, `"alive":false`) || !strings.Contains(body, "down") {
		t.Fatalf("write to a dead node's partition: %d %s", st, body)
	}

	// The operator hands b's partitions off; a takes them and goes on
	// past every offset b reserved (it may have acked any of them): b
	// reserved 1..reserveAhead of each, at its first write.
	var out, errb bytes.Buffer
	env := map[string]string{"ZOMBI_CATALOG_URL": pg, "ZOMBI_S3_BUCKET": "zombi", "ZOMBI_S3_ENDPOINT": "http://" + m.Addr,
		"AWS_ACCESS_KEY_ID": minioUser, "AWS_SECRET_ACCESS_KEY": minioSecret, "ZOMBI_DATA_DIR": t.TempDir()}
	idB, err := os.ReadFile(filepath.Join(dirB, nodeIDFile))
	if err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"cluster", "status"}, &out, &errb, envFunc(env)); code != 0 || !strings.Contains(out.String(), "DEAD") {
		t.Fatalf("cluster status: %d %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"inspect", "cluster"}, &out, &errb, envFunc(env)); code != 0 ||
		!strings.Contains(out.String(), strings.TrimSpace(string(idB))) || !strings.Contains(out.String(), "DEAD") {
		t.Fatalf("inspect cluster: %d %s %s, want node %s DEAD as in zombi cluster status", code, out.String(), errb.String(), idB)
	}
	out.Reset()
	if code := run([]string{"cluster", "handoff", "--node", strings.TrimSpace(string(idB))}, &out, &errb, envFunc(env)); code != 0 ||
		!strings.Contains(out.String(), "freed 2 partition(s)") ||
		!strings.Contains(out.String(), fmt.Sprintf("3-%d", reserveAhead)) || !strings.Contains(out.String(), fmt.Sprintf("52-%d", reserveAhead)) {
		t.Fatalf("cluster handoff: %d %s %s", code, out.String(), errb.String())
	}
	for _, p := range []int{pb, pa} {
		if r := write(a, fmt.Sprintf("a-takes-%d", p), p); r.Offset != reserveAhead+1 {
			t.Fatalf("write to the handed-off partition %d: %+v, want offset %d", p, r, reserveAhead+1)
		}
	}
	write(a, "a-own", pc)
	a.flush()
	got := tablePayloads(t, a)
	for p := range acked {
		if got[p] != 1 {
			t.Errorf("acked event %q is %d times in the table", p, got[p])
		}
	}
	for p, n := range got {
		if !acked[p] {
			t.Errorf("event %q in the table (%d times) was never acked", p, n)
		}
	}
	a.stop()
}

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
