package flush

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/engine"
)

const hourMs = 3_600_000

// baseTs is 2026-03-01T22:00:00Z: two hours of events cross midnight.
var baseTs = time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC).UnixMilli()

type env struct {
	dir string
	e   *engine.Engine
	cat *catalog.Catalog
	f   *Flusher
}

func openEnv(t *testing.T, dir string, opts Options) *env {
	t.Helper()
	return openEnvCatalog(t, dir, opts, nil)
}

func openEnvCatalog(t *testing.T, dir string, opts Options, catOpts func(*catalog.Options)) *env {
	t.Helper()
	e, err := engine.Open(engine.Options{Dir: dir, SegmentBytes: 1 << 20}.WithFsync(engine.FsyncNever))
	if err != nil {
		t.Fatal(err)
	}
	copts := catalog.Options{DataDir: dir, RetryInitial: time.Millisecond, RetryMax: 50 * time.Millisecond}
	if s3, ok := opts.Store.(*S3Store); ok {
		copts.Warehouse = "s3://" + s3.opts.Bucket + "/warehouse"
		copts.IOProps = s3IOProps(s3.opts)
	}
	if catOpts != nil {
		catOpts(&copts)
	}
	cat, err := catalog.Open(context.Background(), copts)
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	opts.Engine, opts.Catalog = e, cat
	if opts.Interval == 0 {
		opts.Interval = time.Hour
	}
	if opts.RetryInitial == 0 {
		opts.RetryInitial, opts.RetryMax = time.Millisecond, 10*time.Millisecond
	}
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	v := &env{dir: dir, e: e, cat: cat, f: f}
	t.Cleanup(v.close)
	return v
}

func (v *env) close() {
	if v.f != nil {
		v.f.Close()
		v.e.Close()
		v.cat.Close()
		v.f = nil
	}
}

// event is what a test appended, to compare with what Iceberg returns.
type event struct {
	ts      int64
	key     string
	payload string
}

// keySeq makes every idempotency key of a test unique.
var keySeq atomic.Int64

type evKey struct {
	p   uint32
	seq uint64
}

func appendN(t *testing.T, e *engine.Engine, table string, p uint32, n int, tsOf func(i int) int64, want map[evKey]event) {
	t.Helper()
	recs := make([]engine.Record, 0, 100)
	offs := make([]uint64, 100)
	flushRecs := func() {
		if err := e.AppendBatch(table, recs, offs); err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			want[evKey{p, offs[i]}] = event{ts: r.TimestampMs, key: string(r.Key), payload: string(r.Payload)}
		}
		recs = recs[:0]
	}
	for i := 0; i < n; i++ {
		r := engine.Record{Partition: p, TimestampMs: tsOf(i), Payload: fmt.Appendf(nil, `{"p":%d,"i":%d,"pad":"%s"}`, p, i, strings.Repeat("x", i%50))}
		if i%3 == 0 {
			r.Key = fmt.Appendf(nil, "k-%d-%d", p, keySeq.Add(1))
		}
		recs = append(recs, r)
		if len(recs) == cap(recs) {
			flushRecs()
		}
	}
	if len(recs) > 0 {
		flushRecs()
	}
}

// scanTable reads the table back with iceberg-go's scan and checks that
// it holds exactly want, each event once.
func scanTable(t *testing.T, tbl *catalog.Table, want map[evKey]event) {
	t.Helper()
	ctx := context.Background()
	if err := tbl.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Iceberg().Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	got := make(map[evKey]event, at.NumRows())
	rd := array.NewTableReader(at, 0)
	defer rd.Release()
	for rd.Next() {
		rec := rd.RecordBatch()
		col := func(name string) arrow.Array {
			idx := rec.Schema().FieldIndices(name)
			if len(idx) != 1 {
				t.Fatalf("column %s missing from %v", name, rec.Schema())
			}
			return rec.Column(idx[0])
		}
		seq := col("sequence").(*array.Int64)
		part := col("partition").(*array.Int32)
		ts := col("timestamp_ms").(*array.Int64)
		payload := col("payload").(*array.Binary)
		key := col("idempotency_key").(*array.String)
		topic := col("topic").(*array.String)
		date := col("event_date").(*array.Date32)
		hour := col("event_hour").(*array.Int32)
		for i := 0; i < int(rec.NumRows()); i++ {
			k := evKey{uint32(part.Value(i)), uint64(seq.Value(i))}
			if _, dup := got[k]; dup {
				t.Fatalf("duplicate event %+v", k)
			}
			ev := event{ts: ts.Value(i), payload: string(payload.Value(i))}
			if key.IsValid(i) {
				ev.key = key.Value(i)
				if ev.key == "" {
					t.Fatalf("event %+v: empty key instead of null", k)
				}
			}
			got[k] = ev
			if topic.Value(i) != tbl.Name() {
				t.Fatalf("topic %q", topic.Value(i))
			}
			tm := time.UnixMilli(ev.ts).UTC()
			if date.Value(i).ToTime().Format(time.DateOnly) != tm.Format(time.DateOnly) || int(hour.Value(i)) != tm.Hour() {
				t.Fatalf("event %+v at %v: event_date %v event_hour %d", k, tm, date.Value(i).ToTime(), hour.Value(i))
			}
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("table holds %d events, want %d", len(got), len(want))
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Fatalf("event %+v: got %+v (found %v), want %+v", k, g, ok, w)
		}
	}
}

// checkWatermarks checks the committed marks and the engine's flushed
// watermark against the engine's high watermark of every partition.
func checkWatermarks(t *testing.T, v *env, table string) {
	t.Helper()
	w, err := v.f.Watermarks(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	for _, pi := range v.e.Partitions(table) {
		if m := w[pi.Partition]; m.Flushed != pi.High || m.High != pi.High {
			t.Fatalf("partition %d: committed %+v, engine high %d", pi.Partition, m, pi.High)
		}
		if pi.Flushed != pi.High {
			t.Fatalf("partition %d: engine flushed %d, high %d", pi.Partition, pi.Flushed, pi.High)
		}
	}
}

// checkDataFiles opens every committed data file and checks the Parquet
// footer's field IDs, one hour per file, the (timestamp_ms, sequence)
// order and the committed statistics.
func checkDataFiles(t *testing.T, tbl *catalog.Table, open func(path string) (io.ReaderAt, int64)) int {
	t.Helper()
	tasks, err := tbl.Iceberg().Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := map[string]int32{"sequence": 1, "topic": 2, "partition": 3, "payload": 4, "timestamp_ms": 5, "idempotency_key": 6, "event_date": 7, "event_hour": 8}
	for _, task := range tasks {
		df := task.File
		r, size := open(df.FilePath())
		if size != df.FileSizeBytes() {
			t.Fatalf("%s: size %d, committed %d", df.FilePath(), size, df.FileSizeBytes())
		}
		pf, err := parquet.OpenFile(r, size)
		if err != nil {
			t.Fatalf("%s: %v", df.FilePath(), err)
		}
		md := pf.Metadata()
		ids := map[string]int32{}
		for _, el := range md.Schema[1:] {
			ids[el.Name] = el.FieldID
		}
		for name, id := range wantIDs {
			if ids[name] != id {
				t.Fatalf("%s: column %s has field id %d, want %d (%v)", df.FilePath(), name, ids[name], id, ids)
			}
		}
		for _, rg := range md.RowGroups {
			for _, c := range rg.Columns {
				if c.MetaData.Codec.String() != "ZSTD" {
					t.Fatalf("%s: codec %v", df.FilePath(), c.MetaData.Codec)
				}
			}
		}
		rows, err := readRows(pf)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(rows)) != df.Count() {
			t.Fatalf("%s: %d rows, committed %d", df.FilePath(), len(rows), df.Count())
		}
		for i := 1; i < len(rows); i++ {
			a, b := rows[i-1], rows[i]
			if a.TimestampMs > b.TimestampMs || a.TimestampMs == b.TimestampMs && a.Sequence >= b.Sequence {
				t.Fatalf("%s: rows %d and %d out of order", df.FilePath(), i-1, i)
			}
			if a.EventDate != b.EventDate || a.EventHour != b.EventHour {
				t.Fatalf("%s: two hours in one file", df.FilePath())
			}
		}
		pv := df.Partition()
		if int32(pv[catalog.PartitionFieldEventHour].(int32)) != rows[0].EventHour {
			t.Fatalf("%s: partition value %v, rows hour %d", df.FilePath(), pv, rows[0].EventHour)
		}
		if df.SortOrderID() == nil || *df.SortOrderID() != 1 {
			t.Fatalf("%s: sort order id %v", df.FilePath(), df.SortOrderID())
		}
		if len(df.LowerBoundValues()[catalog.FieldSequence]) != 8 || len(df.UpperBoundValues()[catalog.FieldTimestampMs]) != 8 {
			t.Fatalf("%s: bounds missing", df.FilePath())
		}
	}
	return len(tasks)
}

// eventRow reads the columns of the event schema by name.
type eventRow struct {
	Sequence       int64   `parquet:"sequence"`
	Topic          string  `parquet:"topic"`
	Partition      int32   `parquet:"partition"`
	Payload        []byte  `parquet:"payload"`
	TimestampMs    int64   `parquet:"timestamp_ms"`
	IdempotencyKey *string `parquet:"idempotency_key,optional"`
	EventDate      int32   `parquet:"event_date"`
	EventHour      int32   `parquet:"event_hour"`
}

func readRows(pf *parquet.File) ([]row, error) {
	r := parquet.NewGenericReader[eventRow](pf)
	defer r.Close()
	buf := make([]eventRow, pf.NumRows())
	n, err := r.Read(buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	out := make([]row, n)
	for i, e := range buf[:n] {
		out[i] = row(e)
	}
	return out, nil
}

// eventWriter returns a writer of the event schema (no typed columns).
func eventWriter(level zstd.Level) *parquetWriter {
	lay, err := newLayout(catalog.Schema(), nil)
	if err != nil {
		panic(err)
	}
	return newParquetWriter(lay, newZstdCodec(level))
}

func openLocal(t *testing.T) func(path string) (io.ReaderAt, int64) {
	return func(loc string) (io.ReaderAt, int64) {
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(u.Path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return f, st.Size()
	}
}

// fillTable appends to three partitions: p0 in time order across three
// hours and midnight, p1 shuffled timestamps within an hour, p2 a few.
func fillTable(t *testing.T, e *engine.Engine, table string, n int, want map[evKey]event) {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	appendN(t, e, table, 0, n, func(i int) int64 { return baseTs + hourMs/2 + int64(i)*(2*hourMs)/int64(n) }, want)
	appendN(t, e, table, 1, n/2, func(int) int64 { return baseTs + rng.Int64N(hourMs) }, want)
	appendN(t, e, table, 2, 7, func(i int) int64 { return baseTs - 5*hourMs + int64(i) }, want)
}

func TestFlushEndToEndLocal(t *testing.T) {
	ctx := context.Background()
	v := openEnv(t, t.TempDir(), Options{})
	want := map[evKey]event{}
	fillTable(t, v.e, "events", 30000, want)

	res, err := v.f.FlushTable(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != int64(len(want)) || res.Commits < 1 || res.MetadataLocation == "" || len(res.Partitions) != 3 {
		t.Fatalf("result %+v", res)
	}
	tbl, err := v.f.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	scanTable(t, tbl, want)
	checkWatermarks(t, v, "events")
	n := checkDataFiles(t, tbl, openLocal(t))
	// p0: 3 hours (22h, 23h, 00h), p1: 1, p2: 1.
	if n < 5 {
		t.Fatalf("%d data files", n)
	}

	// More events, flushed again: cumulative, still exactly once.
	appendN(t, v.e, "events", 1, 1000, func(i int) int64 { return baseTs + 3*hourMs + int64(i) }, want)
	res, err = v.f.FlushTable(ctx, "events")
	if err != nil || res.Events != 1000 || len(res.Partitions) != 1 {
		t.Fatalf("second flush %+v, %v", res, err)
	}
	scanTable(t, tbl, want)
	checkWatermarks(t, v, "events")
	// Nothing new: no commit.
	res, err = v.f.FlushTable(ctx, "events")
	if err != nil || res.Commits != 0 || res.Events != 0 {
		t.Fatalf("empty flush %+v, %v", res, err)
	}
	// The hot tier was emptied (HotRetention 0).
	for _, pi := range v.e.Partitions("events") {
		if pi.Bytes > 4096 {
			t.Fatalf("partition %d still holds %d hot bytes", pi.Partition, pi.Bytes)
		}
	}
	st := v.f.Stats()
	if st.Events != int64(len(want)) || st.Snapshots != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// The process died after the commit and before the engine saved its
// flushed watermark: after the restart the engine is behind the table.
// Nothing may be committed twice.
func TestRestartWithCommittedWatermarkAheadOfEngine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	want := map[evKey]event{}
	v := openEnv(t, dir, Options{})
	fillTable(t, v.e, "events", 5000, want)
	for _, pi := range v.e.Partitions("events") {
		if err := v.e.Seal("events", pi.Partition); err != nil {
			t.Fatal(err)
		}
	}
	v.close()
	saved := filepath.Join(t.TempDir(), "hot")
	cp(t, filepath.Join(dir, "hot"), saved)

	v = openEnv(t, dir, Options{})
	if _, err := v.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	v.close()
	// Crash: the engine's flushed watermark (and its segment deletions)
	// never reached the disk.
	if err := os.RemoveAll(filepath.Join(dir, "hot")); err != nil {
		t.Fatal(err)
	}
	cp(t, saved, filepath.Join(dir, "hot"))

	v = openEnv(t, dir, Options{})
	for _, pi := range v.e.Partitions("events") {
		if pi.Flushed != 0 {
			t.Fatalf("partition %d: engine flushed %d after restore", pi.Partition, pi.Flushed)
		}
	}
	appendN(t, v.e, "events", 0, 500, func(i int) int64 { return baseTs + int64(i) }, want)
	res, err := v.f.FlushTable(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 500 {
		t.Fatalf("flushed %d events after restart, want only the 500 new ones", res.Events)
	}
	tbl, err := v.f.Table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	scanTable(t, tbl, want)
	checkWatermarks(t, v, "events")
}

// Files uploaded for a commit that never happened (crash between upload
// and commit) are overwritten by the re-flush of the same range and never
// read.
func TestUploadedButUncommittedFilesAreNotRead(t *testing.T) {
	ctx := context.Background()
	v := openEnv(t, t.TempDir(), Options{})
	want := map[evKey]event{}
	fillTable(t, v.e, "events", 3000, want)
	if err := v.f.sealAll("events"); err != nil {
		t.Fatal(err)
	}
	// Upload partition 0's files without committing them.
	ts := v.f.state("events")
	ts.mu.Lock()
	if err := v.f.prepareLocked(ctx, ts); err != nil {
		t.Fatal(err)
	}
	end, err := v.f.sealedEnd("events", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	ts.batch.reset()
	to, err := collect(v.e, "events", 0, 1, end, v.f.opts.BatchBytes, &ts.batch)
	if err != nil {
		t.Fatal(err)
	}
	_ = to
	var up uploads
	pw := &partWriter{f: v.f, ctx: ctx, pw: eventWriter(zstd.SpeedFastest), base: ts.tbl.Location(), p: 0, from: 1, up: &up}
	err = pw.add(ts.batch.rows)
	if err == nil {
		err = pw.finish()
	}
	if werr := up.wait(); err == nil {
		err = werr
	}
	ts.mu.Unlock()
	if err != nil || len(pw.files) == 0 {
		t.Fatal(len(pw.files), err)
	}

	if _, err := v.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	tbl, _ := v.f.Table(ctx, "events")
	scanTable(t, tbl, want)
	n := checkDataFiles(t, tbl, openLocal(t))
	// The orphans had the names of the committed files: nothing extra on disk.
	var onDisk int
	u, _ := url.Parse(tbl.Location())
	filepath.WalkDir(filepath.Join(u.Path, "data"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".parquet") {
			onDisk++
		}
		return nil
	})
	if onDisk != n {
		t.Fatalf("%d parquet files on disk, %d committed", onDisk, n)
	}
}

// flakyStore fails the first n object writes.
type flakyStore struct {
	Store
	fails atomic.Int32
}

func (s *flakyStore) Create(ctx context.Context, loc string) (ObjectWriter, error) {
	if s.fails.Add(-1) >= 0 {
		return nil, errors.New("injected: store unavailable")
	}
	return s.Store.Create(ctx, loc)
}

func TestUploadRetriesThenFailsWithoutCommit(t *testing.T) {
	ctx := context.Background()
	st := &flakyStore{Store: LocalStore{}}
	st.fails.Store(2)
	v := openEnv(t, t.TempDir(), Options{Store: st, UploadAttempts: 3})
	want := map[evKey]event{}
	fillTable(t, v.e, "events", 2000, want)
	if _, err := v.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	if s := v.f.Stats(); s.UploadErrors != 2 {
		t.Fatalf("upload errors %d", s.UploadErrors)
	}
	// Store down for longer than the attempts: the flush fails, nothing
	// is committed, the data stays hot; once it is back, all lands once.
	appendN(t, v.e, "events", 2, 100, func(i int) int64 { return baseTs + int64(i) }, want)
	st.fails.Store(1000)
	if _, err := v.f.FlushTable(ctx, "events"); err == nil {
		t.Fatal("flush succeeded with the store down")
	}
	for _, pi := range v.e.Partitions("events") {
		if pi.Partition == 2 && pi.Flushed == pi.High {
			t.Fatal("engine marked flushed without a commit")
		}
	}
	st.fails.Store(0)
	if _, err := v.f.FlushTable(ctx, "events"); err != nil {
		t.Fatal(err)
	}
	tbl, _ := v.f.Table(ctx, "events")
	scanTable(t, tbl, want)
	checkWatermarks(t, v, "events")
}

func TestBackgroundLoopSealsOnIntervalAndKeepsBudget(t *testing.T) {
	v := openEnv(t, t.TempDir(), Options{Interval: 300 * time.Millisecond, PollInterval: 20 * time.Millisecond, HotMaxBytes: 64 << 10})
	want := map[evKey]event{}
	fillTable(t, v.e, "events", 4000, want)
	v.f.refreshHot()
	if !v.f.OverBudget() {
		t.Fatalf("not over budget with %d hot bytes", v.f.Stats().HotBytes)
	}
	v.f.Start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		done := true
		for _, pi := range v.e.Partitions("events") {
			done = done && pi.Flushed == pi.High
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not flushed in time: %+v, last error %v", v.e.Partitions("events"), v.f.LastError("events"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for v.f.OverBudget() {
		if time.Now().After(deadline) {
			t.Fatalf("still over budget: %d hot bytes", v.f.Stats().HotBytes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tbl, _ := v.f.Table(context.Background(), "events")
	scanTable(t, tbl, want)
}

func TestSplitByHourAndTarget(t *testing.T) {
	var rows []row
	for i := 0; i < 1000; i++ {
		ts := baseTs + int64(i)*10_000 // 10 s apart: 2.8 hours
		h := floorDiv(ts, hourMs)
		d := floorDiv(h, 24)
		rows = append(rows, row{Sequence: int64(i + 1), TimestampMs: ts, Payload: make([]byte, 100), EventDate: int32(d), EventHour: int32(h - d*24)})
	}
	rand.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	sortRows(rows)
	spans := split(rows, 1<<20)
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3 hours", len(spans))
	}
	spans = split(rows, 140*100)
	var total int64
	for _, s := range spans {
		total += s.df.Records
		if s.df.Records > 100 {
			t.Fatalf("span of %d rows beyond target", s.df.Records)
		}
	}
	if total != 1000 {
		t.Fatalf("spans hold %d rows", total)
	}
	if floorDiv(-1, hourMs) != -1 || floorDiv(-hourMs, hourMs) != -1 || floorDiv(hourMs, hourMs) != 1 {
		t.Fatal("floorDiv")
	}
}

func cp(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
}

// parquet-go v0.32.0 writes some zero values of an optional non-pointer
// string as "" rather than null; row.IdempotencyKey is a *string for
// that reason. This pins that nulls and values survive, for several
// lengths and trailing-null runs.
func TestOptionalKeyKeepsNulls(t *testing.T) {
	type keyRow struct {
		Sequence       int64   `parquet:"sequence"`
		IdempotencyKey *string `parquet:"idempotency_key,optional"`
	}
	pw := eventWriter(1)
	for _, n := range []int{1, 2, 3, 10, 1250, 2500} {
		rows := make([]row, n)
		for i := range rows {
			rows[i] = row{Sequence: int64(1250 + i), Payload: []byte{}}
			if (1250+i)%3 == 0 {
				k := fmt.Sprint("k", i)
				rows[i].IdempotencyKey = &k
			}
		}
		var buf bytes.Buffer
		if err := pw.encode(&buf, rows); err != nil {
			t.Fatal(err)
		}
		got, err := parquet.Read[keyRow](bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			if (r.IdempotencyKey != nil) != (r.Sequence%3 == 0) || r.IdempotencyKey != nil && *r.IdempotencyKey == "" {
				t.Fatalf("n=%d: row %d key %v", n, r.Sequence, r.IdempotencyKey)
			}
		}
	}
}

// With batches much smaller than the target file size, a time-ordered
// partition still gets one file per hour (a row group per batch), and an
// out-of-order one gets a new file where order would break.
func TestFilesSpanBatches(t *testing.T) {
	ctx := context.Background()
	v := openEnv(t, t.TempDir(), Options{BatchBytes: 1 << 20})
	want := map[evKey]event{}
	fillTable(t, v.e, "events", 40000, want)
	res, err := v.f.FlushTable(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	tbl, _ := v.f.Table(ctx, "events")
	scanTable(t, tbl, want)
	checkDataFiles(t, tbl, openLocal(t))
	for _, pr := range res.Partitions {
		t.Logf("partition %d: %d events, %d files", pr.Partition, pr.Events, pr.Files)
		if pr.Partition == 0 && pr.Files != 3 {
			t.Fatalf("time-ordered partition 0 spans 3 hours in %d files", pr.Files)
		}
	}
}

// Expiring old snapshots keeps every data file: the table still reads
// back whole.
func TestSnapshotExpiryKeepsData(t *testing.T) {
	ctx := context.Background()
	v := openEnvCatalog(t, t.TempDir(), Options{}, func(o *catalog.Options) { o.RetainSnapshots = 2 })
	want := map[evKey]event{}
	for i := 0; i < 6; i++ {
		appendN(t, v.e, "events", uint32(i%2), 500, func(j int) int64 { return baseTs + int64(i*1000+j) }, want)
		if _, err := v.f.FlushTable(ctx, "events"); err != nil {
			t.Fatal(err)
		}
	}
	tbl, _ := v.f.Table(ctx, "events")
	if n := len(tbl.Iceberg().Metadata().Snapshots()); n > 3 {
		t.Fatalf("%d snapshots", n)
	}
	scanTable(t, tbl, want)
	checkWatermarks(t, v, "events")
	checkDataFiles(t, tbl, openLocal(t))
}

// The data files carry no min/max in their data page headers (the column
// index has them) and no page bounds for the payload; every other column
// keeps its column-index bounds and column-chunk statistics.
func TestPageStatistics(t *testing.T) {
	rows := make([]row, 1000)
	for i := range rows {
		rows[i] = row{Sequence: int64(i + 1), Topic: "t", Payload: []byte(fmt.Sprint(`{"i":`, i, `}`)), TimestampMs: 1_700_000_000_000 + int64(i), EventDate: 19675, EventHour: 22}
	}
	var buf bytes.Buffer
	if err := eventWriter(1).encode(&buf, rows); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	cols := f.Metadata().RowGroups[0].Columns
	indexes := f.ColumnIndexes()
	if len(indexes) != len(cols) {
		t.Fatalf("%d column indexes for %d columns", len(indexes), len(cols))
	}
	for i, cc := range cols {
		name := cc.MetaData.PathInSchema[0]
		var h format.PageHeader
		dec := thrift.NewDecoder(new(thrift.CompactProtocol).NewReader(bytes.NewReader(b[cc.MetaData.DataPageOffset:])))
		if err := dec.Decode(&h); err != nil {
			t.Fatalf("%s: page header: %v", name, err)
		}
		var st format.Statistics
		if v1, ok := h.DataPageHeader.Get(); ok {
			st = v1.Statistics
		} else if v2, ok := h.DataPageHeaderV2.Get(); ok {
			st = v2.Statistics
		} else {
			t.Fatalf("%s: page at the data page offset is a %v page", name, h.Type)
		}
		if st.MinValue != nil || st.MaxValue != nil || st.Min != nil || st.Max != nil {
			t.Errorf("%s: data page header has min/max %q..%q", name, st.MinValue, st.MaxValue)
		}
		hasBounds := len(indexes[i].MinValues) > 0 && len(indexes[i].MinValues[0]) > 0
		switch {
		case name == "payload" && hasBounds:
			t.Errorf("payload: column index has bounds")
		case name != "payload" && name != "idempotency_key" && !hasBounds:
			t.Errorf("%s: column index has no bounds", name)
		case name != "payload" && name != "idempotency_key" && cc.MetaData.Statistics.MinValue == nil:
			t.Errorf("%s: column chunk has no statistics", name)
		}
	}
}
