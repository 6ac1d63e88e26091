package httpd

import (
	"github.com/valyala/fasthttp"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/httpd/param"
)

// The query string and the Accept header of a read are parsed by package
// param (ParseReadQuery, Negotiate), which links only the standard library
// so that its fuzz targets run fast.

// MaxReadLimit caps the limit parameter of GET /tables/{t}; larger values
// are lowered to it.
const MaxReadLimit = param.MaxReadLimit

// jsonDefaultFields is what a JSON read returns without `fields`, as the
// original: payload and timestamp_ms.
const jsonDefaultFields param.FieldSet = 1<<param.FieldPayload | 1<<param.FieldTimestamp

// readQuery is the parsed query string of GET /tables/{t}.
type readQuery struct {
	q      engine.Query
	fields param.FieldSet // 0 = not given: the format's default
}

// parseReadQuery parses the query string of GET /tables/{t}: partition,
// offset, limit, since, fields (param.ParseReadQuery). Its error is a
// *decodeError.
func parseReadQuery(args *fasthttp.Args) (readQuery, error) {
	p, err := param.ParseReadQuery(args)
	if err != nil {
		code := codeBadRequest
		if pe, ok := err.(*param.Error); ok && pe.Kind == param.InvalidInput {
			code = codeInvalidInput
		}
		return readQuery{}, &decodeError{code: code, msg: err.Error()}
	}
	rq := readQuery{
		q: engine.Query{
			Partition: p.Partition,
			Offset:    p.Offset,
			Limit:     p.Limit,
			Since:     p.Since,
			HasSince:  p.HasSince,
		},
		fields: p.Fields,
	}
	if p.Partition == param.AllPartitions {
		rq.q.Partition = engine.AllPartitions
	}
	return rq, nil
}
