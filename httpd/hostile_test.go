package httpd

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/zombihq/zombi/engine"
)

// Hostile clients against a real server on 127.0.0.1: each attack is
// bounded in time and memory and gets the right 4xx (or a closed
// connection), and the server keeps serving everyone else.

// rawDo sends one raw request on a new connection and reads the response.
func rawDo(t *testing.T, ts *testServer, req string) resp {
	t.Helper()
	rc := dialRaw(t, ts.addr)
	if err := rc.write(req); err != nil {
		t.Fatalf("write: %v", err)
	}
	return rc.response()
}

func rawPost(t *testing.T, ts *testServer, path, body string) resp {
	t.Helper()
	return rawDo(t, ts, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body))
}

// timed fails the test when fn takes longer than d.
func timed(t *testing.T, what string, d time.Duration, fn func()) {
	t.Helper()
	start := time.Now()
	fn()
	if el := time.Since(start); el > d {
		t.Fatalf("%s took %v (limit %v)", what, el, d)
	}
}

// TestSlowloris opens 200 connections that each send a request header a
// byte at a time. A normal client is still served promptly, and
// ReadTimeout closes every slow connection.
func TestSlowloris(t *testing.T) {
	const (
		conns       = 200
		readTimeout = 700 * time.Millisecond
	)
	ts := startServer(t, "", func(c *Config) { c.ReadTimeout = readTimeout; c.IdleTimeout = readTimeout })
	header := "POST /tables/t HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\nX-Slow: " + strings.Repeat("z", 100) + "\r\n\r\n"
	start := time.Now()
	closedAfter := make([]time.Duration, conns)
	var wg sync.WaitGroup
	for i := range conns {
		c, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		wg.Add(2)
		go func() { // a byte every 100 ms, for at most 4 s
			defer wg.Done()
			for j := 0; j < len(header) && j < 40; j++ {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write([]byte{header[j]}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		go func() { // the server closes the connection (after a 408, or not)
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, c)
			closedAfter[i] = time.Since(start)
		}()
	}
	// Meanwhile a normal client is served at once, several times.
	time.Sleep(200 * time.Millisecond)
	for i := range 5 {
		timed(t, "a normal write during the slowloris", 500*time.Millisecond, func() {
			expect(t, ts.post("/tables/t", `{"payload":"ok"}`), 202, fmt.Sprintf(`{"offset":%d,"partition":0,"table":"t"}`, i+1))
		})
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	sort.Slice(closedAfter, func(i, j int) bool { return closedAfter[i] < closedAfter[j] })
	// Each connection started up to ~0.5 s after the first; ReadTimeout
	// runs from its first byte. None may live to our 5 s read deadline.
	if last := closedAfter[conns-1]; last > readTimeout+2*time.Second {
		t.Fatalf("slow connections were closed after %v..%v; ReadTimeout is %v", closedAfter[0], last, readTimeout)
	}
	t.Logf("%d slow connections closed by the server %v..%v after the first was opened", conns, closedAfter[0], closedAfter[conns-1])
}

// TestHugeHeaders: headers over the read buffer (16 KiB) answer
// 431 HEADERS_TOO_LARGE and close the connection, however large they are.
func TestHugeHeaders(t *testing.T) {
	ts := startServer(t, "", nil)
	for name, req := range map[string]string{
		"one 64 KiB header":  "GET /tables/t HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n",
		"4000 small headers": "GET /tables/t HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-H: v\r\n", 4000) + "\r\n",
		"a 100 KiB URL":      "GET /tables/t?x=" + strings.Repeat("q", 100<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		rc := dialRaw(t, ts.addr)
		// The server may answer and close before we finish sending.
		go rc.write(req)
		r := rc.response()
		expectError(t, r, 431, codeHeadersTooLarge)
		if r.header.Get("Connection") != "close" {
			t.Fatalf("%s: connection kept open", name)
		}
	}
	// An endless header line: the server stops at its buffer; we stop
	// sending once it closes.
	rc := dialRaw(t, ts.addr)
	rc.write("GET /tables/t HTTP/1.1\r\nHost: x\r\nX-Endless: ")
	go func() {
		chunk := strings.Repeat("e", 16<<10)
		for range 1024 { // 16 MiB at most
			if rc.write(chunk) != nil {
				return
			}
		}
	}()
	timed(t, "an endless header", 5*time.Second, func() { expectError(t, rc.response(), 431, codeHeadersTooLarge) })
	expect(t, ts.post("/tables/t", `{"payload":"ok"}`), 202, `{"offset":1,"partition":0,"table":"t"}`)
}

// TestEndlessChunkedBody: a chunked body that never ends is cut by
// ReadTimeout (408), and one that grows past the body limit by 413;
// neither holds any budget afterwards.
func TestEndlessChunkedBody(t *testing.T) {
	ts := startServer(t, "", func(c *Config) { c.ReadTimeout = 500 * time.Millisecond; c.MaxBodyBytes = 1 << 20 })
	for _, path := range []string{"/tables/t", "/tables/t/bulk"} {
		rc := dialRaw(t, ts.addr)
		rc.write("POST " + path + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		stop := make(chan struct{})
		go func() {
			for range 100 { // a 1-byte chunk every 50 ms, 5 s at most
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if rc.write("1\r\n[\r\n") != nil {
					return
				}
			}
		}()
		timed(t, "an endless chunked body", 3*time.Second, func() {
			r := rc.response()
			expectError(t, r, 408, codeTimeout)
		})
		close(stop)
	}
	// Fast and endless: refused at the body limit.
	rc := dialRaw(t, ts.addr)
	rc.write("POST /tables/t/bulk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	go func() {
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 32<<10, strings.Repeat("[", 32<<10))
		for range 512 { // 16 MiB at most
			if rc.write(chunk) != nil {
				return
			}
		}
	}()
	timed(t, "a large chunked body", 3*time.Second, func() { expectError(t, rc.response(), 413, codeTooLarge) })
	// Broken chunk framing.
	r := rawDo(t, ts, "POST /tables/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
	expectError(t, r, 400, codeBadRequest)
	waitBudgetReleased(t, ts)
}

func waitBudgetReleased(t *testing.T, ts *testServer) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		w, b := ts.srv.adm.writes.Load(), ts.srv.adm.bytes.Load()
		if w == 0 && b == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("budget leaked: %d writes, %d bytes", w, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeeplyNestedJSON: 100k nested arrays or objects, as the body or as
// a payload, are a prompt 400 (the decoder stops at depth 300), with no
// stack growth to speak of.
func TestDeeplyNestedJSON(t *testing.T) {
	ts := startServer(t, "", nil)
	const depth = 100_000
	arrays := strings.Repeat("[", depth) + strings.Repeat("]", depth)
	objects := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
	for _, c := range []struct{ path, body string }{
		{"/tables/t", arrays},
		{"/tables/t", strings.Repeat("[", depth)},
		{"/tables/t", `{"payload":` + arrays + `}`},
		{"/tables/t", `{"payload":` + objects + `}`},
		{"/tables/t/bulk", arrays},
		{"/tables/t/bulk", `{"records":` + arrays + `}`},
		{"/tables/t/bulk", `{"records":[{"payload":` + objects + `}]}`},
	} {
		timed(t, "a deeply nested body", 2*time.Second, func() {
			r := ts.post(c.path, c.body)
			expectError(t, r, 400, codeBadRequest)
			if !strings.Contains(r.body, "depth") {
				t.Fatalf("error does not say why: %s", r.body)
			}
		})
	}
	// Nesting under the limit is a payload like any other.
	nested := strings.Repeat("[", 200) + strings.Repeat("]", 200)
	expect(t, ts.post("/tables/t", `{"payload":`+nested+`}`), 202, `{"offset":1,"partition":0,"table":"t"}`)
}

// bulkJSON is a bulk body of n one-byte records.
func bulkJSON(n int) string {
	var b strings.Builder
	b.WriteString(`{"records":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"payload":"x"}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

// bulkProto is a protobuf bulk body of n records with empty payloads: 2
// bytes a record, the densest a client can send.
func bulkProto(n int) []byte {
	b := make([]byte, 0, 2*n)
	for range n {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, nil)
	}
	return b
}

// allocDuring returns the bytes the whole process allocated while fn ran.
func allocDuring(fn func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestManyTinyRecords: 100,000 records in one bulk request (the default
// MaxBulkRecords) are accepted; one more is a 413 before anything is
// appended; and the densest body the size limit allows (8M protobuf
// records in 16 MiB) is refused without decoding past the limit.
func TestManyTinyRecords(t *testing.T) {
	ts := startServer(t, "", nil)
	const n = DefaultMaxBulkRecords
	body := bulkJSON(n)
	var r resp
	alloc := allocDuring(func() {
		timed(t, "100k records (JSON)", 10*time.Second, func() { r = ts.post("/tables/t/bulk", body) })
	})
	if r.status != 202 || !strings.HasSuffix(r.body, fmt.Sprintf(`,%d],"count":%d,"table":"t"}`, n, n)) {
		t.Fatalf("100k records: %d %.200s", r.status, r.body)
	}
	t.Logf("100k JSON records: %d KiB body, %d MiB allocated by the process", len(body)>>10, alloc>>20)
	if alloc > 400<<20 {
		t.Errorf("100k JSON records allocated %d MiB for a %d KiB body", alloc>>20, len(body)>>10)
	}
	pb := bulkProto(n)
	alloc = allocDuring(func() {
		timed(t, "100k records (protobuf)", 10*time.Second, func() {
			r = ts.do("POST", "/tables/t/bulk", pb, "Content-Type: application/x-protobuf")
		})
	})
	if r.status != 202 || !strings.HasSuffix(r.body, fmt.Sprintf(`,%d],"count":%d,"table":"t"}`, 2*n, n)) {
		t.Fatalf("100k protobuf records: %d %.200s", r.status, r.body)
	}
	t.Logf("100k protobuf records: %d KiB body, %d MiB allocated by the process", len(pb)>>10, alloc>>20)

	// One over the limit: 413, nothing appended.
	expectError(t, ts.post("/tables/t/bulk", bulkJSON(n+1)), 413, codeTooLarge)
	expectError(t, ts.do("POST", "/tables/t/bulk", bulkProto(n+1), "Content-Type: application/x-protobuf"), 413, codeTooLarge)
	// The densest body: 8M records in 16 MiB. Decoding stops at the limit.
	dense := bulkProto(8 << 20)
	alloc = allocDuring(func() {
		timed(t, "8M protobuf records", 5*time.Second, func() {
			expectError(t, ts.do("POST", "/tables/t/bulk", dense, "Content-Type: application/x-protobuf"), 413, codeTooLarge)
		})
	})
	t.Logf("8M protobuf records: %d MiB body, %d MiB allocated by the process", len(dense)>>20, alloc>>20)
	if alloc > 4*uint64(len(dense)) {
		t.Errorf("a refused 16 MiB body of 8M records allocated %d MiB", alloc>>20)
	}
	// The densest JSON: values 2 bytes apart, as records or inside one
	// payload. The decoder builds no tree, so their cost is the body's:
	// a payload of 8M values is stored like any other, records that are
	// not objects are a 400, and too many records a 413. (The time bound
	// is for a loaded CI machine; fastjson took ~20 s of CPU on these.)
	for _, c := range []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"1M tiny records", bulkJSON(1_000_000), 413, codeTooLarge, "Too many records"},
		{"an 8M-value array", `{"payload":[` + strings.Repeat("1,", 8<<20-16) + `1]}`, 202, "", ""},
		{"8M bulk records", `{"records":[` + strings.Repeat("1,", 8<<20-16) + `1]}`, 400, codeBadRequest, "records[0]: Invalid JSON: expected an object"},
	} {
		path := "/tables/t/bulk"
		if strings.HasPrefix(c.body, `{"payload"`) {
			path = "/tables/t"
		}
		alloc = allocDuring(func() {
			timed(t, c.name, 10*time.Second, func() {
				r := ts.post(path, c.body)
				if c.status == 202 {
					if r.status != 202 {
						t.Fatalf("%s: %d %.200s", c.name, r.status, r.body)
					}
					return
				}
				expectError(t, r, c.status, c.code)
				if !strings.Contains(r.body, c.msg) {
					t.Fatalf("%s: %s", c.name, r.body)
				}
			})
		})
		t.Logf("%s: %d MiB body, %d, %d MiB allocated by the process", c.name, len(c.body)>>20, c.status, alloc>>20)
		// The body (server and client copies) and, at most, the records
		// of the largest bulk request, grown by doubling.
		if limit := 4*uint64(len(c.body)) + 2*uint64(unsafe.Sizeof(engine.Record{}))*n; alloc > limit {
			t.Errorf("%s: a %d MiB body allocated %d MiB (limit %d MiB)", c.name, len(c.body)>>20, alloc>>20, limit>>20)
		}
	}
	if hi := ts.eng.Partitions("t")[0].High; hi != 2*n+1 {
		t.Fatalf("high watermark %d, want %d: a refused request appended", hi, 2*n+1)
	}
	// A smaller limit is honoured, and says what to change.
	ts2 := startServer(t, "", func(c *Config) { c.MaxBulkRecords = 10 })
	r = ts2.post("/tables/t/bulk", bulkJSON(11))
	expectError(t, r, 413, codeTooLarge)
	if !strings.Contains(r.body, "ZOMBI_MAX_BULK_RECORDS") {
		t.Fatalf("413 does not name the setting: %s", r.body)
	}
	expect(t, ts2.post("/tables/t/bulk", bulkJSON(10)), 202, `{"offsets":[1,2,3,4,5,6,7,8,9,10],"count":10,"table":"t"}`)
}

// TestInvalidUTF8: JSON must be UTF-8 (RFC 8259), as serde_json enforces
// in the Rust Zombi; binary goes in payload_base64 or protobuf.
func TestInvalidUTF8(t *testing.T) {
	ts := startServer(t, "", nil)
	for _, c := range []struct{ path, body string }{
		{"/tables/t", "{\"payload\":\"\xff\xfe\"}"},
		{"/tables/t", "{\"payload\":\"ok\",\"idempotency_key\":\"\xc3\x28\"}"},
		{"/tables/t", "{\"payload\":{\"\xed\xa0\x80\":1}}"}, // an encoded surrogate
		{"/tables/t/bulk", "{\"records\":[{\"payload\":\"a\"},{\"payload\":\"\x80\"}]}"},
		{"/tables/t", "{\"payload\":\"x\"}\xff"},
	} {
		r := ts.post(c.path, c.body)
		expectError(t, r, 400, codeBadRequest)
		if !strings.Contains(r.body, "UTF-8") {
			t.Fatalf("error does not say why: %s", r.body)
		}
	}
	if hi := ts.eng.Partitions("t"); len(hi) != 0 {
		t.Fatalf("something was appended: %+v", hi)
	}
	// Binary payloads are fine where the format allows them.
	expect(t, ts.post("/tables/t", `{"payload_base64":"//4="}`), 202, `{"offset":1,"partition":0,"table":"t"}`)
	expect(t, ts.do("POST", "/tables/t", pbEvent([]byte{0xff, 0xfe}, 0, ""), "Content-Type: application/x-protobuf"), 202,
		`{"offset":2,"partition":0,"table":"t"}`)
	expect(t, ts.get("/tables/t?fields=payload"), 200, `{"records":[{"payload_base64":"//4="},{"payload_base64":"//4="}],"count":2,"has_more":false}`)
	// A protobuf idempotency key is a proto3 string: UTF-8 too.
	expectError(t, ts.do("POST", "/tables/t", pbEvent([]byte("x"), 0, "\xff"), "Content-Type: application/x-protobuf"), 400, codeBadRequest)
}

// hostileNames are table names that must never reach the filesystem.
var hostileNames = []string{
	"..", "%2e%2e", "%2E%2E", ".", "...", ".hidden", "a..b", "..%2f..%2fescaped", "%2e%2e%2f%2e%2e%2fescaped",
	"a%2fb", "a%5cb", "..%5c..%5cescaped", "%00", "a%00b", "escaped%00.seg", "a%20b", "a%09b", "a%0d%0ab",
	"t%c3%abst", "%e3%83%86%e3%83%bc%e3%83%96%e3%83%ab", "%ef%bc%8e%ef%bc%8e", "a%e2%80%8bb", "%ff", "a%",
	"1abc", "_x", "-x", "~root", "a.b", "a:b", "a*b", "a|b", "a%3cb", "a%22b", "a'b", "a%25b",
	strings.Repeat("a", 129), strings.Repeat("b", 3000),
}

// TestTableNamesCannotEscapeTheDataDir sends every hostile name to every
// route that takes a table, over a raw connection so nothing is cleaned
// on the way, and checks the answer and the filesystem.
func TestTableNamesCannotEscapeTheDataDir(t *testing.T) {
	base := t.TempDir()
	dataDir := filepath.Join(base, "a", "b", "data")
	ts := startServer(t, dataDir, nil)
	// A legitimate table, so the hot dir exists.
	expect(t, ts.post("/tables/ok", `{"payload":"x"}`), 202, `{"offset":1,"partition":0,"table":"ok"}`)
	routes := []struct {
		method, path, body string
	}{
		{"POST", "/tables/%s", `{"payload":"x"}`},
		{"POST", "/tables/%s/bulk", `{"records":[{"payload":"x"}]}`},
		{"GET", "/tables/%s", ""},
		{"GET", "/tables/%s/watermark", ""},
		{"GET", "/tables/%s/metadata", ""},
		{"POST", "/tables/%s/flush", ""},
		{"GET", "/consumers/g/offset?topic=%s&partition=0", ""},
		{"POST", "/consumers/%s/commit", `{"topic":"ok","partition":0,"offset":1}`},
	}
	statuses := map[int]int{}
	for _, name := range hostileNames {
		for _, rt := range routes {
			path := fmt.Sprintf(rt.path, name)
			r := rawDo(t, ts, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", rt.method, path, len(rt.body), rt.body))
			statuses[r.status]++
			single := !strings.Contains(name, "%2f") && !strings.Contains(name, "%2F") && name != "." && name != ".." && !strings.HasPrefix(name, "%2e%2e") && !strings.HasPrefix(name, "%2E%2E")
			switch {
			case strings.HasPrefix(rt.path, "/consumers/%s"):
				// A group is a key in one file, never a path: any name is
				// fine, but the write must not create anything.
				if r.status >= 500 {
					t.Fatalf("%s %s: %d %s", rt.method, path, r.status, r.body)
				}
			case single && r.status != 400:
				t.Fatalf("%s %s: %d %s, want 400", rt.method, path, r.status, r.body)
			case r.status >= 500:
				// "." , ".." and encoded slashes are resolved by fasthttp's
				// path normalisation first: the request goes to another
				// route (usually none: 404), within the data dir.
				t.Fatalf("%s %s: %d %s", rt.method, path, r.status, r.body)
			}
		}
	}
	// A raw NUL or control byte in the request line is refused by the
	// HTTP parser.
	for _, raw := range []string{"a\x00b", "a\x01b", "a\x7fb"} {
		r := rawDo(t, ts, "POST /tables/"+raw+" HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{\"payload\":\"x\"}")
		if r.status != 400 {
			t.Fatalf("raw %q: %d %s", raw, r.status, r.body)
		}
	}
	t.Logf("statuses: %v", statuses)
	ts.stop()

	// Nothing outside the data dir, and only the legitimate table inside.
	var found []string
	filepath.Walk(base, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		found = append(found, rel)
		return nil
	})
	for _, f := range found {
		if f == "." || f == "a" || f == filepath.Join("a", "b") || f == filepath.Join("a", "b", "data") {
			continue
		}
		if !strings.HasPrefix(f, filepath.Join("a", "b", "data")+string(filepath.Separator)) {
			t.Fatalf("%s was created outside the data dir", f)
		}
	}
	hot, err := os.ReadDir(filepath.Join(dataDir, "hot"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range hot {
		names = append(names, e.Name())
		if !engine.ValidTableName(e.Name()) {
			t.Fatalf("hot dir holds %q", e.Name())
		}
	}
	t.Logf("tables created: %q", names) // ok, and those "." made: /tables/./bulk is /tables/bulk
	if b, err := os.ReadFile(filepath.Join(dataDir, "consumers")); err == nil && bytes.Contains(b, []byte("escaped")) {
		// Groups may hold any bytes; they are data in one file, not paths.
		t.Logf("consumer groups are stored as data: %d bytes", len(b))
	}
}
