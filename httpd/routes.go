package httpd

import (
	"bytes"
	"fmt"

	"github.com/valyala/fasthttp"
)

// handle routes a request with a flat switch on the path; no router, no
// allocation.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	if v := ctx.Request.Header.Peek(refusedHeader); len(v) > 0 {
		s.refused(ctx, v) // auth verdicts come first there
		return
	}
	path := ctx.Path() // URL-decoded and normalised by fasthttp
	if s.auth != nil && !s.authorize(ctx, path) {
		return
	}
	switch {
	case bytes.HasPrefix(path, []byte("/tables/")):
		s.routeTable(ctx, path[len("/tables/"):])
	case bytes.HasPrefix(path, []byte("/consumers/")):
		s.routeConsumer(ctx, path[len("/consumers/"):])
	case string(path) == "/health":
		if s.allow(ctx, "GET") {
			writeJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"healthy"}`))
		}
	case string(path) == "/health/live":
		if s.allow(ctx, "GET") {
			writeJSON(ctx, fasthttp.StatusOK, []byte(`{"status":"ok"}`))
		}
	case string(path) == "/health/ready":
		if s.allow(ctx, "GET") {
			s.ready(ctx)
		}
	case string(path) == "/stats":
		if s.allow(ctx, "GET") {
			s.stats(ctx)
		}
	case string(path) == "/metrics":
		if s.allow(ctx, "GET") {
			s.metrics(ctx)
		}
	case string(path) == "/openapi.yaml":
		if s.allow(ctx, "GET") {
			s.openAPI(ctx)
		}
	case string(path) == "/v1" || bytes.HasPrefix(path, []byte("/v1/")):
		if s.allow(ctx, "GET, HEAD") {
			s.catalog(ctx)
		}
	default:
		s.notFound(ctx)
	}
}

// routeTable serves /tables/{t} and /tables/{t}/{action}.
func (s *Server) routeTable(ctx *fasthttp.RequestCtx, rest []byte) {
	name, action := rest, []byte(nil)
	if i := bytes.IndexByte(rest, '/'); i >= 0 {
		name, action = rest[:i], rest[i+1:]
	}
	if len(name) == 0 {
		s.notFound(ctx)
		return
	}
	switch string(action) {
	case "":
		if action != nil { // "/tables/t/"
			s.notFound(ctx)
			return
		}
		switch {
		case ctx.IsPost():
			s.writeOne(ctx, name)
		case ctx.IsGet() || ctx.IsHead():
			s.read(ctx, name)
		default:
			s.methodNotAllowed(ctx, "GET, HEAD, POST")
		}
	case "bulk":
		if s.allow(ctx, "POST") {
			s.writeBulk(ctx, name)
		}
	case "watermark":
		if s.allow(ctx, "GET") {
			s.watermark(ctx, name)
		}
	case "metadata":
		if s.allow(ctx, "GET") {
			s.metadata(ctx, name)
		}
	case "flush":
		if s.allow(ctx, "POST") {
			s.flush(ctx, name)
		}
	case "compact":
		if s.allow(ctx, "POST") {
			s.compactTable(ctx, name)
		}
	case "maintenance":
		if s.allow(ctx, "POST") {
			s.maintainTable(ctx, name)
		}
	case "skip-gap":
		if s.allow(ctx, "POST") {
			s.skipGap(ctx, name)
		}
	default:
		s.notFound(ctx)
	}
}

// routeConsumer serves /consumers/{g}/commit and /consumers/{g}/offset.
func (s *Server) routeConsumer(ctx *fasthttp.RequestCtx, rest []byte) {
	i := bytes.LastIndexByte(rest, '/')
	if i <= 0 {
		s.notFound(ctx)
		return
	}
	group, action := rest[:i], rest[i+1:]
	switch string(action) {
	case "commit":
		if s.allow(ctx, "POST") {
			s.commitOffset(ctx, group)
		}
	case "offset":
		if s.allow(ctx, "GET") {
			s.getOffset(ctx, group)
		}
	default:
		s.notFound(ctx)
	}
}

// allow reports whether the request's method is in methods ("GET" implies
// HEAD), answering 405 with an Allow header when it is not.
func (s *Server) allow(ctx *fasthttp.RequestCtx, methods string) bool {
	m := ctx.Method()
	switch methods {
	case "GET", "GET, HEAD":
		if ctx.IsGet() || ctx.IsHead() {
			return true
		}
		methods = "GET, HEAD"
	case "POST":
		if string(m) == "POST" {
			return true
		}
	}
	s.methodNotAllowed(ctx, methods)
	return false
}

func (s *Server) methodNotAllowed(ctx *fasthttp.RequestCtx, allowed string) {
	ctx.Response.Header.Set("Allow", allowed)
	s.writeError(ctx, fasthttp.StatusMethodNotAllowed, codeMethodNotAllowed,
		fmt.Sprintf("Method %s not allowed on %s (allowed: %s)", ctx.Method(), ctx.Path(), allowed))
}

func (s *Server) notFound(ctx *fasthttp.RequestCtx) {
	s.writeError(ctx, fasthttp.StatusNotFound, codeNotFound, fmt.Sprintf("No route for %s %s", ctx.Method(), ctx.Path()))
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
