package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// conn is one keep-alive HTTP/1.1 connection with the least client work
// possible: the generator shares the machine's cores with the server it
// measures, so every microsecond it spends is one the server does not
// get. Requests are written whole from a caller's buffer; responses are
// read with Content-Length or chunked framing into a reused buffer.
type conn struct {
	addr    string
	timeout time.Duration
	c       net.Conn
	br      *bufio.Reader
	body    []byte
}

func newConn(addr string, timeout time.Duration) *conn {
	return &conn{addr: addr, timeout: timeout}
}

// response is what do returns; Body is valid until the next do.
type response struct {
	Status     int
	Body       []byte
	RetryAfter bool // a Retry-After header was present
}

var errMalformed = errors.New("malformed HTTP response")

// do sends req (a complete HTTP/1.1 request) and reads the response. A
// failed exchange closes the connection; the next do reconnects.
func (c *conn) do(req []byte) (response, error) {
	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.addr, c.timeout)
		if err != nil {
			return response{}, err
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		c.c = nc
		if c.br == nil {
			c.br = bufio.NewReaderSize(nc, 64<<10)
		} else {
			c.br.Reset(nc)
		}
	}
	_ = c.c.SetDeadline(time.Now().Add(c.timeout))
	if _, err := c.c.Write(req); err != nil {
		c.close()
		return response{}, err
	}
	res, closeAfter, err := c.read()
	if err != nil || closeAfter {
		c.close()
	}
	return res, err
}

func (c *conn) close() {
	if c.c != nil {
		_ = c.c.Close()
		c.c = nil
	}
}

func (c *conn) read() (res response, closeAfter bool, err error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return res, true, err
	}
	// "HTTP/1.1 202 Accepted\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return res, true, errMalformed
	}
	res.Status = atoi(line[9:12])
	if res.Status < 100 {
		return res, true, errMalformed
	}
	cl, chunked := -1, false
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return res, true, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return res, true, errMalformed
		}
		v = bytes.TrimSpace(v)
		switch {
		case asciiEqualFold(k, "content-length"):
			cl = atoi(v)
		case asciiEqualFold(k, "transfer-encoding"):
			chunked = bytes.Contains(bytes.ToLower(v), []byte("chunked"))
		case asciiEqualFold(k, "connection"):
			closeAfter = asciiEqualFold(v, "close")
		case asciiEqualFold(k, "retry-after"):
			res.RetryAfter = true
		}
	}
	switch {
	case chunked:
		c.body, err = readChunked(c.br, c.body[:0])
	case cl >= 0:
		if cap(c.body) < cl {
			c.body = make([]byte, cl)
		}
		c.body = c.body[:cl]
		_, err = io.ReadFull(c.br, c.body)
	default:
		// No framing: the body runs to the end of the connection.
		c.body, err = appendAll(c.br, c.body[:0])
		closeAfter = true
	}
	res.Body = c.body
	return res, closeAfter, err
}

func readChunked(br *bufio.Reader, dst []byte) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return dst, err
		}
		line = bytes.TrimSpace(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseUint(string(line), 16, 32)
		if err != nil {
			return dst, errMalformed
		}
		if n == 0 {
			for { // trailers, then the blank line
				l, err := br.ReadSlice('\n')
				if err != nil {
					return dst, err
				}
				if len(bytes.TrimSpace(l)) == 0 {
					return dst, nil
				}
			}
		}
		start := len(dst)
		dst = append(dst, make([]byte, n)...)
		if _, err := io.ReadFull(br, dst[start:]); err != nil {
			return dst, err
		}
		if _, err := br.Discard(2); err != nil { // CRLF
			return dst, err
		}
	}
}

func appendAll(r io.Reader, dst []byte) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

func atoi(b []byte) int {
	n := 0
	if len(b) == 0 {
		return -1
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// requestBuilder writes complete requests into a reused buffer.
type requestBuilder struct {
	host string
	buf  []byte
}

// build returns "METHOD path HTTP/1.1" with Host, the extra header lines
// (each ending in CRLF), and body (nil for none).
func (b *requestBuilder) build(method, path, contentType, extra string, body []byte) []byte {
	r := b.buf[:0]
	r = append(r, method...)
	r = append(r, ' ')
	r = append(r, path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, b.host...)
	r = append(r, "\r\nUser-Agent: zombi-load\r\n"...)
	if body != nil {
		r = append(r, "Content-Type: "...)
		r = append(r, contentType...)
		r = append(r, "\r\nContent-Length: "...)
		r = strconv.AppendInt(r, int64(len(body)), 10)
		r = append(r, "\r\n"...)
	}
	r = append(r, extra...)
	r = append(r, "\r\n"...)
	r = append(r, body...)
	b.buf = r
	return r
}

// statusError describes an unexpected response.
func statusError(res response) error {
	body := res.Body
	if len(body) > 200 {
		body = body[:200]
	}
	return fmt.Errorf("HTTP %d: %s", res.Status, body)
}
