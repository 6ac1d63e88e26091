package flush

import (
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// row is one event as a Parquet row. The field order and the id(N) tags
// are the Iceberg schema of catalog.Schema (field IDs 1..8): readers that
// resolve columns by field ID (Iceberg's rule) depend on them. Required
// Iceberg fields are required Parquet columns; idempotency_key is
// optional, nil for null. (It is a *string because parquet-go v0.32.0
// writes some zero values of an optional non-pointer string as "" instead
// of null; TestOptionalKeyKeepsNulls pins the behaviour we rely on.)
type row struct {
	Sequence       int64   `parquet:"sequence,id(1),delta"`
	Topic          string  `parquet:"topic,id(2),dict"`
	Partition      int32   `parquet:"partition,id(3),dict"`
	Payload        []byte  `parquet:"payload,id(4)"`
	TimestampMs    int64   `parquet:"timestamp_ms,id(5),delta"`
	IdempotencyKey *string `parquet:"idempotency_key,id(6),optional"`
	EventDate      int32   `parquet:"event_date,id(7),date,dict"`
	EventHour      int32   `parquet:"event_hour,id(8),dict"`
}

// rowsPerRowGroup bounds a row group, so that the writer's buffered pages
// stay a few MiB whatever the file size.
const rowsPerRowGroup = 256 << 10

// parquetWriter encodes rows into one file at a time. Reset points the
// parquet-go writer at the next file, so its column buffers stay warm
// (memory this VM has not touched recently is slow to fault in).
type parquetWriter struct {
	w *parquet.GenericWriter[row]
}

func newParquetWriter(level zstd.Level) *parquetWriter {
	cfg, err := parquet.NewWriterConfig(
		parquet.Compression(&zstd.Codec{Level: level, Concurrency: 1}),
		parquet.MaxRowsPerRowGroup(rowsPerRowGroup),
		parquet.PageBufferSize(1<<20),
		parquet.WriteBufferSize(256<<10),
		// Min/max of the payload (opaque event bytes) serve no query and
		// cost a comparison of every payload: no page statistics and no
		// column-index bounds for it (2.5 % of BenchmarkEncode's CPU
		// profile, in byteArrayPage.Bounds). Iceberg's column bounds come
		// from catalog.DataFile, not from these.
		parquet.SkipPageStatistics("payload"),
		parquet.SkipPageBounds("payload"),
		parquet.CreatedBy("zombi", "dev", ""),
	)
	if err != nil {
		panic(fmt.Sprintf("BUG: parquet writer config: %v", err))
	}
	return &parquetWriter{w: parquet.NewGenericWriter[row](io.Discard, cfg)}
}

// begin starts a file written to out.
func (pw *parquetWriter) begin(out io.Writer) { pw.w.Reset(out) }

// writeRowGroup writes rows as one or more row groups of the file.
func (pw *parquetWriter) writeRowGroup(rows []row) error {
	for len(rows) > 0 {
		n := min(len(rows), 64<<10)
		if _, err := pw.w.Write(rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return pw.w.Flush()
}

// end writes the footer.
func (pw *parquetWriter) end() error { return pw.w.Close() }

// discard drops a file in progress.
func (pw *parquetWriter) discard() { pw.w.Reset(io.Discard) }

// encode writes rows as one complete Parquet file to out.
func (pw *parquetWriter) encode(out io.Writer, rows []row) error {
	pw.begin(out)
	if err := pw.writeRowGroup(rows); err != nil {
		pw.discard()
		return err
	}
	return pw.end()
}
