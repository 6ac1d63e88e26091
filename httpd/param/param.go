// Package param parses what a request carries besides its body: the query
// string of a read (GET /tables/{t}), its Accept header, the table name
// of a path, and the bearer token of the Authorization header, checked
// against the "token:role" list of ZOMBI_AUTH_TOKENS. Write bodies are
// package wire's.
//
// It lives apart from httpd, and links only the standard library, so that
// its fuzz targets build in seconds and run fast, not through all of the
// server (arrow, iceberg, fasthttp, …).
package param

import "fmt"

// Kind says how the server should answer an Error.
type Kind uint8

const (
	// BadRequest is a parameter that cannot be parsed: 400 BAD_REQUEST.
	BadRequest Kind = iota
	// InvalidInput is a well-formed parameter with an invalid value: 400
	// INVALID_INPUT.
	InvalidInput
)

// Error is a request parameter the server cannot accept.
type Error struct {
	Kind Kind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func badRequest(format string, args ...any) *Error {
	return &Error{Kind: BadRequest, Msg: fmt.Sprintf(format, args...)}
}

func invalidInput(format string, args ...any) *Error {
	return &Error{Kind: InvalidInput, Msg: fmt.Sprintf(format, args...)}
}

// ValidTableName reports whether name matches ^[a-zA-Z][a-zA-Z0-9_-]{0,127}$,
// the rule of engine.ValidTableName, without converting it to a string.
func ValidTableName(name []byte) bool {
	if len(name) == 0 || len(name) > 128 {
		return false
	}
	c := name[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return false
	}
	for _, c := range name[1:] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
