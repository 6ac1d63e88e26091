package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool finds a tool for a test, or skips it with the reason (fails
// instead when ZOMBI_TEST_REQUIRE_SERVICES is set, as in .ci/run).
func needTool(t *testing.T, name, why string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := name + " not found (" + why + ")"
		if os.Getenv("ZOMBI_TEST_REQUIRE_SERVICES") != "" {
			t.Fatal("ZOMBI_TEST_REQUIRE_SERVICES is set: " + msg)
		}
		t.Skip(msg)
	}
	return p
}

// TestMakeInstall stages `make install-files` into a temp DESTDIR (with the
// test binary standing in for bin/zombi, so nothing is built) and checks
// the layout, the modes, that an existing environment file is kept, and
// that PREFIX moves the binary and the unit's ExecStart with it.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make")
	}
	mk := needTool(t, "make", "apt-get install make")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	install := func(extra ...string) {
		t.Helper()
		cmd := exec.Command(mk, append([]string{"-s", "install-files", "DESTDIR=" + dest, "BIN=" + self}, extra...)...)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install-files: %v\n%s", err, out)
		}
	}
	install()
	for path, mode := range map[string]os.FileMode{
		"/usr/local/bin/zombi":              0o755,
		"/etc/systemd/system/zombi.service": 0o644,
		"/etc/zombi/zombi.env":              0o640,
		"/etc/zombi":                        0o750 | os.ModeDir,
		"/var/lib/zombi":                    0o750 | os.ModeDir,
	} {
		fi, err := os.Stat(filepath.Join(dest, path))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if fi.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "/etc/systemd/system/zombi.service"))
	orig, _ := os.ReadFile("../../deploy/zombi.service")
	if !bytes.Equal(unit, orig) {
		t.Error("the installed unit differs from deploy/zombi.service with the default PREFIX")
	}

	// A second install keeps the operator's environment file.
	envPath := filepath.Join(dest, "/etc/zombi/zombi.env")
	if err := os.WriteFile(envPath, []byte("ZOMBI_PORT=9999\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	install("PREFIX=/usr")
	if b, _ := os.ReadFile(envPath); string(b) != "ZOMBI_PORT=9999\n" {
		t.Errorf("make install overwrote zombi.env: %q", b)
	}
	unit, _ = os.ReadFile(filepath.Join(dest, "/etc/systemd/system/zombi.service"))
	if _, err := os.Stat(filepath.Join(dest, "/usr/bin/zombi")); err != nil || !bytes.Contains(unit, []byte("\nExecStart=/usr/bin/zombi serve\n")) {
		t.Errorf("PREFIX=/usr: %v\n%s", err, unit)
	}
}

// TestSystemdUnitVerifies runs `systemd-analyze verify` on
// deploy/zombi.service. verify checks that ExecStart's binary exists, so
// the unit is checked with the path of this test binary in its place.
func TestSystemdUnitVerifies(t *testing.T) {
	sa := needTool(t, "systemd-analyze", "apt-get install systemd; the unit is checked with systemd-analyze verify")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../deploy/zombi.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"\nType=notify\n", "\nRestart=on-failure\n", "\nNoNewPrivileges=yes\n", "\nProtectSystem=strict\n",
		"\nReadWritePaths=/var/lib/zombi\n", "\nPrivateTmp=yes\n", "\nProtectHome=yes\n", "\nLimitNOFILE=",
		"\nTimeoutStopSec=", "\nEnvironmentFile=-/etc/zombi/zombi.env\n", "\nExecStart=/usr/local/bin/zombi serve\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("deploy/zombi.service lacks %q", strings.TrimSpace(want))
		}
	}
	if strings.Contains(unit, "\nProcSubset=pid") {
		t.Error("ProcSubset=pid hides /proc/sys/kernel/random/boot_id, which the engine needs")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "zombi.service")
	unit = strings.Replace(unit, "ExecStart=/usr/local/bin/zombi ", "ExecStart="+self+" ", 1)
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify deploy/zombi.service: %v\n%s", err, out)
	}
}
