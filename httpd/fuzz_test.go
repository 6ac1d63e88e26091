package httpd

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// The body decoders' fuzz targets are in package wire.

func FuzzReadQuery(f *testing.F) {
	for _, s := range []string{
		"", "partition=0&offset=10&limit=5", "since=-5&fields=payload,timestamp_ms",
		"fields=sequence,,topic, partition ,idempotency_key", "limit=99999999999", "fields=bogus",
		"partition=4294967296", "offset=%31%32", "limit=&offset=",
	} {
		f.Add(s, "application/json;q=0.5, application/vnd.apache.arrow.stream")
	}
	f.Add("limit=1", "*/*;q=0, text/*")
	f.Fuzz(func(t *testing.T, query, accept string) {
		var args fasthttp.Args
		args.Parse(query)
		rq, err := parseReadQuery(&args)
		if err == nil {
			if rq.q.Limit < 0 || rq.q.Limit > MaxReadLimit {
				t.Fatalf("limit %d", rq.q.Limit)
			}
			if rq.q.Partition < -1 || rq.q.Partition > 1<<32-1 {
				t.Fatalf("partition %d", rq.q.Partition)
			}
			if rq.fields&^allFields != 0 {
				t.Fatalf("fields %b", rq.fields)
			}
		}
		if f := negotiate([]byte(accept)); f > formatNone {
			t.Fatalf("format %d", f)
		}
	})
}

func TestNegotiate(t *testing.T) {
	for accept, want := range map[string]format{
		"":                                      formatJSON,
		"*/*":                                   formatJSON,
		"application/json":                      formatJSON,
		"APPLICATION/JSON; charset=utf-8":       formatJSON,
		mediaArrow:                              formatArrow,
		"application/json;q=0.1, " + mediaArrow: formatArrow,
		mediaArrow + ";q=0.1, application/json": formatJSON,
		mediaArrow + ", application/json":       formatArrow,
		"application/json, " + mediaArrow:       formatJSON,
		"text/html":                             formatNone,
		"*/*;q=0":                               formatNone,
		"application/json;q=0, */*":             formatArrow,
		mediaArrow + ", */*;q=0.5":              formatArrow,
		"text/html;q=x, application/json":       formatJSON,
	} {
		if got := negotiate([]byte(accept)); got != want {
			t.Errorf("negotiate(%q) = %d, want %d", accept, got, want)
		}
	}
}
