package httpd

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// watchedPair returns a watched server side and a plain client side of a
// TCP connection on 127.0.0.1, with a running watchdog.
func watchedPair(t *testing.T, read, idle, write time.Duration) (srv net.Conn, cli net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := newWatchdog(read, idle, write)
	w.start()
	t.Cleanup(w.close)
	wl := w.listener(ln)
	t.Cleanup(func() { wl.Close() })
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := wl.Accept()
		if err != nil {
			close(acc)
			return
		}
		acc <- c
	}()
	cli, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	srv, ok := <-acc
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { srv.Close() })
	return srv, cli
}

// readFor reads from c until an error and returns it and how long it took.
func readFor(c net.Conn) (error, time.Duration) {
	start := time.Now()
	buf := make([]byte, 64)
	for {
		if _, err := c.Read(buf); err != nil {
			return err, time.Since(start)
		}
	}
}

// expectCut fails unless err is a deadline error that came about limit
// after the call began: not before it (less a little, as the watched
// time may start just before the call), and within a second after it (a
// tick, plus slack for a loaded CI machine).
func expectCut(t *testing.T, what string, err error, took, limit time.Duration) {
	t.Helper()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s ended with %v, want a deadline error", what, err)
	}
	if took < limit-20*time.Millisecond || took > limit+time.Second {
		t.Fatalf("%s was cut after %v; the limit is %v", what, took, limit)
	}
}

// A request that trickles in is cut ReadTimeout after its first byte
// (here: after accept), with a timeout error, whatever its pace.
func TestWatchdogReadTimeout(t *testing.T) {
	const limit = 300 * time.Millisecond
	srv, cli := watchedPair(t, limit, 10*time.Second, 10*time.Second)
	go func() {
		for range 30 {
			if _, err := cli.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	err, took := readFor(srv)
	expectCut(t, "a trickling request", err, took, limit)
}

// After a response, the wait for the next request is bounded by
// IdleTimeout, not ReadTimeout.
func TestWatchdogIdleTimeout(t *testing.T) {
	const idle = 400 * time.Millisecond
	srv, cli := watchedPair(t, 100*time.Millisecond, idle, 10*time.Second)
	buf := make([]byte, 16)
	cli.Write([]byte("req"))
	if _, err := srv.Read(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Write([]byte("resp")); err != nil {
		t.Fatal(err)
	}
	err, took := readFor(srv)
	expectCut(t, "an idle connection", err, took, idle)
}

// A handler that runs far longer than ReadTimeout (a POST /flush) is not
// cut: the connection is not blocked in a Read meanwhile, and the next
// request on it is read normally.
func TestWatchdogSpareBusyHandler(t *testing.T) {
	const limit = 100 * time.Millisecond
	srv, cli := watchedPair(t, limit, 10*time.Second, 10*time.Second)
	buf := make([]byte, 16)
	for i := range 2 {
		cli.Write([]byte("req"))
		if _, err := srv.Read(buf); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		time.Sleep(5 * limit) // the handler
		if _, err := srv.Write([]byte("resp")); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if _, err := cli.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
}

// A response to a client that stops reading is cut WriteTimeout after its
// first write.
func TestWatchdogWriteTimeout(t *testing.T) {
	const limit = 300 * time.Millisecond
	srv, _ := watchedPair(t, 10*time.Second, 10*time.Second, limit)
	start := time.Now()
	big := make([]byte, 1<<20)
	var err error
	for range 256 { // far more than the socket buffers hold
		if _, err = srv.Write(big); err != nil {
			break
		}
	}
	expectCut(t, "a response to a stalled client", err, time.Since(start), limit)
}

// Closed connections leave the watch list.
func TestWatchdogForgetsClosed(t *testing.T) {
	srv, _ := watchedPair(t, time.Second, time.Second, time.Second)
	w := srv.(*watchedConn).w
	srv.Close()
	srv.Close()
	w.mu.Lock()
	n := len(w.conns)
	w.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d connections still watched after close", n)
	}
}
