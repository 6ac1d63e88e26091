package main

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// notifier speaks the systemd notification protocol (sd_notify(3)) for a
// Type=notify unit: datagrams of "KEY=value" lines sent to the unix
// datagram socket named by $NOTIFY_SOCKET ("@name" is in the abstract
// namespace). Without $NOTIFY_SOCKET every method does nothing, so the
// server runs the same outside systemd.
//
// It also pings the service manager's watchdog (WATCHDOG=1) at half of
// $WATCHDOG_USEC when the unit sets WatchdogSec=, each time after the
// probe (set with watchdogProbe) returns: a probe that hangs (a deadlocked
// partition log) stops the pings, and systemd restarts the service.
type notifier struct {
	mu    sync.Mutex // serialises writes and guards conn
	conn  *net.UnixConn
	probe atomic.Pointer[func()] // run before each watchdog ping; nil: none
	stop  chan struct{}          // closes the watchdog goroutine
	wg    sync.WaitGroup
}

// newNotifier connects to $NOTIFY_SOCKET (through getenv, nil = the process
// environment). It returns a no-op notifier when the variable is unset, and
// an error (with a usable no-op notifier) when the socket cannot be reached.
func newNotifier(getenv func(string) string) (*notifier, error) {
	n := &notifier{stop: make(chan struct{})}
	path, ok := lookupEnv(getenv, "NOTIFY_SOCKET")
	if !ok {
		return n, nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // abstract namespace
	} else if !strings.HasPrefix(path, "/") {
		return n, errors.New("NOTIFY_SOCKET must be an absolute path or start with @")
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return n, err
	}
	n.conn = conn
	if v, ok := lookupEnv(getenv, "WATCHDOG_USEC"); ok {
		if us, err := strconv.ParseInt(v, 10, 64); err == nil && us > 0 && watchdogForUs(getenv) {
			n.startWatchdog(time.Duration(us) * time.Microsecond / 2)
		}
	}
	return n, nil
}

// watchdogForUs reports whether $WATCHDOG_PID, when set, names this
// process (sd_watchdog_enabled(3)).
func watchdogForUs(getenv func(string) string) bool {
	v, ok := lookupEnv(getenv, "WATCHDOG_PID")
	return !ok || v == strconv.Itoa(os.Getpid())
}

func (n *notifier) startWatchdog(every time.Duration) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-n.stop:
				return
			case <-t.C:
				if p := n.probe.Load(); p != nil {
					(*p)()
				}
				n.send("WATCHDOG=1")
			}
		}
	}()
}

// send writes one notification; errors are ignored, as sd_notify's are by
// most callers: the service manager may be gone during shutdown.
func (n *notifier) send(state string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		_, _ = n.conn.Write([]byte(state))
	}
}

// ready tells the service manager that the server is accepting requests.
func (n *notifier) ready(status string) { n.send("READY=1\nSTATUS=" + status) }

// watchdogProbe sets a check run before each watchdog ping; it should
// block when the server is stuck.
func (n *notifier) watchdogProbe(f func()) { n.probe.Store(&f) }

// stopping tells the service manager that shutdown has begun. Watchdog
// pings go on until close, so a long final flush is not taken for a hang
// (TimeoutStopSec bounds it).
func (n *notifier) stopping(status string) { n.send("STOPPING=1\nSTATUS=" + status) }

// status updates the free-form status line shown by systemctl status.
func (n *notifier) status(s string) { n.send("STATUS=" + s) }

func (n *notifier) stopWatchdog() {
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	n.wg.Wait()
}

// close releases the socket.
func (n *notifier) close() {
	n.stopWatchdog()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		n.conn.Close()
		n.conn = nil
	}
}
