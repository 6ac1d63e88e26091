package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/catalog/rest"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/flush"
)

// coldServer is a test server with the real cold tier: a SQLite catalog
// and a local warehouse in the data dir, a flusher, the REST view.
type coldServer struct {
	*testServer
	f     *flush.Flusher
	m     *flush.Maintainer
	cat   *catalog.Catalog
	store *flakyStore
}

// flakyStore is the local store, unreachable while down is set. While
// hold is set, creating a compacted file reports on held and waits for
// hold to be closed.
type flakyStore struct {
	flush.LocalStore
	down atomic.Bool
	hold atomic.Pointer[chan struct{}]
	held chan struct{}
}

func (s *flakyStore) Create(ctx context.Context, loc string) (flush.ObjectWriter, error) {
	if s.down.Load() {
		return nil, errors.New("object store unreachable (test)")
	}
	if h := s.hold.Load(); h != nil && strings.Contains(loc, "/compact-") {
		s.held <- struct{}{}
		<-*h
	}
	return s.LocalStore.Create(ctx, loc)
}

func startColdServer(t *testing.T, hotMax int64, interval time.Duration) *coldServer {
	t.Helper()
	return startColdServerIn(t, t.TempDir(), hotMax, interval)
}

// startColdServerIn starts a coldServer on the data dir dir.
func startColdServerIn(t *testing.T, dir string, hotMax int64, interval time.Duration) *coldServer {
	t.Helper()
	cs := &coldServer{store: &flakyStore{held: make(chan struct{}, 1)}}
	cs.testServer = startServer(t, dir, func(c *Config) {
		cat, err := catalog.Open(context.Background(), catalog.Options{DataDir: dir, Logger: quietLog,
			RetryInitial: time.Millisecond, RetryMax: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		tier := NewIcebergTier(c.Engine, "", "")
		f, err := flush.New(flush.Options{Engine: c.Engine, Catalog: cat, Store: cs.store,
			Interval: interval, PollInterval: 20 * time.Millisecond, HotMaxBytes: hotMax,
			UploadAttempts: 1, RetryInitial: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond,
			OnFlush: tier.ObserveFlush, Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		tier.Attach(f, cat)
		m, err := flush.NewMaintainer(f, flush.MaintainOptions{CompactInterval: time.Hour, Interval: -1,
			OnCompact: tier.ObserveCompaction, OnMaintain: tier.ObserveMaintenance, Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		tier.AttachMaintainer(m)
		c.Cold, c.Catalog = tier, tier.CatalogHandler()
		cs.f, cs.cat, cs.m = f, cat, m
	})
	t.Cleanup(cs.close) // before the server's own cleanup
	return cs
}

// close stops the maintainer, the flusher, the server and engine, and the
// catalog; it may be called twice.
func (cs *coldServer) close() {
	cs.m.Close()
	cs.f.Close()
	cs.stop()
	cs.cat.Close()
}

func bulkBody(from, n int) string {
	var b strings.Builder
	b.WriteString(`{"records":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"payload":"event-%d","partition":%d}`, from+i, i%2)
	}
	b.WriteString(`]}`)
	return b.String()
}

func decodeJSON(t *testing.T, r resp, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
}

// Events written over HTTP are flushed by POST /tables/{t}/flush,
// described by /metadata and /watermark, listed by the REST catalog view
// and read back by an independent reader: iceberg-go's REST client pointed
// at our /v1, scanning the table.
func TestColdFlushMetadataAndCatalogView(t *testing.T) {
	cs := startColdServer(t, 0, time.Hour)
	expect(t, cs.get("/tables/events/metadata"), 200,
		`{"table":"events","storage_type":"iceberg","iceberg_enabled":true,"namespace":"zombi"}`)
	const n = 500
	for i := 0; i < n; i += 100 {
		if r := cs.post("/tables/events/bulk", bulkBody(i, 100)); r.status != 202 {
			t.Fatalf("bulk: %d %s", r.status, r.body)
		}
	}

	r := cs.post("/tables/events/flush", "")
	var fr struct {
		Status, Message, Table        string
		Events, Files, Bytes, Commits int64
		SnapshotID                    int64  `json:"snapshot_id"`
		MetadataLocation              string `json:"metadata_location"`
		Partitions                    []struct {
			Partition        uint32
			From, To, Events int64
		}
	}
	decodeJSON(t, r, &fr)
	if r.status != 200 || fr.Status != "ok" || fr.Table != "events" || fr.Events != n || fr.Files < 2 || fr.Bytes <= 0 ||
		fr.Commits != 1 || fr.SnapshotID == 0 || len(fr.Partitions) != 2 || fr.Partitions[0].From != 1 || fr.Partitions[0].To != n/2 {
		t.Fatalf("flush: %d %s", r.status, r.body)
	}
	// Nothing new: an empty flush, still 200.
	r = cs.post("/tables/events/flush", "")
	if r.status != 200 || !strings.Contains(r.body, `"events":0`) {
		t.Fatalf("second flush: %d %s", r.status, r.body)
	}

	var md struct {
		MetadataLocation string `json:"metadata_location"`
		TableLocation    string `json:"table_location"`
	}
	r = cs.get("/tables/events/metadata")
	decodeJSON(t, r, &md)
	if md.MetadataLocation != fr.MetadataLocation || !strings.HasPrefix(md.TableLocation, "file://") {
		t.Fatalf("metadata: %s (flush said %s)", r.body, fr.MetadataLocation)
	}
	u, _ := url.Parse(md.MetadataLocation)
	if _, err := os.Stat(u.Path); err != nil {
		t.Fatalf("metadata file: %v", err)
	}
	expect(t, cs.get("/tables/events/watermark"), 200,
		`{"topic":"events","partitions":{"0":{"watermark":250,"high_watermark":250},"1":{"watermark":250,"high_watermark":250}}}`)

	// The REST catalog view, raw.
	var cfg struct {
		Defaults, Overrides map[string]string
		Endpoints           []string
	}
	decodeJSON(t, cs.get("/v1/config"), &cfg)
	if cfg.Defaults == nil || cfg.Overrides == nil || len(cfg.Endpoints) != len(catalogViewEndpoints) {
		t.Fatalf("config %+v", cfg)
	}
	expect(t, cs.get("/v1/namespaces"), 200, `{"namespaces":[["zombi"]]}`)
	expect(t, cs.get("/v1/namespaces?parent=zombi"), 200, `{"namespaces":[]}`)
	if r := cs.get("/v1/namespaces/zombi"); r.status != 200 || !strings.HasPrefix(r.body, `{"namespace":["zombi"],"properties":{`) {
		t.Fatalf("namespace: %d %s", r.status, r.body)
	}
	expect(t, cs.get("/v1/namespaces/zombi/tables"), 200, `{"identifiers":[{"namespace":["zombi"],"name":"events"}]}`)
	var lt struct {
		MetadataLocation string          `json:"metadata-location"`
		Metadata         json.RawMessage `json:"metadata"`
		Config           map[string]string
	}
	decodeJSON(t, cs.get("/v1/namespaces/zombi/tables/events"), &lt)
	if lt.MetadataLocation != md.MetadataLocation || !strings.Contains(string(lt.Metadata), `"format-version":2`) || lt.Config == nil {
		t.Fatalf("load table: %s %.200s %v", lt.MetadataLocation, lt.Metadata, lt.Config)
	}
	for _, c := range []struct {
		method, path string
		status       int
		typ          string
	}{
		{"HEAD", "/v1/namespaces/zombi/tables/events", 204, ""},
		{"HEAD", "/v1/namespaces/zombi", 204, ""},
		{"HEAD", "/v1/namespaces/zombi/tables/nope", 404, ""},
		{"GET", "/v1/namespaces/zombi/tables/nope", 404, "NoSuchTableException"},
		{"GET", "/v1/namespaces/other/tables", 404, "NoSuchNamespaceException"},
		{"GET", "/v1/namespaces/other", 404, "NoSuchNamespaceException"},
		{"GET", "/v1/views", 404, "NotFoundException"},
	} {
		r := cs.do(c.method, c.path, nil)
		if r.status != c.status {
			t.Fatalf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
		if c.typ != "" {
			var e struct {
				Error struct {
					Message, Type string
					Code          int
				}
			}
			decodeJSON(t, r, &e)
			if e.Error.Type != c.typ || e.Error.Code != c.status || e.Error.Message == "" {
				t.Fatalf("%s %s: error %s", c.method, c.path, r.body)
			}
		}
	}
	expectError(t, cs.post("/v1/namespaces", "{}"), 405, codeMethodNotAllowed)

	// The independent reader.
	ctx := context.Background()
	rc, err := rest.NewCatalog(ctx, "zombi", cs.base) // the client adds /v1
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
	seen := map[[2]int64]bool{}
	rd := array.NewTableReader(at, 0)
	defer rd.Release()
	for rd.Next() {
		rec := rd.RecordBatch()
		col := func(name string) int { return rec.Schema().FieldIndices(name)[0] }
		seq := rec.Column(col("sequence")).(*array.Int64)
		part := rec.Column(col("partition")).(*array.Int32)
		for i := range int(rec.NumRows()) {
			k := [2]int64{int64(part.Value(i)), seq.Value(i)}
			if seen[k] {
				t.Fatalf("duplicate %v", k)
			}
			seen[k] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("scan read %d events, want %d", len(seen), n)
	}
	for p := range int64(2) {
		for s := int64(1); s <= n/2; s++ {
			if !seen[[2]int64{p, s}] {
				t.Fatalf("partition %d sequence %d missing", p, s)
			}
		}
	}

	// Metrics.
	m := cs.get("/metrics").body
	for _, want := range []string{
		"zombi_flush_total 1\n", fmt.Sprintf("zombi_flush_events_total %d\n", n), "zombi_iceberg_snapshots_committed_total 1\n",
		"zombi_parquet_files_written_total ", "zombi_s3_errors_total 0\n", "zombi_flush_duration_seconds_count 1\n",
		"zombi_hot_tier_over_budget 0\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if r := cs.get("/health/ready"); r.status != 200 || !strings.Contains(r.body, `"cold_storage":{"status":"ok"}`) {
		t.Fatalf("ready: %d %s", r.status, r.body)
	}
}

// The object store goes away: flushes fail, the hot tier grows past its
// budget and writes answer 503 SERVER_OVERLOADED with Retry-After (and
// /health/ready fails); when the store is back, the background flusher
// drains the hot tier and writes are taken again.
func TestColdHotTierBudget(t *testing.T) {
	cs := startColdServer(t, 64<<10, 200*time.Millisecond)
	cs.store.down.Store(true)
	cs.f.Start()
	refused := false
	for i := 0; i < 2000 && !refused; i++ {
		switch r := cs.post("/tables/events/bulk", bulkBody(i*100, 100)); r.status {
		case 202:
		case 503:
			expectError(t, r, 503, codeOverloaded)
			if ra := r.header.Get("Retry-After"); ra != hotFullRetryAfter || !strings.Contains(r.body, "ZOMBI_HOT_MAX_GB") {
				t.Fatalf("refusal: Retry-After %q, %s", ra, r.body)
			}
			refused = true
		default:
			t.Fatalf("write: %d %s", r.status, r.body)
		}
		if i%10 == 9 {
			time.Sleep(30 * time.Millisecond) // let the flusher poll the hot bytes
		}
	}
	if !refused {
		t.Fatal("writes were never refused over the budget")
	}
	if r := cs.post("/tables/events", `{"payload":"x"}`); r.status != 503 {
		t.Fatalf("single write over budget: %d %s", r.status, r.body)
	}
	for i := 0; cs.f.Stats().UploadErrors == 0; i++ { // a background flush has failed
		if i == 1000 {
			t.Fatal("no failed upload")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := cs.get("/health/ready")
	if r.status != 503 || !strings.Contains(r.body, `"cold_storage":{"status":"error","error":"hot tier over its budget`) ||
		!strings.Contains(r.body, "unreachable (test)") {
		t.Fatalf("ready over budget: %d %s", r.status, r.body)
	}
	if m := cs.get("/metrics").body; !strings.Contains(m, "zombi_hot_tier_over_budget 1\n") || strings.Contains(m, "zombi_s3_errors_total 0\n") {
		t.Fatalf("metrics over budget:\n%s", m)
	}

	cs.store.down.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for cs.f.OverBudget() {
		if time.Now().After(deadline) {
			t.Fatalf("still over budget: %+v", cs.f.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := cs.post("/tables/events", `{"payload":"after"}`); r.status != 202 {
		t.Fatalf("write after the drain: %d %s", r.status, r.body)
	}
	for _, pi := range cs.eng.Partitions("events") {
		if pi.Partition == 1 && pi.Flushed != pi.High {
			// partition 1 took no write after the drain: fully flushed.
			t.Fatalf("partition 1 flushed %d of %d", pi.Flushed, pi.High)
		}
	}
	if r := cs.get("/health/ready"); r.status != 200 {
		t.Fatalf("ready after the drain: %d %s", r.status, r.body)
	}
}
