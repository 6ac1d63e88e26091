package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/zombihq/zombi/soak"
)

const soakUsage = `Usage: zombi soak [flags]

The kill -9 soak: runs this binary's "zombi serve" as a child process on
127.0.0.1 (a free port, a data directory of its own, the cold tier on
with a 1 s flush interval, ZOMBI_FSYNC=always unless --fsync says
otherwise), writes to it from a few producers (single and bulk, several
tables and partitions, most requests with idempotency keys), kills it
with SIGKILL at random moments (also during flushes and the start-up),
restarts it and retries the unacknowledged keyed requests. At the end,
after a clean restart and a final flush, every acked event must be in
Iceberg (read through /v1 with iceberg-go) with its payload, no sequence
or idempotency key twice, no offset reused. Prints the counts; exit
status 1 on any violation.

Flags:
`

// soakCmd runs `zombi soak`.
func soakCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zombi soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c soak.Config
	fs.IntVar(&c.Cycles, "cycles", 200, "kill -9 cycles")
	fs.IntVar(&c.Writers, "writers", 4, "concurrent producers")
	fs.IntVar(&c.Tables, "tables", 2, "tables written")
	fs.IntVar(&c.Partitions, "partitions", 3, "partitions per table")
	fs.StringVar(&c.Fsync, "fsync", "always", "ZOMBI_FSYNC of the server: always, interval or never")
	fs.DurationVar(&c.MinUp, "min-up", 0, "shortest time under load before a kill (default 50ms)")
	fs.DurationVar(&c.MaxUp, "max-up", 0, "longest time under load before a kill (default 2.5s)")
	fs.Uint64Var(&c.Seed, "seed", 0, "random seed (default: from the clock; printed)")
	fs.StringVar(&c.Dir, "dir", "", "work directory: data/ and server.log (default: a temporary one, removed after a clean run)")
	fs.StringVar(&c.Bin, "bin", "", "the zombi binary to run as the server (default: this one)")
	fs.Func("env", "`ZOMBI_X=value` for the server, over the soak's settings (repeatable; e.g. ZOMBI_HOT_RETENTION_SECS=3600)", func(v string) error {
		if !strings.HasPrefix(v, "ZOMBI_") || !strings.Contains(v, "=") {
			return errors.New("want ZOMBI_NAME=value")
		}
		c.Env = append(c.Env, v)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprint(stderr, soakUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if c.Bin == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "zombi soak: %v (use --bin)\n", err)
			return 2
		}
		c.Bin = exe
	}
	c.Log = stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := soak.Run(ctx, c)
	if res != nil {
		res.Print(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "zombi soak: %v\n", err)
		return 1
	}
	if !res.OK() {
		return 1
	}
	return 0
}
