package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/zombihq/zombi/columns"
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
	NoRecycle         bool
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
	Cold              coldConfig    // the cold tier (cold.go)
	Cluster           clusterConfig // several nodes (cluster.go)
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
	{"segment-recycle", "ZOMBI_SEGMENT_RECYCLE", "true", "bool", "write a partition's next segment over the file of a flushed one instead of a new file (README, The hot tier); false for comparing (make bench-recycle)", func(c *config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		c.NoRecycle = !b
		return nil
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
	{"iceberg-enabled", "ZOMBI_ICEBERG_ENABLED", "true", "bool", "flush sealed segments to Parquet and commit them to Iceberg; false serves the hot tier only", func(c *config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		c.Cold.Enabled = b
		return nil
	}},
	{"flush-interval-secs", "ZOMBI_FLUSH_INTERVAL_SECS", "30", "s", "seal and flush active segments this often: events are visible in Iceberg within about this + 1 s + the flush time", func(c *config, v string) error {
		n, err := intIn(v, 1, 86400)
		c.Cold.FlushInterval = time.Duration(n) * time.Second
		return err
	}},
	{"target-file-size-mb", "ZOMBI_TARGET_FILE_SIZE_MB", "128", "MiB", "largest Parquet data file, in event bytes before compression (one file per partition-hour up to this)", func(c *config, v string) error {
		n, err := intIn(v, 1, 16384)
		c.Cold.TargetFileBytes = int64(n) << 20
		return err
	}},
	{"compacted-file-size-mb", "ZOMBI_COMPACTED_FILE_SIZE_MB", "512", "MiB", "size of the Parquet files compaction writes; data files under half of it are compacted", func(c *config, v string) error {
		n, err := intIn(v, 1, 65536)
		c.Cold.CompactedFileBytes = int64(n) << 20
		return err
	}},
	{"auto-compaction", "ZOMBI_AUTO_COMPACTION", "true", "bool", "compact in the background every partition-hour with more than --compaction-min-files small files; false: only POST /tables/{t}/compact", func(c *config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		c.Cold.AutoCompaction = b
		return nil
	}},
	{"compaction-min-files", "ZOMBI_COMPACTION_MIN_FILES", "8", "int", "background compaction of a partition-hour starts once it holds more than this many small files", func(c *config, v string) error {
		n, err := intIn(v, 1, 1<<20)
		c.Cold.CompactMinFiles = n
		return err
	}},
	{"compaction-interval-secs", "ZOMBI_COMPACTION_INTERVAL_SECS", "300", "s", "how often the background looks for partition-hours to compact", func(c *config, v string) error {
		n, err := intIn(v, 1, 86400*7)
		c.Cold.CompactInterval = time.Duration(n) * time.Second
		return err
	}},
	{"snapshot-retain-hours", "ZOMBI_SNAPSHOT_RETAIN_HOURS", "24", "h", "Iceberg snapshots older than this are expired (time travel reaches this far back); files only expired snapshots reference, such as compacted small files, are deleted with them. At most 1000 snapshots are kept whatever their age", func(c *config, v string) error {
		n, err := intIn(v, 1, 24*3650)
		c.Cold.SnapshotRetain = time.Duration(n) * time.Hour
		return err
	}},
	{"snapshot-retain-min", "ZOMBI_SNAPSHOT_RETAIN_MIN", "10", "int", "snapshot expiry always keeps at least this many of the newest snapshots", func(c *config, v string) error {
		n, err := intIn(v, 1, 1000)
		c.Cold.SnapshotMin = n
		return err
	}},
	{"orphan-min-age-hours", "ZOMBI_ORPHAN_MIN_AGE_HOURS", "24", "h", "orphan cleanup deletes files under a table location that no snapshot or metadata file references once they are this old (longer than any upload-to-commit)", func(c *config, v string) error {
		n, err := intIn(v, 1, 24*3650)
		c.Cold.OrphanMinAge = time.Duration(n) * time.Hour
		return err
	}},
	{"maintenance-interval-secs", "ZOMBI_MAINTENANCE_INTERVAL_SECS", "3600", "s", "how often snapshot expiry and orphan cleanup run in the background; 0: only on POST /tables/{t}/maintenance", func(c *config, v string) error {
		n, err := intIn(v, 0, 86400*7)
		c.Cold.MaintainInterval = time.Duration(n) * time.Second
		return err
	}},
	{"hot-max-gb", "ZOMBI_HOT_MAX_GB", "", "GiB", "hot-tier disk budget: beyond it writes answer 503 until the cold tier catches up (fractions allowed; empty: 80 % of the free space of the data dir at start; 0: no budget)", func(c *config, v string) error {
		c.Cold.HotMaxBytes = -1 // auto
		if v == "" {
			return nil
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 || f > 1<<20 {
			return errors.New("want a number of GiB between 0 and 1048576")
		}
		c.Cold.HotMaxBytes = int64(f * (1 << 30))
		return nil
	}},
	{"max-concurrent-s3-uploads", "ZOMBI_MAX_CONCURRENT_S3_UPLOADS", "4", "int", "data files uploaded at once (each holds one 8 MiB part buffer)", func(c *config, v string) error {
		n, err := intIn(v, 1, 256)
		c.Cold.MaxUploads = n
		return err
	}},
	{"s3-max-retries", "ZOMBI_S3_MAX_RETRIES", "5", "int", "retries of a failed data-file upload before the flush fails (and is retried later)", func(c *config, v string) error {
		n, err := intIn(v, 0, 100)
		c.Cold.UploadAttempts = n + 1
		return err
	}},
	{"s3-retry-initial-ms", "ZOMBI_S3_RETRY_INITIAL_MS", "200", "ms", "first backoff after a failed upload or flush; doubles up to --s3-retry-max-ms", func(c *config, v string) error {
		n, err := intIn(v, 1, 3_600_000)
		c.Cold.RetryInitial = time.Duration(n) * time.Millisecond
		return err
	}},
	{"s3-retry-max-ms", "ZOMBI_S3_RETRY_MAX_MS", "10000", "ms", "longest backoff between upload or flush attempts", func(c *config, v string) error {
		n, err := intIn(v, 1, 3_600_000)
		c.Cold.RetryMax = time.Duration(n) * time.Millisecond
		if err == nil && c.Cold.RetryMax < c.Cold.RetryInitial {
			return errors.New("must not be below --s3-retry-initial-ms")
		}
		return err
	}},
	{"s3-bucket", "ZOMBI_S3_BUCKET", "", "string", "S3 or MinIO bucket of the warehouse; empty: a local warehouse in <data-dir>/warehouse", func(c *config, v string) error {
		c.Cold.S3Bucket = strings.TrimSpace(v)
		return nil
	}},
	{"s3-endpoint", "ZOMBI_S3_ENDPOINT", "", "url", "S3 endpoint, e.g. http://127.0.0.1:9000 for MinIO; empty: AWS S3", func(c *config, v string) error {
		c.Cold.S3Endpoint = strings.TrimSpace(v)
		if c.Cold.S3Endpoint != "" && c.Cold.S3Bucket == "" {
			return errors.New("needs --s3-bucket (ZOMBI_S3_BUCKET)")
		}
		return nil
	}},
	{"s3-region", "ZOMBI_S3_REGION", "us-east-1", "string", "region of the bucket", func(c *config, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		c.Cold.S3Region = v
		return nil
	}},
	{"storage-path", "ZOMBI_STORAGE_PATH", "warehouse", "string", "prefix of the warehouse in the bucket: tables go to s3://<bucket>/<path>/<namespace>.db/<table>", func(c *config, v string) error {
		c.Cold.StoragePath = strings.Trim(strings.TrimSpace(v), "/")
		return nil
	}},
	{"aws-access-key-id", "AWS_ACCESS_KEY_ID", "", "string", "S3 access key; empty: the instance role (prefer the environment to the flag)", func(c *config, v string) error {
		c.Cold.AccessKey = v
		return nil
	}},
	{"aws-secret-access-key", "AWS_SECRET_ACCESS_KEY", "", "secret", "S3 secret key (prefer the environment to the flag)", func(c *config, v string) error {
		c.Cold.SecretKey = v
		if (c.Cold.AccessKey == "") != (v == "") {
			return errors.New("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither")
		}
		return nil
	}},
	{"aws-session-token", "AWS_SESSION_TOKEN", "", "secret", "S3 session token of temporary credentials", func(c *config, v string) error {
		c.Cold.SessionToken = v
		return nil
	}},
	{"catalog-url", "ZOMBI_CATALOG_URL", "", "url", "Iceberg catalog: empty: SQLite in <data-dir>/catalog.db; http(s)://…: a REST catalog; postgres://…: a SQL catalog on PostgreSQL; sqlite:PATH", func(c *config, v string) error {
		v = strings.TrimSpace(v)
		switch {
		case v == "", strings.HasPrefix(v, "http://"), strings.HasPrefix(v, "https://"),
			strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"),
			strings.HasPrefix(v, "sqlite:"), strings.HasPrefix(v, "file:"):
			c.Cold.CatalogURL = v
			return nil
		}
		return errors.New("want http(s)://, postgres://, sqlite:PATH or empty")
	}},
	{"catalog-token", "ZOMBI_CATALOG_TOKEN", "", "secret", "bearer token of the REST catalog", func(c *config, v string) error {
		c.Cold.CatalogToken = v
		return nil
	}},
	{"catalog-namespace", "ZOMBI_CATALOG_NAMESPACE", "zombi", "string", "Iceberg namespace of the event tables", func(c *config, v string) error {
		if v == "" || strings.ContainsAny(v, "/\x1f") {
			return errors.New("must be a non-empty name without /")
		}
		c.Cold.Namespace = v
		return nil
	}},
	{"cluster", "ZOMBI_CLUSTER", "auto", "mode", "run as a node of a cluster, claiming partitions in the PostgreSQL catalog: auto (on with a postgres:// catalog URL), on or off (README, Running several nodes)", func(c *config, v string) error {
		m, err := parseClusterMode(v)
		c.Cluster.Mode = m
		return err
	}},
	{"advertise-addr", "ZOMBI_ADVERTISE_ADDR", "", "host:port", "cluster: the address clients reach this node at, given to them when they write another node's partition (default: the listen address, with this host's name for 0.0.0.0)", func(c *config, v string) error {
		if v != "" {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return errors.New("want host:port")
			}
		}
		c.Cluster.Advertise = v
		return nil
	}},
	{"node-partitions", "ZOMBI_NODE_PARTITIONS", "1", "int", "cluster: partitions of each table a node claims for the writes that name none", func(c *config, v string) error {
		n, err := intIn(v, 1, 64)
		c.Cluster.Partitions = n
		return err
	}},
	{"lease-secs", "ZOMBI_LEASE_SECS", "15", "int", "cluster: a node's lease; it renews it every third of that, and takes no writes once it cannot show it holds it", func(c *config, v string) error {
		n, err := intIn(v, 1, 3600)
		c.Cluster.LeaseTTL = time.Duration(n) * time.Second
		return err
	}},
	{"table-schema", "ZOMBI_TABLE_SCHEMA", "", "json", `typed columns extracted from JSON payloads at flush time, as the Rust Zombi reads them: [{"table":"clicks","payload_format":"json","fields":[{"name":"user_id","json_path":"user.id","data_type":"Utf8","nullable":true}],"preserve_overflow":true}] (README, Typed columns)`, func(c *config, v string) error {
		c.Cold.TableSchema = nil
		if strings.TrimSpace(v) == "" {
			return nil
		}
		t, err := columns.Parse([]byte(v))
		c.Cold.TableSchema = t
		return err
	}},
	{"table-schema-file", "ZOMBI_TABLE_SCHEMA_FILE", "", "path", "a file holding the JSON of --table-schema (set one of the two)", func(c *config, v string) error {
		if v == "" {
			return nil
		}
		if c.Cold.TableSchema != nil {
			return errors.New("set --table-schema or --table-schema-file, not both")
		}
		b, err := os.ReadFile(v)
		if err != nil {
			return fmt.Errorf("cannot read the table schema file: %w", err)
		}
		t, err := columns.Parse(b)
		c.Cold.TableSchema = t
		return err
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
var secretSettings = map[string]bool{"auth-tokens": true, "aws-secret-access-key": true, "aws-session-token": true, "catalog-token": true, "catalog-url": true}

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
	if len(errs) == 0 {
		if err := c.validateCluster(); err != nil {
			errs = append(errs, err)
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
		NoRecycle:         c.NoRecycle,
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
