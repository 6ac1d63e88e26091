package testsvc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// HAProxy is a throwaway HAProxy on 127.0.0.1 running the shipped
// deploy/haproxy.cfg in front of test backends, killed when the test
// ends.
type HAProxy struct {
	addr string
	pid  int
}

// Addr is the host:port the proxy listens on.
func (h *HAProxy) Addr() string { return h.addr }

// Pid is the proxy's process id (for its CPU time, in benchmarks).
func (h *HAProxy) Pid() int { return h.pid }

// Health-check intervals of the tests (deploy/haproxy.cfg has the
// production ones): a backend is out after 2 failed checks 500 ms apart
// and back after 1 good one.
const (
	haproxyTestInter = "500ms"
	haproxyTestFall  = "2"
	haproxyTestRise  = "1"
)

// StartHAProxy runs `haproxy -db` (in the foreground) with the config of
// deploy/haproxy.cfg rewritten for the test (see HAProxyConfig) on a free
// port of 127.0.0.1, balancing over backends (host:port each), and waits
// until it accepts connections. The test is skipped (see Skip) when the
// haproxy binary is not on PATH.
func StartHAProxy(tb testing.TB, backends []string) *HAProxy {
	tb.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		Skip(tb, "haproxy not found on PATH: HAProxy tests skipped (apt-get install haproxy)")
	}
	tmpl, err := os.ReadFile(haproxyTemplate(tb))
	if err != nil {
		tb.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(tb))
	cfg, err := HAProxyConfig(tmpl, addr, backends)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		tb.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(dir, "haproxy.log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", path, "-db")
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logs.Close()
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		logs.Close()
	})
	out := func() string { b, _ := os.ReadFile(logs.Name()); return string(b) }
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return &HAProxy{addr: addr, pid: cmd.Process.Pid}
		}
		select {
		case <-done:
			tb.Fatalf("haproxy exited: %v\nconfig:\n%s\noutput:\n%s", cmd.ProcessState, cfg, out())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("haproxy not listening on %s after 10 s: %v\noutput:\n%s", addr, err, out())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// HAProxyConfig rewrites the config tmpl (deploy/haproxy.cfg) for a test:
// the global section becomes a minimal one (no chroot, user, stats socket
// or syslog); the bind line listens on addr; the default-server line
// gets the test's check intervals (inter 500ms fall 2 rise 1), its other
// options kept; and the server lines become one per backend, named
// zombi1…, each with the options of the first server line. Everything
// else (timeouts, balance, health check, retries) is left as shipped.
func HAProxyConfig(tmpl []byte, addr string, backends []string) ([]byte, error) {
	if len(backends) == 0 {
		return nil, errors.New("haproxy config: no backends")
	}
	var out bytes.Buffer
	var binds, defaults, servers int
	inGlobal := false
	for _, line := range strings.SplitAfter(string(tmpl), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			if !inGlobal {
				out.WriteString(line)
			}
			continue
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		if indent == "" { // a section header
			inGlobal = f[0] == "global"
			if inGlobal {
				out.WriteString("global\n\tmaxconn 1000\n\n")
				continue
			}
		}
		switch {
		case inGlobal:
		case f[0] == "bind":
			binds++
			fmt.Fprintf(&out, "%sbind %s\n", indent, addr)
		case f[0] == "default-server":
			defaults++
			for i := 1; i+1 < len(f); i++ {
				switch f[i] {
				case "inter":
					f[i+1] = haproxyTestInter
				case "fall":
					f[i+1] = haproxyTestFall
				case "rise":
					f[i+1] = haproxyTestRise
				}
			}
			fmt.Fprintf(&out, "%s%s\n", indent, strings.Join(f, " "))
		case f[0] == "server":
			servers++
			if servers > 1 {
				continue
			}
			if len(f) < 3 {
				return nil, fmt.Errorf("haproxy config: short server line %q", strings.TrimSpace(line))
			}
			for i, b := range backends {
				fmt.Fprintf(&out, "%sserver zombi%d %s %s\n", indent, i+1, b, strings.Join(f[3:], " "))
			}
		default:
			out.WriteString(line)
		}
	}
	if binds != 1 || defaults != 1 || servers == 0 {
		return nil, fmt.Errorf("haproxy config: want one bind line, one default-server line and server lines; found %d, %d and %d", binds, defaults, servers)
	}
	return out.Bytes(), nil
}

// haproxyTemplate finds deploy/haproxy.cfg in the module the test runs
// in: tests run in their package's directory, below go.mod.
func haproxyTemplate(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "deploy", "haproxy.cfg")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("deploy/haproxy.cfg: no go.mod above the test's directory")
		}
		dir = parent
	}
}
