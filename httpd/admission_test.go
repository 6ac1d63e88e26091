package httpd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// rawConn is a client that writes raw HTTP, to send headers without a
// body, partial bodies and chunked bodies.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) write(s string) error {
	rc.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(rc.c, s)
	return err
}

// response reads one response.
func (rc *rawConn) response() resp {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r, err := http.ReadResponse(rc.r, nil)
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.Close { // net/http moves Connection: close out of the header
		r.Header.Set("Connection", "close")
	}
	return resp{r.StatusCode, r.Header, string(b)}
}

func TestZeroInflightBudgetRefusesEveryWrite(t *testing.T) {
	ts := startServer(t, "", func(c *Config) { *c = c.WithMaxInflightBytes(0) })
	expectError(t, ts.post("/tables/t", `{"payload":"x"}`), 503, codeOverloaded)
	expectError(t, ts.post("/tables/t/bulk", `{"records":[{"payload":"x"}]}`), 503, codeOverloaded)
	expectError(t, ts.do("POST", "/tables/t", pbEvent([]byte("x"), 0, ""), "Content-Type: application/x-protobuf"), 503, codeOverloaded)
	// Chunked: refused once its first bytes arrive.
	rc := dialRaw(t, ts.addr)
	rc.write("POST /tables/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"payload\":\"xy\"}\r\n0\r\n\r\n")
	expectError(t, rc.response(), 503, codeOverloaded)
	// The size limit is checked first: 413, not 503.
	rc = dialRaw(t, ts.addr)
	rc.write(fmt.Sprintf("POST /tables/t HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", DefaultMaxBodyBytes+1))
	expectError(t, rc.response(), 413, codeTooLarge)
	// An empty write is not refused by the budget (it is a bad request).
	expectError(t, ts.post("/tables/t", ``), 400, codeBadRequest)
	// Reads are not writes.
	expect(t, ts.get("/tables/t"), 200, `{"records":[],"count":0,"has_more":false}`)
	r := ts.get("/health/ready")
	if r.status != 503 || !strings.Contains(r.body, `"backpressure":{"status":"warning"`) {
		t.Fatalf("ready: %d %s", r.status, r.body)
	}
	r = ts.get("/metrics")
	if !strings.Contains(r.body, "zombi_backpressure_rejections_total 4\n") {
		t.Fatalf("rejections not counted:\n%s", r.body)
	}
}

func TestInflightBudgets(t *testing.T) {
	ts := startServer(t, "", func(c *Config) {
		c.MaxInflightWrites = 1
		*c = c.WithMaxInflightBytes(30 << 10)
	})
	// A body over the byte budget is refused on its Content-Length alone.
	expectError(t, ts.post("/tables/t", `{"payload":"`+strings.Repeat("x", 30<<10)+`"}`), 503, codeOverloaded)

	// A slow client holds the only write slot while its body trickles in
	// (fasthttp hands over a body once its first 8 KiB have arrived).
	rc := dialRaw(t, ts.addr)
	body := `{"payload":"` + strings.Repeat("s", 20<<10) + `"}`
	rc.write(fmt.Sprintf("POST /tables/t HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10<<10]))
	deadline := time.Now().Add(5 * time.Second)
	for ts.srv.adm.writes.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("slow write never admitted")
		}
		time.Sleep(time.Millisecond)
	}
	r := ts.post("/tables/t", `{"payload":"x"}`)
	expectError(t, r, 503, codeOverloaded)
	if !strings.Contains(r.body, "ZOMBI_MAX_INFLIGHT_WRITES") {
		t.Fatalf("message does not name the setting: %s", r.body)
	}
	// Once the slow body completes the slot is free again.
	rc.write(body[10<<10:])
	expect(t, rc.response(), 202, `{"offset":1,"partition":0,"table":"t"}`)
	expect(t, ts.post("/tables/t", `{"payload":"x"}`), 202, `{"offset":2,"partition":0,"table":"t"}`)
	if w, b := ts.srv.adm.writes.Load(), ts.srv.adm.bytes.Load(); w != 0 || b != 0 {
		t.Fatalf("budget leaked: %d writes, %d bytes", w, b)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestOversizedBodyNotBuffered sends bodies far over the limit: a declared
// Content-Length is refused from the headers, a chunked one while it
// streams, and the server's heap does not grow by the body size.
func TestOversizedBodyNotBuffered(t *testing.T) {
	const maxBody = 1 << 20
	ts := startServer(t, "", func(c *Config) { c.MaxBodyBytes = maxBody })
	before := heapInUse()

	// 1 GiB declared, nothing sent: answered at once.
	rc := dialRaw(t, ts.addr)
	rc.write("POST /tables/t HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
	r := rc.response()
	expectError(t, r, 413, codeTooLarge)
	if r.header.Get("Connection") != "close" {
		t.Fatalf("connection kept open after an unread body: %v", r.header)
	}

	// 64 MiB sent with a declared length: the server answers after
	// reading at most a small prefix and closes; we stop sending then.
	rc = dialRaw(t, ts.addr)
	rc.write("POST /tables/t/bulk HTTP/1.1\r\nHost: x\r\nContent-Length: 67108864\r\n\r\n")
	chunk := strings.Repeat("x", 64<<10)
	sent := 0
	for i := 0; i < 1024; i++ {
		if err := rc.write(chunk); err != nil {
			break
		}
		sent += len(chunk)
	}
	// Either the write failed early (server closed) or the response is
	// waiting; either way the server did not buffer it all.
	_ = sent

	// Chunked, 64 MiB: refused once it crosses the limit.
	rc = dialRaw(t, ts.addr)
	rc.write("POST /tables/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
	chunked := fmt.Sprintf("%x\r\n%s\r\n", len(chunk), chunk)
	for i := 0; i < 1024; i++ {
		if err := rc.write(chunked); err != nil {
			break
		}
	}
	r = rc.response()
	expectError(t, r, 413, codeTooLarge)

	after := heapInUse()
	if after > before+16<<20 {
		t.Fatalf("heap grew from %d to %d bytes: oversized bodies were buffered", before, after)
	}
	// The server still works.
	expect(t, ts.post("/tables/t", `{"payload":"ok"}`), 202, `{"offset":1,"partition":0,"table":"t"}`)
}

func TestSlowBodyTimesOut(t *testing.T) {
	ts := startServer(t, "", func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	rc := dialRaw(t, ts.addr)
	rc.write("POST /tables/t HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pay")
	start := time.Now()
	r := rc.response()
	if r.status != 408 && r.status != 400 {
		t.Fatalf("slow body: %d %s", r.status, r.body)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("slow body held the connection")
	}
	if w, b := ts.srv.adm.writes.Load(), ts.srv.adm.bytes.Load(); w != 0 || b != 0 {
		t.Fatalf("budget leaked: %d writes, %d bytes", w, b)
	}
}

func TestChunkedWrite(t *testing.T) {
	ts := startServer(t, "", nil)
	rc := dialRaw(t, ts.addr)
	rc.write("POST /tables/t/bulk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"b\r\n{\"records\":\r\n" + "f\r\n[{\"payload\":\"a\"\r\n" + "2\r\n}]\r\n" + "1\r\n}\r\n" + "0\r\n\r\n")
	expect(t, rc.response(), 202, `{"offsets":[1],"count":1,"table":"t"}`)
	if b := ts.srv.adm.bytes.Load(); b != 0 {
		t.Fatalf("budget leaked: %d bytes", b)
	}
}
