package flush

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/engine"
)

// faultProxy is an HTTP proxy on 127.0.0.1 in front of MinIO that injects
// the faults of an object store in trouble, for both S3 clients of the
// cold tier (minio-go for the data files, iceberg-go's for metadata and
// manifests). The fault settings may change at any time.
type faultProxy struct {
	addr string
	srv  *http.Server
	rp   *httputil.ReverseProxy
	done chan struct{} // closed by close: held requests end

	// failOneIn makes one request in n, at random, answer 500
	// InternalError; 0 never.
	failOneIn atomic.Int64
	// failing makes every request answer 500 InternalError.
	failing atomic.Bool
	// latency is added before each request is forwarded.
	latency atomic.Int64 // time.Duration
	// stalling holds each new request without an answer until its client
	// gives up (closes the connection) or the proxy closes: a store that
	// accepts connections and never answers.
	stalling atomic.Bool
	// stallPath, when set, limits stalling to the requests whose path
	// contains it ("/metadata/": only iceberg-go's requests).
	stallPath atomic.Pointer[string]
	// stallMinBody, when set, limits stalling to the requests with a body
	// of at least that many bytes, which is never read: the client's
	// writes block once the socket buffers are full.
	stallMinBody atomic.Int64
	// cutEvery makes every n-th PUT with a body of 4 KiB or more forward
	// nothing and drop the connection after reading 1 KiB of it: an
	// upload cut in the middle; 0 never.
	cutEvery atomic.Int64

	requests, puts             atomic.Int64
	injected, stalled, cut, ok atomic.Int64
}

func startFaultProxy(tb testing.TB, target string) *faultProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &url.URL{Scheme: "http", Host: target}
	p := &faultProxy{addr: ln.Addr().String(), done: make(chan struct{})}
	// The Host header stays the proxy's, which the clients signed.
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.ErrorLog = nil
	p.srv = &http.Server{Handler: p}
	go p.srv.Serve(smallBufListener{ln})
	tb.Cleanup(p.close)
	return p
}

// smallBufListener gives each accepted connection a small, fixed receive
// buffer (no autotuning up to tcp_rmem's tens of MiB), so that a request
// body the proxy does not read fills it soon and blocks the client.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(256 << 10)
	}
	return c, err
}

func (p *faultProxy) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.srv.Close()
}

// s3Error is the body of an injected failure, as S3 words it.
const s3Error = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>InternalError</Code><Message>injected by the test proxy</Message><RequestId>fault</RequestId></Error>`

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	if d := time.Duration(p.latency.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		case <-p.done:
			return
		}
	}
	if sp := p.stallPath.Load(); p.stalling.Load() && (sp == nil || strings.Contains(r.URL.Path, *sp)) && r.ContentLength >= p.stallMinBody.Load() {
		p.stalled.Add(1)
		select {
		case <-r.Context().Done():
		case <-p.done:
		}
		return
	}
	if k := p.failOneIn.Load(); p.failing.Load() || k > 0 && rand.Int64N(k) == 0 {
		p.injected.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, s3Error)
		return
	}
	if r.Method == http.MethodPut && r.ContentLength >= 4<<10 {
		if k := p.cutEvery.Load(); k > 0 && p.puts.Add(1)%k == 0 {
			p.cut.Add(1)
			io.CopyN(io.Discard, r.Body, 1<<10)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
	}
	p.ok.Add(1)
	p.rp.ServeHTTP(w, r)
}

// heal turns every fault off.
func (p *faultProxy) heal() {
	p.failOneIn.Store(0)
	p.failing.Store(false)
	p.latency.Store(0)
	p.stalling.Store(false)
	p.cutEvery.Store(0)
}

func (p *faultProxy) String() string {
	return fmt.Sprintf("%d requests: %d forwarded, %d answered 500, %d stalled, %d cut",
		p.requests.Load(), p.ok.Load(), p.injected.Load(), p.stalled.Load(), p.cut.Load())
}

// seqStats is what an iceberg-go scan of a table holds per partition.
type seqStats struct {
	rows, distinct int64
	sum            uint64 // of the sequences
	max            uint64
}

// scanSeqStats scans the table with iceberg-go and returns, per partition,
// the row count, the distinct sequences and their sum.
func scanSeqStats(t *testing.T, tbl *catalog.Table) map[uint32]seqStats {
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
	seen := map[evKey]bool{}
	out := map[uint32]seqStats{}
	rd := array.NewTableReader(at, 0)
	defer rd.Release()
	for rd.Next() {
		rec := rd.RecordBatch()
		seq := rec.Column(rec.Schema().FieldIndices("sequence")[0]).(*array.Int64)
		part := rec.Column(rec.Schema().FieldIndices("partition")[0]).(*array.Int32)
		for i := range int(rec.NumRows()) {
			k := evKey{uint32(part.Value(i)), uint64(seq.Value(i))}
			s := out[k.p]
			s.rows++
			if !seen[k] {
				seen[k] = true
				s.distinct++
				s.sum += k.seq
				s.max = max(s.max, k.seq)
			}
			out[k.p] = s
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkExactlyOnce checks with an iceberg-go scan that every partition
// of the engine holds each offset 1..high once (count, distinct
// sequences and their sum), then compares every event with want.
func checkExactlyOnce(t *testing.T, v *env, table string, want map[evKey]event) {
	t.Helper()
	tbl, err := v.f.Table(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	got := scanSeqStats(t, tbl)
	for _, pi := range v.e.Partitions(table) {
		h := pi.High
		w := seqStats{rows: int64(h), distinct: int64(h), sum: h * (h + 1) / 2, max: h}
		if g := got[pi.Partition]; g != w {
			t.Fatalf("partition %d in Iceberg: %+v, want %+v", pi.Partition, g, w)
		}
	}
	scanTable(t, tbl, want)
	checkWatermarks(t, v, table)
}

// waitFlushed waits until the background flusher has committed every
// event of table, or fails after d.
func waitFlushed(t *testing.T, v *env, table string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		done := true
		for _, pi := range v.e.Partitions(table) {
			done = done && pi.Flushed == pi.High
		}
		if done {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("not flushed %v after the fault ended: %+v, last error %v", d, v.e.Partitions(table), v.f.LastError(table))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proxiedEnv opens a flusher whose data files and Iceberg metadata both
// go through p to bucket (made directly on m). clientRetries is
// minio-go's own retry count (0: the default, 3).
func proxiedEnv(t *testing.T, m *minioServer, p *faultProxy, bucket string, clientRetries int, opts Options) *env {
	t.Helper()
	m.store(t, bucket)
	s, err := NewS3Store(S3Options{Bucket: bucket, Endpoint: "http://" + p.addr, Region: "us-east-1",
		AccessKey: minioUser, SecretKey: minioSecret, ClientRetries: clientRetries, ResponseTimeout: stallTimeout})
	if err != nil {
		t.Fatal(err)
	}
	opts.Store = s
	return openEnv(t, t.TempDir(), opts)
}

// stallTimeout is the client timeout of the stall case: the S3 client's
// response timeout and the flusher's catalog timeout.
const stallTimeout = 3 * time.Second

// An object store in trouble, through a fault-injecting proxy in front of
// MinIO that both S3 clients go through: random 500s with uploads cut in
// the middle, a window where every request fails, added latency, and
// requests held without an answer for longer than the client timeout.
// Ingest continues while the store fails; flushes retry and the table
// ends with every event exactly once (iceberg-go scan: count, distinct
// sequences, sum, every event), each committed Parquet file whole and
// readable, and the failures counted (zombi_s3_errors_total).
func TestFlushThroughFaultyProxy(t *testing.T) {
	m := startMinio(t)
	// The background flusher as zombi serve runs it, with short delays.
	bg := Options{Interval: 200 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		RetryInitial: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, CatalogTimeout: stallTimeout}
	// ingest appends n events to each of two partitions in a few batches
	// while the flusher runs, as producers would.
	ingest := func(t *testing.T, v *env, n int, want map[evKey]event) {
		for range 4 {
			appendN(t, v.e, "events", 0, n/4, func(i int) int64 { return baseTs + int64(i)*1000 }, want)
			appendN(t, v.e, "events", 1, n/4, func(i int) int64 { return baseTs + hourMs + int64(i)*1000 }, want)
			time.Sleep(100 * time.Millisecond)
		}
	}
	finish := func(t *testing.T, v *env, p *faultProxy, want map[evKey]event) {
		t.Helper()
		took := waitFlushed(t, v, "events", 60*time.Second)
		p.heal() // the checks read through the proxy too
		checkExactlyOnce(t, v, "events", want)
		tbl, _ := v.f.Table(context.Background(), "events")
		n := checkDataFiles(t, tbl, openS3(t, v.f.opts.Store.(*S3Store)))
		st := v.f.Stats()
		t.Logf("all flushed %v after the last write; %d data files, %d commits, %d upload errors, %d commit errors; proxy: %v",
			took.Round(time.Millisecond), n, st.Flushes, st.UploadErrors, st.CommitErrors, p)
	}

	t.Run("random_500s_and_cut_uploads", func(t *testing.T) {
		p := startFaultProxy(t, m.addr)
		p.failOneIn.Store(6)
		p.cutEvery.Store(3)
		// minio-go retries a request itself (a part from its buffer), as
		// in production: rounds are all or nothing, and without these
		// retries a round of ~25 files at these rates would rarely
		// succeed.
		v := proxiedEnv(t, m, p, "random500", 0, bg)
		want := map[evKey]event{}
		v.f.Start()
		ingest(t, v, 40000, want)
		finish(t, v, p, want)
		if p.injected.Load() == 0 || p.cut.Load() == 0 {
			t.Fatalf("faults not exercised: %v, %+v", p, v.f.Stats())
		}
	})

	t.Run("failing_window_ingest_continues", func(t *testing.T) {
		p := startFaultProxy(t, m.addr)
		v := proxiedEnv(t, m, p, "window", 1, bg)
		want := map[evKey]event{}
		v.f.Start()
		ingest(t, v, 4000, want)
		waitFlushed(t, v, "events", 30*time.Second)
		before := v.f.Stats()
		p.failing.Store(true)
		ingest(t, v, 8000, want) // the hot tier takes every write
		// A flush round fails once minio-go's own retries give up; on a
		// loaded machine (the flusher runs at nice 10) that can take a
		// while, so wait for it rather than for a fixed time.
		for deadline := time.Now().Add(45 * time.Second); v.f.LastError("events") == nil; {
			if time.Now().After(deadline) {
				t.Fatal("no flush error while every request fails")
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, pi := range v.e.Partitions("events") {
			if pi.Flushed == pi.High {
				t.Fatalf("partition %d marked flushed while the store fails: %+v", pi.Partition, pi)
			}
		}
		if st := v.f.Stats(); st.UploadErrors <= before.UploadErrors || st.Flushes != before.Flushes {
			t.Fatalf("during the failures: %+v, before %+v", st, before)
		}
		p.failing.Store(false)
		finish(t, v, p, want)
	})

	t.Run("latency", func(t *testing.T) {
		p := startFaultProxy(t, m.addr)
		p.latency.Store(int64(40 * time.Millisecond))
		v := proxiedEnv(t, m, p, "latency", 1, bg)
		want := map[evKey]event{}
		v.f.Start()
		ingest(t, v, 8000, want)
		finish(t, v, p, want)
	})

	// A part upload whose body the store stops reading: the client's
	// writes block on a full socket, and TCP keeps the zero window open
	// for as long as the store acknowledges probes, so only a write
	// deadline ends it. Before it the flush hung until its context ended
	// (for the background loop: never), the store being fine again.
	t.Run("stall_upload_body", func(t *testing.T) {
		p := startFaultProxy(t, m.addr)
		// No background loop: it would flush each 1 MiB segment as it
		// fills; one FlushTable makes one 16 MiB file of 8 MiB parts.
		v := proxiedEnv(t, m, p, "stall-body", 1, Options{CatalogTimeout: stallTimeout})
		want := map[evKey]event{}
		ctx := context.Background()
		appendN(t, v.e, "events", 0, 100, func(i int) int64 { return baseTs + int64(i) }, want)
		if _, err := v.f.FlushTable(ctx, "events"); err != nil { // creates the table
			t.Fatal(err)
		}
		// 16 MiB of incompressible payloads.
		recs := make([]engine.Record, 4096)
		offs := make([]uint64, len(recs))
		for i := range recs {
			b := make([]byte, 4096)
			crand.Read(b)
			recs[i] = engine.Record{Partition: 2, TimestampMs: baseTs + int64(i), Payload: b}
		}
		if err := v.e.AppendBatch("events", recs, offs); err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			want[evKey{2, offs[i]}] = event{ts: r.TimestampMs, payload: string(r.Payload)}
		}
		p.stallMinBody.Store(4 << 20)
		p.stalling.Store(true)
		go func() {
			for p.stalled.Load() == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(stallTimeout / 2)
			p.stalling.Store(false) // the held upload stays held
		}()
		// Bounded well below minio-go's minute: the held part must be given
		// up and the round written again.
		fctx, cancel := context.WithTimeout(ctx, 10*stallTimeout)
		defer cancel()
		start := time.Now()
		if _, err := v.f.FlushTable(fctx, "events"); err != nil {
			t.Fatalf("flush with a held upload: %v (after %v; %v)", err, time.Since(start), p)
		}
		if p.stalled.Load() == 0 {
			t.Fatal("no upload was held")
		}
		checkExactlyOnce(t, v, "events", want)
		tbl, _ := v.f.Table(ctx, "events")
		checkDataFiles(t, tbl, openS3(t, v.f.opts.Store.(*S3Store)))
		t.Logf("flushed in %v with a held upload; %+v; proxy: %v", time.Since(start).Round(time.Millisecond), v.f.Stats(), p)
	})

	// Requests are held without an answer until their client gives up:
	// first every request (the data uploads, through minio-go), then only
	// iceberg-go's metadata requests (the commit). Before the S3 response
	// timeout and the flusher's catalog timeout, a held data upload
	// stalled the flush for minio-go's minute, and a held metadata read
	// hung it for good: the table's flushes stopped while the store was
	// fine again.
	for _, only := range []string{"", "/metadata/"} {
		name := "stall_all"
		if only != "" {
			name = "stall_metadata"
		}
		t.Run(name, func(t *testing.T) {
			p := startFaultProxy(t, m.addr)
			v := proxiedEnv(t, m, p, strings.ReplaceAll(name, "_", "-"), 1, bg)
			want := map[evKey]event{}
			v.f.Start()
			ingest(t, v, 4000, want)
			waitFlushed(t, v, "events", 30*time.Second)
			if only != "" {
				p.stallPath.Store(&only)
			}
			p.stalling.Store(true)
			ingest(t, v, 8000, want)
			for p.stalled.Load() == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(stallTimeout / 2)
			p.stalling.Store(false) // the held requests stay held
			// Bounded well below minio-go's minute: the held requests must
			// be given up and retried.
			took := waitFlushed(t, v, "events", 10*stallTimeout)
			checkExactlyOnce(t, v, "events", want)
			tbl, _ := v.f.Table(context.Background(), "events")
			checkDataFiles(t, tbl, openS3(t, v.f.opts.Store.(*S3Store)))
			t.Logf("flushed %v after the stall; %+v; proxy: %v", took.Round(time.Millisecond), v.f.Stats(), p)
		})
	}
}

// blockingStore holds every Create until release is closed (or the
// flush is canceled): a store that takes its time to fail.
type blockingStore struct {
	Store
	entered chan struct{} // gets a token when a Create starts waiting
	release chan struct{}
}

func (s *blockingStore) Create(ctx context.Context, loc string) (ObjectWriter, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	return s.Store.Create(ctx, loc)
}

// The hot tier's size, which the write budget is checked against, stays
// current while a flush is stuck on the store. It used to be refreshed
// only between flushes: with MinIO down each failing flush took ~4 s
// (the S3 clients' retries), and zombi serve took writes up to twice its
// budget before the first 503.
func TestBudgetTracksHotTierDuringSlowFlush(t *testing.T) {
	st := &blockingStore{Store: LocalStore{}, entered: make(chan struct{}, 1), release: make(chan struct{})}
	v := openEnv(t, t.TempDir(), Options{Store: st, Interval: 100 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		HotMaxBytes: 64 << 10})
	want := map[evKey]event{}
	appendN(t, v.e, "events", 0, 100, func(i int) int64 { return baseTs + int64(i) }, want)
	v.f.Start()
	select {
	case <-st.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no flush started")
	}
	fillTable(t, v.e, "events", 4000, want) // past the budget while the flush waits
	deadline := time.Now().Add(2 * time.Second)
	for !v.f.OverBudget() {
		if time.Now().After(deadline) {
			t.Fatalf("not over budget 2 s after the hot tier grew to %d bytes (budget %d): the flusher sees %d",
				v.e.Stats().HotBytes, 64<<10, v.f.Stats().HotBytes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(st.release)
	waitFlushed(t, v, "events", 20*time.Second)
	for deadline := time.Now().Add(5 * time.Second); v.f.OverBudget(); {
		if time.Now().After(deadline) {
			t.Fatalf("still over budget after the flush: %d hot bytes", v.f.Stats().HotBytes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	tbl, _ := v.f.Table(context.Background(), "events")
	scanTable(t, tbl, want)
}
