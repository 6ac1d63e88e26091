package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/catalog/rest"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/internal/testsvc"
)

// ackKey is one acknowledged event: its partition and offset.
type ackKey struct {
	p   int32
	off int64
}

// bulkLoad writes bulk requests of unique events to a zombi serve and
// records every acknowledged offset with its payload. It is bounded by a
// request count and a deadline, and it waits between requests, so the
// load stays modest on a small machine.
type bulkLoad struct {
	c        *child
	batch    int
	pause    time.Duration
	maxReqs  int
	deadline time.Time
	part     func(id int) int // the partition of event id

	stop chan struct{}
	done chan struct{}

	accepted, refused atomic.Int64 // requests
	lastAccept        atomic.Int64 // unix nanos of the last 202

	mu    sync.Mutex // guards acked and err
	acked map[ackKey]string
	err   error // the first unexpected answer
}

var loadClient = &http.Client{Timeout: 30 * time.Second}

func startBulkLoad(c *child, batch int, pause time.Duration, maxReqs int, d time.Duration, part func(int) int) *bulkLoad {
	l := &bulkLoad{c: c, batch: batch, pause: pause, maxReqs: maxReqs, deadline: time.Now().Add(d), part: part,
		stop: make(chan struct{}), done: make(chan struct{}), acked: map[ackKey]string{}}
	go l.run()
	return l
}

func payloadOf(id int) string {
	return fmt.Sprintf("event-%09d-abcdefghijklmnopqrstuvwxyz-0123456789", id)
}

func (l *bulkLoad) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

func (l *bulkLoad) run() {
	defer close(l.done)
	next := 0
	for i := 0; i < l.maxReqs && time.Now().Before(l.deadline); i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		var b strings.Builder
		b.WriteString(`{"records":[`)
		parts := make([]int, l.batch)
		for k := range l.batch {
			if k > 0 {
				b.WriteByte(',')
			}
			parts[k] = l.part(next + k)
			fmt.Fprintf(&b, `{"payload":%q,"partition":%d}`, payloadOf(next+k), parts[k])
		}
		b.WriteString(`]}`)
		// Never canceled: a request cut short could be written without
		// its acknowledgement, and the check wants exactly the acked set.
		r, err := loadClient.Post(l.c.base+"/tables/events/bulk", "application/json", strings.NewReader(b.String()))
		if err != nil {
			l.fail(err)
			return
		}
		var body struct {
			Offsets []int64 `json:"offsets"`
			Code    string  `json:"code"`
		}
		derr := json.NewDecoder(r.Body).Decode(&body)
		r.Body.Close()
		switch {
		case r.StatusCode == http.StatusAccepted && derr == nil && len(body.Offsets) == l.batch:
			l.mu.Lock()
			for k, off := range body.Offsets {
				key := ackKey{int32(parts[k]), off}
				if _, dup := l.acked[key]; dup {
					l.mu.Unlock()
					l.fail(fmt.Errorf("offset %d of partition %d acknowledged twice", off, parts[k]))
					return
				}
				l.acked[key] = payloadOf(next + k)
			}
			l.mu.Unlock()
			l.accepted.Add(1)
			l.lastAccept.Store(time.Now().UnixNano())
		case r.StatusCode == http.StatusServiceUnavailable && body.Code == "SERVER_OVERLOADED":
			ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
			if err != nil || ra < 1 {
				l.fail(fmt.Errorf("503 with Retry-After %q", r.Header.Get("Retry-After")))
				return
			}
			l.refused.Add(1)
			// Honour Retry-After, capped so that the end of an outage is
			// seen within a second.
			select {
			case <-l.stop:
				return
			case <-time.After(min(time.Duration(ra)*time.Second, time.Second)):
			}
		default:
			l.fail(fmt.Errorf("write: %d %+v (%v)", r.StatusCode, body, derr))
			return
		}
		next += l.batch
		select {
		case <-l.stop:
			return
		case <-time.After(l.pause):
		}
	}
}

// finish stops the load and returns what was acknowledged.
func (l *bulkLoad) finish(t *testing.T) map[ackKey]string {
	t.Helper()
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		t.Fatalf("load: %v\n%s", l.err, l.c.log())
	}
	return l.acked
}

func (l *bulkLoad) checkErr(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		t.Fatalf("load: %v\n%s", l.err, l.c.log())
	}
}

// metric returns a value of /metrics, or -1 when absent.
func (c *child) metric(name string) int64 {
	c.t.Helper()
	_, _, body := c.do("GET", "/metrics", "")
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// scanAcked reads the events table through our /v1 view with iceberg-go
// (the independent reader) and checks that it holds exactly want: every
// acknowledged event once with its payload, nothing else. It returns the
// table's current snapshot summary.
func scanAcked(t *testing.T, base string, want map[ackKey]string, props map[string]string) map[string]string {
	t.Helper()
	ctx := context.Background()
	rc, err := rest.NewCatalog(ctx, "zombi", base, rest.WithAdditionalProps(props))
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := rc.LoadTable(ctx, []string{"zombi", "events"})
	if err != nil {
		t.Fatal(err)
	}
	at, err := tbl.Scan().ToArrowTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	got := make(map[ackKey]string, len(want))
	rd := array.NewTableReader(at, 0)
	defer rd.Release()
	for rd.Next() {
		rec := rd.RecordBatch()
		col := func(name string) int { return rec.Schema().FieldIndices(name)[0] }
		seq := rec.Column(col("sequence")).(*array.Int64)
		part := rec.Column(col("partition")).(*array.Int32)
		payload := rec.Column(col("payload")).(*array.Binary)
		for i := range int(rec.NumRows()) {
			k := ackKey{part.Value(i), seq.Value(i)}
			if _, dup := got[k]; dup {
				t.Fatalf("duplicate in Iceberg: partition %d offset %d", k.p, k.off)
			}
			got[k] = string(payload.Value(i))
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	for k, p := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("acked event lost: partition %d offset %d (%d in Iceberg, %d acked)", k.p, k.off, len(got), len(want))
		}
		if g != p {
			t.Fatalf("partition %d offset %d: payload %q, acked %q", k.p, k.off, g, p)
		}
	}
	if len(got) != len(want) {
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Fatalf("event never acked in Iceberg: partition %d offset %d (%d in Iceberg, %d acked)", k.p, k.off, len(got), len(want))
			}
		}
	}
	summary := map[string]string{}
	if s := tbl.CurrentSnapshot(); s != nil && s.Summary != nil {
		for k, v := range s.Summary.Properties {
			summary[k] = v
		}
	}
	return summary
}

// checkContiguous checks that the acked offsets of each partition are
// exactly 1..high (no offset skipped or reused) and returns the highs.
func checkContiguous(t *testing.T, acked map[ackKey]string) map[int32]int64 {
	t.Helper()
	high := map[int32]int64{}
	n := map[int32]int64{}
	for k := range acked {
		high[k.p] = max(high[k.p], k.off)
		n[k.p]++
	}
	for p, h := range high {
		if n[p] != h {
			t.Fatalf("partition %d: %d offsets acked, the highest is %d", p, n[p], h)
		}
	}
	return high
}

// outage is how long MinIO stays down in TestServeMinIOOutageUnderLoad:
// the "MinIO stopped for minutes" of the reliability targets (issue 6).
const outage = 2 * time.Minute

// MinIO stops for two minutes under a steady bulk load on zombi serve
// with a small hot-tier budget: ingest goes on until the budget, then
// writes get 503 SERVER_OVERLOADED with Retry-After and /health/ready
// says why; MinIO comes back, the tier drains, writes are taken again,
// and an iceberg-go scan holds every acknowledged event exactly once with
// its payload, and nothing else.
func TestServeMinIOOutageUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses; takes over two minutes")
	}
	m := testsvc.StartMinIO(t)
	const budgetBytes int64 = 214748 // ZOMBI_HOT_MAX_GB=0.0002
	c := startChild(t, t.TempDir(), "ZOMBI_S3_BUCKET=zombi", "ZOMBI_S3_ENDPOINT=http://"+m.Addr,
		"AWS_ACCESS_KEY_ID="+minioUser, "AWS_SECRET_ACCESS_KEY="+minioSecret,
		"ZOMBI_HOT_MAX_GB=0.0002",
		"ZOMBI_FLUSH_INTERVAL_SECS=1", "ZOMBI_S3_MAX_RETRIES=1", "ZOMBI_S3_RETRY_INITIAL_MS=50", "ZOMBI_S3_RETRY_MAX_MS=1000")
	// 20 events of ~90 bytes every 25 ms at most: ~70 KB/s, so the budget
	// fills within seconds of the outage.
	l := startBulkLoad(c, 20, 25*time.Millisecond, 20000, outage+90*time.Second, func(id int) int { return id % 2 })

	waitFor := func(what string, d time.Duration, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !cond() {
			l.checkErr(t)
			if time.Since(start) > d {
				t.Fatalf("%s: not within %v\n%s", what, d, c.log())
			}
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitFor("a flush committed to MinIO", 30*time.Second, func() bool { return c.metric("zombi_flush_total") > 0 })
	before := l.accepted.Load()

	m.Stop()
	down := time.Now()
	full := waitFor("writes refused with MinIO down", 60*time.Second, func() bool { return l.refused.Load() > 0 })
	during := l.accepted.Load() - before
	if during == 0 {
		t.Fatal("no write taken between the outage and the budget")
	}
	if st, _, body := c.do("GET", "/health/ready", ""); st != 503 || !strings.Contains(body, "hot tier over its budget") {
		t.Fatalf("ready during the outage: %d %s", st, body)
	}
	if c.metric("zombi_hot_tier_over_budget") != 1 || c.metric("zombi_s3_errors_total") < 1 {
		t.Fatalf("metrics during the outage: over budget %d, s3 errors %d",
			c.metric("zombi_hot_tier_over_budget"), c.metric("zombi_s3_errors_total"))
	}
	maxHot := int64(0)
	for time.Since(down) < outage {
		l.checkErr(t)
		maxHot = max(maxHot, c.metric("zombi_hot_tier_bytes"))
		time.Sleep(time.Second)
	}
	refusedDown, acceptedDown := l.refused.Load(), l.accepted.Load()-before
	// The budget is checked against the hot bytes of the last poll (1 s):
	// it may be passed by about a second of writes (~70 KB), not more.
	// (Before the hot bytes had their own ticker, failing flushes of ~4 s
	// each let it reach 380-420 KB.)
	if limit := budgetBytes + 128<<10; maxHot > limit {
		t.Fatalf("hot tier reached %d bytes with a budget of %d", maxHot, budgetBytes)
	}

	m.Start(t)
	up := time.Now()
	drained := waitFor("writes taken again after MinIO came back", 90*time.Second,
		func() bool { return l.lastAccept.Load() > up.UnixNano() })
	after := l.accepted.Load()
	waitFor("more writes after the drain", 30*time.Second, func() bool { return l.accepted.Load() >= after+50 })
	acked := l.finish(t)

	c.flush()
	h := highs(t, c) // also checks that the engine's flushed watermark is at its high one
	if hc := checkContiguous(t, acked); len(hc) != len(h) || hc[0] != h[0] || hc[1] != h[1] {
		t.Fatalf("acked highs %v, server highs %v", hc, h)
	}
	summary := scanAcked(t, c.base, acked, map[string]string{
		"s3.access-key-id": minioUser, "s3.secret-access-key": minioSecret,
	})
	for p, hp := range h {
		if got := summary[catalog.WatermarkPrefix+strconv.Itoa(int(p))]; got != strconv.FormatInt(hp, 10) {
			t.Fatalf("snapshot watermark of partition %d: %q, want %d", p, got, hp)
		}
	}
	if st, _, body := c.do("GET", "/health/ready", ""); st != 200 {
		t.Fatalf("ready after the drain: %d %s", st, body)
	}
	if v := c.metric("zombi_hot_tier_over_budget"); v != 0 {
		t.Fatalf("over budget after the drain: %d", v)
	}
	t.Logf("outage %v: %d writes taken in it (%d before the first 503, %v in), %d refused, hot tier peak %d bytes; "+
		"writes taken again %v after MinIO was back; %d events acked, all in Iceberg once; s3 errors %d",
		outage, acceptedDown, during, full.Round(time.Millisecond), refusedDown, maxHot, drained.Round(time.Millisecond),
		len(acked), c.metric("zombi_s3_errors_total"))
	c.stop()
}

// Two zombi serve processes with their own data dirs share one Iceberg
// table (one SQLite catalog file, one MinIO bucket), each writing its own
// partition, which is the supported way for several nodes to feed one
// table: the watermarks in the snapshot summary are per partition, and
// each process reads and advances only those of the partitions in its
// hot tier. Both flush at once again and again, so their commits
// conflict (the SQL catalog's "branch main has changed") and are retried
// after a reload; one of them is killed with SIGKILL mid-flush and
// restarted. At the end the table holds every acknowledged event of both
// exactly once and the summary carries each one's watermark and node id.
func TestServeTwoProcessesOneTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	m := testsvc.StartMinIO(t)
	env := []string{"ZOMBI_S3_BUCKET=zombi", "ZOMBI_S3_ENDPOINT=http://" + m.Addr,
		"AWS_ACCESS_KEY_ID=" + minioUser, "AWS_SECRET_ACCESS_KEY=" + minioSecret,
		"ZOMBI_CATALOG_URL=sqlite:" + filepath.Join(t.TempDir(), "catalog.db"),
		"ZOMBI_FLUSH_INTERVAL_SECS=1", "ZOMBI_S3_RETRY_INITIAL_MS=50", "ZOMBI_S3_RETRY_MAX_MS=500"}
	dirs := []string{t.TempDir(), t.TempDir()}
	var procs [2]*child
	var loads [2]*bulkLoad
	acked := map[ackKey]string{}
	var logs [2]strings.Builder // of processes killed
	startLoad := func(i int) {
		loads[i] = startBulkLoad(procs[i], 50, 20*time.Millisecond, 5000, time.Minute, func(int) int { return i })
	}
	for i := range procs {
		procs[i] = startChild(t, dirs[i], env...)
		startLoad(i)
	}
	stopLoad := func(i int) {
		for k, v := range loads[i].finish(t) {
			acked[k] = v
		}
	}
	conflicts := func() int {
		n := 0
		for i, c := range procs {
			n += strings.Count(logs[i].String()+c.log(), "iceberg commit failed; retrying")
		}
		return n
	}
	flushBoth := func() {
		var wg sync.WaitGroup
		var errs [2]string
		for i, c := range procs {
			wg.Go(func() {
				req, _ := http.NewRequest("POST", c.base+"/tables/events/flush", nil)
				r, err := coldClient.Do(req)
				if err != nil {
					errs[i] = err.Error()
					return
				}
				defer r.Body.Close()
				if r.StatusCode != 200 {
					errs[i] = "status " + r.Status
				}
			})
		}
		wg.Wait()
		for i, e := range errs {
			if e != "" {
				t.Fatalf("flush of process %d: %s\n%s", i, e, procs[i].log())
			}
		}
	}
	rounds := 0
	for ; rounds < 40 && (rounds < 10 || conflicts() < 3); rounds++ {
		time.Sleep(300 * time.Millisecond)
		if rounds == 4 {
			// kill -9 process 0 in the middle of a flush (its load is
			// stopped first: an unanswered request is not acknowledged).
			stopLoad(0)
			go func(c *child) {
				req, _ := http.NewRequest("POST", c.base+"/tables/events/flush", nil)
				if r, err := coldClient.Do(req); err == nil {
					r.Body.Close()
				}
			}(procs[0])
			time.Sleep(30 * time.Millisecond)
			procs[0].kill()
			logs[0].WriteString(procs[0].log())
			procs[0] = startChild(t, dirs[0], env...)
			startLoad(0)
			continue
		}
		flushBoth()
	}
	for i := range procs {
		stopLoad(i)
	}
	flushBoth()
	h := map[int32]int64{}
	for i, c := range procs {
		hi := highs(t, c)
		if len(hi) != 1 || hi[int32(i)] == 0 {
			t.Fatalf("process %d has partitions %v", i, hi)
		}
		h[int32(i)] = hi[int32(i)]
	}
	if hc := checkContiguous(t, acked); len(hc) != 2 || hc[0] != h[0] || hc[1] != h[1] {
		t.Fatalf("acked highs %v, server highs %v", hc, h)
	}
	n := conflicts()
	if n == 0 {
		t.Fatalf("no commit conflict in %d rounds of simultaneous flushes", rounds)
	}
	for i, c := range procs {
		if lg := logs[i].String() + c.log(); strings.Contains(lg, "watermark conflict") || strings.Contains(lg, "beyond the hot tier") {
			t.Fatalf("process %d:\n%s", i, lg)
		}
	}
	props := map[string]string{"s3.access-key-id": minioUser, "s3.secret-access-key": minioSecret}
	for _, c := range procs { // both views show the same table
		summary := scanAcked(t, c.base, acked, props)
		for p, hp := range h {
			ps, want := strconv.Itoa(int(p)), strconv.FormatInt(hp, 10)
			if summary[catalog.WatermarkPrefix+ps] != want || summary[catalog.HighWatermarkPrefix+ps] != want {
				t.Fatalf("snapshot summary of partition %d: %q/%q, want %s",
					p, summary[catalog.WatermarkPrefix+ps], summary[catalog.HighWatermarkPrefix+ps], want)
			}
			// Each partition is owned by the process that feeds it: the
			// id in its data dir.
			id, err := os.ReadFile(filepath.Join(dirs[p], nodeIDFile))
			if err != nil {
				t.Fatal(err)
			}
			if owner := summary[catalog.OwnerPrefix+ps]; owner == "" || owner != strings.TrimSpace(string(id)) {
				t.Fatalf("partition %d owned by %q, want process %d's node id %q", p, owner, p, id)
			}
		}
	}
	t.Logf("%d rounds of simultaneous flushes, one kill -9: %d commit conflicts retried; %d events acked (highs %v), all in Iceberg once",
		rounds, n, len(acked), h)
	for _, c := range procs {
		c.stop()
	}
}
