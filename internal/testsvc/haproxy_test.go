package testsvc

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// backend is a trivial HTTP server on 127.0.0.1 that answers its name and
// counts the POSTs that reached it; with drop set it closes the
// connection of a POST without answering.
type backend struct {
	srv   *httptest.Server
	posts atomic.Int64
	drop  bool
}

func startBackend(t *testing.T, name string, drop bool) *backend {
	b := &backend{drop: drop}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			io.Copy(io.Discard, r.Body)
			b.posts.Add(1)
			if b.drop {
				c, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					c.Close()
				}
				return
			}
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.srv.URL, "http://") }

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	r, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

// The shipped config is rewritten as documented, and stays valid.
func TestHAProxyConfig(t *testing.T) {
	tmpl, err := os.ReadFile(haproxyTemplate(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := HAProxyConfig(tmpl, "127.0.0.1:1234", []string{"127.0.0.1:1", "127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	s := string(cfg)
	for _, want := range []string{"\tbind 127.0.0.1:1234\n", "\tdefault-server inter 500ms fall 2 rise 1\n",
		"\tserver zombi1 127.0.0.1:1 check\n", "\tserver zombi2 127.0.0.1:2 check\n",
		"\tretry-on conn-failure\n", "\tbalance roundrobin\n", "uri /health/live\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("config lacks %q:\n%s", want, s)
		}
	}
	var directives strings.Builder // the config without its comments
	for _, line := range strings.Split(s, "\n") {
		if l := strings.TrimSpace(line); !strings.HasPrefix(l, "#") {
			directives.WriteString(l + "\n")
		}
	}
	for _, gone := range []string{"10.0.0.", "chroot", "user haproxy", "bind :8080"} {
		if strings.Contains(directives.String(), gone) {
			t.Errorf("config still has %q:\n%s", gone, s)
		}
	}
	if _, err := HAProxyConfig([]byte("global\nfrontend f\n\tbind :1\n"), "127.0.0.1:1", []string{"a:1"}); err == nil {
		t.Error("a config without server lines accepted")
	}
}

// Requests alternate between the backends; a POST whose connection a
// backend drops after reading it is answered 502 and never re-sent to the
// other one; a backend that refuses connections costs no request.
func TestHAProxy(t *testing.T) {
	a, b := startBackend(t, "a", false), startBackend(t, "b", false)
	p := StartHAProxy(t, []string{a.addr(), b.addr()})
	c := &http.Client{}
	var seen []string
	for range 6 {
		code, name := get(t, c, "http://"+p.Addr()+"/x")
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		seen = append(seen, name)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] == seen[i-1] {
			t.Fatalf("not round robin: %v", seen)
		}
	}

	// A POST that may have been stored is not retried.
	ok, drop := startBackend(t, "ok", false), startBackend(t, "drop", true)
	p = StartHAProxy(t, []string{ok.addr(), drop.addr()})
	for i := range 4 {
		r, err := c.Post("http://"+p.Addr()+"/tables/t", "application/json", strings.NewReader(`{"payload":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if n := ok.posts.Load() + drop.posts.Load(); n != int64(i+1) {
			t.Fatalf("after %d POSTs the backends saw %d (ok %d, drop %d): a POST was re-sent",
				i+1, n, ok.posts.Load(), drop.posts.Load())
		}
		if r.StatusCode != 200 && r.StatusCode != 502 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	if drop.posts.Load() == 0 {
		t.Fatal("no POST went to the dropping backend")
	}

	// A refused connection is redispatched: every POST lands once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	live := startBackend(t, "live", false)
	p = StartHAProxy(t, []string{dead, live.addr()})
	for i := range 4 {
		r, err := c.Post("http://"+p.Addr()+"/tables/t", "application/json", strings.NewReader(strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 || live.posts.Load() != int64(i+1) {
			t.Fatalf("POST %d: status %d, live backend saw %d", i, r.StatusCode, live.posts.Load())
		}
	}
}
