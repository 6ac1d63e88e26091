package httpd

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/zombihq/zombi/httpd/param"
)

func TestWriteAndReadJSON(t *testing.T) {
	ts := startServer(t, "", nil)
	expect(t, ts.post("/tables/events", `{"payload":"hi","timestamp_ms":1000}`), 202,
		`{"offset":1,"partition":0,"table":"events"}`)
	expect(t, ts.post("/tables/events", `{"payload":"again","timestamp_ms":2000}`), 202,
		`{"offset":2,"partition":0,"table":"events"}`)
	expect(t, ts.post("/tables/events", `{"payload":"p3","partition":3,"timestamp_ms":1500}`), 202,
		`{"offset":1,"partition":3,"table":"events"}`)
	expect(t, ts.post("/tables/events/bulk",
		`{"records":[{"payload":"b1","timestamp_ms":3000},{"payload":"b2","partition":3,"timestamp_ms":3001},{"payload":"b3","timestamp_ms":3002}]}`),
		202, `{"offsets":[3,2,4],"count":3,"table":"events"}`)
	expect(t, ts.post("/tables/events/bulk", `{"records":[]}`), 202, `{"offsets":[],"count":0,"table":"events"}`)

	// A merged read is ordered by timestamp; the default fields are the
	// original's payload and timestamp_ms.
	expect(t, ts.get("/tables/events"), 200, `{"records":[`+
		`{"payload":"hi","timestamp_ms":1000},{"payload":"p3","timestamp_ms":1500},{"payload":"again","timestamp_ms":2000},`+
		`{"payload":"b1","timestamp_ms":3000},{"payload":"b2","timestamp_ms":3001},{"payload":"b3","timestamp_ms":3002}],"count":6,"has_more":false}`)
	expect(t, ts.get("/tables/events?limit=2"), 200,
		`{"records":[{"payload":"hi","timestamp_ms":1000},{"payload":"p3","timestamp_ms":1500}],"count":2,"has_more":true}`)
	expect(t, ts.get("/tables/events?partition=0&offset=2&limit=2&fields=sequence,partition,payload"), 200,
		`{"records":[{"sequence":2,"partition":0,"payload":"again"},{"sequence":3,"partition":0,"payload":"b1"}],"count":2,"has_more":true}`)
	expect(t, ts.get("/tables/events?partition=3&fields=idempotency_key,topic,sequence,timestamp_ms"), 200,
		`{"records":[{"sequence":1,"topic":"events","timestamp_ms":1500,"idempotency_key":null},{"sequence":2,"topic":"events","timestamp_ms":3001,"idempotency_key":null}],"count":2,"has_more":false}`)
	expect(t, ts.get("/tables/events?since=3001&fields=payload"), 200,
		`{"records":[{"payload":"b2"},{"payload":"b3"}],"count":2,"has_more":false}`)
	expect(t, ts.get("/tables/events?limit=0"), 200, `{"records":[],"count":0,"has_more":true}`)
	expect(t, ts.get("/tables/events?fields="), 200, ts.get("/tables/events").body)
	// Unknown table: an empty read, not an error.
	expect(t, ts.get("/tables/nothere"), 200, `{"records":[],"count":0,"has_more":false}`)
	expect(t, ts.get("/tables/events?partition=9"), 200, `{"records":[],"count":0,"has_more":false}`)
	// HEAD answers like GET, without a body.
	if r := ts.do("HEAD", "/tables/events", nil); r.status != 200 || r.body != "" {
		t.Fatalf("HEAD: %d %q", r.status, r.body)
	}
}

func TestPayloadKinds(t *testing.T) {
	ts := startServer(t, "", nil)
	for i, c := range []struct{ in, out string }{
		{`"text é \u00e9 \"q\""`, `"payload":"text é é \"q\""`},
		{`{"a": [1, 2.5, true, null]}`, `"payload":"{\"a\":[1,2.5,true,null]}"`},
		{`42`, `"payload":"42"`},
		{`null`, `"payload":"null"`},
	} {
		body := fmt.Sprintf(`{"payload":%s,"timestamp_ms":%d}`, c.in, i+1)
		if r := ts.post("/tables/kinds", body); r.status != 202 {
			t.Fatalf("%s: %d %s", body, r.status, r.body)
		}
		want := fmt.Sprintf(`{"records":[{%s}],"count":1,"has_more":false}`, c.out)
		expect(t, ts.get(fmt.Sprintf("/tables/kinds?offset=%d&limit=1&fields=payload", i+1)), 200, want)
	}
	// Binary: payload_base64 in, payload_base64 out (not valid UTF-8).
	expect(t, ts.post("/tables/bin", `{"payload_base64":"AP8Q"}`), 202, `{"offset":1,"partition":0,"table":"bin"}`)
	expect(t, ts.post("/tables/bin", `{"payload_base64":"aGk"}`), 202, `{"offset":2,"partition":0,"table":"bin"}`)
	expect(t, ts.get("/tables/bin?partition=0&fields=payload"), 200,
		`{"records":[{"payload_base64":"AP8Q"},{"payload":"hi"}],"count":2,"has_more":false}`)
	expectError(t, ts.post("/tables/bin", `{"payload_base64":"!!"}`), 400, codeInvalidInput)
	expectError(t, ts.post("/tables/bin", `{"payload":"a","payload_base64":"aGk="}`), 400, codeInvalidInput)
}

func TestProtobufWrites(t *testing.T) {
	ts := startServer(t, "", nil)
	pb := "Content-Type: application/x-protobuf"
	expect(t, ts.do("POST", "/tables/pb", pbEvent([]byte("one"), 100, ""), pb), 202, `{"offset":1,"partition":0,"table":"pb"}`)
	expect(t, ts.do("POST", "/tables/pb", pbEvent([]byte{0xff, 1, 2}, 200, "k"), pb, "X-Partition: 5"), 202, `{"offset":1,"partition":5,"table":"pb"}`)
	// A retry with the same key gets the original offset.
	expect(t, ts.do("POST", "/tables/pb", pbEvent([]byte{0xff, 1, 2}, 200, "k"), pb, "X-Partition: 5"), 202, `{"offset":1,"partition":5,"table":"pb"}`)
	expect(t, ts.do("POST", "/tables/pb/bulk", pbBulk(
		pbRec{payload: []byte("a"), ts: 300},
		pbRec{payload: []byte("b"), partition: 5, ts: 301, key: "kb"},
		pbRec{payload: []byte("c"), partition: 5, ts: 302, key: "kb"}, // duplicate inside the request
	), pb), 202, `{"offsets":[2,2,2],"count":3,"table":"pb"}`)
	expect(t, ts.get("/tables/pb?fields=partition,sequence,payload,idempotency_key"), 200, `{"records":[`+
		`{"sequence":1,"partition":0,"payload":"one","idempotency_key":null},`+
		`{"sequence":1,"partition":5,"payload_base64":"/wEC","idempotency_key":"k"},`+
		`{"sequence":2,"partition":0,"payload":"a","idempotency_key":null},`+
		`{"sequence":2,"partition":5,"payload":"b","idempotency_key":"kb"}],"count":4,"has_more":false}`)

	expectError(t, ts.do("POST", "/tables/pb", []byte{0xff, 0xff}, pb), 400, codeBadRequest)
	expectError(t, ts.do("POST", "/tables/pb/bulk", []byte{0x0a, 0x05, 0x01}, pb), 400, codeBadRequest)
	expectError(t, ts.do("POST", "/tables/pb", pbEvent([]byte("x"), 0, ""), pb, "X-Partition: -1"), 400, codeInvalidInput)
	expectError(t, ts.do("POST", "/tables/pb", pbEvent([]byte("x"), 0, ""), pb, "X-Partition: 100000"), 400, codeInvalidInput)
}

func TestIdempotentRetries(t *testing.T) {
	ts := startServer(t, "", nil)
	body := `{"payload":"x","idempotency_key":"order-1","partition":2}`
	for range 3 {
		expect(t, ts.post("/tables/orders", body), 202, `{"offset":1,"partition":2,"table":"orders"}`)
	}
	// Keys are scoped to (table, partition).
	expect(t, ts.post("/tables/orders", `{"payload":"x","idempotency_key":"order-1"}`), 202, `{"offset":1,"partition":0,"table":"orders"}`)
	expect(t, ts.post("/tables/orders/bulk",
		`{"records":[{"payload":"y","idempotency_key":"order-1","partition":2},{"payload":"z","idempotency_key":"order-2","partition":2},{"payload":"z","idempotency_key":"order-2","partition":2}]}`),
		202, `{"offsets":[1,2,2],"count":3,"table":"orders"}`)
	expect(t, ts.get("/tables/orders?partition=2&fields=sequence,payload"), 200,
		`{"records":[{"sequence":1,"payload":"x"},{"sequence":2,"payload":"z"}],"count":2,"has_more":false}`)
}

func TestOffsetsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, nil)
	for i := 1; i <= 3; i++ {
		expect(t, ts.post("/tables/r", `{"payload":"a","idempotency_key":"k`+fmt.Sprint(i)+`"}`), 202,
			fmt.Sprintf(`{"offset":%d,"partition":0,"table":"r"}`, i))
	}
	ts.stop()
	ts = startServer(t, dir, nil)
	expect(t, ts.post("/tables/r", `{"payload":"b"}`), 202, `{"offset":4,"partition":0,"table":"r"}`)
	// An idempotency key from before the restart is still remembered.
	expect(t, ts.post("/tables/r", `{"payload":"a","idempotency_key":"k2"}`), 202, `{"offset":2,"partition":0,"table":"r"}`)
	expect(t, ts.get("/tables/r?fields=sequence"), 200,
		`{"records":[{"sequence":1},{"sequence":2},{"sequence":3},{"sequence":4}],"count":4,"has_more":false}`)
}

func TestErrorResponses(t *testing.T) {
	ts := startServer(t, "", nil)
	ts.post("/tables/t", `{"payload":"x"}`)
	long := strings.Repeat("a", 129)
	for _, c := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		{"invalid table", "POST", "/tables/1abc", `{"payload":"x"}`, nil, 400, codeInvalidInput},
		{"table too long", "POST", "/tables/" + long, `{"payload":"x"}`, nil, 400, codeInvalidInput},
		{"table with dot, URL-encoded", "GET", "/tables/a%2Eb", "", nil, 400, codeInvalidInput},
		{"read invalid table", "GET", "/tables/_x", "", nil, 400, codeInvalidInput},
		{"bulk invalid table", "POST", "/tables/a.b/bulk", `{"records":[]}`, nil, 400, codeInvalidInput},
		{"bad json", "POST", "/tables/t", `{"payload":`, nil, 400, codeBadRequest},
		{"empty body", "POST", "/tables/t", ``, nil, 400, codeBadRequest},
		{"not an object", "POST", "/tables/t", `[1]`, nil, 400, codeBadRequest},
		{"missing payload", "POST", "/tables/t", `{"partition":1}`, nil, 400, codeBadRequest},
		{"bad partition type", "POST", "/tables/t", `{"payload":"x","partition":"1"}`, nil, 400, codeBadRequest},
		{"negative partition", "POST", "/tables/t", `{"payload":"x","partition":-1}`, nil, 400, codeBadRequest},
		{"partition over max", "POST", "/tables/t", `{"payload":"x","partition":1024}`, nil, 400, codeInvalidInput},
		{"bad timestamp", "POST", "/tables/t", `{"payload":"x","timestamp_ms":1.5}`, nil, 400, codeBadRequest},
		{"bad key", "POST", "/tables/t", `{"payload":"x","idempotency_key":5}`, nil, 400, codeBadRequest},
		{"bulk without records", "POST", "/tables/t/bulk", `{}`, nil, 400, codeBadRequest},
		{"bulk records not array", "POST", "/tables/t/bulk", `{"records":{}}`, nil, 400, codeBadRequest},
		{"bulk bad record", "POST", "/tables/t/bulk", `{"records":[{"payload":"x"},{"nope":1}]}`, nil, 400, codeBadRequest},
		{"bulk partition over max", "POST", "/tables/t/bulk", `{"records":[{"payload":"x","partition":5000}]}`, nil, 400, codeInvalidInput},
		{"read bad limit", "GET", "/tables/t?limit=x", "", nil, 400, codeBadRequest},
		{"read bad offset", "GET", "/tables/t?offset=-1", "", nil, 400, codeBadRequest},
		{"read bad since", "GET", "/tables/t?since=yesterday", "", nil, 400, codeBadRequest},
		{"read bad partition", "GET", "/tables/t?partition=-2", "", nil, 400, codeInvalidInput},
		{"read partition over max", "GET", "/tables/t?partition=4096", "", nil, 400, codeInvalidInput},
		{"read unknown field", "GET", "/tables/t?fields=payload,bogus", "", nil, 400, codeBadRequest},
		{"not acceptable", "GET", "/tables/t", "", []string{"Accept: text/html"}, 406, codeNotAcceptable},
		{"json refused by q=0", "GET", "/tables/t", "", []string{"Accept: application/json;q=0"}, 406, codeNotAcceptable},
		{"unknown route", "GET", "/nope", "", nil, 404, codeNotFound},
		{"unknown table action", "GET", "/tables/t/nope", "", nil, 404, codeNotFound},
		{"trailing slash", "GET", "/tables/t/", "", nil, 404, codeNotFound},
		{"empty table", "GET", "/tables/", "", nil, 404, codeNotFound},
		{"unknown consumer action", "GET", "/consumers/g/nope", "", nil, 404, codeNotFound},
		{"write method", "PUT", "/tables/t", `{}`, nil, 405, codeMethodNotAllowed},
		{"bulk method", "GET", "/tables/t/bulk", "", nil, 405, codeMethodNotAllowed},
		{"health method", "POST", "/health", "", nil, 405, codeMethodNotAllowed},
		{"metrics method", "DELETE", "/metrics", "", nil, 405, codeMethodNotAllowed},
		{"watermark method", "POST", "/tables/t/watermark", "", nil, 405, codeMethodNotAllowed},
		{"flush method", "GET", "/tables/t/flush", "", nil, 405, codeMethodNotAllowed},
		{"commit method", "GET", "/consumers/g/commit", "", nil, 405, codeMethodNotAllowed},
		{"offset method", "POST", "/consumers/g/offset", "", nil, 405, codeMethodNotAllowed},
		{"flush without cold tier", "POST", "/tables/t/flush", "", nil, 503, codeNoColdTier},
		{"compact without cold tier", "POST", "/tables/t/compact", "", nil, 503, codeNoColdTier},
		{"catalog without cold tier", "GET", "/v1/config", "", nil, 503, codeNoColdTier},
		{"commit bad json", "POST", "/consumers/g/commit", `{`, nil, 400, codeBadRequest},
		{"commit no topic", "POST", "/consumers/g/commit", `{"offset":1}`, nil, 400, codeBadRequest},
		{"commit bad table", "POST", "/consumers/g/commit", `{"topic":"9","offset":1}`, nil, 400, codeInvalidInput},
		{"commit no offset", "POST", "/consumers/g/commit", `{"topic":"t"}`, nil, 400, codeBadRequest},
		{"offset no topic", "GET", "/consumers/g/offset", "", nil, 400, codeBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.body != "" || c.method == "POST" {
				body = []byte(c.body)
			}
			r := ts.do(c.method, c.path, body, c.hdr...)
			if c.method == "HEAD" {
				return
			}
			expectError(t, r, c.status, c.code)
			if c.status == 405 && r.header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}
}

func TestConsumerOffsets(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, nil)
	expect(t, ts.get("/consumers/g1/offset?topic=events"), 200, `{"group":"g1","topic":"events","partition":0,"offset":null}`)
	expect(t, ts.post("/consumers/g1/commit", `{"topic":"events","partition":2,"offset":42}`), 200,
		`{"group":"g1","topic":"events","partition":2,"offset":42}`)
	expect(t, ts.post("/consumers/g1/commit", `{"topic":"events","offset":7}`), 200,
		`{"group":"g1","topic":"events","partition":0,"offset":7}`)
	ts.stop()
	ts = startServer(t, dir, nil)
	expect(t, ts.get("/consumers/g1/offset?topic=events&partition=2"), 200, `{"group":"g1","topic":"events","partition":2,"offset":42}`)
	expect(t, ts.get("/consumers/g1/offset?topic=events"), 200, `{"group":"g1","topic":"events","partition":0,"offset":7}`)
	expect(t, ts.get("/consumers/other/offset?topic=events"), 200, `{"group":"other","topic":"events","partition":0,"offset":null}`)
	g := url.PathEscape(`a "b"`)
	expect(t, ts.post("/consumers/"+g+"/commit", `{"topic":"t","offset":1}`), 200, `{"group":"a \"b\"","topic":"t","partition":0,"offset":1}`)
}

func TestWatermarkMetadataHealthStats(t *testing.T) {
	ts := startServer(t, "", nil)
	expect(t, ts.get("/tables/w/watermark"), 200, `{"topic":"w","partitions":{}}`)
	ts.post("/tables/w", `{"payload":"a"}`)
	ts.post("/tables/w", `{"payload":"a"}`)
	ts.post("/tables/w", `{"payload":"a","partition":3}`)
	expect(t, ts.get("/tables/w/watermark"), 200,
		`{"topic":"w","partitions":{"0":{"watermark":0,"high_watermark":2},"3":{"watermark":0,"high_watermark":1}}}`)
	expect(t, ts.get("/tables/w/metadata"), 200, `{"table":"w","storage_type":"hot_only","iceberg_enabled":false}`)
	expect(t, ts.get("/health"), 200, `{"status":"healthy"}`)
	expect(t, ts.get("/health/live"), 200, `{"status":"ok"}`)
	expect(t, ts.get("/health/ready"), 200,
		`{"status":"ready","hot_storage":{"status":"ok"},"cold_storage":{"status":"not_configured"},"backpressure":{"status":"ok","inflight_writes":10000,"inflight_bytes":0,"max_inflight_bytes":67108864}}`)
	r := ts.get("/stats")
	if r.status != 200 || !strings.HasPrefix(r.body, `{"uptime_secs":`) ||
		!strings.Contains(r.body, `"writes":{"total":3,"bytes_total":3,`) || !strings.Contains(r.body, `"errors_total":0`) {
		t.Fatalf("stats: %d %s", r.status, r.body)
	}
}

func TestReadinessFailsWhileStopping(t *testing.T) {
	ts := startServer(t, "", nil)
	ts.srv.stopping.Store(true)
	r := ts.get("/health/ready")
	if r.status != 503 || !strings.HasPrefix(r.body, `{"status":"not_ready","hot_storage":{"status":"error","error":"shutting down"}`) {
		t.Fatalf("ready while stopping: %d %s", r.status, r.body)
	}
	expectError(t, ts.post("/tables/t", `{"payload":"x"}`), 503, codeOverloaded)
	ts.srv.stopping.Store(false)
}

// fakeCold is a cold tier for the plug-in seam.
type fakeCold struct{}

func (fakeCold) Metadata(context.Context, string) (TableMetadata, error) {
	return TableMetadata{StorageType: "iceberg", IcebergEnabled: true, MetadataLocation: "s3://b/t/metadata/v1.metadata.json", Bucket: "b"}, nil
}
func (fakeCold) Flush(context.Context, string) (AdminResult, error) {
	return AdminResult{Status: "ok", Message: "flushed 3 events"}, nil
}
func (fakeCold) Compact(context.Context, string) (AdminResult, error) {
	return AdminResult{}, fmt.Errorf("boom")
}
func (fakeCold) Ready(context.Context) error { return nil }

func TestColdTierSeam(t *testing.T) {
	ts := startServer(t, "", func(c *Config) { c.Cold = fakeCold{} })
	expect(t, ts.get("/tables/t/metadata"), 200,
		`{"table":"t","storage_type":"iceberg","iceberg_enabled":true,"metadata_location":"s3://b/t/metadata/v1.metadata.json","bucket":"b"}`)
	expect(t, ts.post("/tables/t/flush", ""), 200, `{"status":"ok","message":"flushed 3 events"}`)
	expectError(t, ts.post("/tables/t/compact", ""), 500, codeStorage)
	r := ts.get("/health/ready")
	if r.status != 200 || !strings.Contains(r.body, `"cold_storage":{"status":"ok"}`) {
		t.Fatalf("ready: %s", r.body)
	}
}

func TestArrowRead(t *testing.T) {
	ts := startServer(t, "", nil)
	ts.post("/tables/a/bulk", `{"records":[{"payload":"x","timestamp_ms":10,"idempotency_key":"k"},{"payload_base64":"AP8=","partition":1,"timestamp_ms":20}]}`)
	for _, accept := range []string{
		"application/vnd.apache.arrow.stream",
		"application/json;q=0.5, application/vnd.apache.arrow.stream",
		"text/html, application/vnd.apache.arrow.stream;q=0.9, */*;q=0.1",
	} {
		r := ts.get("/tables/a", "Accept: "+accept)
		if r.status != 200 || r.header.Get("Content-Type") != param.MediaArrow {
			t.Fatalf("%s: %d %s %q", accept, r.status, r.header.Get("Content-Type"), r.body)
		}
		rd, err := ipc.NewReader(bytes.NewReader([]byte(r.body)))
		if err != nil {
			t.Fatal(err)
		}
		if got := rd.Schema().String(); !strings.Contains(got, "sequence: type=int64") || !strings.Contains(got, "idempotency_key: type=utf8, nullable") {
			t.Fatalf("schema %s", got)
		}
		if !rd.Next() {
			t.Fatal("no record batch")
		}
		rec := rd.RecordBatch()
		if rec.NumRows() != 2 || rec.NumCols() != 6 {
			t.Fatalf("rows %d cols %d", rec.NumRows(), rec.NumCols())
		}
		pay := rec.Column(3).(*array.Binary)
		key := rec.Column(5).(*array.String)
		if string(pay.Value(0)) != "x" || !bytes.Equal(pay.Value(1), []byte{0, 0xff}) || key.Value(0) != "k" || !key.IsNull(1) {
			t.Fatalf("values %v %v", pay, key)
		}
		rd.Release()
	}
	// Projection, and an empty table is a schema-only stream.
	r := ts.get("/tables/none?fields=payload,timestamp_ms", "Accept: application/vnd.apache.arrow.stream")
	rd, err := ipc.NewReader(bytes.NewReader([]byte(r.body)))
	if err != nil {
		t.Fatal(err)
	}
	if rd.Schema().NumFields() != 2 || rd.Next() {
		t.Fatalf("empty arrow read: %s", rd.Schema())
	}
	rd.Release()
	// JSON wins where preferred or unspecified.
	for _, accept := range []string{"", "*/*", "application/*", "application/json, application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.stream;q=0.2, application/json"} {
		if r := ts.get("/tables/a", "Accept: "+accept); r.status != 200 || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%q: %d %s", accept, r.status, r.header.Get("Content-Type"))
		}
	}
}

func TestMetricsParse(t *testing.T) {
	ts := startServer(t, "", nil)
	ts.post("/tables/m", `{"payload":"abc"}`)
	ts.post("/tables/m/bulk", `{"records":[{"payload":"a"},{"payload":"b","partition":2}]}`)
	ts.get("/tables/m")
	ts.get("/nope")
	r := ts.get("/metrics")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %s", r.status, r.header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(r.body))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, r.body)
	}
	val := func(name string, labels ...string) float64 {
		t.Helper()
		f, ok := fams[name]
		if !ok {
			t.Fatalf("no metric %s", name)
		}
	next:
		for _, m := range f.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.Label {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
		t.Fatalf("no series %s%v", name, labels)
		return 0
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"zombi_writes_total", nil, 3},
		{"zombi_writes_bytes_total", nil, 5},
		{"zombi_reads_total", nil, 1},
		{"zombi_errors_total", nil, 1},
		{"zombi_backpressure_rejections_total", nil, 0},
		{"zombi_write_latency_us", nil, 2},
		{"zombi_read_latency_us", nil, 1},
		{"zombi_writes_by_topic_total", []string{"topic", "m"}, 2},
		{"zombi_high_watermark", []string{"topic", "m", "partition", "0"}, 2},
		{"zombi_high_watermark", []string{"topic", "m", "partition", "2"}, 1},
		{"zombi_hot_storage_events", []string{"topic", "m", "partition", "0"}, 2},
	} {
		if got := val(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
