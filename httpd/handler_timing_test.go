package httpd

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/zombihq/zombi/engine"
)

// benchServer serves the handler on an in-memory listener, with the
// engine in FsyncNever mode so the numbers are the HTTP layer's.
func benchServer(b *testing.B) (*fasthttp.HostClient, *Server) {
	b.Helper()
	eng, err := engine.Open(testEngineOptions(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Config{Engine: eng, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	b.Cleanup(func() {
		srv.Shutdown(b.Context())
		ln.Close()
		<-done
		eng.Close()
	})
	c := &fasthttp.HostClient{
		Addr:     "zombi",
		Dial:     func(string) (net.Conn, error) { return ln.Dial() },
		MaxConns: 1,
	}
	return c, srv
}

// runWrites posts body to path b.N times over one connection and reports
// allocations per request (client and server together; the client's
// share is near zero once warm).
func runWrites(b *testing.B, path, contentType string, body []byte, events int) {
	c, _ := benchServer(b)
	req, res := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(res)
	req.SetRequestURI("http://zombi" + path)
	req.Header.SetMethod("POST")
	req.Header.SetContentType(contentType)
	req.SetBody(body)
	do := func() {
		if err := c.DoTimeout(req, res, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		if res.StatusCode() != 202 {
			b.Fatalf("%d %s", res.StatusCode(), res.Body())
		}
	}
	for range 100 { // warm the pools
		do()
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		do()
	}
	b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
}

var payload82 = strings.Repeat("x", 82)

func BenchmarkSingleWrite(b *testing.B) {
	b.Run("json", func(b *testing.B) {
		runWrites(b, "/tables/bench", "application/json", []byte(`{"payload":"`+payload82+`"}`), 1)
	})
	b.Run("protobuf", func(b *testing.B) {
		runWrites(b, "/tables/bench", "application/x-protobuf", pbEvent([]byte(payload82), 0, ""), 1)
	})
}

func BenchmarkBulkWrite(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"records":[`)
	recs := make([]pbRec, 100)
	for i := range 100 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"payload":"%s"}`, payload82)
		recs[i] = pbRec{payload: []byte(payload82)}
	}
	sb.WriteString(`]}`)
	b.Run("json-100", func(b *testing.B) {
		runWrites(b, "/tables/bench/bulk", "application/json", []byte(sb.String()), 100)
	})
	b.Run("protobuf-100", func(b *testing.B) {
		runWrites(b, "/tables/bench/bulk", "application/x-protobuf", pbBulk(recs...), 100)
	})
}

// BenchmarkHandlerOnly calls the handler directly on a prepared
// RequestCtx: the server's own allocations, without the connection loop.
func BenchmarkHandlerOnly(b *testing.B) {
	eng, err := engine.Open(testEngineOptions(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	srv, err := New(Config{Engine: eng, Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	for _, c := range []struct {
		name, path string
		body       string
	}{
		{"single", "/tables/bench", `{"payload":"` + payload82 + `"}`},
		{"bulk-100", "/tables/bench/bulk", `{"records":[` + strings.TrimSuffix(strings.Repeat(`{"payload":"`+payload82+`"},`, 100), ",") + `]}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			var ctx fasthttp.RequestCtx
			var req fasthttp.Request
			req.SetRequestURI(c.path)
			req.Header.SetMethod("POST")
			req.SetBodyString(c.body)
			ctx.Init(&req, nil, nil)
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				h(&ctx)
				if ctx.Response.StatusCode() != 202 {
					b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
		})
	}
}
