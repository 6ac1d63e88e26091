package httpd

import (
	"fmt"
	"math"

	"github.com/valyala/fastjson"
)

// Write bodies are decoded by package wire; this file has the errors of
// the other requests the server parses (query strings, consumer offset
// commits).

// decodeError is a request the server cannot decode; it answers 400 with
// code.
type decodeError struct {
	code string
	msg  string
}

func (e *decodeError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &decodeError{code: codeBadRequest, msg: fmt.Sprintf(format, args...)}
}

// jsonPartition reads the partition of a consumer offset commit.
func jsonPartition(v *fastjson.Value) (uint32, error) {
	if v.Type() == fastjson.TypeNull {
		return 0, nil
	}
	n, err := v.Int64()
	if err != nil || n < 0 || n > math.MaxUint32 {
		return 0, badRequest("Invalid JSON: `partition` must be a non-negative integer")
	}
	return uint32(n), nil
}
