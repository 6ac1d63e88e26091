package httpd

import (
	"context"
	"log/slog"
	"time"

	"github.com/valyala/fasthttp"
)

// Request logs. Every request is logged at debug level only, and only when
// the logger has debug enabled (ZOMBI_LOG_LEVEL=debug): New then installs
// handleLogged instead of handle, so that at the default level the hot
// path pays nothing. A line carries the method, the path (no query string,
// no header: a bearer token never reaches a log), the status, the body
// sizes and the duration.

// requestLogging reports whether New should log every request.
func requestLogging(l *slog.Logger) bool { return l.Enabled(context.Background(), slog.LevelDebug) }

// handleLogged serves a request with handle, then logs it at debug level.
func (s *Server) handleLogged(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	s.handle(ctx)
	s.log.LogAttrs(context.Background(), slog.LevelDebug, "request",
		slog.String("method", string(ctx.Method())),
		slog.String("path", printable(string(ctx.Path()))),
		slog.Int("status", ctx.Response.StatusCode()),
		slog.Int("in_bytes", max(ctx.Request.Header.ContentLength(), 0)),
		slog.Int("out_bytes", len(ctx.Response.Body())),
		slog.Duration("took", time.Since(start)),
		slog.String("remote", ctx.RemoteAddr().String()),
	)
}
