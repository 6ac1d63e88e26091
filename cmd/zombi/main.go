// Command zombi is the Zombi server: events in over HTTP, a per-partition
// append log on local disk, and (with the cold tier) Apache Iceberg out.
//
//	zombi serve [flags]   run the server (zombi serve --help lists the settings)
//	zombi load [flags]    send load to a server and report (zombi load --help)
//	zombi config          print the settings table (--markdown, --env)
//	zombi inspect         read a data directory offline (zombi inspect --help)
//	zombi cluster         a cluster's nodes and partitions; hand off a dead node's (zombi cluster help)
//	zombi soak [flags]    kill -9 soak of a child zombi serve (zombi soak --help)
//	zombi version         print the version
//	zombi help            print this help
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/flush"
	"github.com/zombihq/zombi/httpd"
)

// version is set at link time with -ldflags "-X main.version=…"; otherwise
// it comes from the module's build information.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, nil))
}

// run executes one command and returns the exit code. getenv (nil = the
// process environment) is the environment, for tests.
func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr, getenv, nil)
	case "load":
		return load(args[1:], stdout, stderr)
	case "config":
		return configCmd(args[1:], stdout, stderr)
	case "inspect":
		return inspect(args[1:], stdout, stderr, getenv)
	case "cluster":
		return clusterCmd(args[1:], stdout, stderr, getenv)
	case "soak":
		return soakCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "zombi %s\n", versionString())
		return 0
	case "help", "--help", "-help", "-h":
		if len(args) > 1 && args[1] == "serve" {
			printServeUsage(stdout)
			return 0
		}
		printUsage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "zombi: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return 2
	}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `Zombi: events in over HTTP, an append log on local disk, Apache Iceberg out.

Usage:
  zombi serve [flags]   run the server (see zombi serve --help)
  zombi load [flags]    send load to a server and report (see zombi load --help)
  zombi config          print every setting as Markdown (--markdown) or an env file (--env)
  zombi inspect         list, verify and dump a data directory offline (see zombi inspect --help)
  zombi cluster         a cluster's nodes and partitions; hand off a dead node's (see zombi cluster help)
  zombi soak [flags]    kill -9 soak: crash a child zombi serve under load, check nothing is lost (see zombi soak --help)
  zombi version         print the version
  zombi help            print this help
`)
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// serveGCPercent is the server's GOGC unless the environment sets one.
// Most of the heap is the cold tier's short-lived flush buffers (live heap
// 65-100 MiB while flushing bulk load to MinIO); at Go's default of 100
// the heap grows to twice that before a collection, and RssAnon peaked at
// 228 MiB. At 50 it peaks near 1.5 × live, for collections that cost well
// under 1 % of CPU here (GODEBUG=gctrace=1: one every ~8 s).
const serveGCPercent = 50

// serve runs the server until SIGTERM or SIGINT (or until ready, when not
// nil, is handed a stop function by a test and it is called).
func serve(args []string, stdout, stderr io.Writer, getenv func(string) string, ready func(addr string, stop func())) int {
	fs := flag.NewFlagSet("zombi serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	printCfg := fs.Bool("print-config", false, "")
	cfg, vals, err := loadConfigSources(fs, args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		printServeUsage(stdout)
		return 0
	}
	if *printCfg && vals != nil {
		printConfig(stdout, vals, getenv)
		if err != nil {
			fmt.Fprintf(stderr, "zombi serve: %v\n", err)
			return 2
		}
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "zombi serve: %v\n(see zombi serve --help)\n", err)
		return 2
	}
	log := newLogger(stderr, cfg)
	slog.SetDefault(log)
	if getenv == nil {
		logIgnoredSettings(log, os.Environ())
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
	notify, err := newNotifier(getenv)
	if err != nil {
		log.Warn("cannot reach the service manager (NOTIFY_SOCKET)", "err", err)
	}
	defer notify.close()

	eo := cfg.engineOptions(log)
	var srvRef atomic.Pointer[httpd.Server] // set once the server exists
	eo.OnSync = func(d time.Duration) {
		if s := srvRef.Load(); s != nil {
			s.ObserveFsync(d)
		}
	}
	eng, err := engine.Open(eo)
	if err != nil {
		log.Error("cannot open the hot tier", "dir", cfg.DataDir, "err", err)
		return 1
	}
	// The watchdog probe blocks if a partition log is stuck.
	notify.watchdogProbe(func() { eng.Stats() })
	var cold *coldTier // nil: hot tier only (ZOMBI_ICEBERG_ENABLED=false)
	var pl *placement  // nil: a single node
	if cfg.clusterEnabled() {
		pl = newPlacement(eng, func() *flush.Flusher {
			if cold == nil {
				return nil
			}
			return cold.flusher()
		}, log)
	}
	if cfg.Cold.Enabled {
		if cold, err = openCold(&cfg, eng, pl, log); err != nil {
			log.Error("cannot open the cold tier (set ZOMBI_ICEBERG_ENABLED=false to serve the hot tier only)", "err", err)
			_ = eng.Close()
			return 1
		}
	}
	closeEarly := func() {
		if cold != nil {
			_ = cold.close(log, 0)
		}
		_ = eng.Close()
		if cold != nil {
			_ = cold.closeCatalog()
		}
	}
	hc := cfg.httpConfig(eng, log)
	if cold != nil {
		cold.httpConfig(&hc)
	}
	if pl != nil {
		hc.Placement = pl
	}
	srv, err := httpd.New(hc)
	if err != nil {
		log.Error("invalid server configuration", "err", err)
		closeEarly()
		return 1
	}
	srvRef.Store(srv)
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("cannot listen", "addr", addr, "err", err)
		closeEarly()
		return 1
	}
	log.Info("zombi listening", "addr", ln.Addr().String(), "version", versionString(),
		"data_dir", cfg.DataDir, "fsync", cfg.Fsync.String(),
		"max_body_bytes", cfg.MaxBodyBytes, "max_inflight_writes", cfg.MaxInflightWrites,
		"max_inflight_bytes", cfg.MaxInflightBytes,
		"tls", srv.TLS(), "auth_tokens", len(cfg.AuthTokens)) // a count, never a token
	if pl != nil {
		node, err := nodeID(&cfg)
		if err != nil {
			log.Error("cannot read the node id", "err", err)
			ln.Close()
			closeEarly()
			return 1
		}
		pl.connect(clusterOptions(&cfg, node, advertiseAddr(&cfg, ln.Addr()), log))
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	stopCh := make(chan struct{})
	if ready != nil {
		var once bool
		ready(ln.Addr().String(), func() {
			if !once {
				once = true
				close(stopCh)
			}
		})
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	notify.ready("serving on " + ln.Addr().String())

	code := 0
	select {
	case err := <-served:
		log.Error("server stopped", "err", err)
		code = 1
	case sig := <-sigs:
		log.Info("shutting down", "signal", sig.String())
	case <-stopCh:
		log.Info("shutting down")
	}

	// Stop accepting, let in-flight requests finish (bounded), then make
	// everything durable and close the engine.
	notify.stopping("stopping: draining requests, final flush, closing the hot tier")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("in-flight requests did not finish in time", "timeout", cfg.ShutdownTimeout, "err", err)
	}
	cancel()
	if cold != nil {
		// A bounded final flush, then the flusher stops; the engine
		// closes after it and the catalog last.
		if err := cold.close(log, cfg.ShutdownTimeout); err != nil {
			log.Error("closing the cold tier", "err", err)
			code = 1
		}
		defer func() {
			if err := cold.closeCatalog(); err != nil {
				log.Warn("closing the catalog", "err", err)
			}
		}()
	}
	if pl != nil {
		pl.close() // after the release of the flushed partitions (cold.close)
	}
	closed := make(chan error, 1)
	go func() { closed <- eng.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			log.Error("closing the hot tier", "err", err)
			code = 1
		}
	case <-time.After(time.Second + cfg.ShutdownTimeout/4):
		log.Error("closing the hot tier timed out")
		code = 1
	}
	if code == 0 {
		log.Info("stopped")
	}
	return code
}

func newLogger(w io.Writer, cfg config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
