package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// Ceiling servers: what the same generator reaches against a server that
// does (almost) nothing, on the same machine, in the same run.
const (
	// CeilingNoop reads the body and answers 202 with a body shaped like
	// the real one.
	CeilingNoop = "noop"
	// CeilingParse parses a bulk JSON body with fastjson, visits every
	// record's payload, and answers 202 with the count.
	CeilingParse = "parse"
	// CeilingNoopStreamed is CeilingNoop with the fasthttp settings of
	// zombi serve that cost per request (a streamed body, read into a
	// pooled buffer; a 16 KiB read buffer): it splits a gap to the ceiling
	// into what those settings cost and what the handler does.
	CeilingNoopStreamed = "noop-streamed"
)

// CeilingHandler returns the handler of a ceiling server.
func CeilingHandler(kind string) (fasthttp.RequestHandler, error) {
	switch kind {
	case CeilingNoop:
		return func(ctx *fasthttp.RequestCtx) {
			_ = ctx.PostBody()
			ctx.SetStatusCode(fasthttp.StatusAccepted)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"offset":1,"partition":0,"table":"load"}`)
		}, nil
	case CeilingParse:
		var pp fastjson.ParserPool
		return func(ctx *fasthttp.RequestCtx) {
			p := pp.Get()
			defer pp.Put(p)
			v, err := p.ParseBytes(ctx.PostBody())
			if err != nil {
				ctx.SetStatusCode(fasthttp.StatusBadRequest)
				return
			}
			n, bytes := 0, 0
			for _, r := range v.GetArray("records") {
				bytes += len(r.GetStringBytes("payload"))
				n++
			}
			ctx.SetStatusCode(fasthttp.StatusAccepted)
			ctx.SetContentType("application/json")
			b := ctx.Response.Body()[:0]
			b = append(b, `{"count":`...)
			b = strconv.AppendInt(b, int64(n), 10)
			b = append(b, `,"bytes":`...)
			b = strconv.AppendInt(b, int64(bytes), 10)
			ctx.SetBody(append(b, '}'))
		}, nil
	case CeilingNoopStreamed:
		var bufs sync.Pool
		return func(ctx *fasthttp.RequestCtx) {
			if st := ctx.RequestBodyStream(); st != nil {
				b, _ := bufs.Get().(*[]byte)
				if b == nil {
					b = new([]byte)
				}
				if cl := ctx.Request.Header.ContentLength(); cl >= 0 {
					if cap(*b) < cl {
						*b = make([]byte, cl)
					}
					_, _ = io.ReadFull(st, (*b)[:cl])
				} else {
					_, _ = io.Copy(io.Discard, st)
				}
				bufs.Put(b)
			}
			ctx.SetStatusCode(fasthttp.StatusAccepted)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"offset":1,"partition":0,"table":"load"}`)
		}, nil
	}
	return nil, fmt.Errorf("unknown ceiling server %q (want noop, noop-streamed or parse)", kind)
}

// ServeCeiling serves a ceiling handler on ln (default fasthttp settings,
// as a plain fasthttp service would run; noop-streamed: zombi's) until ctx
// ends.
func ServeCeiling(ctx context.Context, ln net.Listener, kind string) error {
	h, err := CeilingHandler(kind)
	if err != nil {
		return err
	}
	s := &fasthttp.Server{Handler: h, Name: "zombi-ceiling"}
	if kind == CeilingNoopStreamed {
		s.StreamRequestBody = true
		s.ReadBufferSize = 16 << 10 // httpd's readBufferBytes
	}
	go func() { <-ctx.Done(); _ = s.Shutdown() }()
	return s.Serve(ln)
}

// Child is a server process started for a measurement.
type Child struct {
	Name string
	Addr string
	cmd  *exec.Cmd
	dir  string // removed by Stop, when set
	done chan struct{}
	mu   sync.Mutex
	log  []string // last lines of its output
}

var listenRE = regexp.MustCompile(`listening.*?(127\.0\.0\.1:[0-9]+)`)

// StartChild runs exe with args (and env added to the environment) and
// waits, at most timeout, for it to log "listening … 127.0.0.1:port".
// dir, when not empty, is removed by Stop.
func StartChild(name, exe string, args, env []string, dir string, timeout time.Duration) (*Child, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = nil
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Child{Name: name, cmd: cmd, dir: dir, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			if len(c.log) < 50 {
				c.log = append(c.log, line)
			}
			c.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() { _ = cmd.Wait(); pw.Close(); close(c.done) }()
	select {
	case a := <-addr:
		c.Addr = a
		return c, nil
	case <-c.done:
		c.removeDir()
		return nil, fmt.Errorf("%s exited before listening: %s", name, c.output())
	case <-time.After(timeout):
		_ = c.Stop()
		return nil, fmt.Errorf("%s did not listen within %v: %s", name, timeout, c.output())
	}
}

// PID is the child's process id.
func (c *Child) PID() int { return c.cmd.Process.Pid }

func (c *Child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ""
	for _, l := range c.log {
		s += l + "\n"
	}
	return s
}

// Stop sends SIGTERM, waits up to 10 s (then SIGKILL), and removes the
// child's directory.
func (c *Child) Stop() error {
	defer c.removeDir()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return errors.New(c.Name + " did not stop on SIGTERM; killed")
	}
	return nil
}

func (c *Child) removeDir() {
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}
