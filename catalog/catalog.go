// Package catalog is Zombi's side of Apache Iceberg: it opens an iceberg-go
// catalog (SQL on SQLite by default, SQL on PostgreSQL, or REST), creates
// the namespace and the event tables on first use, commits data files that
// flush/ wrote itself, and keeps the flushed-offset watermarks of every
// partition in the snapshot summary so that they can be read back after a
// crash.
//
// # Watermarks
//
// Every commit writes, for every partition the table has ever committed,
//
//	zombi.watermark.<partition>       last offset committed to the table
//	zombi.high_watermark.<partition>  the engine's high watermark at that time
//
// into the new snapshot's summary (cumulative: partitions absent from a
// commit are carried forward from the parent snapshot). The current
// snapshot's summary is therefore the authority on what the table holds,
// and a commit is idempotent: Commit checks the watermark it would
// advance before every attempt, so a commit whose outcome was unknown is
// recognised on retry instead of being applied twice.
//
// # Locking
//
// Catalog.mu guards the table cache. Table.mu is the table's single
// committer lock: it is held for a whole Commit (reload, check, retry) and
// guards Table.tbl.
package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/apache/iceberg-go"
	icecat "github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"

	// FileIO for s3:// warehouses (metadata and manifests are written by
	// iceberg-go itself).
	_ "github.com/apache/iceberg-go/io/gocloud/s3"
)

var (
	// ErrConflict is returned by Commit when the table's committed
	// watermark of a partition is neither the range's start nor at or
	// beyond its end: someone else committed part of the range. Nothing
	// was committed; committing would duplicate events.
	ErrConflict = errors.New("catalog: watermark conflict")
	// ErrForeignOwner is returned for a commit to a partition whose
	// watermark another server committed (Mark.Owner): it counts that
	// server's offsets, not ours. Nothing was committed; trusting it
	// would mark our own events committed and delete them.
	ErrForeignOwner = errors.New("catalog: partition written by another server")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("catalog: closed")
)

// Summary property prefixes of the watermarks, and of the offsets a
// commit skipped (Range.SkippedTo): zombi.skipped.<p> = "<from>-<to>",
// in the summary of that commit's snapshot only.
const (
	WatermarkPrefix     = "zombi.watermark."
	HighWatermarkPrefix = "zombi.high_watermark."
	SkippedPrefix       = "zombi.skipped."
	// OwnerPrefix: zombi.owner.<p> names the server whose offsets the
	// watermark of partition p counts (Options.Owner).
	OwnerPrefix = "zombi.owner."
	// CheckPrefix: zombi.check.<p> fingerprints the event at the
	// watermark of partition p (Mark.Check).
	CheckPrefix = "zombi.check."
	// AdoptedPrefix: zombi.adopted.<p> = "<node>@<offset>" says that the
	// commit took partition p over from node, whose watermark stood at
	// offset (Range.Adopt), in the summary of that commit's snapshot only.
	AdoptedPrefix = "zombi.adopted."
)

// Options configures Open. A zero value means "use the default".
type Options struct {
	// DataDir holds the default SQLite catalog (DataDir/catalog.db) and
	// the default warehouse (file://DataDir/warehouse). Required unless
	// both URI and Warehouse are set.
	DataDir string
	// URI selects the catalog. Default "": the SQLite SQL catalog in
	// DataDir. "sqlite:PATH" (or "file:PATH"): a SQLite SQL catalog at
	// PATH. "postgres://…" or "postgresql://…": the SQL catalog on
	// PostgreSQL (pgx). "http://…" or "https://…": a REST catalog.
	URI string
	// Token is the bearer token of a REST catalog. Default none.
	Token string
	// Name is the catalog name stored by SQL catalogs. Default "zombi".
	Name string
	// Namespace holds the event tables. Default "zombi".
	Namespace string
	// Owner names this server: the identity of its data directory, whose
	// offsets its watermarks count. A commit records it as
	// the owner of the partitions it advances (Mark.Owner) and refuses a
	// partition that another owner advanced (ErrForeignOwner): offsets
	// are per server, so several servers may feed one table only with
	// partitions of their own. "" records no owner and checks none.
	Owner string
	// Warehouse is where tables are created: "file:///dir" or
	// "s3://bucket/prefix". Default file://DataDir/warehouse. A REST
	// catalog gets it as its warehouse only when set.
	Warehouse string
	// IOProps are iceberg-go FileIO properties (s3.endpoint, s3.region,
	// s3.access-key-id, s3.secret-access-key, …) passed to the catalog.
	IOProps iceberg.Properties
	// CommitAttempts bounds the attempts of one Commit. Default 10.
	CommitAttempts int
	// RetryInitial is the first backoff between commit attempts; it
	// doubles up to RetryMax, with jitter. Defaults 50 ms and 5 s.
	RetryInitial, RetryMax time.Duration
	// RetainSnapshots caps the snapshots a table keeps, whatever their
	// age: every snapshot (each with a summary naming every partition)
	// stays in the metadata file, which is rewritten by each commit, so
	// Commit expires the oldest once there are 10 % more (see
	// Table.ExpireSnapshots). Default 1000; negative: no cap.
	RetainSnapshots int
	// SnapshotMaxAge is how long a snapshot is kept for time travel
	// (ZOMBI_SNAPSHOT_RETAIN_HOURS) by Table.ExpireSnapshots. Default
	// 24 h.
	SnapshotMaxAge time.Duration
	// MinSnapshots is how many of the newest snapshots expiry always
	// keeps, whatever their age (ZOMBI_SNAPSHOT_RETAIN_MIN). Default 10.
	MinSnapshots int
	// Columns are the typed columns of the tables that have them
	// (ZOMBI_TABLE_SCHEMA), by table name: Table brings each table's
	// schema in line with them (columns.go). Default none: every table
	// has the event schema, payload as one binary column.
	Columns map[string]TableColumns
	// Logger receives retry reports. Default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Name == "" {
		o.Name = "zombi"
	}
	if o.Namespace == "" {
		o.Namespace = "zombi"
	}
	if o.Warehouse == "" && o.DataDir != "" && !isREST(o.URI) {
		abs, err := filepath.Abs(filepath.Join(o.DataDir, "warehouse"))
		if err == nil {
			o.Warehouse = (&url.URL{Scheme: "file", Path: abs}).String()
		}
	}
	if o.CommitAttempts == 0 {
		o.CommitAttempts = 10
	}
	if o.RetryInitial == 0 {
		o.RetryInitial = 50 * time.Millisecond
	}
	if o.RetryMax == 0 {
		o.RetryMax = 5 * time.Second
	}
	if o.RetainSnapshots == 0 {
		o.RetainSnapshots = 1000
	}
	if o.SnapshotMaxAge == 0 {
		o.SnapshotMaxAge = 24 * time.Hour
	}
	if o.MinSnapshots == 0 {
		o.MinSnapshots = 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// ValidOwner reports whether s can be an Options.Owner: 1 to 64 ASCII
// letters, digits, '.', '_' or '-' (it goes into data file names).
func ValidOwner(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Owner != "" && !ValidOwner(o.Owner) {
		errs = append(errs, fmt.Errorf("catalog: owner %q: want 1 to 64 letters, digits, '.', '_' or '-'", o.Owner))
	}
	if o.URI == "" && o.DataDir == "" {
		errs = append(errs, errors.New("catalog: data dir or catalog URI is required"))
	}
	if o.Warehouse == "" && !isREST(o.URI) {
		errs = append(errs, errors.New("catalog: warehouse is required"))
	}
	if o.Warehouse != "" {
		u, err := url.Parse(o.Warehouse)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("catalog: warehouse %q: %w", o.Warehouse, err))
		case u.Scheme == "s3" || u.Scheme == "s3a":
			if o.IOProps["s3.region"] == "" {
				errs = append(errs, errors.New("catalog: s3.region must be set for an s3:// warehouse"))
			}
		case u.Scheme != "file":
			errs = append(errs, fmt.Errorf("catalog: warehouse %q: want file:// or s3://", o.Warehouse))
		}
	}
	if o.CommitAttempts < 1 || o.RetryInitial <= 0 || o.RetryMax < o.RetryInitial {
		errs = append(errs, errors.New("catalog: commit attempts and retry delays must be positive"))
	}
	return errors.Join(errs...)
}

func isREST(uri string) bool {
	return strings.HasPrefix(uri, "http://") || strings.HasPrefix(uri, "https://")
}

// Catalog is an open Iceberg catalog with Zombi's event tables in one
// namespace. It is safe for concurrent use.
type Catalog struct {
	opts Options
	cat  icecat.Catalog
	db   *sql.DB // the SQL catalog's database; nil for REST
	kind string  // "sqlite", "postgres" or "rest"

	mu     sync.Mutex // guards tables and closed
	tables map[string]*Table
	closed bool
	nsOK   bool // the namespace is known to exist
}

// Open opens the catalog described by opts. It does not contact a REST
// catalog's tables or create anything until Table is called.
func Open(ctx context.Context, opts Options) (*Catalog, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	c := &Catalog{opts: opts, tables: make(map[string]*Table)}
	props := iceberg.Properties{}
	for k, v := range opts.IOProps {
		props[k] = v
	}
	if opts.Warehouse != "" {
		props["warehouse"] = opts.Warehouse
	}
	var err error
	switch uri := opts.URI; {
	case isREST(uri):
		c.kind = "rest"
		ropts := []rest.Option{rest.WithAdditionalProps(props)}
		if opts.Token != "" {
			ropts = append(ropts, rest.WithOAuthToken(opts.Token))
		}
		if opts.Warehouse != "" {
			ropts = append(ropts, rest.WithWarehouseLocation(opts.Warehouse))
		}
		c.cat, err = rest.NewCatalog(ctx, opts.Name, uri, ropts...)
	case strings.HasPrefix(uri, "postgres://") || strings.HasPrefix(uri, "postgresql://"):
		c.kind = "postgres"
		c.cat, c.db, err = openSQL(opts.Name, "pgx", uri, sqlcat.Postgres, props)
	default:
		c.kind = "sqlite"
		path := strings.TrimPrefix(strings.TrimPrefix(uri, "sqlite:"), "file:")
		if path == "" {
			if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
				return nil, fmt.Errorf("catalog: %w", err)
			}
			path = filepath.Join(opts.DataDir, "catalog.db")
		}
		c.cat, c.db, err = openSQL(opts.Name, "sqlite", sqliteDSN(path), sqlcat.SQLite, props)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s catalog: %w", c.kind, err)
	}
	if opts.Warehouse != "" {
		if u, _ := url.Parse(opts.Warehouse); u != nil && u.Scheme == "file" {
			if err := os.MkdirAll(u.Path, 0o755); err != nil {
				c.Close()
				return nil, fmt.Errorf("catalog: warehouse: %w", err)
			}
		}
	}
	return c, nil
}

// Kind reports the catalog type: "sqlite", "postgres" or "rest".
func (c *Catalog) Kind() string { return c.kind }

// Owner returns Options.Owner: this server's name in what it commits.
func (c *Catalog) Owner() string { return c.opts.Owner }

// Namespace returns the namespace that holds the event tables.
func (c *Catalog) Namespace() string { return c.opts.Namespace }

// Warehouse returns the warehouse location ("" for a REST catalog that
// chooses it).
func (c *Catalog) Warehouse() string { return c.opts.Warehouse }

// Iceberg returns the underlying iceberg-go catalog, for read-only views
// (the REST catalog view of httpd) and tests.
func (c *Catalog) Iceberg() icecat.Catalog { return c.cat }

// Close releases the catalog's connections.
func (c *Catalog) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.closed = true
	c.mu.Unlock()
	var errs []error
	if cl, ok := c.cat.(icecat.Closer); ok {
		errs = append(errs, cl.Close())
	}
	if c.db != nil {
		errs = append(errs, c.db.Close())
	}
	return errors.Join(errs...)
}

// Table returns the event table name, creating the namespace and the
// table on first use. Tables are cached; each has a single committer.
func (c *Catalog) Table(ctx context.Context, name string) (*Table, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if t := c.tables[name]; t != nil {
		return t, nil
	}
	ns := icecat.ToIdentifier(c.opts.Namespace)
	if !c.nsOK {
		err := c.cat.CreateNamespace(ctx, ns, nil)
		if err != nil && !errors.Is(err, icecat.ErrNamespaceAlreadyExists) {
			return nil, fmt.Errorf("catalog: create namespace %s: %w", c.opts.Namespace, err)
		}
		c.nsOK = true
	}
	ident := icecat.ToIdentifier(c.opts.Namespace, name)
	tbl, err := c.cat.LoadTable(ctx, ident)
	created := false
	if errors.Is(err, icecat.ErrNoSuchTable) {
		tbl, err = c.createTable(ctx, ident)
		created = err == nil
		if errors.Is(err, icecat.ErrTableAlreadyExists) { // lost a race with another node
			tbl, err = c.cat.LoadTable(ctx, ident)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: table %s: %w", name, err)
	}
	t := &Table{c: c, name: name, ident: ident, tbl: tbl}
	if err := t.ensureColumnsLocked(ctx, created); err != nil {
		return nil, err
	}
	c.tables[name] = t
	return t, nil
}

func (c *Catalog) createTable(ctx context.Context, ident table.Identifier) (*table.Table, error) {
	spec := PartitionSpec()
	order, err := SortOrder()
	if err != nil {
		return nil, err
	}
	return c.cat.CreateTable(ctx, ident, Schema(),
		icecat.WithPartitionSpec(&spec),
		icecat.WithSortOrder(order),
		icecat.WithProperties(iceberg.Properties{
			"format-version":                  "2",
			"write.format.default":            "parquet",
			"write.parquet.compression-codec": "zstd",
		}))
}

// backoff returns the wait before retry attempt n (1-based): RetryInitial
// doubled per attempt, capped at RetryMax, with ±25 % jitter.
func backoff(n int, initial, maxWait time.Duration) time.Duration {
	d := initial
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	return d - d/4 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
