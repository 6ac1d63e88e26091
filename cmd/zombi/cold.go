package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/flush"
	"github.com/zombihq/zombi/httpd"
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
}

// coldTier is the running cold tier of `zombi serve`.
type coldTier struct {
	cat  *catalog.Catalog
	f    *flush.Flusher
	tier *httpd.IcebergTier
}

// openCold opens the catalog and the object store and creates the
// flusher (not started). Nothing is contacted but the catalog's database
// (SQLite or PostgreSQL) or a REST catalog's /v1/config.
func openCold(ctx context.Context, c *config, e *engine.Engine, log *slog.Logger) (*coldTier, error) {
	cc := &c.Cold
	var store flush.Store
	var ioProps map[string]string
	warehouse := ""
	if cc.S3Bucket != "" {
		s3, err := flush.NewS3Store(flush.S3Options{
			Bucket: cc.S3Bucket, Endpoint: cc.S3Endpoint, Region: cc.S3Region,
			AccessKey: cc.AccessKey, SecretKey: cc.SecretKey, SessionToken: cc.SessionToken,
			MaxConcurrentUploads: cc.MaxUploads,
		})
		if err != nil {
			return nil, err
		}
		store, ioProps = s3, s3.CatalogProps()
		warehouse = "s3://" + cc.S3Bucket
		if cc.StoragePath != "" {
			warehouse += "/" + cc.StoragePath
		}
	}
	cat, err := catalog.Open(ctx, catalog.Options{
		DataDir: c.DataDir, URI: cc.CatalogURL, Token: cc.CatalogToken, Namespace: cc.Namespace,
		Warehouse: warehouse, IOProps: ioProps, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	hotMax := cc.HotMaxBytes
	if hotMax < 0 {
		if hotMax, err = flush.DefaultHotMaxBytes(c.DataDir); err != nil {
			cat.Close()
			return nil, err
		}
	}
	basePath := "" // the warehouse prefix in the bucket
	if cc.S3Bucket != "" {
		basePath = cc.StoragePath
	}
	tier := httpd.NewIcebergTier(cat, e, cc.S3Bucket, basePath)
	f, err := flush.New(flush.Options{
		Engine: e, Catalog: cat, Store: store,
		Interval: cc.FlushInterval, TargetFileBytes: cc.TargetFileBytes, HotMaxBytes: hotMax,
		MaxPendingFiles: cc.MaxUploads, UploadAttempts: cc.UploadAttempts,
		RetryInitial: cc.RetryInitial, RetryMax: cc.RetryMax,
		OnFlush: tier.ObserveFlush, Logger: log,
	})
	if err != nil {
		cat.Close()
		return nil, err
	}
	tier.Attach(f)
	wh := cat.Warehouse()
	if wh == "" {
		wh = "(chosen by the REST catalog)"
	}
	log.Info("cold tier: Iceberg", "catalog", cat.Kind(), "catalog_url", redactURL(cc.CatalogURL),
		"namespace", cat.Namespace(), "warehouse", wh, "s3_endpoint", cc.S3Endpoint, "s3_region", cc.S3Region,
		"s3_static_credentials", cc.AccessKey != "", // never the keys themselves
		"flush_interval", cc.FlushInterval, "target_file_bytes", cc.TargetFileBytes, "hot_max_bytes", hotMax)
	return &coldTier{cat: cat, f: f, tier: tier}, nil
}

// httpConfig plugs the cold tier into the server's configuration.
func (ct *coldTier) httpConfig(hc *httpd.Config) {
	hc.Cold = ct.tier
	hc.Catalog = httpd.NewCatalogView(ct.cat)
}

// close flushes what it can within timeout (acked events are safe in the
// hot tier either way and are flushed after the restart), then stops the
// flusher. The engine is closed after it, and the catalog last
// (closeCatalog).
func (ct *coldTier) close(log *slog.Logger, timeout time.Duration) error {
	if timeout > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		start := time.Now()
		err := ct.f.FlushAll(ctx)
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
	if err := ct.f.Close(); err != nil {
		return fmt.Errorf("stop the flusher: %w", err)
	}
	return nil
}

func (ct *coldTier) closeCatalog() error { return ct.cat.Close() }

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
