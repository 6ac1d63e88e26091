package main

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGeneratedDocs keeps docs/configuration.md and deploy/zombi.env equal
// to what `zombi config` renders from the settings table. After changing a
// setting, regenerate them with `make docs` (ZOMBI_UPDATE_DOCS=1).
func TestGeneratedDocs(t *testing.T) {
	for _, c := range []struct {
		path string
		args []string
	}{
		{"../../docs/configuration.md", []string{"config", "--markdown"}},
		{"../../deploy/zombi.env", []string{"config", "--env"}},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb, env(nil)); code != 0 {
			t.Fatalf("zombi %s: exit %d: %s", strings.Join(c.args, " "), code, errb.String())
		}
		if os.Getenv("ZOMBI_UPDATE_DOCS") == "1" {
			if err := os.WriteFile(c.path, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, out.Bytes()) {
			t.Errorf("%s is stale: it must equal `zombi %s`; run `make docs` and commit it", c.path, strings.Join(c.args, " "))
		}
		for _, s := range settings {
			if !bytes.Contains(b, []byte(s.Env)) || !bytes.Contains(b, []byte(s.Flag)) {
				t.Errorf("%s lacks %s (--%s)", c.path, s.Env, s.Flag)
			}
		}
	}
}

func TestPrintConfigMasksSecrets(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"serve", "--port", "9100", "--print-config"}, &out, &errb, env(map[string]string{
		"ZOMBI_AUTH_TOKENS":     "s3cr3t-token-value:admin",
		"ZOMBI_FSYNC":           "always",
		"AWS_SECRET_ACCESS_KEY": "aws-secret-value",
		"AWS_ACCESS_KEY_ID":     "AKIDEXAMPLE",
	}))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	o := out.String()
	for _, leak := range []string{"s3cr3t-token-value", "aws-secret-value"} {
		if strings.Contains(o, leak) {
			t.Errorf("a secret was printed:\n%s", o)
		}
	}
	for _, want := range []string{
		"ZOMBI_PORT=9100", "# flag --port",
		"ZOMBI_FSYNC=always", "# env ZOMBI_FSYNC",
		"ZOMBI_HOST=0.0.0.0", "# default",
		"ZOMBI_AUTH_TOKENS=<redacted>",
		"AWS_SECRET_ACCESS_KEY=<redacted>", "AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
	} {
		if !strings.Contains(o, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, o)
		}
	}
	for _, s := range settings {
		if !strings.Contains(o, s.Env+"=") {
			t.Errorf("--print-config lacks %s", s.Env)
		}
	}

	// Invalid values are printed (masked) and fail.
	out.Reset()
	errb.Reset()
	if code := run([]string{"serve", "--print-config", "--port", "x"}, &out, &errb, env(nil)); code != 2 || !strings.Contains(out.String(), "ZOMBI_PORT=x") {
		t.Errorf("invalid value: exit %d\n%s%s", code, out.String(), errb.String())
	}

	for v, want := range map[string]string{
		"postgres://zombi:pw@db:5432/cat": "postgres://zombi:redacted@db:5432/cat",
		"https://catalog.example/v1":      "https://catalog.example/v1",
		"":                                "",
	} {
		if got := maskValue(false, v); got != want {
			t.Errorf("maskValue(%q) = %q, want %q", v, got, want)
		}
	}
	if got := maskValue(true, "@/etc/zombi/tokens"); got != "@/etc/zombi/tokens" {
		t.Errorf("a token file path: %q", got)
	}
	for _, s := range settings {
		if secretName(s.Env) && !isSecret(s) {
			t.Errorf("%s looks secret but is not masked", s.Env)
		}
	}
}

// TestNotify runs serve with $NOTIFY_SOCKET pointing at a unix datagram
// socket of the test, as systemd does for Type=notify, and expects
// READY=1 once it serves, WATCHDOG=1 pings, and STOPPING=1 on shutdown.
func TestNotify(t *testing.T) {
	for _, name := range []string{"path", "abstract"} {
		t.Run(name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "notify.sock")
			if name == "abstract" {
				sock = "@zombi-test-notify-" + filepath.Base(t.TempDir())
			}
			conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			e := env(map[string]string{"ZOMBI_HOST": "127.0.0.1", "ZOMBI_PORT": "0", "ZOMBI_DATA_DIR": t.TempDir(),
				"ZOMBI_FSYNC": "never", "ZOMBI_ICEBERG_ENABLED": "false", "NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "20000"})
			var errb syncBuffer
			stopCh := make(chan func(), 1)
			done := make(chan int, 1)
			go func() {
				done <- serve(nil, io.Discard, &errb, e, func(_ string, stop func()) { stopCh <- stop })
			}()
			seen := map[string]bool{}
			await := func(want string) {
				t.Helper()
				buf := make([]byte, 4096)
				deadline := time.Now().Add(10 * time.Second)
				for !seen[want] {
					conn.SetReadDeadline(deadline)
					n, err := conn.Read(buf)
					if err != nil {
						t.Fatalf("waiting for %s (got %v): %v\n%s", want, seen, err, errb.String())
					}
					for _, line := range strings.Split(string(buf[:n]), "\n") {
						seen[line] = true
					}
				}
			}
			await("READY=1")
			if seen["STOPPING=1"] {
				t.Fatal("STOPPING before the stop")
			}
			await("WATCHDOG=1")
			(<-stopCh)()
			await("STOPPING=1")
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errb.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not stop")
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
