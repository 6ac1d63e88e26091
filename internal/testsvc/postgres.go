package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// Postgres is a throwaway PostgreSQL cluster on 127.0.0.1, run as the
// postgres user (DESIGN §4), removed when the test ends. Stop and Start
// take the server down and bring it back on the same port and data, for
// tests of what a client does while its database is unreachable.
type Postgres struct {
	// URL is the postgres:// URL of the postgres database, as superuser.
	URL string

	tb    testing.TB
	pgctl string // pg_ctl binary
	data  string // data directory
	opts  string // server options: address, port, socket dir, fsync=off
	log   string // server log file
}

// StartPostgres starts a throwaway PostgreSQL cluster and returns its
// postgres:// URL; see NewPostgres.
func StartPostgres(tb testing.TB) string {
	tb.Helper()
	return NewPostgres(tb).URL
}

// NewPostgres initialises and starts a PostgreSQL cluster on a free port
// of 127.0.0.1 with trust authentication and fsync off, stopped and
// removed at the end of tb. initdb and pg_ctl are looked up on PATH, then
// in /usr/lib/postgresql/*/bin (the newest version); the test is skipped
// (see Skip) when they are missing, or when the test does not run as root
// with a postgres user to run the server as.
func NewPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	initdb, pgctl := pgBinary("initdb"), pgBinary("pg_ctl")
	if initdb == "" || pgctl == "" {
		Skip(tb, "initdb or pg_ctl not found: PostgreSQL tests skipped")
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil || os.Geteuid() != 0 {
		Skip(tb, "needs root and a postgres user: PostgreSQL tests skipped")
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	// Not tb.TempDir: its parents are private to root, and the server
	// runs as postgres. The socket directory's path must also stay short.
	dir, err := os.MkdirTemp("", "zombi-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		tb.Fatal(err)
	}
	port := FreePort(tb)
	p := &Postgres{
		URL:   fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		tb:    tb,
		pgctl: pgctl,
		data:  filepath.Join(dir, "data"),
		opts:  fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", port, dir),
		log:   filepath.Join(dir, "log"),
	}
	if err := runAsPostgres(initdb, "-U", "postgres", "--auth=trust", "-D", p.data); err != nil {
		tb.Fatal(err)
	}
	p.Start()
	tb.Cleanup(func() { runAsPostgres(p.pgctl, "-D", p.data, "-m", "immediate", "stop") })
	return p
}

// Start starts the server (again) and waits until it accepts connections.
func (p *Postgres) Start() {
	p.tb.Helper()
	if err := runAsPostgres(p.pgctl, "-D", p.data, "-o", p.opts, "-l", p.log, "-w", "-t", "60", "start"); err != nil {
		p.tb.Fatal(err)
	}
}

// Stop stops the server at once, as a crash would (pg_ctl -m immediate):
// connections are cut, new ones refused until Start.
func (p *Postgres) Stop() {
	p.tb.Helper()
	if err := runAsPostgres(p.pgctl, "-D", p.data, "-m", "immediate", "-w", "stop"); err != nil {
		p.tb.Fatal(err)
	}
}

// pgBinary returns the path of a PostgreSQL program, from PATH or else the
// newest /usr/lib/postgresql/*/bin, or "" when there is none.
func pgBinary(name string) string {
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		path := filepath.Join(d, name)
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	return ""
}

// pgVersion is the major version in /usr/lib/postgresql/<v>/bin, or 0.
func pgVersion(bin string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return v
}

// runAsPostgres runs a command as the postgres user.
func runAsPostgres(args ...string) error {
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %w: %s", args, err, out)
	}
	return nil
}
