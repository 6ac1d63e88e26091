package catalog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// startPostgres starts a throwaway PostgreSQL cluster on 127.0.0.1 as the
// postgres user (DESIGN §4) and returns its URI, or skips the test when
// initdb or the postgres user is missing.
func startPostgres(t *testing.T) string {
	t.Helper()
	initdb, err := exec.LookPath("initdb")
	if err != nil {
		skipService(t, "initdb not found: PostgreSQL tests skipped")
	}
	pgctl, err := exec.LookPath("pg_ctl")
	if err != nil {
		skipService(t, "pg_ctl not found: PostgreSQL tests skipped")
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil || os.Geteuid() != 0 {
		skipService(t, "needs root and a postgres user: PostgreSQL tests skipped")
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	dir, err := os.MkdirTemp("", "zombi-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	run := func(args ...string) error {
		cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %w: %s", args, err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run(initdb, "-U", "postgres", "--auth=trust", "-D", data); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", port, dir)
	if err := run(pgctl, "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run(pgctl, "-D", data, "-m", "immediate", "stop") })
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

func TestPostgresCatalogCommitsAndConflicts(t *testing.T) {
	uri := startPostgres(t)
	ctx := context.Background()
	open := func() *Catalog {
		c, err := Open(ctx, Options{URI: uri, DataDir: t.TempDir(), RetryInitial: time.Millisecond, RetryMax: 20 * time.Millisecond, CommitAttempts: 50})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := open()
	if c.Kind() != "postgres" {
		t.Fatalf("kind %s", c.Kind())
	}
	tbl, err := c.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Commit(ctx, []Range{{Partition: 0, From: 1, To: 10, High: 10}}, []DataFile{fakeFile(tbl, 0, 1, 10)}); err != nil {
		t.Fatal(err)
	}
	// A second node's stale view: its commit is refused as a conflict
	// after the reload, not applied twice.
	c2 := open()
	tbl2, err := c2.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	res, err := tbl2.Commit(ctx, []Range{{Partition: 0, From: 1, To: 10, High: 10}}, []DataFile{fakeFile(tbl2, 0, 1, 10)})
	if err != nil || !res.Already {
		t.Fatalf("re-commit from a second node: %+v, %v", res, err)
	}
	if _, err := tbl.Commit(ctx, []Range{{Partition: 0, From: 11, To: 20, High: 20}}, []DataFile{fakeFile(tbl, 0, 11, 20)}); err != nil {
		t.Fatal(err)
	}
	// tbl2 is now stale: the catalog rejects its commit, Commit reloads.
	_, err = tbl2.Commit(ctx, []Range{{Partition: 0, From: 11, To: 25}}, []DataFile{fakeFile(tbl2, 0, 11, 25)})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("stale overlapping commit: %v", err)
	}
	if _, err := tbl2.Commit(ctx, []Range{{Partition: 1, From: 1, To: 3, High: 3}}, []DataFile{fakeFile(tbl2, 1, 1, 3)}); err != nil {
		t.Fatal(err)
	}
	w, err := tbl.Watermarks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w[0].Flushed != 20 || w[1].Flushed != 3 {
		t.Fatalf("watermarks %v", w)
	}
}
