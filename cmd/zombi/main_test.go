package main

import (
	"bytes"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the zombi binary for the signal
// test (ZOMBI_TEST_AS_MAIN=1).
func TestMain(m *testing.M) {
	if os.Getenv("ZOMBI_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigPrecedence(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c, err := loadConfig(fs, []string{"--port", "9000", "-fsync=never"}, env(map[string]string{
		"ZOMBI_PORT": "7000", "ZOMBI_MAX_INFLIGHT_BYTES_MB": "0", "ZOMBI_DATA_DIR": "/tmp/x", "ZOMBI_FSYNC": "interval",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 9000 || c.MaxInflightBytes != 0 || c.DataDir != "/tmp/x" || c.Fsync.String() != "never" ||
		c.Host != "0.0.0.0" || c.MaxInflightWrites != 10000 || c.MaxBodyBytes != 16<<20 {
		t.Fatalf("config %+v", c)
	}
	hc := c.httpConfig(nil, nil)
	hc.EnsureDefaults()
	if hc.MaxInflightBytes != 0 {
		t.Fatalf("a zero inflight budget became %d", hc.MaxInflightBytes)
	}
}

func TestConfigErrors(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, err := loadConfig(fs, []string{"--max-body-mb=0"}, env(map[string]string{"ZOMBI_PORT": "http", "ZOMBI_LOG_LEVEL": "loud"}))
	if err == nil {
		t.Fatal("invalid values accepted")
	}
	for _, want := range []string{"port", "ZOMBI_PORT", "max-body-mb", "flag --max-body-mb", "log-level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--nope"}, &out, &errb, env(nil)); code != 2 {
		t.Fatalf("unknown flag: exit %d", code)
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--help"}, &out, &errb, env(nil)); code != 0 {
		t.Fatalf("serve --help: exit %d", code)
	}
	for _, s := range settings {
		if !strings.Contains(out.String(), "--"+s.Flag) || !strings.Contains(out.String(), "env "+s.Env+", default \""+s.Default+"\"") {
			t.Errorf("help lacks %s / %s", s.Flag, s.Env)
		}
		// Every default must itself be valid.
		var c config
		if err := s.set(&c, s.Default); err != nil {
			t.Errorf("default of %s: %v", s.Flag, err)
		}
	}
	out.Reset()
	if code := run([]string{"version"}, &out, &errb, nil); code != 0 || !strings.HasPrefix(out.String(), "zombi ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"help"}, &out, &errb, nil); code != 0 || !strings.Contains(out.String(), "zombi serve") {
		t.Fatalf("help: %d %q", code, out.String())
	}
	if code := run([]string{"bogus"}, &out, &errb, nil); code != 2 {
		t.Fatalf("bogus: %d", code)
	}
	if code := run(nil, &out, &errb, nil); code != 2 {
		t.Fatalf("no args: %d", code)
	}
}

func TestServeWritesAndStops(t *testing.T) {
	dir := t.TempDir()
	e := env(map[string]string{"ZOMBI_HOST": "127.0.0.1", "ZOMBI_PORT": "0", "ZOMBI_DATA_DIR": dir, "ZOMBI_FSYNC": "never"})
	var errb bytes.Buffer
	addrCh := make(chan string, 1)
	var stop func()
	done := make(chan int, 1)
	go func() {
		done <- serve(nil, io.Discard, &errb, e, func(addr string, s func()) { stop = s; addrCh <- addr })
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case code := <-done:
		t.Fatalf("serve exited %d: %s", code, errb.String())
	}
	r, err := http.Post("http://"+addr+"/tables/events", "application/json", strings.NewReader(`{"payload":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 202 || string(b) != `{"offset":1,"partition":0,"table":"events"}` {
		t.Fatalf("write: %d %s", r.StatusCode, b)
	}
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestSIGTERM runs the binary, writes through it, sends SIGTERM and
// expects exit 0 well within 10 s, then restarts on the same data dir.
func TestSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	dir := t.TempDir()
	for round, want := range []string{`{"offset":1,"partition":0,"table":"events"}`, `{"offset":2,"partition":0,"table":"events"}`} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		cmd := exec.Command(os.Args[0], "serve", "--port", strconv.Itoa(port), "--host", "127.0.0.1")
		cmd.Env = append(os.Environ(), "ZOMBI_TEST_AS_MAIN=1", "ZOMBI_DATA_DIR="+dir, "ZOMBI_FSYNC=always")
		var logs bytes.Buffer
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		var r *http.Response
		for i := 0; i < 200; i++ {
			r, err = http.Post(base+"/tables/events", "application/json", strings.NewReader(`{"payload":"hi"}`))
			if err == nil {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: server never answered: %v\n%s", round, err, logs.String())
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if string(b) != want {
			t.Errorf("round %d: %s, want %s", round, b, want)
		}
		start := time.Now()
		cmd.Process.Signal(syscall.SIGTERM)
		waitErr := make(chan error, 1)
		go func() { waitErr <- cmd.Wait() }()
		select {
		case err := <-waitErr:
			if err != nil {
				t.Fatalf("round %d: exit: %v\n%s", round, err, logs.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("round %d: still running 10 s after SIGTERM\n%s", round, logs.String())
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("round %d: shutdown took %v", round, d)
		}
		if !strings.Contains(logs.String(), "msg=stopped") {
			t.Errorf("round %d: no clean stop in the log:\n%s", round, logs.String())
		}
	}
}
