package wire

import (
	"testing"

	"github.com/valyala/fastjson"
)

// BenchmarkJSONBulk decodes a bulk body of 100 × 82 B events beside the
// parse-only ceiling of `make bench-http` (fastjson building its tree and
// visiting every record), the decoder this package replaced:
//
//	go test -run '^$' -bench JSONBulk -count 5 ./httpd/wire/
func BenchmarkJSONBulk(b *testing.B) {
	body := bulkBody(100, 82)
	b.Run("wire", func(b *testing.B) {
		var d Decoder
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			recs, err := d.JSONBulk(body)
			if err != nil || len(recs) != 100 {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("fastjson", func(b *testing.B) {
		var p fastjson.Parser
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			v, err := p.ParseBytes(body)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for _, r := range v.GetArray("records") {
				if len(r.GetStringBytes("payload")) > 0 {
					n++
				}
			}
			if n != 100 {
				b.Fatal(n)
			}
		}
		b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "events/s")
	})
}
