// Package httpd is Zombi's HTTP API: a fasthttp server, drop-in compatible
// with the Rust Zombi (DESIGN.md §2).
//
// # Routes
//
//	POST /tables/{t}                  one event (JSON or application/x-protobuf) → 202
//	POST /tables/{t}/bulk             many events → 202
//	GET  /tables/{t}                  hot-tail read, JSON or Arrow IPC stream
//	GET  /tables/{t}/watermark        flushed and high watermarks per partition
//	GET  /tables/{t}/metadata         cold-tier location (hot_only without one)
//	POST /tables/{t}/flush|compact|maintenance    cold tier; 503 without one
//	POST /consumers/{g}/commit        commit a consumer offset
//	GET  /consumers/{g}/offset        read it back
//	GET  /health, /health/live, /health/ready, /stats, /metrics
//	GET  /openapi.yaml                this API in OpenAPI 3 (docs/openapi.yaml)
//	GET|HEAD /v1/…                    Iceberg REST catalog view, when configured
//
// Every 4xx and 5xx has the body {"error": msg, "code": CODE}.
//
// # Admission control
//
// A write is admitted on its headers, before a byte of its body is read:
// a Content-Length above MaxBodyBytes answers 413; then the inflight
// request count and the inflight bytes (by Content-Length) are charged,
// and a request over either budget answers 503 SERVER_OVERLOADED with
// Retry-After. A chunked body is charged as it streams and refused as soon
// as it crosses either limit. fasthttp runs with StreamRequestBody, so an
// unread body never sits in memory, and ReadTimeout bounds how long a
// client may take to send one.
//
// # Buffers
//
// fasthttp reuses a request's buffers once the handler returns. Handlers
// read the body into a pooled buffer, hand sub-slices of it to the engine
// (which copies record bytes into its segments before Append returns), and
// never keep anything from the request after they return.
package httpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/httpd/param"
)

// Config configures a Server. A zero field means "use the default", except
// MaxInflightBytes whose zero is a real budget: set it with
// WithMaxInflightBytes.
type Config struct {
	// Engine is the hot tier. Required.
	Engine *engine.Engine
	// Cold is the cold tier (flush, compaction, Iceberg metadata). nil
	// until one is configured: flush and compact answer 503 and metadata
	// reports hot_only.
	Cold ColdTier
	// Catalog serves the read-only Iceberg REST catalog view under /v1.
	// nil answers 503 there.
	Catalog fasthttp.RequestHandler
	// Logger receives request errors. Default slog.Default().
	Logger *slog.Logger
	// Placement places writes when this node is one of a cluster
	// (placement.go). nil: a single node.
	Placement Placement

	// MaxBodyBytes bounds a request body; larger ones answer 413 unread.
	// Default 16 MiB.
	MaxBodyBytes int
	// MaxInflightWrites bounds the write requests being served at once.
	// Default 10,000.
	MaxInflightWrites int
	// MaxInflightBytes bounds the body bytes of the writes being served at
	// once; 0 refuses every non-empty write. Default 64 MiB.
	MaxInflightBytes int64
	// MaxConnections bounds concurrent connections (fasthttp's
	// Concurrency). Default 256 Ki.
	MaxConnections int
	// ReadTimeout bounds the time to read a request, body included.
	// Default 30 s.
	ReadTimeout time.Duration
	// WriteTimeout bounds the time to write a response. Default 30 s.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long.
	// Default 60 s.
	IdleTimeout time.Duration
	// MaxBulkRecords bounds the records of one bulk request; more answer
	// 413 before any is appended. Default 100,000.
	MaxBulkRecords int

	// Tokens, when not empty, turn authentication on: every route but
	// /health* needs a bearer token of a high enough role (see auth.go).
	Tokens []Token
	// TLSCertFile and TLSKeyFile, both set or both empty, serve HTTPS
	// with that PEM certificate (chain) and key.
	TLSCertFile string
	TLSKeyFile  string

	inflightBytesSet bool
}

// WithMaxInflightBytes sets MaxInflightBytes, including 0 (whose zero value
// would otherwise mean "default").
func (c Config) WithMaxInflightBytes(n int64) Config {
	c.MaxInflightBytes, c.inflightBytesSet = n, true
	return c
}

// Defaults of Config.
const (
	DefaultMaxBodyBytes      = 16 << 20
	DefaultMaxInflightWrites = 10_000
	DefaultMaxInflightBytes  = 64 << 20
	DefaultMaxConnections    = 256 * 1024
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxBulkRecords    = 100_000
)

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxInflightWrites == 0 {
		c.MaxInflightWrites = DefaultMaxInflightWrites
	}
	if !c.inflightBytesSet && c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxBulkRecords == 0 {
		c.MaxBulkRecords = DefaultMaxBulkRecords
	}
}

// Validate reports every problem with the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Engine == nil {
		errs = append(errs, errors.New("httpd: an engine is required"))
	}
	if c.MaxBodyBytes < 1 {
		errs = append(errs, errors.New("httpd: max body size must be positive"))
	}
	if c.MaxInflightWrites < 1 {
		errs = append(errs, errors.New("httpd: max inflight writes must be positive"))
	}
	if c.MaxInflightBytes < 0 {
		errs = append(errs, errors.New("httpd: max inflight bytes must not be negative"))
	}
	if c.MaxConnections < 1 {
		errs = append(errs, errors.New("httpd: max connections must be positive"))
	}
	if c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.IdleTimeout < 0 {
		errs = append(errs, errors.New("httpd: timeouts must not be negative"))
	}
	if c.MaxBulkRecords < 1 {
		errs = append(errs, errors.New("httpd: max bulk records must be positive"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("httpd: TLS needs both a certificate and a key file"))
	}
	if err := param.ValidateTokens(c.Tokens); err != nil {
		errs = append(errs, fmt.Errorf("httpd: %w", err))
	}
	return errors.Join(errs...)
}

// Server is the HTTP API over one engine.
type Server struct {
	cfg Config
	eng *engine.Engine
	log *slog.Logger
	srv *fasthttp.Server
	met *serverMetrics
	adm admission
	// auth checks bearer tokens; nil when authentication is off.
	auth *param.Authenticator
	tls  bool
	// wd keeps ReadTimeout, IdleTimeout and WriteTimeout (watchdog.go).
	wd      *watchdog
	wdStart sync.Once

	// overBudget reports that the hot tier is over its disk budget (the
	// cold tier's OverBudget); nil without one. An atomic load.
	overBudget func() bool

	names tableNames
	start time.Time
	// turn spreads the writes that name no partition over this node's
	// own partitions, a request at a time (place).
	turn          atomic.Uint32
	maxPartitions uint32
	stopping      atomic.Bool // set by Shutdown: readiness fails, new writes are refused
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:           cfg,
		eng:           cfg.Engine,
		log:           cfg.Logger,
		start:         time.Now(),
		maxPartitions: cfg.Engine.MaxPartitions(),
		adm: admission{
			maxWrites: int64(cfg.MaxInflightWrites),
			maxBytes:  cfg.MaxInflightBytes,
		},
	}
	if b, ok := cfg.Cold.(coldBudget); ok {
		s.overBudget = b.OverBudget
	}
	s.met = newServerMetrics(s)
	s.wd = newWatchdog(cfg.ReadTimeout, cfg.IdleTimeout, cfg.WriteTimeout)
	auth, err := newAuthenticator(cfg.Tokens)
	if err != nil {
		return nil, err
	}
	s.auth = auth
	s.srv = &fasthttp.Server{
		Handler:        s.handle,
		HeaderReceived: s.headerReceived,
		ErrorHandler:   s.errorHandler,
		Name:           "zombi",
		Concurrency:    cfg.MaxConnections,
		ReadBufferSize: readBufferBytes,
		// ReadTimeout, WriteTimeout and IdleTimeout stay 0: the watchdog
		// keeps them without a deadline update per request.
		MaxRequestBodySize:           cfg.MaxBodyBytes,
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{cfg.Logger},
	}
	if requestLogging(cfg.Logger) {
		s.srv.Handler = s.handleLogged // debug level: every request (reqlog.go)
	}
	if cfg.TLSCertFile != "" {
		s.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if err := s.srv.AppendCert(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return nil, fmt.Errorf("httpd: TLS certificate: %w", err)
		}
		s.tls = true
	}
	return s, nil
}

// Handler returns the request handler, for tests and embedding.
func (s *Server) Handler() fasthttp.RequestHandler { return s.handle }

// Serve serves HTTP (HTTPS when a TLS certificate is configured) on ln
// until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.wdStart.Do(s.wd.start)
	ln = s.wd.listener(ln)
	if s.tls {
		return s.srv.ServeTLS(ln, "", "") // the certificate loaded by New
	}
	return s.srv.Serve(ln)
}

// TLS reports whether the server serves HTTPS.
func (s *Server) TLS() bool { return s.tls }

// Shutdown stops accepting connections and waits for in-flight requests
// to finish, or for ctx to end. It does not close the engine.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	err := s.srv.ShutdownWithContext(ctx)
	s.wd.close()
	return err
}

// refusedHeader marks a request that headerReceived refused; its value is
// "413 <content-length>", "503 <reason>", or an auth verdict ("401 …",
// "403 …"). Only refusals are marked, so a forged marker (were
// headerReceived not to run) could only refuse a request, never admit one.
const refusedHeader = "X-Zombi-Refused"

// headerReceived runs admission control on a request's headers, before
// fasthttp reads any of its body (in streaming mode fasthttp would
// otherwise wait for the first min(Content-Length, 8 KiB) body bytes
// before calling the handler). A refused request gets its Content-Length
// set to 0, so nothing of the body is read, and a marker the handler
// answers (413 or 503) with Connection: close. Nothing is reserved here:
// the handler may never run (the client can vanish), so the budgets are
// only checked; the handler charges them.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	h.Del(refusedHeader) // never trust one sent by a client
	cl := h.ContentLength()
	if s.auth != nil && cl != 0 && cl != -2 {
		// A body follows: check the token now, so an unauthenticated
		// client never gets a byte of its body read.
		if v := s.authRefusal(h); v != "" {
			h.Set(refusedHeader, v)
			h.SetContentLength(0)
			return fasthttp.RequestConfig{}
		}
	}
	if !h.IsPost() {
		return fasthttp.RequestConfig{}
	}
	switch {
	case cl > s.cfg.MaxBodyBytes:
		h.Set(refusedHeader, "413 "+strconv.Itoa(cl))
	case cl > 0 && isTableWrite(h.RequestURI()):
		switch {
		case s.stopping.Load():
			h.Set(refusedHeader, "503 stopping")
		case s.hotTierFull():
			h.Set(refusedHeader, "503 hot")
		case s.adm.writes.Load() >= s.adm.maxWrites:
			h.Set(refusedHeader, "503 writes")
		case s.adm.bytes.Load()+int64(cl) > s.adm.maxBytes:
			h.Set(refusedHeader, "503 bytes")
		default:
			return fasthttp.RequestConfig{}
		}
	default:
		return fasthttp.RequestConfig{}
	}
	h.SetContentLength(0)
	return fasthttp.RequestConfig{}
}

// isTableWrite reports whether a raw request URI is POST /tables/{t} or
// /tables/{t}/bulk.
func isTableWrite(uri []byte) bool {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	rest, ok := bytes.CutPrefix(uri, []byte("/tables/"))
	if !ok {
		return false
	}
	i := bytes.IndexByte(rest, '/')
	return i < 0 || string(rest[i:]) == "/bulk"
}

// refused answers a request headerReceived refused.
func (s *Server) refused(ctx *fasthttp.RequestCtx, verdict []byte) {
	ctx.SetConnectionClose() // the unread body is still on the wire
	code, arg, _ := bytes.Cut(verdict, []byte(" "))
	if string(code) == "401" || string(code) == "403" {
		s.authRefused(ctx, string(verdict))
		return
	}
	if string(code) == "413" {
		s.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, codeTooLarge,
			"Request body of "+string(arg)+" bytes exceeds the limit of "+strconv.Itoa(s.cfg.MaxBodyBytes)+" bytes (ZOMBI_MAX_BODY_MB)")
		return
	}
	switch string(arg) {
	case "stopping":
		s.overloaded(ctx, "Server is shutting down")
	case "hot":
		s.refuseHotFull(ctx)
	case "writes":
		s.overloaded(ctx, msgTooManyWrites(s.adm.maxWrites))
	default:
		s.overloaded(ctx, msgTooManyBytes(s.adm.maxBytes))
	}
}

func msgTooManyWrites(limit int64) string {
	return "Too many concurrent writes (limit: " + strconv.FormatInt(limit, 10) + "; raise ZOMBI_MAX_INFLIGHT_WRITES)"
}

func msgTooManyBytes(limit int64) string {
	return "Too many inflight bytes (limit: " + strconv.FormatInt(limit, 10) + " bytes; raise ZOMBI_MAX_INFLIGHT_BYTES_MB)"
}

// errorHandler answers requests fasthttp could not read, in the JSON error
// format.
func (s *Server) errorHandler(ctx *fasthttp.RequestCtx, err error) {
	var netErr net.Error
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, codeTooLarge, "Request body too large")
	case errors.As(err, &small):
		s.writeError(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, codeHeadersTooLarge,
			"Request headers too large (limit: "+strconv.Itoa(readBufferBytes)+" bytes)")
	case errors.As(err, &netErr) && netErr.Timeout():
		s.writeError(ctx, fasthttp.StatusRequestTimeout, codeTimeout, "Request timed out")
	default:
		// fasthttp's parse errors quote the raw request, which may hold
		// credentials: never echo them.
		s.writeError(ctx, fasthttp.StatusBadRequest, codeBadRequest, "Malformed HTTP request")
	}
}

// readBufferBytes is each connection's read buffer (fasthttp's
// ReadBufferSize), which also bounds a request's headers. 16 KiB, not
// fasthttp's 4 KiB: a bulk request of 100 small events (~11 KiB) then
// arrives in one read(2) instead of three (two into the buffer, one into
// fasthttp's 8 KiB body prefetch), -4 % server CPU per bulk request
// here. It costs 12 KiB more per open keep-alive connection.
const readBufferBytes = 16 << 10

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp", "msg", redactRequest(sprintf(format, args...)))
}

// redactRequest cuts a fasthttp message where it starts quoting the raw
// request, which may hold a bearer token: logs never carry credentials.
func redactRequest(msg string) string {
	for _, marker := range []string{"error when reading request headers", "contents:"} {
		if i := strings.Index(msg, marker); i >= 0 {
			return msg[:i+len(marker)] + " (the raw request is not logged)"
		}
	}
	return msg
}

// admission is the write budget: requests and body bytes in flight.
type admission struct {
	writes    atomic.Int64
	bytes     atomic.Int64
	maxWrites int64
	maxBytes  int64
}

func (a *admission) acquireWrite() bool {
	if a.writes.Add(1) > a.maxWrites {
		a.writes.Add(-1)
		return false
	}
	return true
}

func (a *admission) releaseWrite() { a.writes.Add(-1) }

// reserveBytes charges n body bytes; n == 0 always succeeds.
func (a *admission) reserveBytes(n int64) bool {
	if n == 0 {
		return true
	}
	if a.bytes.Add(n) > a.maxBytes {
		a.bytes.Add(-n)
		return false
	}
	return true
}

func (a *admission) releaseBytes(n int64) {
	if n != 0 {
		a.bytes.Add(-n)
	}
}

// tableNames interns table names so the hot path does not allocate a
// string per request. It is bounded; past the bound names are allocated.
type tableNames struct {
	mu sync.RWMutex
	m  map[string]string
}

const maxInternedNames = 4096

func (t *tableNames) get(b []byte) string {
	t.mu.RLock()
	s, ok := t.m[string(b)]
	t.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	if !engine.ValidTableName(s) {
		return s
	}
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[string]string)
	}
	if len(t.m) < maxInternedNames {
		t.m[s] = s
	}
	t.mu.Unlock()
	return s
}
