package httpd

import "context"

// ColdTier is what the HTTP API needs of the cold tier (the flush and
// catalog packages). Config.Cold is nil until one is wired in.
type ColdTier interface {
	// Metadata describes where table lives in the cold tier.
	Metadata(ctx context.Context, table string) (TableMetadata, error)
	// Flush flushes the table's hot data to the cold tier and commits it.
	Flush(ctx context.Context, table string) (AdminResult, error)
	// Compact rewrites the table's small files.
	Compact(ctx context.Context, table string) (AdminResult, error)
	// Ready returns nil when the cold tier can take flushes; it feeds
	// /health/ready.
	Ready(ctx context.Context) error
}

// TableMetadata is the body of GET /tables/{t}/metadata. Empty strings are
// left out of the response.
type TableMetadata struct {
	StorageType      string // e.g. "iceberg"; "hot_only" without a cold tier
	IcebergEnabled   bool
	MetadataLocation string
	Bucket           string
	BasePath         string
}

// AdminResult is the body of a flush or compact: {"status","message"}.
type AdminResult struct {
	Status  string
	Message string
}
