package httpd

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// # Connection timeouts
//
// ReadTimeout, IdleTimeout and WriteTimeout are kept by one watchdog
// goroutine rather than by fasthttp, which sets socket deadlines for them:
// two SetReadDeadline and one SetWriteDeadline per request, each a runtime
// timer update taken under a lock, about 1.1 µs of the ~16 µs a minimal
// keep-alive request costs on this machine (measured by zombi load against
// a do-nothing fasthttp handler with and without the three timeouts).
//
// Instead each connection keeps one atomic word: what it is waiting for
// (the first byte of a request, the rest of a request, or a write to
// complete), whether a Read is blocked right now, and since which tick of
// a coarse clock. The watchdog ticks every quarter of the shortest timeout
// (between 10 ms and 1 s), and a connection past its limit gets a
// deadline in the past: the blocked Read or Write fails with a timeout
// error, exactly as if fasthttp's deadline had fired, so the handler's
// 408 and fasthttp's closing of the connection are unchanged. A limit is
// kept to within one tick. A handler that runs long (a POST /flush) is
// never cut: a Read is only expired while it blocks.
//
//	phase    limit          counted from
//	reading  ReadTimeout    accept, or the first byte of a request, until
//	                        the response is written (the handler's body
//	                        reads included, as with fasthttp)
//	idle     IdleTimeout    the first Read after a response
//	writing  WriteTimeout   the first Write of a response
//
// Only a connection blocked in a Read or Write is expired.

const (
	phReading uint64 = 1
	phIdle    uint64 = 2
	phWriting uint64 = 3

	phaseShift        = 62
	inCallBit  uint64 = 1 << 61 // a Read or Write is in progress
	tickMask   uint64 = inCallBit - 1
)

// watchdog enforces the connection timeouts of one server.
type watchdog struct {
	read, idle, write int64 // limits, in ticks (0: none)
	tick              time.Duration
	now               atomic.Uint64 // ticks since start

	mu    sync.Mutex
	conns map[*watchedConn]struct{}
	stop  chan struct{}
	once  sync.Once
}

func newWatchdog(read, idle, write time.Duration) *watchdog {
	shortest := time.Duration(0)
	for _, d := range []time.Duration{read, idle, write} {
		if d > 0 && (shortest == 0 || d < shortest) {
			shortest = d
		}
	}
	tick := min(max(shortest/4, 10*time.Millisecond), time.Second)
	ticks := func(d time.Duration) int64 {
		if d <= 0 {
			return 0
		}
		return max(1, int64((d+tick-1)/tick))
	}
	return &watchdog{read: ticks(read), idle: ticks(idle), write: ticks(write), tick: tick,
		conns: make(map[*watchedConn]struct{}), stop: make(chan struct{})}
}

// start runs the watchdog until close.
func (w *watchdog) start() {
	go func() {
		t := time.NewTicker(w.tick)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.now.Add(1)
				w.check()
			}
		}
	}()
}

func (w *watchdog) close() {
	w.once.Do(func() { close(w.stop) })
}

// check expires the connections past their limit.
func (w *watchdog) check() {
	now := w.now.Load()
	w.mu.Lock()
	var late []*watchedConn
	for c := range w.conns {
		word := c.word.Load()
		if w.over(word, now) {
			late = append(late, c)
		}
	}
	w.mu.Unlock()
	for _, c := range late {
		c.expire(w, now)
	}
}

// over reports whether a connection in state word is past its limit.
func (w *watchdog) over(word, now uint64) bool {
	if word&inCallBit == 0 {
		return false // not blocked: the handler runs, or fasthttp works on buffered bytes
	}
	since := word & tickMask
	if now < since {
		return false
	}
	age := int64(now - since)
	switch word >> phaseShift {
	case phReading:
		return w.read > 0 && age > w.read
	case phIdle:
		return w.idle > 0 && age > w.idle
	case phWriting:
		return w.write > 0 && age > w.write
	}
	return false
}

// listener wraps ln so that its connections are watched.
func (w *watchdog) listener(ln net.Listener) net.Listener {
	return &watchedListener{Listener: ln, w: w}
}

type watchedListener struct {
	net.Listener
	w *watchdog
}

func (l *watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	wc := &watchedConn{Conn: c, w: l.w}
	wc.word.Store(phReading<<phaseShift | l.w.now.Load())
	l.w.mu.Lock()
	l.w.conns[wc] = struct{}{}
	l.w.mu.Unlock()
	return wc, nil
}

// watchedConn records its state for the watchdog on every Read and Write:
// a load and two stores of one word. fasthttp reads and writes a
// connection from one goroutine at a time.
type watchedConn struct {
	net.Conn
	w       *watchdog
	word    atomic.Uint64
	expired atomic.Bool // a deadline in the past was set by the watchdog
	closed  atomic.Bool
}

func (c *watchedConn) Read(p []byte) (int, error) {
	word := c.word.Load()
	if word>>phaseShift == phWriting { // the response is out: wait for the next request
		word = phIdle<<phaseShift | c.w.now.Load()
	}
	c.word.Store(word | inCallBit)
	n, err := c.Conn.Read(p)
	if n > 0 && word>>phaseShift != phReading { // the first byte of a request
		word = phReading<<phaseShift | c.w.now.Load()
	}
	c.word.Store(word)
	return n, err
}

func (c *watchedConn) Write(p []byte) (int, error) {
	word := c.word.Load()
	if word>>phaseShift != phWriting { // the first write of a response
		word = phWriting<<phaseShift | c.w.now.Load()
		if c.expired.Load() {
			// A Read blocked past its limit was expired just as its
			// request arrived, and the request was served: lift the
			// deadline.
			c.expired.Store(false)
			_ = c.Conn.SetDeadline(time.Time{})
		}
	}
	c.word.Store(word | inCallBit)
	n, err := c.Conn.Write(p)
	c.word.Store(word)
	return n, err
}

func (c *watchedConn) Close() error {
	if !c.closed.Swap(true) {
		c.w.mu.Lock()
		delete(c.w.conns, c)
		c.w.mu.Unlock()
	}
	return c.Conn.Close()
}

// expire sets a deadline in the past on a connection past its limit, so
// that its blocked Read or Write fails with a timeout. If the connection
// moved on meanwhile (its word changed), the deadline is lifted again.
func (c *watchedConn) expire(w *watchdog, now uint64) {
	word := c.word.Load()
	if !w.over(word, now) {
		return
	}
	past := time.Unix(1, 0)
	c.expired.Store(true)
	if word>>phaseShift == phWriting {
		_ = c.Conn.SetWriteDeadline(past)
	} else {
		_ = c.Conn.SetReadDeadline(past)
	}
	if c.word.Load() != word {
		c.expired.Store(false)
		_ = c.Conn.SetDeadline(time.Time{})
	}
}
