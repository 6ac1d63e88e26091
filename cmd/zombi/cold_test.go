package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/catalog/rest"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/internal/testsvc"
)

func TestColdSettings(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c, err := loadConfig(fs, nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	cc := c.Cold
	if !cc.Enabled || cc.FlushInterval != 30*time.Second || cc.HotMaxBytes != -1 || cc.Namespace != "zombi" ||
		cc.UploadAttempts != 6 || cc.MaxUploads != 4 || cc.S3Region != "us-east-1" || cc.StoragePath != "warehouse" ||
		cc.TargetFileBytes != 128<<20 || cc.RetryInitial != 200*time.Millisecond || cc.RetryMax != 10*time.Second {
		t.Fatalf("defaults %+v", cc)
	}
	if cc.CompactedFileBytes != 512<<20 || !cc.AutoCompaction || cc.CompactMinFiles != 8 || cc.CompactInterval != 5*time.Minute ||
		cc.SnapshotRetain != 24*time.Hour || cc.SnapshotMin != 10 || cc.OrphanMinAge != 24*time.Hour || cc.MaintainInterval != time.Hour {
		t.Fatalf("maintenance defaults %+v", cc)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	c, err = loadConfig(fs, []string{"--hot-max-gb=0.5"}, env(map[string]string{
		"ZOMBI_ICEBERG_ENABLED": "false", "ZOMBI_S3_BUCKET": "b", "ZOMBI_S3_ENDPOINT": "http://127.0.0.1:9000",
		"ZOMBI_STORAGE_PATH": "/lake/", "ZOMBI_S3_MAX_RETRIES": "0",
		"ZOMBI_AUTO_COMPACTION": "false", "ZOMBI_SNAPSHOT_RETAIN_HOURS": "168", "ZOMBI_MAINTENANCE_INTERVAL_SECS": "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cold.Enabled || c.Cold.HotMaxBytes != 1<<29 || c.Cold.StoragePath != "lake" || c.Cold.UploadAttempts != 1 ||
		c.Cold.AutoCompaction || c.Cold.SnapshotRetain != 168*time.Hour || c.Cold.MaintainInterval != 0 {
		t.Fatalf("config %+v", c.Cold)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err = loadConfig(fs, nil, env(map[string]string{
		"ZOMBI_ICEBERG_ENABLED": "maybe", "ZOMBI_S3_ENDPOINT": "http://127.0.0.1:9000", "ZOMBI_HOT_MAX_GB": "-1",
		"AWS_SECRET_ACCESS_KEY": "very-secret-key", "ZOMBI_CATALOG_URL": "ftp://x", "ZOMBI_S3_RETRY_MAX_MS": "10",
	}))
	if err == nil {
		t.Fatal("invalid cold settings accepted")
	}
	for _, want := range []string{"iceberg-enabled", "s3-endpoint", "ZOMBI_S3_BUCKET", "hot-max-gb", "aws-secret-access-key", "catalog-url", "s3-retry-max-ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "very-secret-key") {
		t.Errorf("error prints a secret: %v", err)
	}
	if got := redactURL("postgres://zombi:pw@db:5432/cat?password=x"); strings.Contains(got, "pw") || strings.Contains(got, "password=x") {
		t.Errorf("redactURL: %s", got)
	}
}

// child is a `zombi serve` child process (the test binary as main).
type child struct {
	t    testing.TB
	cmd  *exec.Cmd
	base string
	logs *os.File
	done chan error
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startChild runs zombi serve on dir with the extra environment and
// waits until it answers /health.
func startChild(t testing.TB, dir string, extra ...string) *child {
	t.Helper()
	return startChildOn(t, freePort(t), dir, extra...)
}

// startChildOn is startChild on a given port of 127.0.0.1 (a node that
// restarts behind a proxy keeps its address).
func startChildOn(t testing.TB, port int, dir string, extra ...string) *child {
	t.Helper()
	logs, err := os.OpenFile(filepath.Join(t.TempDir(), "zombi.log"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "serve", "--port", strconv.Itoa(port), "--host", "127.0.0.1")
	cmd.Env = append(os.Environ(), "ZOMBI_TEST_AS_MAIN=1", "ZOMBI_DATA_DIR="+dir, "ZOMBI_FSYNC=never",
		"ZOMBI_SEGMENT_SIZE_MB=1", "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=")
	cmd.Env = append(cmd.Env, extra...)
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, base: "http://127.0.0.1:" + strconv.Itoa(port), logs: logs, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(c.kill)
	for i := 0; ; i++ {
		r, err := http.Get(c.base + "/health")
		if err == nil {
			r.Body.Close()
			return c
		}
		select {
		case err := <-c.done:
			t.Fatalf("zombi serve exited: %v\n%s", err, c.log())
		default:
		}
		if i == 400 {
			t.Fatalf("zombi serve never answered\n%s", c.log())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (c *child) log() string {
	b, _ := os.ReadFile(c.logs.Name())
	return string(b)
}

// kill sends SIGKILL and waits for the process.
func (c *child) kill() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Kill()
	<-c.done
	c.logs.Close()
	c.cmd = nil
}

// stop sends SIGTERM and expects a clean exit.
func (c *child) stop() {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		if err != nil {
			c.t.Fatalf("exit after SIGTERM: %v\n%s", err, c.log())
		}
	case <-time.After(30 * time.Second):
		c.t.Fatalf("still running 30 s after SIGTERM\n%s", c.log())
	}
	c.logs.Close()
	c.cmd = nil
}

var coldClient = &http.Client{Timeout: 60 * time.Second}

func (c *child) do(method, path, body string) (int, http.Header, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	r, err := coldClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", method, path, err, c.log())
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, r.Header, string(b)
}

// writeBulk writes n events (alternating partitions 0 and 1) and returns
// the status of the request.
func (c *child) writeBulk(from, n int) (int, http.Header, string) {
	var b strings.Builder
	b.WriteString(`{"records":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"payload":"event-%08d-abcdefghijklmnopqrstuvwxyz-0123456789","partition":%d}`, from+i, i%2)
	}
	b.WriteString(`]}`)
	return c.do("POST", "/tables/events/bulk", b.String())
}

type flushReply struct {
	Status           string
	Events, Commits  int64
	MetadataLocation string `json:"metadata_location"`
}

func (c *child) flush() flushReply {
	c.t.Helper()
	return c.flushTable("events")
}

func (c *child) flushTable(table string) flushReply {
	c.t.Helper()
	st, _, body := c.do("POST", "/tables/"+table+"/flush", "")
	var fr flushReply
	if st != 200 || json.Unmarshal([]byte(body), &fr) != nil || fr.Status != "ok" {
		c.t.Fatalf("flush: %d %s\n%s", st, body, c.log())
	}
	return fr
}

// killIntoFlush starts a flush of table, kills the child with SIGKILL
// delay later (during the flush or right after it) and returns a new
// child on the same data directory.
func (c *child) killIntoFlush(table string, delay time.Duration, dir string, extra ...string) *child {
	go func() {
		req, _ := http.NewRequest("POST", c.base+"/tables/"+table+"/flush", nil)
		if r, err := coldClient.Do(req); err == nil {
			r.Body.Close()
		}
	}()
	time.Sleep(delay)
	c.kill()
	return startChild(c.t, dir, extra...)
}

// scanREST reads table events through our /v1 view with iceberg-go's
// REST client (the independent reader) and checks that it holds every
// offset 1..high of each partition exactly once.
func scanREST(t *testing.T, base string, high map[int32]int64, props map[string]string) {
	t.Helper()
	ctx := context.Background()
	rc, err := rest.NewCatalog(ctx, "zombi", base, rest.WithAdditionalProps(props))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := rc.LoadTable(ctx, []string{"zombi", "events"})
	if err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	seen := map[int32]map[int64]bool{}
	rd := array.NewTableReader(at, 0)
	defer rd.Release()
	for rd.Next() {
		rec := rd.RecordBatch()
		col := func(name string) int { return rec.Schema().FieldIndices(name)[0] }
		seq := rec.Column(col("sequence")).(*array.Int64)
		part := rec.Column(col("partition")).(*array.Int32)
		for i := range int(rec.NumRows()) {
			p, s := part.Value(i), seq.Value(i)
			if seen[p] == nil {
				seen[p] = map[int64]bool{}
			}
			if seen[p][s] {
				t.Fatalf("duplicate: partition %d sequence %d", p, s)
			}
			seen[p][s] = true
		}
	}
	for p, h := range high {
		if int64(len(seen[p])) != h {
			t.Fatalf("partition %d: %d events in Iceberg, want %d", p, len(seen[p]), h)
		}
		for s := int64(1); s <= h; s++ {
			if !seen[p][s] {
				t.Fatalf("partition %d: sequence %d missing", p, s)
			}
		}
	}
}

func highs(t *testing.T, c *child) map[int32]int64 {
	t.Helper()
	_, _, body := c.do("GET", "/tables/events/watermark", "")
	var w struct {
		Partitions map[string]struct {
			Watermark int64 `json:"watermark"`
			High      int64 `json:"high_watermark"`
		}
	}
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		t.Fatalf("watermark %s: %v", body, err)
	}
	out := map[int32]int64{}
	for k, v := range w.Partitions {
		p, _ := strconv.Atoi(k)
		if v.Watermark != v.High {
			t.Fatalf("partition %d flushed %d of %d", p, v.Watermark, v.High)
		}
		out[int32(p)] = v.High
	}
	return out
}

// zombi serve with the default cold tier (SQLite catalog, local
// warehouse): flush over HTTP, metadata, a clean stop with a final
// flush, and kill -9 at random moments of a flush: after each restart
// the table holds every event exactly once.
func TestServeColdLocalCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	dir := t.TempDir()
	// Segments larger than what is written, so that nothing is sealed
	// (and flushed) in the background: POST /flush does it all.
	opts := []string{"ZOMBI_FLUSH_INTERVAL_SECS=3600", "ZOMBI_SEGMENT_SIZE_MB=64"}
	c := startChild(t, dir, opts...)
	next := 0
	write := func(c *child, n int) {
		for ; n > 0; n -= 1000 {
			if st, _, body := c.writeBulk(next, min(n, 1000)); st != 202 {
				t.Fatalf("write: %d %s", st, body)
			}
			next += min(n, 1000)
		}
	}
	write(c, 5000)
	fr := c.flush()
	if fr.Events != 5000 || fr.Commits != 1 {
		t.Fatalf("flush %+v", fr)
	}
	_, _, body := c.do("GET", "/tables/events/metadata", "")
	var md struct {
		MetadataLocation string `json:"metadata_location"`
	}
	json.Unmarshal([]byte(body), &md)
	if md.MetadataLocation != fr.MetadataLocation {
		t.Fatalf("metadata %s, flush said %s", body, fr.MetadataLocation)
	}
	if _, err := os.Stat(strings.TrimPrefix(md.MetadataLocation, "file://")); err != nil {
		t.Fatal(err)
	}
	// A clean stop flushes what is left (bounded by the shutdown timeout).
	write(c, 1000)
	c.stop()
	c = startChild(t, dir, opts...)
	scanREST(t, c.base, highs(t, c), nil)

	// kill -9 during or right after flushes of 150K events (~15 MB), at
	// increasing delays; a restart reconciles with the table.
	for round, delay := range []time.Duration{3 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond, 60 * time.Millisecond} {
		write(c, 150000)
		c = c.killIntoFlush("events", delay, dir, opts...)
		if round%2 == 1 {
			write(c, 100) // new events on top of a half-flushed range
		}
		fr := c.flush()
		t.Logf("killed %v into a flush; the flush after the restart committed %d events (caught up with the table: %v)",
			delay, fr.Events, strings.Contains(c.log(), "catching up the flushed watermark"))
		scanREST(t, c.base, highs(t, c), nil)
	}
	c.stop()
}

// The root credentials of the test MinIO (testsvc.StartMinIO).
const (
	minioUser   = testsvc.MinIOUser
	minioSecret = testsvc.MinIOSecret
)

// zombi serve on MinIO with a tiny hot-tier budget: MinIO stops, ingest
// continues until the budget, then 503 with Retry-After; MinIO comes
// back, the background flusher drains the hot tier, writes are taken
// again, and the table (read through /v1 from MinIO) holds every event
// exactly once.
func TestServeMinIOStoppedHotBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	m := testsvc.StartMinIO(t)
	dir := t.TempDir()
	c := startChild(t, dir, "ZOMBI_S3_BUCKET=zombi", "ZOMBI_S3_ENDPOINT=http://"+m.Addr,
		"AWS_ACCESS_KEY_ID="+minioUser, "AWS_SECRET_ACCESS_KEY="+minioSecret,
		"ZOMBI_HOT_MAX_GB=0.0002", // ~210 KiB
		"ZOMBI_FLUSH_INTERVAL_SECS=1", "ZOMBI_S3_MAX_RETRIES=1", "ZOMBI_S3_RETRY_INITIAL_MS=50", "ZOMBI_S3_RETRY_MAX_MS=500")
	next := 0
	if st, _, body := c.writeBulk(next, 1000); st != 202 {
		t.Fatalf("write: %d %s", st, body)
	}
	next += 1000
	if fr := c.flush(); fr.Events != 1000 || !strings.HasPrefix(fr.MetadataLocation, "s3://zombi/warehouse/") {
		t.Fatalf("flush to MinIO: %+v", fr)
	}
	if strings.Contains(c.log(), minioSecret) {
		t.Fatal("the secret key is in the log")
	}

	m.Stop()
	refused := false
	for i := 0; i < 3000 && !refused; i++ {
		st, h, body := c.writeBulk(next, 200)
		switch st {
		case 202:
			next += 200
		case 503:
			if h.Get("Retry-After") == "" || !strings.Contains(body, `"code":"SERVER_OVERLOADED"`) || !strings.Contains(body, "ZOMBI_HOT_MAX_GB") {
				t.Fatalf("refusal: %v %s", h, body)
			}
			refused = true
		default:
			t.Fatalf("write: %d %s", st, body)
		}
		if !refused && i%5 == 4 {
			time.Sleep(100 * time.Millisecond) // the flusher polls the hot bytes every second
		}
	}
	if !refused {
		t.Fatal("writes never refused with MinIO down")
	}
	if st, _, body := c.do("GET", "/health/ready", ""); st != 503 || !strings.Contains(body, "hot tier over its budget") {
		t.Fatalf("ready: %d %s", st, body)
	}

	m.Start(t)
	for i := 0; ; i++ {
		st, _, body := c.writeBulk(next, 10)
		if st == 202 {
			next += 10
			break
		}
		if st != 503 {
			t.Fatalf("write: %d %s", st, body)
		}
		if i == 600 {
			t.Fatalf("writes still refused 60 s after MinIO came back\n%s", c.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.flush()
	scanREST(t, c.base, highs(t, c), map[string]string{
		"s3.access-key-id": minioUser, "s3.secret-access-key": minioSecret,
	})
	if st, _, body := c.do("GET", "/metrics", ""); st != 200 || !strings.Contains(body, "zombi_hot_tier_over_budget 0\n") {
		t.Fatalf("metrics: %s", body)
	}
	c.stop()
}

// A catalog that is down when the server starts does not stop ingest:
// the server serves the hot tier, reports the cold tier degraded, and
// keeps trying to connect.
func TestServeCatalogDownAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	closed := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	c := startChild(t, t.TempDir(), "ZOMBI_CATALOG_URL="+closed, "ZOMBI_S3_RETRY_INITIAL_MS=20", "ZOMBI_S3_RETRY_MAX_MS=100")
	if st, _, body := c.writeBulk(0, 100); st != 202 {
		t.Fatalf("write with the catalog down: %d %s", st, body)
	}
	if st, _, body := c.do("GET", "/health/ready", ""); st != 200 || !strings.Contains(body, `"cold_storage":{"status":"degraded","error":"the Iceberg catalog is not connected yet`) {
		t.Fatalf("ready: %d %s", st, body)
	}
	if st, _, body := c.do("POST", "/tables/events/flush", ""); st != 500 || !strings.Contains(body, "not connected") {
		t.Fatalf("flush: %d %s", st, body)
	}
	if st, _, body := c.do("GET", "/v1/config", ""); st != 503 || !strings.Contains(body, `"type":"ServiceUnavailableException"`) {
		t.Fatalf("/v1/config: %d %s", st, body)
	}
	time.Sleep(300 * time.Millisecond) // a few background attempts
	if n := strings.Count(c.log(), "cannot open the Iceberg catalog"); n < 2 {
		t.Fatalf("%d attempts to connect:\n%s", n, c.log())
	}
	c.stop()
}

// The node id is made once and kept with the data directory; another
// directory gets another; a damaged file is an error, not a new identity.
func TestNodeID(t *testing.T) {
	dir := t.TempDir()
	c := &config{DataDir: dir}
	id, err := nodeID(c)
	if err != nil || !catalog.ValidOwner(id) || len(id) != 16 {
		t.Fatalf("first node id %q, %v", id, err)
	}
	if again, err := nodeID(c); err != nil || again != id {
		t.Fatalf("node id after a restart: %q, %v; want %q", again, err, id)
	}
	if other, err := nodeID(&config{DataDir: t.TempDir()}); err != nil || other == id {
		t.Fatalf("node id of another data dir: %q, %v (first: %q)", other, err, id)
	}
	if err := os.WriteFile(filepath.Join(dir, nodeIDFile), []byte("bad id/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := nodeID(c); err == nil {
		t.Fatalf("a damaged node-id file gave %q, want an error", got)
	}
}
