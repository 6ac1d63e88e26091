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

	mg := &merger{fsys: fsys, pending: in}
	defer mg.close()
	enc := m.f.writers.get()
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
		if r.EventDate != w.date || r.EventHour != w.hour {
			return fmt.Errorf("row %d/%d of event_date=%d event_hour=%d in a file of event_date=%d event_hour=%d",
				r.Partition, r.Sequence, r.EventDate, r.EventHour, w.date, w.hour)
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
	pending    []row // rows read but not yet handed to the writer
	rgRaw      int64 // raw bytes in the open row group
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
// byte slices belong to the input's read buffer: flushPending must run
// before that buffer is refilled (the merger sees to it).
func (w *compactWriter) add(r *row) error {
	df := &w.cur.df
	seq, p := uint64(r.Sequence), uint32(r.Partition)
	if df.Records == 0 {
		df.MinSeq, df.MaxSeq, df.MinTs, df.Partition, df.PartitionMax, df.Topic = seq, seq, r.TimestampMs, p, p, strings.Clone(r.Topic)
	}
	df.Records++
	df.MinSeq, df.MaxSeq = min(df.MinSeq, seq), max(df.MaxSeq, seq)
	df.MaxTs = r.TimestampMs
	df.Partition, df.PartitionMax = min(df.Partition, p), max(df.PartitionMax, p)
	if r.IdempotencyKey == nil {
		df.NullKeys++
	}
	w.pending = append(w.pending, *r)
	raw := int64(len(r.Payload) + rowFixedBytes)
	if r.IdempotencyKey != nil {
		raw += int64(len(*r.IdempotencyKey))
	}
	w.rgRaw += raw
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
	if _, err := w.pw.w.Write(w.pending); err != nil {
		return fmt.Errorf("encode %s: %w", w.cur.df.Path, err)
	}
	clear(w.pending)
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
// lowest timestamp.
type merger struct {
	fsys    iceio.IO
	pending []catalog.LiveFile // not opened yet, by MinTs
	open    cursorHeap
	last    row // the copy next returns of a buffer's last row
}

type cursor struct {
	path string
	f    iceio.File
	r    *parquet.GenericReader[row]
	buf  []row
	i, n int
}

// fill reads the next rows; it reports false at the end of the file.
func (c *cursor) fill() (bool, error) {
	if c.buf == nil {
		c.buf = make([]row, compactReadRows)
	}
	clear(c.buf)
	n, err := c.r.Read(c.buf)
	c.i, c.n = 0, n
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read %s: %w", c.path, err)
	}
	return n > 0, nil
}

func (c *cursor) close() {
	if c.r != nil {
		c.r.Close()
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
	c := &cursor{path: lf.Path, f: f}
	pf, err := parquet.OpenFile(f, lf.SizeBytes, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true),
		parquet.ReadBufferSize(64<<10))
	if err != nil {
		c.close()
		return fmt.Errorf("open %s: %w", lf.Path, err)
	}
	c.r = parquet.NewGenericReader[row](pf)
	ok, err := c.fill()
	if err != nil || !ok {
		c.close()
		return err
	}
	heap.Push(&mg.open, c)
	return nil
}

// next returns the next row in order (valid until the following call),
// or false when every input is exhausted. beforeRefill runs before an
// input's read buffer is reused.
func (mg *merger) next(beforeRefill func() error) (*row, bool, error) {
	for len(mg.pending) > 0 && (len(mg.open) == 0 || mg.pending[0].MinTs <= mg.open[0].buf[mg.open[0].i].TimestampMs) {
		if err := mg.openNext(); err != nil {
			return nil, false, err
		}
	}
	if len(mg.open) == 0 {
		return nil, false, nil
	}
	c := mg.open[0]
	r := &c.buf[c.i]
	c.i++
	if c.i < c.n {
		heap.Fix(&mg.open, 0)
		return r, true, nil
	}
	// The buffer is exhausted: the row returned is its last one, copied
	// (the reader may reuse the memory of its values), and the rows
	// queued from this buffer are handed over before the refill.
	last := *r
	last.Payload = append([]byte{}, r.Payload...)
	last.Topic = strings.Clone(r.Topic)
	if r.IdempotencyKey != nil {
		k := strings.Clone(*r.IdempotencyKey)
		last.IdempotencyKey = &k
	}
	if err := beforeRefill(); err != nil {
		return nil, false, err
	}
	mg.last = last
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
	a, b := &h[i].buf[h[i].i], &h[j].buf[h[j].i]
	if a.TimestampMs != b.TimestampMs {
		return a.TimestampMs < b.TimestampMs
	}
	if a.Sequence != b.Sequence {
		return a.Sequence < b.Sequence
	}
	return a.Partition < b.Partition
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
