package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/columns"
	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/flush"
	"github.com/zombihq/zombi/httpd"
	"github.com/zombihq/zombi/vfs"
)

// coldConfig configures the cold tier: flush → Parquet → object store →
// Iceberg (the rows after iceberg-enabled in the settings table).
type coldConfig struct {
	Enabled         bool
	FlushInterval   time.Duration
	TargetFileBytes int64
	HotMaxBytes     int64 // -1: 80 % of the free space at start; 0: no budget
	MaxUploads      int
	UploadAttempts  int
	RetryInitial    time.Duration
	RetryMax        time.Duration
	S3Bucket        string // empty: local warehouse
	S3Endpoint      string
	S3Region        string
	StoragePath     string
	AccessKey       string
	SecretKey       string // secret
	SessionToken    string // secret
	CatalogURL      string // may hold a password: log redactURL(CatalogURL)
	CatalogToken    string // secret
	Namespace       string
	TableSchema     []columns.Table // typed columns (ZOMBI_TABLE_SCHEMA)
	// Table maintenance (flush.MaintainOptions, catalog retention).
	CompactedFileBytes int64
	AutoCompaction     bool
	CompactMinFiles    int
	CompactInterval    time.Duration
	SnapshotRetain     time.Duration
	SnapshotMin        int
	OrphanMinAge       time.Duration
	MaintainInterval   time.Duration // 0: on demand only
}

// coldTier is the running cold tier of `zombi serve`. The catalog may be
// unreachable when the server starts (a REST catalog or PostgreSQL that
// is down): the server then serves the hot tier and connects in the
// background, so a restart during an outage of the cold tier loses no
// ingest.
type coldTier struct {
	tier *httpd.IcebergTier
	log  *slog.Logger
	stop chan struct{} // closed by close: stop connecting
	done chan struct{} // closed when the connecting goroutine is gone

	// pl, in a cluster, is released from the partitions the final
	// flush committed wholly (close).
	pl *placement

	mu  sync.Mutex // guards cat, f and m, set once connected
	cat *catalog.Catalog
	f   *flush.Flusher
	m   *flush.Maintainer
}

// flusher returns the flusher, nil until the catalog is connected.
func (ct *coldTier) flusher() *flush.Flusher {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.f
}

// openCold prepares the cold tier and connects it: at once when the
// catalog answers (within 30 s), otherwise in the background with
// backoff. Only a configuration error fails.
func openCold(c *config, e *engine.Engine, pl *placement, log *slog.Logger) (*coldTier, error) {
	cc := &c.Cold
	copts, store, basePath, err := catalogOptions(c, log)
	if err != nil {
		return nil, err
	}
	owner, err := nodeID(c)
	if err != nil {
		return nil, err
	}
	copts.Owner = owner
	_, flushCols := typedColumns(cc.TableSchema)
	hotMax := cc.HotMaxBytes
	if hotMax < 0 {
		var err error
		if hotMax, err = flush.DefaultHotMaxBytes(c.DataDir); err != nil {
			return nil, err
		}
	}
	ct := &coldTier{tier: httpd.NewIcebergTier(e, cc.S3Bucket, basePath), log: log,
		stop: make(chan struct{}), done: make(chan struct{})}
	fopts := flush.Options{
		Engine: e, Store: store,
		Interval: cc.FlushInterval, TargetFileBytes: cc.TargetFileBytes, HotMaxBytes: hotMax,
		MaxPendingFiles: cc.MaxUploads, UploadAttempts: cc.UploadAttempts,
		RetryInitial: cc.RetryInitial, RetryMax: cc.RetryMax,
		OnFlush: ct.tier.ObserveFlush, Logger: log, Columns: flushCols,
	}
	if pl != nil {
		fopts.Owns = pl.owns
		ct.pl = pl
	}
	connect := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		go func() { // close interrupts an attempt
			select {
			case <-ct.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		cat, err := catalog.Open(ctx, copts)
		if err != nil {
			return err
		}
		// The schema of every existing table with typed columns is
		// brought in line now, so that a type change Iceberg does not
		// allow stops the start-up, naming the column.
		if err := evolveTables(ctx, cat, cc.TableSchema); err != nil {
			cat.Close()
			return err
		}
		o := fopts
		o.Catalog = cat
		f, err := flush.New(o)
		if err != nil {
			cat.Close()
			return err
		}
		interval := cc.MaintainInterval
		if interval == 0 {
			interval = -1 // on demand only
		}
		m, err := flush.NewMaintainer(f, flush.MaintainOptions{
			CompactedFileBytes: cc.CompactedFileBytes, AutoCompactFiles: cc.CompactMinFiles, NoAutoCompact: !cc.AutoCompaction,
			CompactInterval: cc.CompactInterval, Interval: interval, OrphanMinAge: cc.OrphanMinAge,
			OnCompact: ct.tier.ObserveCompaction, OnMaintain: ct.tier.ObserveMaintenance, Logger: log,
		})
		if err != nil {
			cat.Close()
			return err
		}
		ct.mu.Lock()
		ct.cat, ct.f, ct.m = cat, f, m
		ct.mu.Unlock()
		ct.tier.Attach(f, cat)
		ct.tier.AttachMaintainer(m)
		f.Start()
		m.Start()
		wh := cat.Warehouse()
		if wh == "" {
			wh = "(chosen by the REST catalog)"
		}
		log.Info("cold tier: Iceberg", "catalog", cat.Kind(), "catalog_url", redactURL(cc.CatalogURL),
			"namespace", cat.Namespace(), "warehouse", wh, "s3_endpoint", cc.S3Endpoint, "s3_region", cc.S3Region,
			"s3_static_credentials", cc.AccessKey != "", // never the keys themselves
			"flush_interval", cc.FlushInterval, "target_file_bytes", cc.TargetFileBytes, "hot_max_bytes", hotMax,
			"auto_compaction", cc.AutoCompaction, "compacted_file_bytes", cc.CompactedFileBytes,
			"snapshot_retain", cc.SnapshotRetain, "maintenance_interval", cc.MaintainInterval)
		return nil
	}
	err = connect()
	if err == nil {
		close(ct.done)
		return ct, nil
	}
	if errors.Is(err, catalog.ErrSchemaConflict) {
		return nil, err
	}
	log.Error("cannot open the Iceberg catalog; serving the hot tier and retrying in the background", "err", err)
	ct.tier.SetUnavailable(err)
	go func() {
		defer close(ct.done)
		for attempt := 1; ; attempt++ {
			d := min(cc.RetryInitial<<min(attempt, 20), max(cc.RetryMax, 30*time.Second))
			select {
			case <-ct.stop:
				return
			case <-time.After(d):
			}
			err := connect()
			if err == nil {
				return
			}
			ct.tier.SetUnavailable(err)
			log.Warn("cannot open the Iceberg catalog; retrying", "attempt", attempt, "retry_in", d, "err", err)
		}
	}()
	return ct, nil
}

// catalogOptions returns the catalog options of the configuration (but
// Owner), the object store of the data files (nil: the local warehouse)
// and the data files' base path in the bucket.
func catalogOptions(c *config, log *slog.Logger) (catalog.Options, flush.Store, string, error) {
	cc := &c.Cold
	var store flush.Store
	var ioProps map[string]string
	warehouse, basePath := "", ""
	if cc.S3Bucket != "" {
		s3, err := flush.NewS3Store(flush.S3Options{
			Bucket: cc.S3Bucket, Endpoint: cc.S3Endpoint, Region: cc.S3Region,
			AccessKey: cc.AccessKey, SecretKey: cc.SecretKey, SessionToken: cc.SessionToken,
			MaxConcurrentUploads: cc.MaxUploads,
		})
		if err != nil {
			return catalog.Options{}, nil, "", err
		}
		store, ioProps = s3, s3.CatalogProps()
		warehouse, basePath = "s3://"+cc.S3Bucket, cc.StoragePath
		if cc.StoragePath != "" {
			warehouse += "/" + cc.StoragePath
		}
	}
	tableCols, _ := typedColumns(cc.TableSchema)
	copts := catalog.Options{
		Columns: tableCols,
		DataDir: c.DataDir, URI: cc.CatalogURL, Token: cc.CatalogToken, Namespace: cc.Namespace,
		Warehouse: warehouse, IOProps: ioProps, Logger: log,
		SnapshotMaxAge: cc.SnapshotRetain, MinSnapshots: cc.SnapshotMin,
	}
	check := copts
	check.EnsureDefaults()
	if err := check.Validate(); err != nil {
		return catalog.Options{}, nil, "", err
	}
	return copts, store, basePath, nil
}

// typedColumns maps the typed-column configuration onto the catalog's
// (the tables' schemas) and the flusher's (the extraction).
func typedColumns(tables []columns.Table) (map[string]catalog.TableColumns, map[string]columns.Table) {
	if len(tables) == 0 {
		return nil, nil
	}
	cat, fl := map[string]catalog.TableColumns{}, map[string]columns.Table{}
	for _, t := range tables {
		tc := catalog.TableColumns{Overflow: t.PreserveOverflow}
		for _, f := range t.Fields {
			tc.Columns = append(tc.Columns, catalog.Column{Name: f.Name, Type: f.Type.Iceberg(), Required: !f.Nullable})
		}
		cat[t.Table], fl[t.Table] = tc, t
	}
	return cat, fl
}

// evolveTables loads every table of tables that exists in the catalog,
// which brings its schema in line with its typed columns.
func evolveTables(ctx context.Context, cat *catalog.Catalog, tables []columns.Table) error {
	if len(tables) == 0 {
		return nil
	}
	names, err := cat.TableNames(ctx)
	if err != nil && !errors.Is(err, catalog.ErrNoSuchNamespace) {
		return err
	}
	var errs []error
	for _, t := range tables {
		if slices.Contains(names, t.Table) {
			if _, err := cat.Table(ctx, t.Table); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// httpConfig plugs the cold tier into the server's configuration.
func (ct *coldTier) httpConfig(hc *httpd.Config) {
	hc.Cold = ct.tier
	hc.Catalog = ct.tier.CatalogHandler()
}

// close stops connecting, flushes what it can within timeout (acked
// events are safe in the hot tier either way and are flushed after the
// restart), then stops the flusher. The engine is closed after it, and
// the catalog last (closeCatalog).
func (ct *coldTier) close(log *slog.Logger, timeout time.Duration) error {
	close(ct.stop)
	<-ct.done
	ct.mu.Lock()
	f, m := ct.f, ct.m
	ct.mu.Unlock()
	if f == nil {
		return nil
	}
	// A compaction cancelled before its commit leaves only orphans.
	if err := m.Close(); err != nil {
		log.Warn("stop table maintenance", "err", err)
	}
	if timeout > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		start := time.Now()
		err := f.FlushAll(ctx)
		cancel()
		switch {
		case err == nil:
			log.Info("final flush done", "took", time.Since(start).Round(time.Millisecond))
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			log.Warn("final flush did not finish in time; the rest is flushed after the restart", "timeout", timeout)
		default:
			log.Warn("final flush failed; the data stays in the hot tier and is flushed after the restart", "err", err)
		}
	}
	if ct.pl != nil && timeout > 0 {
		// Whatever the final flush's outcome: release checks each
		// partition against its committed watermark.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		ct.pl.release(ctx, f)
		cancel()
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("stop the flusher: %w", err)
	}
	return nil
}

func (ct *coldTier) closeCatalog() error {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.cat == nil {
		return nil
	}
	return ct.cat.Close()
}

// redactURL drops the password (and any query, which may hold a token)
// of a catalog URL, for logs.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "<unparseable>"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	if u.RawQuery != "" {
		u.RawQuery = "<redacted>"
	}
	return u.String()
}

// nodeIDFile holds the identity of a data directory.
const nodeIDFile = "node-id"

// nodeID returns this server's name in what it commits to Iceberg: the
// identity of its data directory, kept in <data-dir>/node-id and made (16
// random hex digits, written with vfs.WriteAtomic) on the first start. It
// is not a setting on purpose: the watermarks it owns count the offsets
// of this data directory, which a new one (a replacement server, a wiped
// disk) numbers from 1 again, so a new directory must never pass for an
// old one.
func nodeID(c *config) (string, error) {
	path := filepath.Join(c.DataDir, nodeIDFile)
	if b, err := os.ReadFile(path); err == nil {
		id := strings.TrimSpace(string(b))
		if !catalog.ValidOwner(id) {
			return "", fmt.Errorf("%s: %q is not a node id (1 to 64 letters, digits, '.', '_' or '-'): restore it from a backup of this data directory", path, id)
		}
		return id, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node id: %w", err)
	}
	id := fmt.Sprintf("%016x", rand.Uint64())
	if err := vfs.WriteAtomic(vfs.Default, path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return id, nil
}
