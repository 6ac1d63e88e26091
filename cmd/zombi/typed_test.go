package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/catalog/rest"
	"github.com/apache/iceberg-go/table"
)

// typedSchema is a Rust-Zombi-style ZOMBI_TABLE_SCHEMA for table clicks:
// nested paths, every type, a column that is not nullable.
const typedSchema = `[{"table":"clicks","payload_format":"json","fields":[
 {"name":"user_id","json_path":"user.id","data_type":"Utf8","nullable":true},
 {"name":"action","json_path":"action","data_type":"Utf8"},
 {"name":"value","json_path":"value","data_type":"Int64","nullable":true},
 {"name":"small","json_path":"small","data_type":"Int32"},
 {"name":"price","json_path":"price","data_type":"Float64"},
 {"name":"ok","json_path":"ok","data_type":"Boolean"},
 {"name":"at","json_path":"at","data_type":"Timestamp"},
 {"name":"day","json_path":"meta.day","data_type":"Date"},
 {"name":"level","json_path":"level","data_type":"Int64","nullable":false}
],"preserve_overflow":true}]`

// typedCase is one event written to clicks and what its row must hold:
// want maps a column to its value (absent: NULL); overflow is the
// _payload_overflow column (nil: NULL; a JSON object is compared as
// JSON, anything else byte for byte).
type typedCase struct {
	record   string
	want     map[string]any
	overflow []byte
}

var typedCases = []typedCase{
	{ // every column, a nested path (its member stays in the overflow), an extra member
		record: `{"payload":{"user":{"id":"u1"},"action":"click","value":42,"small":7,"price":19.5,"ok":true,"at":"2026-03-02T10:00:00.5Z","meta":{"day":"2026-03-02"},"level":3,"extra":"x"}}`,
		want: map[string]any{"user_id": "u1", "action": "click", "value": int64(42), "small": int32(7), "price": 19.5, "ok": true,
			"at": time.Date(2026, 3, 2, 10, 0, 0, 5e8, time.UTC).UnixMicro(), "day": int32(20514), "level": int64(3)},
		overflow: []byte(`{"user":{"id":"u1"},"meta":{"day":"2026-03-02"},"extra":"x"}`),
	},
	{ // missing fields: NULL, the required level gets 0; nothing left over
		record: `{"payload":{"action":"view"}}`,
		want:   map[string]any{"action": "view", "level": int64(0)},
	},
	{ // mismatched types: NULL (0 for level), the members stay in the overflow
		record:   `{"payload":{"value":"many","small":3000000000,"ok":"yes","level":"high","price":"cheap"}}`,
		want:     map[string]any{"level": int64(0)},
		overflow: []byte(`{"value":"many","small":3000000000,"ok":"yes","level":"high","price":"cheap"}`),
	},
	{ // a payload that is JSON but not an object: all in the overflow
		record:   `{"payload":[1,2,3]}`,
		want:     map[string]any{"level": int64(0)},
		overflow: []byte(`[1,2,3]`),
	},
	{ // a text payload that is not JSON
		record:   `{"payload":"plain text, not JSON"}`,
		want:     map[string]any{"level": int64(0)},
		overflow: []byte(`plain text, not JSON`),
	},
	{ // binary bytes
		record:   `{"payload_base64":"` + base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, '{', 0x80}) + `"}`,
		want:     map[string]any{"level": int64(0)},
		overflow: []byte{0xff, 0x00, '{', 0x80},
	},
	{ // JSON text sent as a string; epoch milliseconds; an integer as a double; a number as text
		record:   `{"payload":"{\"at\":1772445600000,\"meta\":{\"day\":1772445600000},\"price\":3,\"action\":12.50,\"level\":-1}"}`,
		want:     map[string]any{"at": int64(1772445600000) * 1000, "day": int32(20514), "price": 3.0, "action": "12.50", "level": int64(-1)},
		overflow: []byte(`{"meta":{"day":1772445600000}}`),
	},
}

// A Rust-Zombi-style ZOMBI_TABLE_SCHEMA: zombi serve extracts typed
// columns at flush time; iceberg-go (through the /v1 view) and DuckDB
// read every event once with its typed values, NULLs where a value is
// missing or does not fit, and the rest of the payload in
// _payload_overflow; the Iceberg schema has the Rust Zombi's field IDs.
func TestServeTypedColumns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	dir := t.TempDir()
	schemaFile := filepath.Join(t.TempDir(), "schema.json")
	if err := os.WriteFile(schemaFile, []byte(typedSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := []string{"ZOMBI_FLUSH_INTERVAL_SECS=3600", "ZOMBI_SEGMENT_SIZE_MB=64", "ZOMBI_TABLE_SCHEMA_FILE=" + schemaFile,
		// A Rust Zombi env file starts this server unchanged.
		"ZOMBI_ROCKSDB_BLOCK_CACHE_MB=64", "ZOMBI_FLUSH_BATCH_SIZE=1000"}
	c := startChild(t, dir, opts...)
	for _, name := range []string{"ZOMBI_ROCKSDB_BLOCK_CACHE_MB", "ZOMBI_FLUSH_BATCH_SIZE"} {
		if !strings.Contains(c.log(), name) {
			t.Errorf("the log does not say that %s has no effect:\n%s", name, c.log())
		}
	}
	writeTyped(t, c, typedCases)
	if fr := c.flushTable("clicks"); fr.Events != int64(len(typedCases)) {
		t.Fatalf("flush %+v", fr)
	}
	rows := scanTyped(t, c.base, "clicks")
	checkTyped(t, "iceberg-go", rows, typedCases, 1)

	// The schema: the Rust Zombi's field IDs, no payload column.
	tbl := loadREST(t, c.base, "clicks")
	ids := map[string]int{}
	for _, f := range tbl.Schema().Fields() {
		ids[f.Name] = f.ID
	}
	want := map[string]int{"sequence": 1, "topic": 2, "partition": 3, "timestamp_ms": 5, "idempotency_key": 6, "event_date": 7, "event_hour": 8,
		"user_id": 100, "action": 101, "value": 102, "small": 103, "price": 104, "ok": 105, "at": 106, "day": 107, "level": 108, "_payload_overflow": 99}
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("field IDs %v, want %v", ids, want)
	}
	if f, _ := tbl.Schema().FindFieldByName("level"); !f.Required {
		t.Errorf("level is not required: %v", f)
	}
	if f, _ := tbl.Schema().FindFieldByName("at"); f.Type.String() != "timestamptz" {
		t.Errorf("at is %s", f.Type)
	}

	// The manifest carries each typed column's null count and bounds,
	// which engines prune files by.
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	nulls := map[int]int64{}
	var lo, hi []byte
	for _, task := range tasks {
		for id, n := range task.File.NullValueCounts() {
			nulls[id] += n
		}
		lo, hi = task.File.LowerBoundValues()[102], task.File.UpperBoundValues()[102]
	}
	if len(tasks) != 1 || nulls[102] != 6 || nulls[100] != 6 || nulls[108] != 0 || nulls[99] != 1 {
		t.Errorf("%d files, null counts %v", len(tasks), nulls)
	}
	if want := []byte{42, 0, 0, 0, 0, 0, 0, 0}; !bytes.Equal(lo, want) || !bytes.Equal(hi, want) {
		t.Errorf("bounds of value: %v..%v", lo, hi)
	}

	// Metrics: level was missing or mismatched in all events but two,
	// value mismatched once; three payloads were not a JSON object.
	m := c.metrics()
	for _, w := range []string{`zombi_extract_errors_total{table="clicks",column="level"} 5`, `zombi_extract_errors_total{table="clicks",column="value"} 1`,
		`zombi_extract_non_object_total{table="clicks"} 3`} {
		if !strings.Contains(m, w+"\n") {
			t.Errorf("metrics lack %s", w)
		}
	}
	duckTyped(t, tbl, typedCases, 1)
	c.stop()
}

// Schema evolution: a column added to the configuration, another widened
// from int to long and float to double, a restart; old and new files read
// together (new columns NULL in old rows), also after compaction merges
// them into the current schema. A type change Iceberg does not allow
// stops the start-up, naming the column.
func TestServeTypedColumnsEvolve(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	dir := t.TempDir()
	v1 := `[{"table":"clicks","payload_format":"json","fields":[
 {"name":"action","json_path":"action","data_type":"Utf8"},
 {"name":"n","json_path":"n","data_type":"Int32"},
 {"name":"ratio","json_path":"ratio","data_type":"Float32"}]}]`
	v2 := `[{"table":"clicks","payload_format":"json","fields":[
 {"name":"action","json_path":"action","data_type":"Utf8"},
 {"name":"n","json_path":"n","data_type":"Int64"},
 {"name":"ratio","json_path":"ratio","data_type":"Float64"},
 {"name":"country","json_path":"geo.country","data_type":"Utf8"}]}]`
	base := []string{"ZOMBI_FLUSH_INTERVAL_SECS=3600", "ZOMBI_SEGMENT_SIZE_MB=64", "ZOMBI_AUTO_COMPACTION=false"}
	ev := func(i int) typedCase {
		// One hour for all, so that compaction merges the files.
		return typedCase{record: fmt.Sprintf(`{"payload":{"action":"a%d","n":%d,"ratio":0.5,"geo":{"country":"c%d"}},"timestamp_ms":%d}`,
			i, 1000*i, i, 1772445600000+i)}
	}
	c := startChild(t, dir, append(base, "ZOMBI_TABLE_SCHEMA="+v1)...)
	var cases []typedCase
	for i := range 3 {
		cases = append(cases, ev(i))
	}
	writeTyped(t, c, cases)
	c.flushTable("clicks")
	c.stop()

	// A type change that is not a widening: the start-up fails and says why.
	bad := strings.Replace(v2, `"name":"action","json_path":"action","data_type":"Utf8"`, `"name":"action","json_path":"action","data_type":"Int64"`, 1)
	if out, err := serveOnce(t, dir, append(base, "ZOMBI_TABLE_SCHEMA="+bad)...); err == nil || !strings.Contains(out, "action") || !strings.Contains(out, "is string in the table and long in ZOMBI_TABLE_SCHEMA") {
		t.Fatalf("a narrowing type change started: %v\n%s", err, out)
	}

	c = startChild(t, dir, append(base, "ZOMBI_TABLE_SCHEMA="+v2)...)
	var more []typedCase
	for i := 3; i < 6; i++ {
		more = append(more, ev(i))
	}
	writeTyped(t, c, more)
	c.flushTable("clicks")
	for i := range cases { // old rows: no country
		cases[i].want = map[string]any{"action": fmt.Sprint("a", i), "n": int64(1000 * i), "ratio": 0.5}
		cases[i].overflow = []byte(fmt.Sprintf(`{"geo":{"country":"c%d"}}`, i))
	}
	for i := range more {
		more[i].want = map[string]any{"action": fmt.Sprint("a", i+3), "n": int64(1000 * (i + 3)), "ratio": 0.5, "country": fmt.Sprint("c", i+3)}
		more[i].overflow = []byte(fmt.Sprintf(`{"geo":{"country":"c%d"}}`, i+3))
	}
	all := append(cases, more...)
	checkTyped(t, "iceberg-go", scanTyped(t, c.base, "clicks"), all, 1)
	tbl := loadREST(t, c.base, "clicks")
	for name, typ := range map[string]string{"n": "long", "ratio": "double", "country": "string"} {
		if f, ok := tbl.Schema().FindFieldByName(name); !ok || f.Type.String() != typ {
			t.Errorf("column %s: %v", name, f)
		}
	}
	duckTyped(t, tbl, all, 1)

	// Compaction rewrites both files into the current schema.
	st, _, body := c.do("POST", "/tables/clicks/compact", "")
	if st != 200 || !strings.Contains(body, `"files_compacted":2`) {
		t.Fatalf("compact: %d %s", st, body)
	}
	checkTyped(t, "iceberg-go after compaction", scanTyped(t, c.base, "clicks"), all, 1)
	tbl = loadREST(t, c.base, "clicks")
	duckTyped(t, tbl, all, 1)
	c.stop()
}

// kill -9 at random moments of flushes that extract typed columns: after
// each restart the table holds every event exactly once, with its typed
// values.
func TestServeTypedColumnsCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	dir := t.TempDir()
	opts := []string{"ZOMBI_FLUSH_INTERVAL_SECS=3600", "ZOMBI_SEGMENT_SIZE_MB=64", "ZOMBI_TABLE_SCHEMA=" + typedSchema}
	c := startChild(t, dir, opts...)
	next := 0
	write := func(c *child, n int) {
		for ; n > 0; n -= 1000 {
			var b strings.Builder
			b.WriteString(`{"records":[`)
			for i := range min(n, 1000) {
				if i > 0 {
					b.WriteByte(',')
				}
				fmt.Fprintf(&b, `{"payload":{"user":{"id":"u%d"},"value":%d,"action":"click","pad":"abcdefghijklmnopqrstuvwxyz"},"partition":%d}`, next, next, next%2)
				next++
			}
			b.WriteString(`]}`)
			if st, _, body := c.do("POST", "/tables/clicks/bulk", b.String()); st != 202 {
				t.Fatalf("write: %d %s", st, body)
			}
		}
	}
	check := func(c *child) {
		t.Helper()
		at, err := loadREST(t, c.base, "clicks").Scan().ToArrowTable(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer at.Release()
		seen := map[int64]bool{}
		rd := array.NewTableReader(at, 0)
		defer rd.Release()
		for rd.Next() {
			rec := rd.RecordBatch()
			col := func(name string) arrow.Array { return rec.Column(rec.Schema().FieldIndices(name)[0]) }
			for i := range int(rec.NumRows()) {
				v := arrowValue(col("value"), i).(int64)
				if seen[v] {
					t.Fatalf("event %d twice", v)
				}
				seen[v] = true
				if u := arrowValue(col("user_id"), i); u != fmt.Sprint("u", v) {
					t.Fatalf("event %d: user_id %v", v, u)
				}
				if o := arrowValue(col("_payload_overflow"), i).([]byte); !bytes.Contains(o, []byte(`"pad":"abcdefghijklmnopqrstuvwxyz"`)) || bytes.Contains(o, []byte(`"value"`)) {
					t.Fatalf("event %d: overflow %s", v, o)
				}
			}
		}
		_, _, body := c.do("GET", "/tables/clicks/watermark", "")
		var w struct {
			Partitions map[string]struct {
				Watermark int64 `json:"watermark"`
				High      int64 `json:"high_watermark"`
			}
		}
		json.Unmarshal([]byte(body), &w)
		var total int64
		for _, p := range w.Partitions {
			if p.Watermark != p.High {
				t.Fatalf("watermarks %s", body)
			}
			total += p.High
		}
		if int64(len(seen)) != total || total != int64(next) {
			t.Fatalf("%d events in Iceberg, %d in the hot tier, %d written", len(seen), total, next)
		}
	}
	for round, delay := range []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond} {
		write(c, 60000)
		c = c.killIntoFlush("clicks", delay, dir, opts...)
		if round%2 == 1 {
			write(c, 100) // new events on top of a half-flushed range
		}
		fr := c.flushTable("clicks")
		t.Logf("killed %v into a flush; the flush after the restart committed %d events", delay, fr.Events)
		check(c)
	}
	c.stop()
}

// serveOnce runs zombi serve on dir until it exits (a start-up error) or
// answers (then it is stopped, and err is nil).
func serveOnce(t *testing.T, dir string, extra ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--port", strconv.Itoa(freePort(t)), "--host", "127.0.0.1")
	cmd.Env = append(os.Environ(), "ZOMBI_TEST_AS_MAIN=1", "ZOMBI_DATA_DIR="+dir, "ZOMBI_FSYNC=never")
	cmd.Env = append(cmd.Env, extra...)
	done := make(chan error, 1)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			return out.String(), fmt.Errorf("exited 0")
		}
		return out.String(), err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return out.String(), nil
	}
}

func writeTyped(t *testing.T, c *child, cases []typedCase) {
	t.Helper()
	recs := make([]string, len(cases))
	for i, tc := range cases {
		recs[i] = tc.record
	}
	if st, _, body := c.do("POST", "/tables/clicks/bulk", `{"records":[`+strings.Join(recs, ",")+`]}`); st != 202 {
		t.Fatalf("write: %d %s", st, body)
	}
}

func (c *child) metrics() string {
	c.t.Helper()
	_, _, body := c.do("GET", "/metrics", "")
	return body
}

func loadREST(t *testing.T, base, name string) *table.Table {
	t.Helper()
	ctx := context.Background()
	rc, err := rest.NewCatalog(ctx, "zombi", base)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := rc.LoadTable(ctx, []string{"zombi", name})
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// scanTyped reads table name through the /v1 view with iceberg-go and
// returns its rows by sequence (partition 0), each column's value as Go
// value (nil for NULL; timestamps as microseconds, dates as days).
func scanTyped(t *testing.T, base, name string) map[int64]map[string]any {
	t.Helper()
	at, err := loadREST(t, base, name).Scan().ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	out := map[int64]map[string]any{}
	rd := array.NewTableReader(at, 0)
	defer rd.Release()
	for rd.Next() {
		rec := rd.RecordBatch()
		for i := range int(rec.NumRows()) {
			row := map[string]any{}
			for ci, f := range rec.Schema().Fields() {
				row[f.Name] = arrowValue(rec.Column(ci), i)
			}
			seq := row["sequence"].(int64)
			if _, dup := out[seq]; dup {
				t.Fatalf("sequence %d twice", seq)
			}
			out[seq] = row
		}
	}
	return out
}

func arrowValue(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch a := a.(type) {
	case *array.Int64:
		return a.Value(i)
	case *array.Int32:
		return a.Value(i)
	case *array.Float64:
		return a.Value(i)
	case *array.Float32:
		return float64(a.Value(i))
	case *array.Boolean:
		return a.Value(i)
	case *array.String:
		return a.Value(i)
	case *array.LargeString:
		return a.Value(i)
	case *array.Binary:
		return bytes.Clone(a.Value(i))
	case *array.LargeBinary:
		return bytes.Clone(a.Value(i))
	case *array.Timestamp:
		return int64(a.Value(i))
	case *array.Date32:
		return int32(a.Value(i))
	}
	return fmt.Sprintf("unhandled %T", a)
}

// checkTyped checks rows against cases, whose events have offsets
// first, first+1, … of partition 0.
func checkTyped(t *testing.T, reader string, rows map[int64]map[string]any, cases []typedCase, first int64) {
	t.Helper()
	if len(rows) != len(cases) {
		t.Fatalf("%s: %d rows, want %d", reader, len(rows), len(cases))
	}
	for i, tc := range cases {
		seq := first + int64(i)
		row := rows[seq]
		if row == nil {
			t.Fatalf("%s: sequence %d missing", reader, seq)
		}
		for col, got := range row {
			switch col {
			case "sequence", "topic", "partition", "timestamp_ms", "idempotency_key", "event_date", "event_hour":
				continue
			case "_payload_overflow":
				gotB, _ := got.([]byte)
				if !sameOverflow(gotB, tc.overflow) {
					t.Errorf("%s: event %d: overflow %q, want %q", reader, i, gotB, tc.overflow)
				}
				continue
			}
			if want := tc.want[col]; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: event %d: %s = %#v, want %#v", reader, i, col, got, want)
			}
		}
		for col := range tc.want {
			if _, ok := row[col]; !ok {
				t.Errorf("%s: event %d: no column %s", reader, i, col)
			}
		}
	}
}

// sameOverflow compares overflows: JSON objects as JSON, anything else
// byte for byte.
func sameOverflow(got, want []byte) bool {
	if got == nil || want == nil {
		return got == nil && want == nil
	}
	var g, w map[string]any
	if json.Unmarshal(want, &w) == nil && json.Unmarshal(got, &g) == nil {
		return reflect.DeepEqual(g, w)
	}
	return bytes.Equal(got, want)
}

// duckTyped reads the table's data files with DuckDB's Parquet reader
// and checks them against cases as checkTyped does.
func duckTyped(t *testing.T, tbl *table.Table, cases []typedCase, first int64) {
	t.Helper()
	mods := duckdbModules()
	node, err := exec.LookPath("node")
	if mods == "" || err != nil {
		if os.Getenv("ZOMBI_TEST_REQUIRE_SERVICES") != "" {
			t.Fatal("node and @duckdb/node-api not found (ZOMBI_TEST_DUCKDB_MODULES)")
		}
		t.Log("DuckDB check skipped: node and @duckdb/node-api not found")
		return
	}
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var sel []string
	for _, f := range tbl.Schema().Fields() {
		switch f.Type.String() {
		case "binary":
			sel = append(sel, fmt.Sprintf("to_base64(%q) AS %q", f.Name, f.Name))
		case "timestamptz":
			sel = append(sel, fmt.Sprintf("epoch_us(%q) AS %q", f.Name, f.Name))
		case "date":
			sel = append(sel, fmt.Sprintf("(%q - DATE '1970-01-01')::INTEGER AS %q", f.Name, f.Name))
		default:
			sel = append(sel, fmt.Sprintf("%q", f.Name))
		}
	}
	args := []string{filepath.Join("testdata", "duckrows.cjs"), strings.Join(sel, ", ")}
	for _, task := range tasks {
		u, err := url.Parse(task.File.FilePath())
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, u.Path)
	}
	cmd := exec.Command(node, args...)
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckrows: %v\n%s", err, stderr.String())
	}
	var raw []map[string]any
	if err := json.Unmarshal(out, &raw); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// DuckDB's JSON has numbers as numbers or strings, by type.
	rows := map[int64]map[string]any{}
	for _, r := range raw {
		row := map[string]any{}
		for _, f := range tbl.Schema().Fields() {
			v := r[f.Name]
			if v == nil {
				row[f.Name] = nil
				continue
			}
			switch f.Type.String() {
			case "long", "timestamptz":
				n, err := strconv.ParseInt(fmt.Sprint(v), 10, 64)
				if err != nil {
					t.Fatalf("duckdb %s = %v", f.Name, v)
				}
				row[f.Name] = n
			case "int", "date":
				n, err := strconv.ParseInt(fmt.Sprint(v), 10, 32)
				if err != nil {
					t.Fatalf("duckdb %s = %v", f.Name, v)
				}
				row[f.Name] = int32(n)
			case "double", "float":
				n, err := strconv.ParseFloat(fmt.Sprint(v), 64)
				if err != nil {
					t.Fatalf("duckdb %s = %v", f.Name, v)
				}
				row[f.Name] = n
			case "binary":
				b, err := base64.StdEncoding.DecodeString(v.(string))
				if err != nil {
					t.Fatalf("duckdb %s = %v", f.Name, v)
				}
				row[f.Name] = b
			default:
				row[f.Name] = v
			}
		}
		rows[row["sequence"].(int64)] = row
	}
	if len(rows) != len(raw) {
		t.Fatalf("duckdb: %d rows, %d distinct sequences", len(raw), len(rows))
	}
	checkTyped(t, "duckdb", rows, cases, first)
}

// duckdbModules returns a node_modules directory holding @duckdb/node-api
// (ZOMBI_TEST_DUCKDB_MODULES, or ~/.cache/zombi-duckdb/node_modules where
// .ci/run installs it), or "".
func duckdbModules() string {
	dir := os.Getenv("ZOMBI_TEST_DUCKDB_MODULES")
	if dir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(d, "zombi-duckdb", "node_modules")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "@duckdb", "node-api")); err != nil {
		return ""
	}
	return dir
}

// The typed-column settings: the JSON or a file of it, not both, and a
// bad entry is a start-up error that names it.
func TestTableSchemaSettings(t *testing.T) {
	load := func(args []string, m map[string]string) (config, error) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		return loadConfig(fs, args, env(m))
	}
	c, err := load(nil, map[string]string{"ZOMBI_TABLE_SCHEMA": typedSchema})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Cold.TableSchema) != 1 || c.Cold.TableSchema[0].Table != "clicks" || len(c.Cold.TableSchema[0].Fields) != 9 ||
		!c.Cold.TableSchema[0].PreserveOverflow || c.Cold.TableSchema[0].Fields[8].Nullable {
		t.Fatalf("parsed %+v", c.Cold.TableSchema)
	}
	file := filepath.Join(t.TempDir(), "s.json")
	os.WriteFile(file, []byte(typedSchema), 0o644)
	if c, err := load([]string{"--table-schema-file", file}, nil); err != nil || len(c.Cold.TableSchema) != 1 {
		t.Fatalf("from a file: %v", err)
	}
	if _, err := load([]string{"--table-schema-file", file}, map[string]string{"ZOMBI_TABLE_SCHEMA": typedSchema}); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Fatalf("both: %v", err)
	}
	_, err = load(nil, map[string]string{"ZOMBI_TABLE_SCHEMA": `[{"table":"ok","payload_format":"json","fields":[]},
		{"table":"clicks","payload_format":"json","fields":[{"name":"ts","json_path":"a..b","data_type":"Datetime"}]}]`})
	if err == nil || !strings.Contains(err.Error(), "table-schema") || !strings.Contains(err.Error(), `entry 2 (table "clicks")`) ||
		!strings.Contains(err.Error(), "Datetime") || !strings.Contains(err.Error(), "a..b") {
		t.Fatalf("bad entry: %v", err)
	}
	// A table name the API would refuse, a reserved column name.
	_, err = load(nil, map[string]string{"ZOMBI_TABLE_SCHEMA": `[{"table":"../x","payload_format":"json","fields":[{"name":"payload","json_path":"p","data_type":"Utf8"}]}]`})
	if err == nil || !strings.Contains(err.Error(), "../x") || !strings.Contains(err.Error(), "payload") {
		t.Fatalf("bad names: %v", err)
	}
}

// The Rust Zombi's engine settings are recognised, with why they have no
// effect; this server's settings that share a prefix are not.
func TestIgnoredSettings(t *testing.T) {
	got := ignoredSettings([]string{"ZOMBI_ROCKSDB_MAX_OPEN_FILES=100", "ZOMBI_SNAPSHOT_RETAIN_HOURS=24", "ZOMBI_SNAPSHOT_THRESHOLD_GB=1",
		"ZOMBI_BLOOM_BITS=10", "ZOMBI_PORT=1", "HOME=/root", "ZOMBI_WRITE_COMBINER_ENABLED=true", "ZOMBI_TIMESTAMP_INDEX_ENABLED=true",
		"ZOMBI_FLUSH_MAX_SEGMENT=10000", "ZOMBI_FLUSH_BATCH_SIZE=1000", "ZOMBI_FLUSH_INTERVAL_SECS=5"})
	var names []string
	for _, s := range got {
		if s[1] == "" {
			t.Errorf("%s: no reason", s[0])
		}
		names = append(names, s[0])
	}
	want := []string{"ZOMBI_BLOOM_BITS", "ZOMBI_FLUSH_BATCH_SIZE", "ZOMBI_FLUSH_MAX_SEGMENT", "ZOMBI_ROCKSDB_MAX_OPEN_FILES",
		"ZOMBI_SNAPSHOT_THRESHOLD_GB", "ZOMBI_TIMESTAMP_INDEX_ENABLED", "ZOMBI_WRITE_COMBINER_ENABLED"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("ignored %v, want %v", names, want)
	}
}
