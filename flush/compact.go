package flush

// Compaction rewrites the small data files of one (event_date,
// event_hour) into files of about CompactedFileBytes and commits the swap
// as one Iceberg replace snapshot (catalog.Table.Replace, serialised with
// the flusher's commits and carrying their watermarks forward).
//
// Memory stays bounded whatever the partition-hour holds: every input is
// already sorted by (timestamp_ms, sequence), so the inputs are merged
// row by row, each read a page at a time, and an input is opened only
// when the merge reaches its lowest timestamp (the manifest's lower
// bound): files written one after the other by successive flushes barely
// overlap in time, so only a few are open at once. The output is written
// as row groups of about compactRowGroupBytes, streamed to the store.

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/apache/iceberg-go"
	iceio "github.com/apache/iceberg-go/io"
	"github.com/parquet-go/parquet-go"

	"github.com/zombihq/zombi/catalog"
)

// ErrCompactionInProgress is returned by Maintainer.Compact when a
// compaction (or the snapshot expiry and orphan cleanup) of the table is
// running already.
var ErrCompactionInProgress = errors.New("flush: compaction in progress")

const (
	// compactRowGroupBytes bounds the raw bytes of an output row group,
	// which the Parquet writer buffers (compressed) until it is flushed.
	compactRowGroupBytes = 16 << 20
	// compactReadRows is how many rows an input reads at a time.
	compactReadRows = 256
)

// CompactResult describes one compaction of a table.
type CompactResult struct {
	Table string
	// FilesCompacted are the input files replaced, FilesCreated the
	// files that replaced them.
	FilesCompacted, FilesCreated int
	RowsProcessed                int64
	// BytesRead and BytesWritten are the Parquet bytes of the inputs and
	// of the outputs; BytesRead - BytesWritten is bytes_saved.
	BytesRead, BytesWritten int64
	// Commits is the number of replace snapshots: one per partition-hour.
	Commits int
	// SnapshotID is the last replace snapshot (0 when none).
	SnapshotID int64
	Duration   time.Duration
}

// compactTable compacts every partition-hour of table that holds at least
// minSmall small files (smaller than SmallFileBytes).
func (m *Maintainer) compactTable(ctx context.Context, name string, minSmall int) (CompactResult, error) {
	start := time.Now()
	res := CompactResult{Table: name}
	tbl, err := m.f.Table(ctx, name)
	if err != nil {
		return res, err
	}
	files, _, err := tbl.LiveFiles(ctx)
	if err != nil {
		return res, err
	}
	type hour struct{ date, hour int32 }
	groups := map[hour][]catalog.LiveFile{}
	for _, f := range files {
		if f.SizeBytes < m.opts.SmallFileBytes {
			k := hour{f.EventDate, f.EventHour}
			groups[k] = append(groups[k], f)
		}
	}
	keys := make([]hour, 0, len(groups))
	for k, g := range groups {
		if len(g) >= max(minSmall, 2) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b hour) int {
		if a.date != b.date {
			return int(a.date - b.date)
		}
		return int(a.hour - b.hour)
	})
	if len(keys) == 0 {
		res.Duration = time.Since(start)
		return res, nil
	}
	fsys, err := tbl.Iceberg().FS(ctx)
	if err != nil {
		return res, fmt.Errorf("flush: compact %s: %w", name, err)
	}
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := m.compactGroup(ctx, tbl, fsys, groups[k], &res); err != nil {
			res.Duration = time.Since(start)
			return res, fmt.Errorf("flush: compact %s event_date=%d event_hour=%d: %w", name, k.date, k.hour, err)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// compactGroup rewrites the files of one partition-hour and commits them.
func (m *Maintainer) compactGroup(ctx context.Context, tbl *catalog.Table, fsys iceio.IO, in []catalog.LiveFile, res *CompactResult) error {
	slices.SortFunc(in, func(a, b catalog.LiveFile) int {
		switch {
		case a.MinTs < b.MinTs:
			return -1
		case a.MinTs > b.MinTs:
			return 1
		}
		return cmpString(a.Path, b.Path)
	})
	var inRows, inBytes int64
	old := make([]string, len(in))
	for i, f := range in {
		inRows += f.Records
		inBytes += f.SizeBytes
		old[i] = f.Path
	}
	if inRows == 0 {
		return errors.New("input files hold no rows")
	}
	// Even output files of about CompactedFileBytes each, sized by the
	// inputs' compressed bytes per row.
	nOut := max(1, (inBytes+m.opts.CompactedFileBytes/2)/m.opts.CompactedFileBytes)
	rowsPerFile := (inRows + nOut - 1) / nOut

	// The outputs have the table's current schema: every input column is
	// copied by field ID (widened where the schema widened it), and a
	// column an older file lacks is NULL.
	lay, err := newLayout(tbl.Schema(), m.f.tableColumns(tbl.Name()))
	if err != nil {
		return err
	}
	mg := &merger{fsys: fsys, pending: in, lay: lay}
	defer mg.close()
	enc := m.f.writers.get(lay)
	defer m.f.writers.put(enc)
	w := &compactWriter{m: m, ctx: ctx, pw: enc, base: tbl.Location(), date: in[0].EventDate, hour: in[0].EventHour,
		tag: strconv.FormatUint(rand.Uint64(), 36)}
	defer w.abort()
	var rows int64
	for {
		r, ok, err := mg.next(w.flushPending)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if r.date != w.date || r.hour != w.hour {
			return fmt.Errorf("row %d/%d of event_date=%d event_hour=%d in a file of event_date=%d event_hour=%d",
				r.partition, r.seq, r.date, r.hour, w.date, w.hour)
		}
		if w.cur == nil {
			if err := w.begin(); err != nil {
				return err
			}
		}
		if err := w.add(r); err != nil {
			return err
		}
		rows++
		if w.cur.df.Records >= rowsPerFile && rows < inRows {
			if err := w.finish(); err != nil {
				return err
			}
		}
	}
	if err := w.finish(); err != nil {
		return err
	}
	if rows != inRows {
		// Never commit a rewrite that does not hold every row exactly once.
		w.removeDone()
		return fmt.Errorf("read %d rows from %d files whose manifests count %d", rows, len(in), inRows)
	}
	cr, err := tbl.Replace(ctx, old, w.done)
	if err != nil {
		if errors.Is(err, catalog.ErrNotLive) {
			w.removeDone() // certainly not committed
		}
		// Otherwise the outcome may be unknown (the commit may have
		// landed): the outputs stay, for the orphan cleanup if they
		// were not committed.
		w.done = nil
		return err
	}
	var outBytes int64
	for _, df := range w.done {
		outBytes += df.SizeBytes
	}
	res.FilesCompacted += len(in)
	res.FilesCreated += len(w.done)
	res.RowsProcessed += rows
	res.BytesRead += inBytes
	res.BytesWritten += outBytes
	res.Commits++
	res.SnapshotID = cr.SnapshotID
	w.done = nil
	return nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compactWriter writes the output files of one partition-hour.
type compactWriter struct {
	m          *Maintainer
	ctx        context.Context
	pw         *parquetWriter
	base       string
	date, hour int32
	tag        string // random: names never collide with another run's
	n          int
	cur        *compactFile
	pending    []parquet.Row // rows read but not yet handed to the writer
	rgRaw      int64         // raw bytes in the open row group
	done       []catalog.DataFile
}

type compactFile struct {
	obj ObjectWriter
	cw  *countWriter
	df  catalog.DataFile
}

func (w *compactWriter) begin() error {
	loc := compactFilePath(w.base, w.date, w.hour, w.tag, w.n)
	w.n++
	obj, err := w.m.f.opts.Store.Create(w.ctx, loc)
	if err != nil {
		return fmt.Errorf("create %s: %w", loc, err)
	}
	cw := &countWriter{w: obj}
	w.pw.begin(cw)
	w.cur = &compactFile{obj: obj, cw: cw, df: catalog.DataFile{Path: loc, EventDate: w.date, EventHour: w.hour}}
	w.rgRaw = 0
	return nil
}

// add queues r for the open file and updates its statistics. The row's
// byte values belong to the input's read buffer: flushPending must run
// before that buffer is refilled (the merger sees to it).
func (w *compactWriter) add(r *mergeRow) error {
	df := &w.cur.df
	seq, p := uint64(r.seq), uint32(r.partition)
	if df.Records == 0 {
		df.MinSeq, df.MaxSeq, df.MinTs, df.Partition, df.PartitionMax, df.Topic = seq, seq, r.ts, p, p, strings.Clone(r.topic)
	}
	df.Records++
	df.MinSeq, df.MaxSeq = min(df.MinSeq, seq), max(df.MaxSeq, seq)
	df.MaxTs = r.ts
	df.Partition, df.PartitionMax = min(df.Partition, p), max(df.PartitionMax, p)
	if r.nullKey {
		df.NullKeys++
	}
	n := len(w.pending)
	if n < cap(w.pending) {
		w.pending = w.pending[:n+1]
	} else {
		w.pending = append(w.pending, nil)
	}
	w.pending[n] = append(w.pending[n][:0], r.vals...)
	w.rgRaw += r.raw
	if len(w.pending) >= compactReadRows {
		if err := w.flushPending(); err != nil {
			return err
		}
	}
	if w.rgRaw >= compactRowGroupBytes {
		if err := w.pw.w.Flush(); err != nil {
			return fmt.Errorf("encode %s: %w", df.Path, err)
		}
		w.rgRaw = 0
	}
	return nil
}

// flushPending hands the queued rows to the Parquet writer, which copies
// them into its column buffers.
func (w *compactWriter) flushPending() error {
	if len(w.pending) == 0 {
		return nil
	}
	if err := w.pw.writeRows(w.pending); err != nil {
		return fmt.Errorf("encode %s: %w", w.cur.df.Path, err)
	}
	for i := range w.pending {
		clear(w.pending[i]) // drop references into the inputs' buffers
	}
	w.pending = w.pending[:0]
	return nil
}

// finish completes the open file and its upload.
func (w *compactWriter) finish() error {
	c := w.cur
	if c == nil {
		return nil
	}
	if err := w.flushPending(); err != nil {
		return err
	}
	w.cur = nil
	w.pw.fileStats(&c.df)
	if err := w.pw.end(); err != nil {
		c.obj.Abort()
		return fmt.Errorf("encode %s: %w", c.df.Path, err)
	}
	if err := c.obj.Close(); err != nil {
		return fmt.Errorf("write %s: %w", c.df.Path, err)
	}
	c.df.SizeBytes = c.cw.n
	w.done = append(w.done, c.df)
	return nil
}

// abort discards the open file, if any, and removes the finished ones
// unless they were committed (done is cleared then).
func (w *compactWriter) abort() {
	if c := w.cur; c != nil {
		w.cur = nil
		w.pw.discard()
		c.obj.Abort()
	}
	w.pending = w.pending[:0]
	w.removeDone()
}

func (w *compactWriter) removeDone() {
	for _, df := range w.done {
		if err := w.m.f.opts.Store.Remove(context.WithoutCancel(w.ctx), df.Path); err != nil {
			w.m.f.opts.Logger.Warn("compaction: removing an uncommitted output failed; orphan cleanup will", "path", df.Path, "err", err)
		}
	}
	w.done = nil
}

// compactFilePath names a compacted file beside the flushed ones:
// compact-<tag>-<n>.parquet.
func compactFilePath(base string, date, hour int32, tag string, n int) string {
	day := time.Unix(int64(date)*86400, 0).UTC().Format("2006-01-02")
	name := "compact-" + tag + "-" + strconv.Itoa(n) + ".parquet"
	u, err := url.JoinPath(base, "data", "event_date="+day, "event_hour="+strconv.Itoa(int(hour)), name)
	if err != nil {
		return base + "/data/event_date=" + day + "/event_hour=" + strconv.Itoa(int(hour)) + "/" + name
	}
	return u
}

// merger merges sorted input files into one (timestamp_ms, sequence,
// partition) order, opening each input only when the merge reaches its
// lowest timestamp. Rows come out in the layout of the outputs.
type merger struct {
	fsys    iceio.IO
	lay     *layout
	pending []catalog.LiveFile // not opened yet, by MinTs
	open    cursorHeap
	last    mergeRow // the copy next returns of a buffer's last row
}

// mergeRow is one row of the merge: its values in the order of the
// output's leaf columns, and the fields the merge and the file statistics need.
type mergeRow struct {
	vals       []parquet.Value
	ts, seq    int64
	partition  int32
	date, hour int32
	topic      string
	nullKey    bool
	raw        int64 // raw bytes, as a flush counts them
}

// cursor reads one input file.
type cursor struct {
	path string
	lay  *layout // of the outputs
	f    iceio.File
	rows parquet.Rows
	buf  []parquet.Row
	i, n int
	// from maps each output column to the input's leaf column holding
	// the same field ID, or -1; widen says the value must be widened
	// (int → long, float → double).
	from  []int
	widen []bool
	// key are the input leaves of the merge key and the statistics.
	ts, seq, part, date, hour, topic, key int
	cur                                   mergeRow
}

// fill reads the next rows; it reports false at the end of the file.
func (c *cursor) fill() (bool, error) {
	if c.buf == nil {
		c.buf = make([]parquet.Row, compactReadRows)
	}
	n, err := c.rows.ReadRows(c.buf)
	c.i, c.n = 0, n
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read %s: %w", c.path, err)
	}
	if n > 0 {
		if err := c.load(); err != nil {
			return false, err
		}
	}
	return n > 0, nil
}

// load converts the row at c.i into c.cur.
func (c *cursor) load() error {
	lay := c.lay
	r := c.buf[c.i]
	cur := &c.cur
	// Values in the order of the output's leaf columns, as a
	// parquet.Row must be.
	cur.vals = slices.Grow(cur.vals[:0], len(lay.cols))[:len(lay.cols)]
	cur.raw = rowFixedBytes
	for oi, ii := range c.from {
		col := &lay.cols[oi]
		var v parquet.Value
		if ii >= 0 && ii < len(r) {
			v = r[ii]
			if c.widen[oi] && !v.IsNull() {
				switch v.Kind() {
				case parquet.Int32:
					v = parquet.Int64Value(int64(v.Int32()))
				case parquet.Float:
					v = parquet.DoubleValue(float64(v.Float()))
				}
			}
		}
		if v.IsNull() && col.required {
			return fmt.Errorf("read %s: a row has no value for the required column %s", c.path, col.name)
		}
		if v.Kind() == parquet.ByteArray && !v.IsNull() && col.src != srcTopic {
			cur.raw += int64(len(v.ByteArray()))
		}
		cur.vals[col.leaf] = col.level(v)
	}
	get := func(leaf int) parquet.Value {
		if leaf < 0 || leaf >= len(r) {
			return parquet.Value{}
		}
		return r[leaf]
	}
	cur.ts, cur.seq = get(c.ts).Int64(), get(c.seq).Int64()
	cur.partition, cur.date, cur.hour = get(c.part).Int32(), get(c.date).Int32(), get(c.hour).Int32()
	cur.topic = unsafe.String(unsafe.SliceData(get(c.topic).ByteArray()), len(get(c.topic).ByteArray()))
	cur.nullKey = get(c.key).IsNull()
	return nil
}

func (c *cursor) close() {
	if c.rows != nil {
		c.rows.Close()
	}
	if c.f != nil {
		c.f.Close()
	}
}

func (mg *merger) openNext() error {
	lf := mg.pending[0]
	mg.pending = mg.pending[1:]
	f, err := mg.fsys.Open(lf.Path)
	if err != nil {
		return fmt.Errorf("open %s: %w", lf.Path, err)
	}
	c := &cursor{path: lf.Path, f: f, lay: mg.lay}
	pf, err := parquet.OpenFile(f, lf.SizeBytes, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true),
		parquet.ReadBufferSize(64<<10))
	if err != nil {
		c.close()
		return fmt.Errorf("open %s: %w", lf.Path, err)
	}
	if err := c.mapColumns(pf.Schema()); err != nil {
		c.close()
		return fmt.Errorf("open %s: %w", lf.Path, err)
	}
	c.rows = parquet.MultiRowGroup(pf.RowGroups()...).Rows()
	ok, err := c.fill()
	if err != nil || !ok {
		c.close()
		return err
	}
	heap.Push(&mg.open, c)
	return nil
}

// mapColumns matches the input file's columns to the layout's by field
// ID, as Iceberg readers do.
func (c *cursor) mapColumns(s *parquet.Schema) error {
	lay := c.lay
	leafOf := map[int]int{}
	kinds := map[int]parquet.Kind{}
	for _, fld := range s.Fields() {
		if fld.ID() == 0 || !fld.Leaf() {
			continue
		}
		leaf, ok := s.Lookup(fld.Name())
		if !ok {
			continue
		}
		leafOf[fld.ID()] = leaf.ColumnIndex
		kinds[fld.ID()] = fld.Type().Kind()
	}
	c.from = make([]int, len(lay.cols))
	c.widen = make([]bool, len(lay.cols))
	for i, col := range lay.cols {
		c.from[i] = -1
		if leaf, ok := leafOf[col.id]; ok {
			c.from[i] = leaf
			k := kinds[col.id]
			c.widen[i] = k == parquet.Int32 && col.typ.Equals(iceberg.PrimitiveTypes.Int64) ||
				k == parquet.Float && col.typ.Equals(iceberg.PrimitiveTypes.Float64)
		}
	}
	leaf := func(id int) int {
		if l, ok := leafOf[id]; ok {
			return l
		}
		return -1
	}
	c.ts, c.seq, c.part = leaf(catalog.FieldTimestampMs), leaf(catalog.FieldSequence), leaf(catalog.FieldPartition)
	c.date, c.hour, c.topic, c.key = leaf(catalog.FieldEventDate), leaf(catalog.FieldEventHour), leaf(catalog.FieldTopic), leaf(catalog.FieldIdempotencyKey)
	if c.ts < 0 || c.seq < 0 || c.part < 0 || c.date < 0 || c.hour < 0 {
		return errors.New("not a data file of an event table (no timestamp_ms, sequence, partition, event_date or event_hour field ID)")
	}
	return nil
}

// next returns the next row in order (valid until the following call),
// or false when every input is exhausted. beforeRefill runs before an
// input's read buffer is reused.
func (mg *merger) next(beforeRefill func() error) (*mergeRow, bool, error) {
	for len(mg.pending) > 0 && (len(mg.open) == 0 || mg.pending[0].MinTs <= mg.open[0].cur.ts) {
		if err := mg.openNext(); err != nil {
			return nil, false, err
		}
	}
	if len(mg.open) == 0 {
		return nil, false, nil
	}
	c := mg.open[0]
	// The row returned is copied out of the cursor, which moves on; its
	// byte values stay in the input's buffer until the refill, before
	// which the rows queued from it are handed over. The buffer's last
	// row is copied whole, as it outlives the refill.
	mg.last.vals = append(mg.last.vals[:0], c.cur.vals...)
	vals := mg.last.vals
	mg.last = c.cur
	mg.last.vals = vals
	c.i++
	if c.i < c.n {
		if err := c.load(); err != nil {
			return nil, false, err
		}
		heap.Fix(&mg.open, 0)
		return &mg.last, true, nil
	}
	for i := range mg.last.vals {
		mg.last.vals[i] = mg.last.vals[i].Clone()
	}
	mg.last.topic = strings.Clone(mg.last.topic)
	if err := beforeRefill(); err != nil {
		return nil, false, err
	}
	ok, err := c.fill()
	if err != nil {
		return nil, false, err
	}
	if ok {
		heap.Fix(&mg.open, 0)
	} else {
		heap.Pop(&mg.open)
		c.close()
	}
	return &mg.last, true, nil
}

func (mg *merger) close() {
	for _, c := range mg.open {
		c.close()
	}
	mg.open = nil
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := &h[i].cur, &h[j].cur
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.seq != b.seq {
		return a.seq < b.seq
	}
	return a.partition < b.partition
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return c
}
