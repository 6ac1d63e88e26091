package httpd

import (
	"encoding/base64"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/zombihq/zombi/engine"
)

// Error codes of the {"error": msg, "code": CODE} body. The first six are
// those of the Rust Zombi; clients branch on them.
const (
	codeBadRequest       = "BAD_REQUEST"       // 400: a body or query that cannot be parsed
	codeInvalidInput     = "INVALID_INPUT"     // 400: well-formed but invalid (table name, partition, …)
	codeTooLarge         = "PAYLOAD_TOO_LARGE" // 413
	codeOverloaded       = "SERVER_OVERLOADED" // 503 with Retry-After
	codeNotAcceptable    = "NOT_ACCEPTABLE"    // 406
	codeStorage          = "STORAGE_ERROR"     // 500
	codeNotFound         = "NOT_FOUND"         // 404: unknown route
	codeMethodNotAllowed = "METHOD_NOT_ALLOWED"
	codeNoColdTier       = "COLD_STORAGE_NOT_CONFIGURED" // 503: flush, compact, /v1 without a cold tier
	codeTimeout          = "REQUEST_TIMEOUT"             // 408: the body did not arrive in time
	codeUnauthorized     = "UNAUTHORIZED"                // 401: missing or unknown bearer token
	codeForbidden        = "FORBIDDEN"                   // 403: the token's role is too low
	codeHeadersTooLarge  = "HEADERS_TOO_LARGE"           // 431: request headers over the read buffer
)

// retryAfterSecs is the Retry-After sent with every SERVER_OVERLOADED.
const retryAfterSecs = "1"

const contentTypeJSON = "application/json"

// writeError answers with status and the error body. Every 4xx and 5xx the
// server produces goes through here (or through errorHandler for requests
// fasthttp itself cannot parse).
func (s *Server) writeError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	s.met.errors.Inc()
	if status == fasthttp.StatusServiceUnavailable && code == codeOverloaded {
		ctx.Response.Header.Set("Retry-After", retryAfterSecs)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType(contentTypeJSON)
	b := ctx.Response.Body()[:0]
	b = appendErrorBody(b, code, msg)
	ctx.SetBody(b)
}

func appendErrorBody(b []byte, code, msg string) []byte {
	b = append(b, `{"error":`...)
	b = appendJSONString(b, msg)
	b = append(b, `,"code":"`...)
	b = append(b, code...)
	return append(b, `"}`...)
}

// engineError maps an engine error onto the HTTP error contract.
//
// ErrNoSpace (the disk cannot hold a new segment) answers 503
// SERVER_OVERLOADED with Retry-After rather than 507: nothing was written,
// the condition clears once the flusher frees hot segments, and clients of
// the original already retry a 503 with back-off, so no event is dropped
// by a client that would treat an unknown 5xx as fatal. ErrClosed
// (shutting down) answers the same way.
func (s *Server) engineError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, engine.ErrInvalidTable):
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput,
			"Invalid table name: must match ^[a-zA-Z][a-zA-Z0-9_-]{0,127}$")
	case errors.Is(err, engine.ErrInvalidPartition):
		s.writeError(ctx, fasthttp.StatusBadRequest, codeInvalidInput, "Invalid partition: "+err.Error())
	case errors.Is(err, engine.ErrTooLarge):
		s.writeError(ctx, fasthttp.StatusRequestEntityTooLarge, codeTooLarge, "Record too large: "+err.Error())
	case errors.Is(err, engine.ErrNoSpace):
		s.met.rejections.Inc()
		s.writeError(ctx, fasthttp.StatusServiceUnavailable, codeOverloaded,
			"Insufficient storage: the hot tier cannot take more data until flushed segments are deleted")
	case errors.Is(err, engine.ErrClosed):
		s.writeError(ctx, fasthttp.StatusServiceUnavailable, codeOverloaded, "Server is shutting down")
	default:
		s.log.Error("storage error", "err", err)
		s.writeError(ctx, fasthttp.StatusInternalServerError, codeStorage, "Storage error: "+err.Error())
	}
}

// writeJSON answers status with the JSON document b.
func writeJSON(ctx *fasthttp.RequestCtx, status int, b []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType(contentTypeJSON)
	ctx.SetBody(b)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, so the output is always valid JSON.
func appendJSONString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func decodeRune[S ~string | ~[]byte](s S) (rune, int) {
	switch v := any(s).(type) {
	case string:
		return utf8.DecodeRuneInString(v)
	case []byte:
		return utf8.DecodeRune(v)
	}
	return utf8.DecodeRuneInString(string(s))
}

// appendPayloadField appends "payload":"…" when p is valid UTF-8 and
// "payload_base64":"…" otherwise.
func appendPayloadField(b, p []byte) []byte {
	if utf8.Valid(p) {
		b = append(b, `"payload":`...)
		return appendJSONString(b, p)
	}
	b = append(b, `"payload_base64":"`...)
	b = base64.StdEncoding.AppendEncode(b, p)
	return append(b, '"')
}

func appendUintField(b []byte, name string, v uint64) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return strconv.AppendUint(b, v, 10)
}

func appendIntField(b []byte, name string, v int64) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return strconv.AppendInt(b, v, 10)
}
