package flush

import (
	"fmt"
	"io"
	"sync"

	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
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
	// The options go to NewGenericWriter as they are: a *WriterConfig
	// passed as an option is merged into the defaults with an OR for
	// DataPageStatistics, so it could not turn them off.
	opts := []parquet.WriterOption{
		parquet.Compression(newZstdCodec(level)),
		parquet.MaxRowsPerRowGroup(rowsPerRowGroup),
		parquet.PageBufferSize(1 << 20),
		parquet.WriteBufferSize(256 << 10),
		// No min/max in data page headers: they repeat the column index
		// (the page bounds), and parquet-go computes them in a second
		// pass over every page's values (makePageStatistics, 2.5 % of
		// server CPU under bulk load).
		parquet.DataPageStatistics(false),
		// Nor column-index bounds for the payload (opaque event bytes),
		// which serve no query and cost a comparison of every payload.
		// Iceberg's column bounds come from catalog.DataFile, not from
		// these.
		parquet.SkipPageBounds("payload"),
		parquet.CreatedBy("zombi", "dev", ""),
	}
	if _, err := parquet.NewWriterConfig(opts...); err != nil {
		panic(fmt.Sprintf("BUG: parquet writer config: %v", err))
	}
	return &parquetWriter{w: parquet.NewGenericWriter[row](io.Discard, opts...)}
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

// zstdCodec is parquet-go's ZSTD codec with one encoder kept for the
// writer's life. parquet-go's own codec keeps its encoders in a sync.Pool,
// which garbage collections empty: under bulk load the flusher rebuilt an
// encoder about once a second, each time allocating (and faulting in) a
// fresh history buffer of several MiB (88 MB of ensureHist allocations in
// a 10 s profile). A writer is used by one round at a time; concurrent
// Encode calls, were there any, would wait for the encoder.
type zstdCodec struct {
	enc *kzstd.Encoder
}

func newZstdCodec(level zstd.Level) *zstdCodec {
	enc, err := kzstd.NewWriter(nil,
		kzstd.WithEncoderConcurrency(1),
		kzstd.WithEncoderLevel(level),
		kzstd.WithZeroFrames(true),
		kzstd.WithEncoderCRC(false),
	)
	if err != nil {
		panic(fmt.Sprintf("BUG: zstd encoder: %v", err))
	}
	return &zstdCodec{enc: enc}
}

func (c *zstdCodec) String() string                            { return "ZSTD" }
func (c *zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}

// Decode is not used by a writer; parquet-go's codec does it.
func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) { return zstdDecoder.Decode(dst, src) }

var zstdDecoder zstd.Codec

// writerPool keeps idle parquet writers, at most maxIdleWriters, for the
// life of the flusher. Unlike a sync.Pool, it is not emptied by garbage
// collections: a writer's column buffers and its encoder's history stay
// allocated and faulted in from round to round (memory this VM has not
// touched recently costs ~20 µs a page to fault in).
type writerPool struct {
	level zstd.Level
	mu    sync.Mutex
	idle  []*parquetWriter
}

// maxIdleWriters covers a flush round and a compaction running at once.
const maxIdleWriters = 2

func (p *writerPool) get() *parquetWriter {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return w
	}
	p.mu.Unlock()
	return newParquetWriter(p.level)
}

func (p *writerPool) put(w *parquetWriter) {
	w.discard() // let go of the last file's writer
	p.mu.Lock()
	if len(p.idle) < maxIdleWriters {
		p.idle = append(p.idle, w)
	}
	p.mu.Unlock()
}
