package httpd

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zombihq/zombi/engine"
)

// testServer is a real server on 127.0.0.1 over an engine in a temp dir.
type testServer struct {
	t    *testing.T
	dir  string
	base string // http://127.0.0.1:port
	addr string
	srv  *Server
	eng  *engine.Engine
	done chan error
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func testEngineOptions(dir string) engine.Options {
	return engine.Options{Dir: dir, SegmentBytes: 1 << 20, Logger: quietLog}.WithFsync(engine.FsyncNever)
}

// startServer starts a server; mod may adjust the config. dir "" means a
// new temp dir.
func startServer(t *testing.T, dir string, mod func(*Config)) *testServer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	eng, err := engine.Open(testEngineOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Engine: eng, Logger: quietLog}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, dir: dir, addr: ln.Addr().String(), base: "http://" + ln.Addr().String(), srv: srv, eng: eng, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	t.Cleanup(ts.stop)
	return ts
}

// stop shuts the server down and closes the engine; it may be called twice.
func (ts *testServer) stop() {
	if ts.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		ts.t.Errorf("shutdown: %v", err)
	}
	<-ts.done
	if err := ts.eng.Close(); err != nil {
		ts.t.Errorf("close engine: %v", err)
	}
	ts.srv = nil
	httpClient.CloseIdleConnections()
}

var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}

type resp struct {
	status int
	header http.Header
	body   string
}

// do sends one request; hdr is "Name: value" pairs.
func (ts *testServer) do(method, path string, body []byte, hdr ...string) resp {
	ts.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	r, err := httpClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return resp{r.StatusCode, r.Header, string(b)}
}

func (ts *testServer) post(path, body string, hdr ...string) resp {
	ts.t.Helper()
	return ts.do("POST", path, []byte(body), hdr...)
}

func (ts *testServer) get(path string, hdr ...string) resp {
	ts.t.Helper()
	return ts.do("GET", path, nil, hdr...)
}

// expect checks status and the exact body.
func expect(t *testing.T, r resp, status int, body string) {
	t.Helper()
	if r.status != status || r.body != body {
		t.Fatalf("got %d %s\nwant %d %s", r.status, r.body, status, body)
	}
}

// expectError checks status, the error code and the body's shape.
func expectError(t *testing.T, r resp, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
	if !strings.HasPrefix(r.body, `{"error":"`) || !strings.HasSuffix(r.body, `","code":"`+code+`"}`) {
		t.Fatalf("error body %s, want code %s", r.body, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q", ct)
	}
	if status == 503 && code == codeOverloaded && r.header.Get("Retry-After") == "" {
		t.Fatalf("503 without Retry-After")
	}
}

// Protobuf messages built by hand with protowire, as a client would.

func pbEvent(payload []byte, ts int64, key string) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, payload)
	if ts != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(ts))
	}
	if key != "" {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, key)
	}
	// headers map entry {"h": "v"}: accepted, not stored
	var entry []byte
	entry = protowire.AppendTag(entry, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, "h")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendString(entry, "v")
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendBytes(b, entry)
	return b
}

type pbRec struct {
	payload   []byte
	partition uint32
	ts        int64
	key       string
}

func pbBulk(recs ...pbRec) []byte {
	var b []byte
	for _, r := range recs {
		var m []byte
		m = protowire.AppendTag(m, 1, protowire.BytesType)
		m = protowire.AppendBytes(m, r.payload)
		if r.partition != 0 {
			m = protowire.AppendTag(m, 2, protowire.VarintType)
			m = protowire.AppendVarint(m, uint64(r.partition))
		}
		if r.ts != 0 {
			m = protowire.AppendTag(m, 3, protowire.VarintType)
			m = protowire.AppendVarint(m, uint64(r.ts))
		}
		if r.key != "" {
			m = protowire.AppendTag(m, 4, protowire.BytesType)
			m = protowire.AppendString(m, r.key)
		}
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}
