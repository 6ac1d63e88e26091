package httpd

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

// The decoders must never panic, must return records whose slices are
// readable, and must decode valid JSON that encoding/json accepts as an
// event. (fastjson is lenient: it takes raw control characters and unknown
// escapes inside strings, so what it accepts is not always strict JSON.)

func FuzzDecodeJSONEvent(f *testing.F) {
	for _, s := range []string{
		`{"payload":"hi"}`,
		`{"payload":"x","partition":3,"timestamp_ms":1700000000000,"idempotency_key":"k"}`,
		`{"payload":{"a":[1,2,{"b":null}]}}`,
		`{"payload":42}`, `{"payload":null}`, `{"payload_base64":"AP8="}`, `{"payload_base64":"AP8"}`,
		`{"payload":"a","payload_base64":"YQ=="}`, `{"partition":-1,"payload":""}`,
		`{"payload":"\u00e9\ud83d\ude00\\\"","timestamp_ms":null,"idempotency_key":null}`,
		`[]`, `"x"`, ``, `{`, `{"payload":1e999}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var d decoder
		rec, err := d.decodeJSONEvent(body)
		if err != nil {
			if _, ok := err.(*decodeError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			// {"payload": "<string>"} and nothing else is always an event.
			var m map[string]json.RawMessage
			var str string
			if utf8.Valid(body) && json.Unmarshal(body, &m) == nil && len(m) == 1 && m["payload"] != nil && json.Unmarshal(m["payload"], &str) == nil {
				t.Fatalf("rejected a valid event %q: %v", body, err)
			}
			return
		}
		_ = bytes.Clone(rec.Payload)
		_ = bytes.Clone(rec.Key)
	})
}

func FuzzDecodeJSONBulk(f *testing.F) {
	for _, s := range []string{
		`{"records":[]}`,
		`{"records":[{"payload":"a"},{"payload":{"x":1},"partition":2},{"payload_base64":"AAEC","idempotency_key":"k"}]}`,
		`{"records":[{"payload":"a"},{}]}`, `{"records":{}}`, `{}`, `{"records":[1]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var d decoder
		recs, err := d.decodeJSONBulk(body)
		if err != nil {
			return
		}
		// Decoding again with the same decoder must give the same records:
		// scratch references were resolved against the final buffer.
		want := make([][]byte, len(recs))
		for i, r := range recs {
			want[i] = bytes.Clone(r.Payload)
		}
		recs2, err := d.decodeJSONBulk(body)
		if err != nil || len(recs2) != len(want) {
			t.Fatalf("second decode: %v", err)
		}
		for i := range recs2 {
			if !bytes.Equal(recs2[i].Payload, want[i]) {
				t.Fatalf("record %d: %q then %q", i, want[i], recs2[i].Payload)
			}
		}
	})
}

func FuzzDecodeProto(f *testing.F) {
	f.Add(pbEvent([]byte("one"), 100, "k"), false)
	f.Add(pbEvent(nil, 0, ""), false)
	f.Add(pbBulk(pbRec{payload: []byte("a")}, pbRec{payload: []byte{0, 1}, partition: 7, ts: 9, key: "x"}), true)
	f.Add([]byte{0x0a, 0x05, 0x01}, true)
	f.Add([]byte{0xff, 0xff, 0xff}, false)
	f.Fuzz(func(t *testing.T, body []byte, bulk bool) {
		var d decoder
		if bulk {
			recs, err := d.decodeProtoBulk(body)
			if err == nil {
				for _, r := range recs {
					_ = bytes.Clone(r.Payload)
				}
			}
			return
		}
		rec, err := decodeProtoEvent(body, 1)
		if err == nil && rec.Partition != 1 {
			t.Fatalf("partition %d", rec.Partition)
		}
	})
}

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
