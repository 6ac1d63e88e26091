package columns

import (
	"strings"
	"testing"
)

// BenchmarkExtract extracts four columns from small events, resetting the
// arena every 1024 events as the flusher does between batches.
func BenchmarkExtract(b *testing.B) {
	for _, bc := range []struct {
		name    string
		payload string
	}{
		{"event", event},
		{"escaped", `{"user":{"id":"u\u0031\u0032\u0033"},"action":"cli\"ck","value":42,"price":19.99,"ok":true}`},
		{"1KiB", `{"user":{"id":"u123"},"action":"click","value":42,"price":19.99,"ok":true,"tags":["a","b"],"text":"` +
			strings.Repeat("lorem ipsum ", 77) + `","n":{"x":[1,2,3],"y":null}}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			x := NewExtractor(table(b, true, eventFields...))
			vals := make([]Value, len(eventFields))
			payload := []byte(bc.payload)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if _, ok := x.Extract(payload, vals); !ok {
					b.Fatal("not an object")
				}
				if n++; n == 1024 {
					x.Reset()
					n = 0
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
		})
	}
}
