package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/httpd"
)

// config is everything `zombi serve` is configured with.
type config struct {
	Host              string
	Port              int
	DataDir           string
	MaxInflightWrites int
	MaxInflightBytes  int64
	MaxBodyBytes      int
	Fsync             engine.FsyncMode
	FsyncInterval     time.Duration
	SegmentBytes      int64
	HotRetention      time.Duration
	MaxPartitions     uint32
	IdempotencyWindow time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxConnections    int
	ShutdownTimeout   time.Duration
	LogLevel          slog.Level
	LogFormat         string
	MaxBulkRecords    int
	AuthTokens        []httpd.Token // empty: authentication off
	TLSCert           string        // PEM certificate (chain); empty: plain HTTP
	TLSKey            string        // PEM private key
}

// setting is one configuration knob, defined once: its flag, environment
// variable, default, help text and parser. `zombi serve --help` and (later)
// `zombi config --markdown` render this table.
type setting struct {
	Flag    string // flag name, without dashes
	Env     string // environment variable
	Default string // default value, as it would be written in the env
	Kind    string // value kind shown in help: int, string, …
	Usage   string
	set     func(c *config, v string) error
}

// settings lists every setting, in the order help shows them. Names and
// defaults are the Rust Zombi's where it has the setting.
var settings = []setting{
	{"host", "ZOMBI_HOST", "0.0.0.0", "string", "HTTP bind address", func(c *config, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		c.Host = v
		return nil
	}},
	{"port", "ZOMBI_PORT", "8080", "int", "HTTP port (0 picks a free one)", func(c *config, v string) error {
		n, err := intIn(v, 0, 65535)
		c.Port = n
		return err
	}},
	{"data-dir", "ZOMBI_DATA_DIR", "./data", "path", "data directory (hot tier in <dir>/hot)", func(c *config, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		c.DataDir = v
		return nil
	}},
	{"max-inflight-writes", "ZOMBI_MAX_INFLIGHT_WRITES", "10000", "int", "write requests served at once; more answer 503", func(c *config, v string) error {
		n, err := intIn(v, 1, 1<<30)
		c.MaxInflightWrites = n
		return err
	}},
	{"max-inflight-bytes-mb", "ZOMBI_MAX_INFLIGHT_BYTES_MB", "64", "MiB", "write body bytes in flight; more answer 503 (0 refuses every non-empty write)", func(c *config, v string) error {
		n, err := intIn(v, 0, 1<<20)
		c.MaxInflightBytes = int64(n) << 20
		return err
	}},
	{"max-body-mb", "ZOMBI_MAX_BODY_MB", "16", "MiB", "largest request body; larger ones answer 413 unread", func(c *config, v string) error {
		n, err := intIn(v, 1, 1024)
		c.MaxBodyBytes = n << 20
		return err
	}},
	{"fsync", "ZOMBI_FSYNC", "interval", "mode", "durability: always (ack after fsync, group commit), interval (ack in page cache, fsync every --fsync-interval-ms), never (page cache)", func(c *config, v string) error {
		m, err := engine.ParseFsyncMode(v)
		if err != nil {
			return errors.New("want always, interval or never")
		}
		c.Fsync = m
		return nil
	}},
	{"fsync-interval-ms", "ZOMBI_FSYNC_INTERVAL_MS", "100", "ms", "sync period of --fsync=interval", func(c *config, v string) error {
		n, err := intIn(v, 1, 3_600_000)
		c.FsyncInterval = time.Duration(n) * time.Millisecond
		return err
	}},
	{"segment-size-mb", "ZOMBI_SEGMENT_SIZE_MB", "64", "MiB", "size of each hot-tier segment file", func(c *config, v string) error {
		n, err := intIn(v, 1, 1024)
		c.SegmentBytes = int64(n) << 20
		return err
	}},
	{"hot-retention-secs", "ZOMBI_HOT_RETENTION_SECS", "0", "s", "keep flushed segments this long before deleting them", func(c *config, v string) error {
		n, err := intIn(v, 0, 1<<31)
		c.HotRetention = time.Duration(n) * time.Second
		return err
	}},
	{"max-partitions", "ZOMBI_MAX_PARTITIONS", "1024", "int", "partitions per table: a partition must be below this", func(c *config, v string) error {
		n, err := intIn(v, 1, 1<<20)
		c.MaxPartitions = uint32(n)
		return err
	}},
	{"idempotency-window-secs", "ZOMBI_IDEMPOTENCY_WINDOW_SECS", "3600", "s", "how long an idempotency key is remembered", func(c *config, v string) error {
		n, err := intIn(v, 1, 1<<31)
		c.IdempotencyWindow = time.Duration(n) * time.Second
		return err
	}},
	{"read-timeout-secs", "ZOMBI_READ_TIMEOUT_SECS", "30", "s", "time allowed to read a whole request, body included", func(c *config, v string) error {
		n, err := intIn(v, 1, 3600)
		c.ReadTimeout = time.Duration(n) * time.Second
		return err
	}},
	{"write-timeout-secs", "ZOMBI_WRITE_TIMEOUT_SECS", "30", "s", "time allowed to write a response", func(c *config, v string) error {
		n, err := intIn(v, 1, 3600)
		c.WriteTimeout = time.Duration(n) * time.Second
		return err
	}},
	{"idle-timeout-secs", "ZOMBI_IDLE_TIMEOUT_SECS", "60", "s", "close keep-alive connections idle this long", func(c *config, v string) error {
		n, err := intIn(v, 1, 86400)
		c.IdleTimeout = time.Duration(n) * time.Second
		return err
	}},
	{"max-connections", "ZOMBI_MAX_CONNECTIONS", "262144", "int", "concurrent connections served", func(c *config, v string) error {
		n, err := intIn(v, 1, 1<<24)
		c.MaxConnections = n
		return err
	}},
	{"shutdown-timeout-secs", "ZOMBI_SHUTDOWN_TIMEOUT_SECS", "8", "s", "on SIGTERM/SIGINT, wait this long for in-flight requests", func(c *config, v string) error {
		n, err := intIn(v, 0, 3600)
		c.ShutdownTimeout = time.Duration(n) * time.Second
		return err
	}},
	{"max-bulk-records", "ZOMBI_MAX_BULK_RECORDS", "100000", "int", "records in one bulk request; more answer 413", func(c *config, v string) error {
		n, err := intIn(v, 1, 10_000_000)
		c.MaxBulkRecords = n
		return err
	}},
	{"auth-tokens", "ZOMBI_AUTH_TOKENS", "", "tokens", "bearer tokens, \"token:role,…\" or \"@/path/to/file\" (one token:role a line); roles metrics < read < write < admin; empty: no authentication (see README, Security)", func(c *config, v string) error {
		c.AuthTokens = nil
		if v == "" {
			return nil
		}
		spec := v
		if path, ok := strings.CutPrefix(v, "@"); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("cannot read the token file: %w", err)
			}
			spec = string(b)
		}
		toks, err := httpd.ParseTokens(spec)
		c.AuthTokens = toks
		return err
	}},
	{"tls-cert", "ZOMBI_TLS_CERT", "", "path", "PEM certificate (chain) file: serve HTTPS (with --tls-key)", func(c *config, v string) error {
		c.TLSCert = v
		return nil
	}},
	{"tls-key", "ZOMBI_TLS_KEY", "", "path", "PEM private key file of --tls-cert", func(c *config, v string) error {
		c.TLSKey = v
		if (c.TLSCert == "") != (v == "") {
			return errors.New("set both --tls-cert and --tls-key, or neither")
		}
		if v != "" {
			if _, err := tls.LoadX509KeyPair(c.TLSCert, v); err != nil {
				return fmt.Errorf("cannot load the TLS certificate and key: %w", err)
			}
		}
		return nil
	}},
	{"log-level", "ZOMBI_LOG_LEVEL", "info", "level", "debug, info, warn or error", func(c *config, v string) error {
		return c.LogLevel.UnmarshalText([]byte(v))
	}},
	{"log-format", "ZOMBI_LOG_FORMAT", "text", "format", "text or json", func(c *config, v string) error {
		if v != "text" && v != "json" {
			return errors.New("want text or json")
		}
		c.LogFormat = v
		return nil
	}},
}

// secretSettings are never printed, not even in an error.
var secretSettings = map[string]bool{"auth-tokens": true}

func intIn(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, errors.New("not an integer")
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("must be between %d and %d", lo, hi)
	}
	return n, nil
}

// loadConfig builds the configuration from defaults, then the environment,
// then flags (flags win). Every invalid value is reported, each with where
// it came from.
func loadConfig(fs *flag.FlagSet, args []string, getenv func(string) string) (config, error) {
	c, _, err := loadConfigSources(fs, args, getenv)
	return c, err
}

// settingSource is a setting's raw value and where it came from.
type settingSource struct{ value, from string }

// loadConfigSources is loadConfig that also returns every setting's raw
// value and source, by flag name (for --print-config).
func loadConfigSources(fs *flag.FlagSet, args []string, getenv func(string) string) (config, map[string]settingSource, error) {
	type source = settingSource
	vals := make(map[string]source, len(settings))
	for _, s := range settings {
		vals[s.Flag] = source{s.Default, "default"}
		if v, ok := lookupEnv(getenv, s.Env); ok {
			vals[s.Flag] = source{v, "env " + s.Env}
		}
	}
	for _, s := range settings {
		name := s.Flag
		fs.Func(name, "", func(v string) error {
			vals[name] = source{v, "flag --" + name}
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return config{}, vals, err
	}
	if fs.NArg() > 0 {
		return config{}, vals, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var c config
	var errs []error
	for _, s := range settings {
		v := vals[s.Flag]
		if err := s.set(&c, v.value); err != nil {
			shown := strconv.Quote(v.value)
			if isSecret(s) && !strings.HasPrefix(v.value, "@") {
				shown = "<redacted>" // never print a token
			}
			errs = append(errs, fmt.Errorf("invalid %s=%s (%s): %v", s.Flag, shown, v.from, err))
		}
	}
	return c, vals, errors.Join(errs...)
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	if getenv != nil {
		v := getenv(name)
		return v, v != ""
	}
	return os.LookupEnv(name)
}

// printServeUsage lists every setting with its env name and default.
func printServeUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: zombi serve [flags]\n\nRuns the HTTP server. Every setting is a flag and an environment variable;\nflags win over the environment. --print-config prints the values in effect\n(secrets masked) and exits; docs/configuration.md has the same table.\n\n")
	for _, s := range settings {
		fmt.Fprintf(w, "  --%s %s\n      %s\n      env %s, default %q\n", s.Flag, s.Kind, s.Usage, s.Env, s.Default)
	}
}

// engineOptions maps the configuration onto the engine's options.
func (c *config) engineOptions(log *slog.Logger) engine.Options {
	o := engine.Options{
		Dir:               c.DataDir,
		SegmentBytes:      c.SegmentBytes,
		FsyncInterval:     c.FsyncInterval,
		HotRetention:      c.HotRetention,
		MaxPartitions:     c.MaxPartitions,
		IdempotencyWindow: c.IdempotencyWindow,
		Logger:            log,
	}
	return o.WithFsync(c.Fsync)
}

// httpConfig maps the configuration onto the server's.
func (c *config) httpConfig(e *engine.Engine, log *slog.Logger) httpd.Config {
	return httpd.Config{
		Engine:            e,
		Logger:            log,
		MaxBodyBytes:      c.MaxBodyBytes,
		MaxInflightWrites: c.MaxInflightWrites,
		MaxConnections:    c.MaxConnections,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxBulkRecords:    c.MaxBulkRecords,
		Tokens:            c.AuthTokens,
		TLSCertFile:       c.TLSCert,
		TLSKeyFile:        c.TLSKey,
	}.WithMaxInflightBytes(c.MaxInflightBytes)
}
