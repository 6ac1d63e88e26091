package httpd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zombihq/zombi/engine"
)

// Tokens of every role, for the tests.
const (
	tokMetrics = "metrics-0123456789abcdef"
	tokRead    = "read-0123456789abcdef"
	tokWrite   = "write-0123456789abcdef"
	tokAdmin   = "admin-0123456789abcdef/+=="
)

var testTokens = []Token{{Secret: tokMetrics, Role: RoleMetrics}, {Secret: tokRead, Role: RoleRead}, {Secret: tokWrite, Role: RoleWrite}, {Secret: tokAdmin, Role: RoleAdmin}}

func bearer(tok string) string { return "Authorization: Bearer " + tok }

func TestAuthRoles(t *testing.T) {
	ts := startServer(t, "", func(c *Config) { c.Tokens = testTokens })
	// Seed a table with the write token.
	expect(t, ts.post("/tables/t", `{"payload":"x"}`, bearer(tokWrite)), 202, `{"offset":1,"partition":0,"table":"t"}`)

	type call struct{ method, path, body string }
	var (
		health   = []call{{"GET", "/health", ""}, {"GET", "/health/live", ""}, {"GET", "/health/ready", ""}}
		metrics  = []call{{"GET", "/metrics", ""}, {"GET", "/stats", ""}}
		read     = []call{{"GET", "/tables/t", ""}, {"HEAD", "/tables/t", ""}, {"GET", "/tables/t/watermark", ""}, {"GET", "/tables/t/metadata", ""}, {"GET", "/consumers/g/offset?topic=t&partition=0", ""}, {"POST", "/consumers/g/commit", `{"topic":"t","partition":0,"offset":1}`}}
		write    = []call{{"POST", "/tables/t", `{"payload":"y"}`}, {"POST", "/tables/t/bulk", `{"records":[{"payload":"z"}]}`}}
		admin    = []call{{"POST", "/tables/t/flush", ""}, {"POST", "/tables/t/compact", ""}, {"POST", "/tables/t/maintenance", ""}, {"POST", "/tables/t/skip-gap?partition=0", ""}}
		byRole   = map[Role][]call{RoleNone: health, RoleMetrics: metrics, RoleRead: read, RoleWrite: write, RoleAdmin: admin}
		tokens   = map[Role]string{RoleMetrics: tokMetrics, RoleRead: tokRead, RoleWrite: tokWrite, RoleAdmin: tokAdmin}
		passCode = func(r resp) bool {
			return r.status < 400 || r.status == 503 && strings.Contains(r.body, codeNoColdTier)
		}
	)
	for need, calls := range byRole {
		for _, c := range calls {
			// No token.
			r := ts.do(c.method, c.path, []byte(c.body))
			if need == RoleNone {
				if r.status != 200 {
					t.Fatalf("%s %s without a token: %d %s", c.method, c.path, r.status, r.body)
				}
			} else {
				if c.method != "HEAD" {
					expectError(t, r, 401, codeUnauthorized)
				} else if r.status != 401 {
					t.Fatalf("HEAD without a token: %d", r.status)
				}
				if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="zombi"` {
					t.Fatalf("%s %s: WWW-Authenticate %q", c.method, c.path, got)
				}
			}
			// Every role.
			for have := RoleMetrics; have <= RoleAdmin; have++ {
				r := ts.do(c.method, c.path, []byte(c.body), bearer(tokens[have]))
				switch {
				case have >= need && !passCode(r):
					t.Fatalf("%s %s with a %s token: %d %s", c.method, c.path, have, r.status, r.body)
				case have < need && c.method != "HEAD":
					expectError(t, r, 403, codeForbidden)
				case have < need && r.status != 403:
					t.Fatalf("HEAD with a %s token: %d", have, r.status)
				}
			}
		}
	}

	// An unknown token is 401 with error=invalid_token, whatever its length.
	for _, tok := range []string{"nope", tokAdmin + "x", tokAdmin[:len(tokAdmin)-1], strings.Repeat("a", 2000)} {
		r := ts.get("/tables/t", bearer(tok))
		expectError(t, r, 401, codeUnauthorized)
		if got := r.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
			t.Fatalf("WWW-Authenticate %q", got)
		}
	}
	// Not the Bearer scheme; scheme case and extra spaces do not matter.
	expectError(t, ts.get("/tables/t", "Authorization: Basic "+tokAdmin), 401, codeUnauthorized)
	expectError(t, ts.get("/tables/t", "Authorization: "+tokAdmin), 401, codeUnauthorized)
	expectError(t, ts.get("/tables/t", "Authorization: Bearer"), 401, codeUnauthorized)
	if r := ts.get("/tables/t", "Authorization: bEaReR    "+tokRead+"  "); r.status != 200 {
		t.Fatalf("case-insensitive scheme: %d %s", r.status, r.body)
	}
	// Unknown routes: 401 first, 404 once authenticated (any role).
	expectError(t, ts.get("/nothing"), 401, codeUnauthorized)
	expectError(t, ts.get("/nothing", bearer(tokMetrics)), 404, codeNotFound)
	// Paths are normalised before the role is chosen: /health/.. is no way in.
	for _, p := range []string{"/health/../tables/t", "/health/%2e%2e/tables/t", "/health/..%2ftables/t", "//tables/t", "/./tables/t"} {
		rc := dialRaw(t, ts.addr)
		rc.write("POST " + p + " HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{\"payload\":\"h\"}")
		if r := rc.response(); r.status != 401 {
			t.Fatalf("POST %s without a token: %d %s", p, r.status, r.body)
		}
	}
	// Nothing was written without the write role.
	if evs := ts.get("/tables/t?limit=100", bearer(tokRead)).body; strings.Count(evs, `"payload"`) != 5 {
		t.Fatalf("events: %s", evs)
	}
}

// A write refused for want of a token is refused before its body is read,
// on a connection that is then closed.
func TestAuthRefusesBeforeReadingTheBody(t *testing.T) {
	ts := startServer(t, "", func(c *Config) { c.Tokens = testTokens; c.MaxBodyBytes = 1 << 20 })
	rc := dialRaw(t, ts.addr)
	rc.write("POST /tables/t/bulk HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
	r := rc.response()
	expectError(t, r, 401, codeUnauthorized)
	if r.header.Get("Connection") != "close" {
		t.Fatalf("connection kept open with an unread body: %v", r.header)
	}
	// Over the body limit and unauthenticated: 401, not 413.
	rc = dialRaw(t, ts.addr)
	rc.write("POST /tables/t HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n" + bearer("wrong-0123456789abcdef") + "\r\n\r\n")
	expectError(t, rc.response(), 401, codeUnauthorized)
}

// Config.Validate checks tokens given in code too, not only those of
// ZOMBI_AUTH_TOKENS (whose syntax param.TestParseTokens tests).
func TestConfigValidatesTokens(t *testing.T) {
	eng := openTestEngine(t)
	if _, err := New(Config{Engine: eng, Tokens: []Token{{Secret: "short", Role: RoleRead}}}); err == nil {
		t.Fatal("a short token was accepted")
	}
	if _, err := New(Config{Engine: eng, Tokens: []Token{{Secret: tokRead, Role: RoleNone}}}); err == nil {
		t.Fatal("a token without a role was accepted")
	}
}

// Tokens never reach the logs or a response, also when a request fails in
// every way we can make it fail.
func TestTokensAreNeverLoggedOrEchoed(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts := startServer(t, "", func(c *Config) { c.Tokens = testTokens; c.Logger = log })
	const wrong = "wrong-token-0123456789"
	var bodies []string
	for _, tok := range []string{tokRead, tokWrite, tokAdmin, wrong} {
		for _, r := range []resp{
			ts.get("/tables/t", bearer(tok)),
			ts.post("/tables/t", `{"payload":`, bearer(tok)),
			ts.post("/tables/bad..name", `{}`, bearer(tok)),
			ts.post("/tables/t/flush", ``, bearer(tok)),
			ts.get("/metrics", bearer(tok)),
		} {
			bodies = append(bodies, r.body)
		}
		// Headers over the read buffer: fasthttp's parse error quotes them.
		rc := dialRaw(t, ts.addr)
		rc.write("GET /tables/t HTTP/1.1\r\nHost: x\r\n" + bearer(tok) + "\r\nX-Big: " + strings.Repeat("b", 8000) + "\r\n\r\n")
		bodies = append(bodies, rc.response().body)
		// A malformed request line after the token.
		rc = dialRaw(t, ts.addr)
		rc.write("GET /tables/t HTTP/1.1\r\n" + bearer(tok) + "\r\nbroken header line\r\n\r\n")
		bodies = append(bodies, rc.response().body)
	}
	ts.stop()
	for _, tok := range []string{tokRead, tokWrite, tokAdmin, wrong} {
		if strings.Contains(logs.String(), tok) {
			t.Fatalf("a token is in the log:\n%s", logs.String())
		}
		for _, b := range bodies {
			if strings.Contains(b, tok) {
				t.Fatalf("a token is in a response: %s", b)
			}
		}
	}
}

// openTestEngine opens an engine in a temp dir, closed at the end of the
// test, for tests that build a server without serving.
func openTestEngine(t *testing.T) *engine.Engine {
	t.Helper()
	eng, err := engine.Open(testEngineOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeTestCert writes a self-signed ECDSA certificate for 127.0.0.1 and
// its key as PEM files in dir, and returns their paths and a pool that
// trusts the certificate.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "zombi test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := writeTestCert(t, t.TempDir())
	ts := startServer(t, "", func(c *Config) {
		c.TLSCertFile, c.TLSKeyFile = certFile, keyFile
		c.Tokens = testTokens
	})
	if !ts.srv.TLS() {
		t.Fatal("TLS not on")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	do := func(method, path, body string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+ts.addr+path, strings.NewReader(body))
		for _, h := range hdr {
			k, v, _ := strings.Cut(h, ":")
			req.Header.Set(k, strings.TrimSpace(v))
		}
		r, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if r.TLS == nil {
			t.Fatal("not TLS")
		}
		return r.StatusCode, string(b)
	}
	if st, b := do("POST", "/tables/t", `{"payload":"over tls"}`, bearer(tokWrite)); st != 202 {
		t.Fatalf("write over TLS: %d %s", st, b)
	}
	if st, b := do("GET", "/tables/t", "", bearer(tokRead)); st != 200 || !strings.Contains(b, "over tls") {
		t.Fatalf("read over TLS: %d %s", st, b)
	}
	if st, _ := do("GET", "/tables/t", ""); st != 401 {
		t.Fatalf("no token over TLS: %d", st)
	}
	if st, _ := do("GET", "/health", ""); st != 200 {
		t.Fatalf("health over TLS: %d", st)
	}

	// Plain HTTP on the TLS port gets no answer; the connection is closed.
	c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
	b, _ := io.ReadAll(c)
	if bytes.Contains(b, []byte("healthy")) {
		t.Fatalf("plain HTTP served on the TLS port: %q", b)
	}
	// TLS 1.1 is refused.
	_, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ts.addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := writeTestCert(t, dir)
	eng := openTestEngine(t)
	for name, c := range map[string]Config{
		"cert without key": {TLSCertFile: certFile},
		"key without cert": {TLSKeyFile: keyFile},
		"missing files":    {TLSCertFile: filepath.Join(dir, "nope.pem"), TLSKeyFile: keyFile},
		"key as cert":      {TLSCertFile: keyFile, TLSKeyFile: keyFile},
	} {
		c.Engine = eng
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
