package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/zombihq/zombi/engine"
)

func TestJSONEvent(t *testing.T) {
	for _, tc := range []struct {
		body string
		want engine.Record
	}{
		{`{"payload":"hi"}`, engine.Record{Payload: []byte("hi")}},
		{` { "payload" : "x" , "partition" : 3 , "timestamp_ms" : 1700000000000 , "idempotency_key" : "k" } `,
			engine.Record{Payload: []byte("x"), Partition: 3, TimestampMs: 1700000000000, Key: []byte("k")}},
		{`{"payload":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00\ud800x"}`,
			engine.Record{Payload: []byte("a\"b\\c/d\b\f\n\r\té😀\uFFFDx")}},
		{`{"payload":{"a":[1,2,{"b":null}],"c":"d e"}}`, engine.Record{Payload: []byte(`{"a":[1,2,{"b":null}],"c":"d e"}`)}},
		{"{\"payload\":{ \"a\" :\n[ 1 , 2 ] , \"s\":\" x \\\" y \" }}", engine.Record{Payload: []byte(`{"a":[1,2],"s":" x \" y "}`)}},
		{`{"payload":42}`, engine.Record{Payload: []byte("42")}},
		{`{"payload":-1.5e+3}`, engine.Record{Payload: []byte("-1.5e+3")}},
		{`{"payload":null}`, engine.Record{Payload: []byte("null")}},
		{`{"payload":[]}`, engine.Record{Payload: []byte("[]")}},
		{`{"payload":""}`, engine.Record{}},
		{`{"payload_base64":"AP8="}`, engine.Record{Payload: []byte{0, 0xff}}},
		{`{"payload_base64":"AP8"}`, engine.Record{Payload: []byte{0, 0xff}}},
		{`{"payload_base64":"A\u0050\/\/"}`, engine.Record{Payload: []byte{0, 0xff, 0xff}}},
		{`{"payload":"a","partition":null,"timestamp_ms":null,"idempotency_key":null}`, engine.Record{Payload: []byte("a")}},
		{`{"payload":"a","partition":4294967295,"timestamp_ms":-9223372036854775808}`,
			engine.Record{Payload: []byte("a"), Partition: 4294967295, TimestampMs: -9223372036854775808}},
		{`{"p\u0061yload":"a","idempotency_key":"k\u0031"}`, engine.Record{Payload: []byte("a"), Key: []byte("k1")}},
		{`{"payload":"a","payload":"b"}`, engine.Record{Payload: []byte("b")}},
		{`{"payload":"a","idempotency_key":"\u0041","idempotency_key":"b"}`, engine.Record{Payload: []byte("a"), Key: []byte("b")}},
		{`{"payload":"a","other":{"x":[true,false,null,"\u0000"]}}`, engine.Record{Payload: []byte("a")}},
	} {
		var d Decoder
		got, err := d.JSONEvent([]byte(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		if !bytes.Equal(got.Payload, tc.want.Payload) || !bytes.Equal(got.Key, tc.want.Key) ||
			got.Partition != tc.want.Partition || got.TimestampMs != tc.want.TimestampMs {
			t.Errorf("%s:\n got %+v (%q)\nwant %+v (%q)", tc.body, got, got.Payload, tc.want, tc.want.Payload)
		}
	}
}

func TestJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		body, msg string
		kind      Kind
	}{
		{``, "unexpected end of input", BadRequest},
		{`{`, "unexpected end of input", BadRequest},
		{`[]`, "expected an object", BadRequest},
		{`"x"`, "expected an object", BadRequest},
		{`{"payload":"a"} x`, "expected the end of the input", BadRequest},
		{`{"payload":"a",}`, "expected a string key", BadRequest},
		{`{"payload":01}`, "expected ',' or '}'", BadRequest},
		{`{"payload":1.}`, "expected a digit", BadRequest},
		{`{"payload":tru}`, "expected true", BadRequest},
		{"{\"payload\":\"\x01\"}", "control character 0x01", BadRequest},
		{`{"payload":"\q"}`, "valid escape", BadRequest},
		{`{"payload":"\u12"}`, `\uXXXX`, BadRequest},
		{"{\"payload\":\"\xff\"}", "not valid UTF-8", BadRequest},
		{`{"payload":` + strings.Repeat("[", 301) + strings.Repeat("]", 301) + `}`, "nesting depth exceeds 300", BadRequest},
		{`{}`, "missing field `payload`", BadRequest},
		{`{"payload":"a","payload_base64":"YQ=="}`, "not both", InvalidInput},
		{`{"payload_base64":"***"}`, "Invalid `payload_base64`", InvalidInput},
		{`{"payload_base64":1}`, "must be a string", BadRequest},
		{`{"payload":"a","partition":-1}`, "`partition` must be a non-negative integer", BadRequest},
		{`{"payload":"a","partition":4294967296}`, "`partition` must be", BadRequest},
		{`{"payload":"a","partition":1.0}`, "`partition` must be", BadRequest},
		{`{"payload":"a","partition":"1"}`, "`partition` must be", BadRequest},
		{`{"payload":"a","timestamp_ms":9223372036854775808}`, "`timestamp_ms` must be an integer", BadRequest},
		{`{"payload":"a","idempotency_key":1}`, "`idempotency_key` must be a string", BadRequest},
		// A body both malformed and not an event gets the syntax error.
		{`{"payload":"a","payload_base64":"YQ==", x}`, "expected a string key", BadRequest},
		{`{"partition":-1,"payload":"a"`, "unexpected end of input", BadRequest},
	} {
		var d Decoder
		_, err := d.JSONEvent([]byte(tc.body))
		var we *Error
		if !errors.As(err, &we) || we.Kind != tc.kind || !strings.Contains(we.Msg, tc.msg) {
			t.Errorf("%q: error %v, want kind %d with %q", tc.body, err, tc.kind, tc.msg)
		}
	}
}

// A body that is not UTF-8 is refused as such wherever the bad byte is —
// in any string, after good records, outside strings, after a syntax
// error — and one that is UTF-8 keeps its non-ASCII bytes.
func TestNotUTF8Anywhere(t *testing.T) {
	for _, body := range []string{
		"{\"records\":[{\"payload\":\"a\"},{\"payload\":\"b\xffc\"}]}",
		"{\"records\":[{\"payload\":\"0123456789abcdef\x80\x80\x80\x80\x80\x80\x80\x800123456789abcdef\"}]}",
		"{\"records\":[{\"payload\":\"a\",\"idempotency_key\":\"\xc3\"}]}",
		"{\"records\":[{\"payload\":{\"k\":\"\xed\xa0\x80\"}}]}",
		"{\"x\":\"\xf8\",\"records\":[{\"payload\":\"a\"}]}",
		"{\"records\":[{\"payload\":\"a\"}]}\xff",
		"{\"records\":[{\"payload\":\"a\"},,\"\xff\"]}",
	} {
		var d Decoder
		_, err := d.JSONBulk([]byte(body))
		var we *Error
		if !errors.As(err, &we) || !strings.Contains(we.Msg, "not valid UTF-8") {
			t.Errorf("bulk %q: %v, want the UTF-8 error", body, err)
		}
		if _, err := d.JSONEvent([]byte(body)); !errors.As(err, &we) || !strings.Contains(we.Msg, "not valid UTF-8") {
			t.Errorf("event %q: %v, want the UTF-8 error", body, err)
		}
	}
	var d Decoder
	recs, err := d.JSONBulk([]byte(`{"records":[{"payload":"ünïcødé 日本 🎉 0123456789"}]}`))
	if err != nil || len(recs) != 1 || string(recs[0].Payload) != "ünïcødé 日本 🎉 0123456789" {
		t.Fatalf("UTF-8 payload: %v %v", err, recs)
	}
}

func TestJSONBulk(t *testing.T) {
	var d Decoder
	recs, err := d.JSONBulk([]byte(`{"other":[1,{"records":2}],"records":[{"payload":"a"},{"payload":{"x": 1},"partition":2},` +
		`{"payload_base64":"AAEC","idempotency_key":"k\n"},{"payload":"\u00e9"}],"records":7}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.Record{{Payload: []byte("a")}, {Payload: []byte(`{"x":1}`), Partition: 2},
		{Payload: []byte{0, 1, 2}, Key: []byte("k\n")}, {Payload: []byte("é")}}
	if len(recs) != len(want) {
		t.Fatalf("%d records", len(recs))
	}
	for i := range want {
		if !bytes.Equal(recs[i].Payload, want[i].Payload) || !bytes.Equal(recs[i].Key, want[i].Key) || recs[i].Partition != want[i].Partition {
			t.Errorf("record %d: %+v, want %+v", i, recs[i], want[i])
		}
	}
	for _, tc := range []struct{ body, msg string }{
		{`{}`, "missing field `records`"},
		{`[]`, "expected an object with a \"records\" array"},
		{`{"records":{}}`, "`records` must be an array"},
		{`{"records":[1]}`, "records[0]: Invalid JSON: expected an object"},
		{`{"records":[{"payload":"a"},{}]}`, "records[1]: Invalid JSON: missing field `payload`"},
		{`{"records":[{"payload":"a"},{}],}`, "expected a string key"},
		{`{"records":[{"payload":"a"} {"payload":"b"}]}`, "expected ',' or ']'"},
	} {
		_, err := d.JSONBulk([]byte(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %q", tc.body, err, tc.msg)
		}
	}
	if recs, err := d.JSONBulk([]byte(` {"records":[ ]} `)); err != nil || len(recs) != 0 {
		t.Errorf("empty bulk: %v, %d records", err, len(recs))
	}
}

func TestJSONBulkLimit(t *testing.T) {
	d := Decoder{MaxRecords: 3}
	body := func(n int) []byte {
		return []byte(`{"records":[` + strings.TrimSuffix(strings.Repeat(`{"payload":"x"},`, n), ",") + `]}`)
	}
	if recs, err := d.JSONBulk(body(3)); err != nil || len(recs) != 3 {
		t.Fatalf("3 records: %v", err)
	}
	var we *Error
	if _, err := d.JSONBulk(body(4)); !errors.As(err, &we) || we.Kind != TooLarge {
		t.Fatalf("4 records: %v", err)
	}
}

// Every record of a large bulk stays intact: payloads in scratch are
// resolved after it stopped growing.
func TestJSONBulkScratch(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"records":[`)
	for i := range 5000 {
		if i > 0 {
			b.WriteByte(',')
		}
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, `{"payload":"e\u0073c-%d"}`, i)
		case 1:
			fmt.Fprintf(&b, `{"payload":{ "n" : %d }}`, i)
		default:
			fmt.Fprintf(&b, `{"payload":"plain-%d","idempotency_key":"\u006b%d"}`, i, i)
		}
	}
	b.WriteString(`]}`)
	var d Decoder
	recs, err := d.JSONBulk([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		var want, key string
		switch i % 3 {
		case 0:
			want = fmt.Sprintf("esc-%d", i)
		case 1:
			want = fmt.Sprintf(`{"n":%d}`, i)
		default:
			want, key = fmt.Sprintf("plain-%d", i), fmt.Sprintf("k%d", i)
		}
		if string(r.Payload) != want || string(r.Key) != key {
			t.Fatalf("record %d: %q key %q, want %q key %q", i, r.Payload, r.Key, want, key)
		}
	}
}

// The decoder allocates nothing once its buffers have grown.
func TestJSONBulkAllocs(t *testing.T) {
	body := bulkBody(100, 82)
	var d Decoder
	if _, err := d.JSONBulk(body); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = d.JSONBulk(body) }); n != 0 {
		t.Errorf("%v allocations per bulk", n)
	}
}

// A body of a million tiny values costs no memory beyond itself: the
// value count no longer needs a cap.
func TestJSONManyValues(t *testing.T) {
	body := []byte(`{"payload":"a","x":[` + strings.TrimSuffix(strings.Repeat("1,", 1<<20), ",") + `]}`)
	var d Decoder
	if _, err := d.JSONEvent(body); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(5, func() { _, _ = d.JSONEvent(body) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func bulkBody(n, size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"records":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"payload":"%s","partition":%d,"timestamp_ms":%d}`, strings.Repeat("x", size), i%4, 1700000000000+i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// ValidJSON agrees with encoding/json on a few tricky inputs (the fuzz
// target checks many more).
func TestValidJSON(t *testing.T) {
	for _, s := range []string{`0`, `-0`, `-`, `01`, `1e`, `1E+9`, `.5`, `"\u"`, `"\/"`, `[1,]`, `{"a":1,}`, ` [ ] `,
		`{"a" 1}`, `nul`, `[true false]`, `"` + "\t" + `"`, `{"a":{"b":[{}]}}`, `1 2`} {
		if got, want := ValidJSON([]byte(s)) == nil, json.Valid([]byte(s)); got != want {
			t.Errorf("ValidJSON(%q) = %v, encoding/json says %v", s, got, want)
		}
	}
}
