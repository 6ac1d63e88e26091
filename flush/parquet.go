package flush

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"unsafe"

	"github.com/apache/iceberg-go"
	kzstd "github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/format"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/columns"
)

// row is one event read from the hot tier. A layout turns it into the
// columns of a data file (layout.go). idempotency_key is nil for none.
type row struct {
	Sequence       int64
	Topic          string
	Partition      int32
	Payload        []byte
	TimestampMs    int64
	IdempotencyKey *string
	EventDate      int32
	EventHour      int32
}

const (
	// rowsPerRowGroup bounds a row group, so that the writer's buffered
	// pages stay a few MiB whatever the file size.
	rowsPerRowGroup = 256 << 10
	// chunkRows is how many rows are turned into column values at a time.
	chunkRows = 4096
)

// parquetWriter encodes the data files of one layout, one file at a
// time. Reset points the parquet-go writer at the next file, so its
// column buffers stay warm (memory this VM has not touched recently is
// slow to fault in). Rows are written column by column: each chunk of
// rows becomes one slice of values per column (with the typed columns
// extracted from the payloads, once per row), handed to that column's
// writer.
type parquetWriter struct {
	lay   *layout
	codec *zstdCodec
	w     *parquet.GenericWriter[any]
	x     *columns.Extractor // nil without typed columns
	vals  [][]parquet.Value  // per column: the values of a chunk
	ext   [][]columns.Value  // per typed field: the values of a chunk
	over  [][]byte           // the overflow of each row of a chunk
	ok    []columns.Value    // one row's extracted values
	stats []colStats         // per column, of the file being written
	// counts are the extraction problems met since the last takeCounts.
	counts extractCounts
}

// extractCounts counts what extraction could not store as is.
type extractCounts struct {
	// errors counts, per typed field, values present with a type that
	// does not fit the column, and values missing from a required one.
	errors []int64
	// nonObject counts payloads that are not a JSON object (of a table
	// whose payload_format is json).
	nonObject int64
}

func newParquetWriter(lay *layout, codec *zstdCodec) *parquetWriter {
	// The options go to NewGenericWriter as they are: a *WriterConfig
	// passed as an option is merged into the defaults with an OR for
	// DataPageStatistics, so it could not turn them off.
	opts := []parquet.WriterOption{
		lay.schema,
		parquet.Compression(codec),
		parquet.MaxRowsPerRowGroup(rowsPerRowGroup),
		parquet.PageBufferSize(1 << 20),
		parquet.WriteBufferSize(256 << 10),
		// No min/max in data page headers: they repeat the column index
		// (the page bounds), and parquet-go computes them in a second
		// pass over every page's values (makePageStatistics, 2.5 % of
		// server CPU under bulk load).
		parquet.DataPageStatistics(false),
		parquet.CreatedBy("zombi", "dev", ""),
	}
	// Nor column-index bounds for the opaque byte columns (payload,
	// overflow), which serve no query and cost a comparison of every
	// value. Iceberg's column bounds come from catalog.DataFile, not
	// from these.
	for _, c := range lay.cols {
		if c.src == srcPayload || c.src == srcOverflow {
			opts = append(opts, parquet.SkipPageBounds(c.name))
		}
	}
	if _, err := parquet.NewWriterConfig(opts...); err != nil {
		panic(fmt.Sprintf("BUG: parquet writer config: %v", err))
	}
	pw := &parquetWriter{lay: lay, codec: codec, w: parquet.NewGenericWriter[any](io.Discard, opts...)}
	pw.vals = make([][]parquet.Value, len(lay.cols))
	pw.stats = make([]colStats, len(lay.cols))
	for i := range pw.stats {
		pw.stats[i] = newColStats(&lay.cols[i])
	}
	if t := lay.table; t != nil {
		pw.x = columns.NewExtractor(*t)
		pw.ext = make([][]columns.Value, len(t.Fields))
		pw.ok = make([]columns.Value, len(t.Fields))
		pw.counts.errors = make([]int64, len(t.Fields))
	}
	return pw
}

// begin starts a file written to out.
func (pw *parquetWriter) begin(out io.Writer) {
	pw.w.Reset(out)
	for i := range pw.stats {
		pw.stats[i].reset()
	}
}

// writeRowGroup writes rows as one or more row groups of the file.
func (pw *parquetWriter) writeRowGroup(rows []row) error {
	for len(rows) > 0 {
		n := min(len(rows), chunkRows)
		if err := pw.writeChunk(rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return pw.w.Flush()
}

// writeChunk writes rows to the open row group, column by column.
func (pw *parquetWriter) writeChunk(rows []row) error {
	lay := pw.lay
	if pw.x != nil {
		pw.extract(rows)
	}
	cws := pw.w.ColumnWriters()
	for ci := range lay.cols {
		c := &lay.cols[ci]
		// Each loop fills vals by index, the slice sized once.
		vals := slices.Grow(pw.vals[ci][:0], len(rows))[:len(rows)]
		switch c.src {
		case srcSequence:
			for i := range rows {
				vals[i] = parquet.Int64Value(rows[i].Sequence)
			}
		case srcTopic:
			for i := range rows {
				vals[i] = parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(rows[i].Topic), len(rows[i].Topic)))
			}
		case srcPartition:
			for i := range rows {
				vals[i] = parquet.Int32Value(rows[i].Partition)
			}
		case srcPayload:
			for i := range rows {
				vals[i] = parquet.ByteArrayValue(rows[i].Payload)
			}
		case srcTimestamp:
			for i := range rows {
				vals[i] = parquet.Int64Value(rows[i].TimestampMs)
			}
		case srcKey:
			for i := range rows {
				vals[i] = parquet.Value{}
				if k := rows[i].IdempotencyKey; k != nil {
					vals[i] = parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(*k), len(*k)))
				}
			}
		case srcDate:
			for i := range rows {
				vals[i] = parquet.Int32Value(rows[i].EventDate)
			}
		case srcHour:
			for i := range rows {
				vals[i] = parquet.Int32Value(rows[i].EventHour)
			}
		case srcExtracted:
			pw.typedValues(vals, c.field)
		case srcOverflow:
			for i, o := range pw.over {
				vals[i] = parquet.Value{}
				if o != nil {
					vals[i] = parquet.ByteArrayValue(o)
				}
			}
		default: // srcNull
			clear(vals)
		}
		if !c.required {
			// The only level a column writer reads: an optional
			// column's values are present at definition level 1.
			for i := range vals {
				if !vals[i].IsNull() {
					vals[i].SetDefinitionLevel(1)
				}
			}
		}
		pw.vals[ci] = vals
		if c.stats {
			pw.stats[ci].observe(vals)
		}
		if _, err := cws[c.leaf].WriteRowValues(vals); err != nil {
			return err
		}
	}
	return nil
}

// extract runs the extractor over the payloads of rows, into pw.ext and
// pw.over.
func (pw *parquetWriter) extract(rows []row) {
	pw.x.Reset()
	for f := range pw.ext {
		pw.ext[f] = pw.ext[f][:0]
	}
	pw.over = pw.over[:0]
	for i := range rows {
		overflow, object := pw.x.Extract(rows[i].Payload, pw.ok)
		if !object && pw.lay.table.Format == columns.FormatJSON {
			pw.counts.nonObject++
		}
		pw.over = append(pw.over, overflow)
		for f := range pw.ext {
			pw.ext[f] = append(pw.ext[f], pw.ok[f])
		}
	}
}

// typedValues sets vals to the Parquet values of typed field fi's
// extracted values of the chunk. A missing or mismatched value is NULL, or
// the type's zero value in a column that is not nullable; a value that
// could not be stored as is (a mismatch, or missing from a required
// column) is counted: its payload member stays in the overflow either
// way. The switch on the type is the same for every value of the loop.
func (pw *parquetWriter) typedValues(vals []parquet.Value, fi int) {
	f := &pw.lay.table.Fields[fi]
	fill := parquet.Value{} // NULL
	if !f.Nullable {
		fill = typedValue(&columns.Value{State: columns.OK, Bytes: []byte{}}, f.Type)
	}
	bad := int64(0)
	ext := pw.ext[fi]
	for i := range ext {
		ev := &ext[i]
		if ev.State != columns.OK {
			if ev.State == columns.Mismatch || !f.Nullable {
				bad++
			}
			vals[i] = fill
			continue
		}
		vals[i] = typedValue(ev, f.Type)
	}
	pw.counts.errors[fi] += bad
}

// typedValue returns the Parquet value of an extracted value of type t.
func typedValue(ev *columns.Value, t columns.Type) parquet.Value {
	switch t {
	case columns.Utf8, columns.Binary:
		return parquet.ByteArrayValue(ev.Bytes)
	case columns.Int32, columns.Date:
		return parquet.Int32Value(int32(ev.Int))
	case columns.Int64, columns.Timestamp:
		return parquet.Int64Value(ev.Int)
	case columns.Float32:
		return parquet.FloatValue(float32(ev.Float))
	case columns.Float64:
		return parquet.DoubleValue(ev.Float)
	case columns.Boolean:
		return parquet.BooleanValue(ev.Int != 0)
	}
	panic(fmt.Sprintf("BUG: flush: column type %v", t))
}

// writeRows writes rows whose values are in the order of the Parquet
// schema's leaves, each with its levels set (column.level), to the open
// row group; compaction writes so.
func (pw *parquetWriter) writeRows(rows []parquet.Row) error {
	for ci := range pw.lay.cols {
		if pw.lay.cols[ci].stats {
			leaf := pw.lay.cols[ci].leaf
			for _, r := range rows {
				pw.stats[ci].observe(r[leaf : leaf+1])
			}
		}
	}
	_, err := pw.w.WriteRows(rows)
	return err
}

// fileStats adds the statistics of the columns that catalog.DataFile has
// no field for to df.
func (pw *parquetWriter) fileStats(df *catalog.DataFile) {
	df.Columns = pw.lay.ids
	df.Nulls, df.Bounds = nil, nil
	for i := range pw.stats {
		s := &pw.stats[i]
		if !s.col.stats {
			continue
		}
		if s.nulls > 0 {
			if df.Nulls == nil {
				df.Nulls = map[int]int64{}
			}
			df.Nulls[s.col.id] = s.nulls
		}
		if lo, hi, ok := s.bounds(); ok {
			if df.Bounds == nil {
				df.Bounds = map[int][2]iceberg.Literal{}
			}
			df.Bounds[s.col.id] = [2]iceberg.Literal{lo, hi}
		}
	}
}

// takeCounts returns the extraction counts since the last call and
// clears them.
func (pw *parquetWriter) takeCounts() extractCounts {
	c := pw.counts
	pw.counts = extractCounts{errors: make([]int64, len(c.errors))}
	return c
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

// writerPool keeps idle parquet writers (at most maxIdleWriters) and
// idle ZSTD codecs for the life of the flusher. Unlike a sync.Pool, it is
// not emptied by garbage collections: a writer's column buffers and its
// encoder's history stay allocated and faulted in from round to round
// (memory this VM has not touched recently costs ~20 µs a page to fault
// in). A writer serves one layout; a codec, any.
type writerPool struct {
	level  zstd.Level
	mu     sync.Mutex
	idle   []*parquetWriter
	codecs []*zstdCodec
}

// maxIdleWriters covers a flush round and a compaction running at once.
const maxIdleWriters = 2

// get returns a writer of layout lay.
func (p *writerPool) get(lay *layout) *parquetWriter {
	p.mu.Lock()
	for i := len(p.idle) - 1; i >= 0; i-- {
		if w := p.idle[i]; w.lay == lay {
			p.idle = slices.Delete(p.idle, i, i+1)
			p.mu.Unlock()
			return w
		}
	}
	var codec *zstdCodec
	if n := len(p.codecs); n > 0 {
		codec = p.codecs[n-1]
		p.codecs = p.codecs[:n-1]
	} else if n := len(p.idle); n > 0 {
		// Another layout's writer: keep its codec, drop the rest.
		codec = p.idle[0].codec
		p.idle = slices.Delete(p.idle, 0, 1)
	}
	p.mu.Unlock()
	if codec == nil {
		codec = newZstdCodec(p.level)
	}
	return newParquetWriter(lay, codec)
}

func (p *writerPool) put(w *parquetWriter) {
	w.discard() // let go of the last file's writer
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) < maxIdleWriters {
		p.idle = append(p.idle, w)
	} else if len(p.codecs) < maxIdleWriters {
		p.codecs = append(p.codecs, w.codec)
	}
}
