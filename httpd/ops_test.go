package httpd

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"gopkg.in/yaml.v3"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/vfs"
)

// specRoutes reads docs/openapi.yaml: "METHOD /path" for every operation.
func specRoutes(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                            `yaml:"openapi"`
		Paths   map[string]map[string]interface{} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi: %q", doc.OpenAPI)
	}
	out := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			switch m {
			case "get", "head", "post", "put", "delete", "patch":
				out[strings.ToUpper(m)+" "+path] = true
			}
		}
	}
	return out
}

// routerRoutes reads the router's source (routes.go) and returns "METHOD
// /path" for every route it serves: the exact paths of handle, the
// actions of routeTable and routeConsumer, with the methods of their
// allow/methodNotAllowed calls; /v1 is the catalog view, whose routes are
// the endpoints it advertises plus /v1/config. GET implies HEAD, which is
// left out unless the view lists it.
func routerRoutes(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "routes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	add := func(methods, path string) {
		for _, m := range strings.Split(methods, ",") {
			if m = strings.TrimSpace(m); m != "HEAD" {
				out[m+" "+path] = true
			}
		}
	}
	// methodsOf finds the method list a case clause allows.
	methodsOf := func(cc *ast.CaseClause) string {
		var ms string
		ast.Inspect(cc, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "allow" || sel.Sel.Name == "methodNotAllowed") {
					if lit, ok := call.Args[len(call.Args)-1].(*ast.BasicLit); ok {
						ms, _ = strconv.Unquote(lit.Value)
					}
				}
			}
			return true
		})
		return ms
	}
	lits := func(exprs []ast.Expr) []string {
		var ss []string
		for _, e := range exprs {
			ast.Inspect(e, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					ss = append(ss, v)
				}
				return true
			})
		}
		return ss
	}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok {
			continue
		}
		var prefix string
		switch fn.Name.Name {
		case "handle":
		case "routeTable":
			prefix = "/tables/{table}"
		case "routeConsumer":
			prefix = "/consumers/{group}"
		default:
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			cc, ok := n.(*ast.CaseClause)
			if !ok {
				return true
			}
			for _, v := range lits(cc.List) {
				switch {
				case fn.Name.Name != "handle":
					if v == "" {
						add(methodsOf(cc), prefix)
					} else {
						add(methodsOf(cc), prefix+"/"+v)
					}
				case v == "/tables/" || v == "/consumers/" || v == "/v1/":
					// sub-routers, read below
				case v == "/v1":
					for _, ep := range append([]string{"GET /v1/config"}, catalogViewEndpoints...) {
						m, p, _ := strings.Cut(strings.Replace(ep, "/v1/{prefix}/", "/v1/", 1), " ")
						out[m+" "+p] = true
					}
				case strings.HasPrefix(v, "/"):
					add(methodsOf(cc), v)
				}
			}
			return true
		})
	}
	if len(out) < 15 {
		t.Fatalf("found only %d routes in routes.go: %v", len(out), out)
	}
	return out
}

// TestOpenAPIMatchesRouter checks docs/openapi.yaml against the router
// both ways: every route the router serves is documented, every documented
// operation reaches a handler (no "No route" 404, no 405), and the server
// serves the document itself.
func TestOpenAPIMatchesRouter(t *testing.T) {
	spec, router := specRoutes(t), routerRoutes(t)
	var missing, extra []string
	for r := range router {
		if !spec[r] {
			missing = append(missing, r)
		}
	}
	for r := range spec {
		if !router[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes missing from docs/openapi.yaml: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("docs/openapi.yaml documents routes the router does not serve: %v", extra)
	}

	ts := startServer(t, "", nil)
	h := ts.srv.Handler()
	sample := strings.NewReplacer("{table}", "t", "{group}", "g", "{namespace}", "zombi")
	for r := range spec {
		m, p, _ := strings.Cut(r, " ")
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(m)
		ctx.Request.SetRequestURI(sample.Replace(p))
		h(&ctx)
		code, body := ctx.Response.StatusCode(), string(ctx.Response.Body())
		if code == 405 || code == 404 && strings.Contains(body, "No route") {
			t.Errorf("%s: %d %s", r, code, body)
		}
	}

	got := ts.get("/openapi.yaml")
	want, _ := os.ReadFile("../docs/openapi.yaml")
	if got.status != 200 || got.body != string(want) || !strings.HasPrefix(got.header.Get("Content-Type"), "application/yaml") {
		t.Errorf("GET /openapi.yaml: %d %q, %d bytes", got.status, got.header.Get("Content-Type"), len(got.body))
	}
}

// hotMetricFamilies are the series /metrics must carry (issue 7): writes,
// reads, errors, backpressure, per-partition watermarks and backlog,
// segments and bytes, fsync latency, Go runtime.
var hotMetricFamilies = []string{
	"zombi_writes_total", "zombi_write_requests_total", "zombi_writes_bytes_total", "zombi_write_latency_us_bucket",
	"zombi_reads_total", "zombi_reads_records_total", "zombi_read_latency_us_bucket",
	"zombi_errors_total", "zombi_backpressure_rejections_total", "zombi_inflight_bytes", "zombi_inflight_writes",
	`zombi_high_watermark{topic="m",partition="0"} 2`, `zombi_flush_watermark{topic="m",partition="0"} 0`,
	`zombi_low_watermark{topic="m",partition="0"} 1`, `zombi_unflushed_events{topic="m",partition="0"} 2`,
	`zombi_unflushed_events{topic="m",partition="1"} 1`, `zombi_hot_partition_segments{topic="m",partition="0"} 1`,
	`zombi_hot_partition_bytes{topic="m",partition="0"} `, `zombi_partition_failed{topic="m",partition="0"} 0`,
	"zombi_hot_storage_bytes ", "zombi_hot_segments 2", "zombi_hot_partitions 2", "zombi_hot_tables 1",
	"zombi_hot_failed_logs 0", "zombi_hot_quarantined_segments 0", "zombi_hot_segments_recycled_total 0", "zombi_hot_open_segments",
	"zombi_fsync_duration_seconds_bucket", "zombi_uptime_secs",
	"go_goroutines", "go_memstats_alloc_bytes", "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
}

func TestMetricsComplete(t *testing.T) {
	ts := startServer(t, "", nil)
	ts.post("/tables/m", `{"payload":"a"}`)
	ts.post("/tables/m/bulk", `{"records":[{"payload":"b"},{"payload":"c","partition":1}]}`)
	ts.get("/tables/m")
	ts.get("/tables/-bad")
	ts.srv.ObserveFsync(300 * time.Microsecond)
	m := ts.get("/metrics").body
	for _, f := range hotMetricFamilies {
		if !strings.Contains(m, f) {
			t.Errorf("/metrics lacks %q", f)
		}
	}
	if !strings.Contains(m, `zombi_fsync_duration_seconds_bucket{le="0.0005"} 1`) {
		t.Errorf("fsync histogram:\n%s", grepLines(m, "fsync"))
	}
	// Every family has HELP and TYPE once.
	seen := map[string]int{}
	for _, line := range strings.Split(m, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			seen[strings.Fields(name)[0]]++
		}
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("family %s has %d TYPE lines", name, n)
		}
	}
}

// TestGrafanaDashboard checks that deploy/grafana-zombi.json is valid JSON
// and that every zombi_ series its panels query is one the server exports
// (with the Iceberg cold tier, whose series only exist with one).
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana-zombi.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana-zombi.json: %v", err)
	}
	cs := startColdServer(t, 0, time.Hour)
	cs.post("/tables/events", `{"payload":"x"}`)
	cs.post("/tables/events/flush", "")
	cs.srv.ObserveFsync(time.Millisecond)
	m := cs.get("/metrics").body
	exported := map[string]bool{}
	for _, line := range strings.Split(m, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			f := strings.Fields(name)
			exported[f[0]] = true
			if f[1] == "histogram" {
				for _, sfx := range []string{"_bucket", "_sum", "_count"} {
					exported[f[0]+sfx] = true
				}
			}
		} else if i := strings.IndexAny(line, "{ "); i > 0 && !strings.HasPrefix(line, "#") {
			exported[line[:i]] = true // series without metadata
		}
	}
	name := regexp.MustCompile(`\b(zombi|go|process)_[a-z0-9_]+`)
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries++
			for _, n := range name.FindAllString(tg.Expr, -1) {
				if !exported[n] {
					t.Errorf("panel %q queries %s, which /metrics does not export", p.Title, n)
				}
			}
		}
	}
	if dash.Title == "" || dash.UID == "" || queries < 10 {
		t.Errorf("dashboard %q (%s): %d queries", dash.Title, dash.UID, queries)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestReadyReflectsEngineAndBackpressure: a partition log whose fsync
// failed makes /health/ready 503 (and /metrics show it); so do write
// requests at 90 % of their budget.
func TestReadyReflectsEngineAndBackpressure(t *testing.T) {
	var armed atomic.Bool
	dir := t.TempDir()
	opts := testEngineOptions(dir).WithFsync(engine.FsyncAlways)
	opts.FS = &vfs.ErrorFS{FS: vfs.Default, Inject: vfs.OnOp(vfs.OpSync, &armed, errors.New("injected EIO"))}
	eng, err := engine.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Engine: eng, Logger: quietLog, MaxInflightWrites: 10})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, dir: dir, addr: ln.Addr().String(), base: "http://" + ln.Addr().String(), srv: srv, eng: eng, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	defer func() {
		srv.Shutdown(t.Context())
		<-ts.done
		eng.Close() // the failed log reports its error again: ignored
		httpClient.CloseIdleConnections()
	}()

	if r := ts.post("/tables/r", `{"payload":"ok"}`); r.status != 202 {
		t.Fatalf("first write: %d %s", r.status, r.body)
	}
	srv.adm.writes.Store(9)
	if r := ts.get("/health/ready"); r.status != 503 || !strings.Contains(r.body, `"backpressure":{"status":"warning"`) {
		t.Errorf("ready with 9 of 10 write permits taken: %d %s", r.status, r.body)
	}
	srv.adm.writes.Store(0)
	if r := ts.get("/health/ready"); r.status != 200 {
		t.Fatalf("ready: %d %s", r.status, r.body)
	}

	armed.Store(true)
	if r := ts.post("/tables/r", `{"payload":"lost"}`); r.status != 500 {
		t.Fatalf("write with a failing fsync: %d %s", r.status, r.body)
	}
	armed.Store(false)
	r := ts.get("/health/ready")
	if r.status != 503 || !strings.Contains(r.body, `"hot_storage":{"status":"error","error":"1 partition log(s) failed; restart to recover"}`) {
		t.Errorf("ready with a failed log: %d %s", r.status, r.body)
	}
	m := ts.get("/metrics").body
	if !strings.Contains(m, "zombi_hot_failed_logs 1\n") || !strings.Contains(m, `zombi_partition_failed{topic="r",partition="0"} 1`) {
		t.Errorf("metrics of a failed log:\n%s", grepLines(m, "fail"))
	}
}

// TestRequestLogsAtDebugOnly: with the logger at debug, every request is
// logged (without its query string or headers); at info, none is.
func TestRequestLogsAtDebugOnly(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var buf lockedBuffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
		ts := startServer(t, "", func(c *Config) { c.Logger = log })
		ts.post("/tables/l?secret=1", `{"payload":"x"}`, "Authorization: Bearer not-logged")
		ts.stop()
		out := buf.String()
		if level == slog.LevelInfo && strings.Contains(out, "msg=request") {
			t.Errorf("a request logged at info:\n%s", out)
		}
		if level == slog.LevelDebug {
			if !strings.Contains(out, "level=DEBUG msg=request method=POST path=/tables/l status=202") {
				t.Errorf("no debug request log:\n%s", out)
			}
			if strings.Contains(out, "secret=1") || strings.Contains(out, "not-logged") {
				t.Errorf("a query string or header reached the log:\n%s", out)
			}
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
