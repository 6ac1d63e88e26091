package columns

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
	"testing"
	"time"
)

// table makes a table whose field i is column "c<i>" from specs "path:Type".
func table(t testing.TB, preserve bool, specs ...string) Table {
	t.Helper()
	tb := Table{Table: "t", Format: FormatJSON, PreserveOverflow: preserve}
	for i, s := range specs {
		j := strings.LastIndexByte(s, ':')
		typ, err := ParseType(s[j+1:])
		if err != nil {
			t.Fatal(err)
		}
		tb.Fields = append(tb.Fields, Field{Name: "c" + strconv.Itoa(i), JSONPath: s[:j], Type: typ, Nullable: true})
	}
	return tb
}

// show prints a value for comparison: "Missing", "Mismatch", a quoted string
// (Utf8, Binary), or a number (Boolean as true or false).
func show(v Value, t Type) string {
	switch v.State {
	case Missing:
		return "Missing"
	case Mismatch:
		if v.Int != 0 || v.Float != 0 || v.Bytes != nil {
			return fmt.Sprintf("Mismatch with a value: %+v", v)
		}
		return "Mismatch"
	}
	switch t {
	case Utf8, Binary:
		return strconv.Quote(string(v.Bytes))
	case Float32, Float64:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case Boolean:
		return strconv.FormatBool(v.Int == 1)
	}
	return strconv.FormatInt(v.Int, 10)
}

// zero reports whether v is the zero Value: Missing, nothing set.
func zero(v Value) bool { return v.State == Missing && v.Int == 0 && v.Float == 0 && v.Bytes == nil }

// showOverflow prints an overflow: NULL for nil.
func showOverflow(b []byte) string {
	if b == nil {
		return "NULL"
	}
	return string(b)
}

// The fields of the benchmark's event.
var eventFields = []string{"user.id:Utf8", "action:Utf8", "value:Int64", "price:Float64"}

const event = `{"user":{"id":"u123"},"action":"click","value":42,"price":19.99,"ok":true}`

// micros and days of a time, for expectations.
func micros(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return strconv.FormatInt(t.UnixMicro(), 10)
}

func days(s string) string {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return strconv.FormatInt(t.Unix()/86400, 10)
}

type extractCase struct {
	name     string
	fields   []string // "path:Type"
	payload  string
	want     []string // show of each value
	overflow string   // showOverflow; "payload" for the payload itself
	invalid  bool     // not a JSON object
	drop     bool     // preserve_overflow false
}

var extractCases = []extractCase{
	{name: "event", fields: eventFields, payload: event,
		want: []string{`"u123"`, `"click"`, "42", "19.99"}, overflow: `{"user":{"id":"u123"},"ok":true}`},
	{name: "flat", fields: []string{"a:Int64", "b:Utf8"}, payload: `{"a":1,"b":"x","c":2}`,
		want: []string{"1", `"x"`}, overflow: `{"c":2}`},
	{name: "nested", fields: []string{"a.b.c:Int64", "a.b.d:Utf8", "a.e:Boolean"}, payload: `{"a":{"b":{"c":7,"d":"x"},"e":false},"z":0}`,
		want: []string{"7", `"x"`, "false"}, overflow: "payload"},
	{name: "missing", fields: eventFields, payload: `{"action":"view"}`,
		want: []string{"Missing", `"view"`, "Missing", "Missing"}, overflow: "NULL"},
	{name: "path through a non-object", fields: eventFields, payload: `{"user":"u1","x":1}`,
		want: []string{"Missing", "Missing", "Missing", "Missing"}, overflow: "payload"},
	{name: "path through an array", fields: eventFields, payload: `{"user":[{"id":"u1"}]}`,
		want: []string{"Missing", "Missing", "Missing", "Missing"}, overflow: "payload"},
	{name: "mismatch", fields: eventFields, payload: `{"user":{"id":{"x":1}},"action":["a"],"value":"42","price":"1.5"}`,
		want: []string{"Mismatch", "Mismatch", "Mismatch", "Mismatch"}, overflow: "payload"},
	{name: "empty object", fields: eventFields, payload: `{}`,
		want: []string{"Missing", "Missing", "Missing", "Missing"}, overflow: "NULL"},
	{name: "all extracted", fields: []string{"a:Int64", "b:Utf8"}, payload: `{"a":1,"b":"x"}`,
		want: []string{"1", `"x"`}, overflow: "NULL"},

	{name: "int32", fields: []string{"a:Int32", "b:Int32", "c:Int32", "d:Int32", "e:Int32"},
		payload: `{"a":3000000000,"b":2147483647,"c":-2147483648,"d":-2147483649,"e":-0}`,
		want:    []string{"Mismatch", "2147483647", "-2147483648", "Mismatch", "0"}, overflow: `{"a":3000000000,"d":-2147483649}`},
	{name: "int64", fields: []string{"a:Int64", "b:Int64", "c:Int64", "d:Int64", "e:Int64", "f:Int64", "g:Int64", "h:Int64"},
		payload:  `{"a":9223372036854775807,"b":9223372036854775808,"c":-9223372036854775808,"d":-9223372036854775809,"e":1.0,"f":1e3,"g":99999999999999999999,"h":true}`,
		want:     []string{"9223372036854775807", "Mismatch", "-9223372036854775808", "Mismatch", "Mismatch", "Mismatch", "Mismatch", "Mismatch"},
		overflow: `{"b":9223372036854775808,"d":-9223372036854775809,"e":1.0,"f":1e3,"g":99999999999999999999,"h":true}`},
	{name: "floats", fields: []string{"a:Float64", "b:Float32", "c:Float64", "d:Float32", "e:Float64", "f:Float64", "g:Float32"},
		payload: `{"a":0.1,"b":0.1,"c":1e309,"d":1e39,"e":-42,"f":"1","g":-1.5E-3}`,
		want: []string{"0.1", strconv.FormatFloat(float64(float32(0.1)), 'g', -1, 64), "Mismatch", "Mismatch", "-42", "Mismatch",
			strconv.FormatFloat(float64(float32(-1.5e-3)), 'g', -1, 64)},
		overflow: `{"c":1e309,"d":1e39,"f":"1"}`},
	{name: "boolean", fields: []string{"a:Boolean", "b:Boolean", "c:Boolean", "d:Boolean"}, payload: `{"a":true,"b":false,"c":1,"d":"true"}`,
		want: []string{"true", "false", "Mismatch", "Mismatch"}, overflow: `{"c":1,"d":"true"}`},
	{name: "utf8 from number and bool", fields: []string{"a:Utf8", "b:Utf8", "c:Utf8", "d:Utf8", "e:Utf8", "f:Utf8"},
		payload: `{"a":1.50e+3,"b":true,"c":false,"d":-0,"e":[1],"f":{}}`,
		want:    []string{`"1.50e+3"`, `"true"`, `"false"`, `"-0"`, "Mismatch", "Mismatch"}, overflow: `{"e":[1],"f":{}}`},
	{name: "binary", fields: []string{"a:Binary", "b:Binary", "c:Binary"}, payload: `{"a":"x\u0000y","b":1,"c":""}`,
		want: []string{`"x\x00y"`, "Mismatch", `""`}, overflow: `{"b":1}`},
	{name: "null", fields: []string{"a:Utf8", "a:Int32", "a:Int64", "a:Float32", "a:Float64", "a:Boolean", "a:Binary", "a:Timestamp", "a:Date", "b.c:Utf8"},
		payload: `{"a":null,"b":null}`,
		want:    []string{"Missing", "Missing", "Missing", "Missing", "Missing", "Missing", "Missing", "Missing", "Missing", "Missing"}, overflow: "payload"},

	{name: "escaped keys", fields: []string{"id:Utf8", "é:Int64", "a.b:Int64", "a\"b:Int64", "x\\y:Int64"},
		payload: `{"\u0069d":"x","\u00e9":1,"a\u002eb":2,"a\"b":3,"x\\y":4}`,
		want:    []string{`"x"`, "1", "Missing", "3", "4"}, overflow: `{"a\u002eb":2}`},
	{name: "escaped values", fields: []string{"a:Utf8", "b:Utf8", "c:Utf8", "d:Utf8", "e:Utf8", "f:Binary"},
		payload: `{"a":"q\"b\\s\/d\b\f\n\r\tz","b":"\u00e9\u20AC\ud83d\ude00","c":"\ud800x","d":"\udc00\ud800\ud800\u0041","e":"é€😀","f":"\u0000\u001f"}`,
		want:    []string{`"q\"b\\s/d\b\f\n\r\tz"`, `"é€😀"`, strconv.Quote("\ufffdx"), strconv.Quote("\ufffd\ufffd\ufffdA"), `"é€😀"`, `"\x00\x1f"`}, overflow: "NULL"},
	{name: "duplicate keys", fields: []string{"a:Int64", "u.id:Utf8"}, payload: `{"a":1,"u":{"id":"x","id":"y"},"a":2,"u":{"id":"z"}}`,
		want: []string{"1", `"x"`}, overflow: `{"u":{"id":"x","id":"y"},"a":2,"u":{"id":"z"}}`},
	{name: "duplicate keys, first mismatched", fields: []string{"a:Int64"}, payload: `{"a":"s","a":2}`,
		want: []string{"Mismatch"}, overflow: "payload"},
	{name: "duplicate keys, first null", fields: []string{"a:Int64"}, payload: `{"a":null,"a":2}`,
		want: []string{"Missing"}, overflow: "payload"},
	{name: "duplicate keys, escaped", fields: []string{"a:Int64"}, payload: `{"\u0061":1,"a":2}`,
		want: []string{"1"}, overflow: `{"a":2}`},
	{name: "path and prefix", fields: []string{"a:Utf8", "a.b:Int64"}, payload: `{"a":{"b":1}}`,
		want: []string{"Mismatch", "1"}, overflow: "payload"},
	{name: "prefix as a leaf", fields: []string{"a:Utf8", "a.b:Int64"}, payload: `{"a":5}`,
		want: []string{`"5"`, "Missing"}, overflow: "NULL"},
	{name: "one path, two types", fields: []string{"v:Int32", "v:Utf8"}, payload: `{"v":1.5,"w":1}`,
		want: []string{"Mismatch", `"1.5"`}, overflow: `{"w":1}`},
	{name: "many keys", fields: []string{"k0:Int64", "k1:Int64", "k2:Int64", "k3:Int64", "k4:Int64", "k5:Int64", "k6:Int64", "k7:Int64", "k8:Int64", "k9:Int64", "k10.x:Int64"},
		payload: `{"k9":9,"k0":0,"k10":{"x":10},"k5":5,"k11":11,"k\u0038":8}`,
		want:    []string{"0", "Missing", "Missing", "Missing", "Missing", "5", "Missing", "Missing", "8", "9", "10"}, overflow: `{"k10":{"x":10},"k11":11}`},

	{name: "removed first", fields: []string{"a:Int64"}, payload: `{"a":1,"b":2,"c":3,"d":4}`, want: []string{"1"}, overflow: `{"b":2,"c":3,"d":4}`},
	{name: "removed last", fields: []string{"d:Int64"}, payload: `{"a":1,"b":2,"c":3,"d":4}`, want: []string{"4"}, overflow: `{"a":1,"b":2,"c":3}`},
	{name: "removed alternate", fields: []string{"a:Int64", "c:Int64"}, payload: `{"a":1,"b":2,"c":3,"d":4}`, want: []string{"1", "3"}, overflow: `{"b":2,"d":4}`},
	{name: "removed middle", fields: []string{"b:Int64", "c:Int64"}, payload: `{"a":1,"b":2,"c":3,"d":4}`, want: []string{"2", "3"}, overflow: `{"a":1,"d":4}`},
	{name: "whitespace", fields: []string{"user.id:Utf8", "value:Int64", "x:Utf8"},
		payload: " \t\n{ \"user\" : { \"id\" : \"u\" } ,\r\n \"value\" : 42 , \"x\" : [ 1 , { } ] , \"y\" : { \"z\" : null } } \n",
		want:    []string{`"u"`, "42", "Mismatch"}, overflow: "{\"user\" : { \"id\" : \"u\" },\"x\" : [ 1 , { } ] , \"y\" : { \"z\" : null }}"},
	{name: "whitespace, nothing removed", fields: []string{"x:Int64"}, payload: " {\"x\" : \"1\" } ",
		want: []string{"Mismatch"}, overflow: "payload"},

	{name: "timestamp", fields: []string{"a:Timestamp", "b:Timestamp", "c:Timestamp", "d:Timestamp", "e:Timestamp", "f:Timestamp", "g:Timestamp", "h:Timestamp"},
		payload: `{"a":1700000000123,"b":"2023-11-14T22:13:20.123456Z","c":"2023-11-14T23:43:20.123456789+01:30","d":"2023-11-14T22:13:20Z","e":-1,"f":"1969-12-31T23:59:59.9999999-00:00","g":"2023-11-14T22:13:20,5Z","h":"2023-11-14T2:13:20Z"}`,
		want: []string{"1700000000123000", micros("2023-11-14T22:13:20.123456Z"), micros("2023-11-14T22:13:20.123456Z"), "1700000000000000", "-1000", "-1",
			micros("2023-11-14T22:13:20.5Z"), micros("2023-11-14T02:13:20Z")},
		overflow: "NULL"},
	{name: "timestamp mismatch", fields: []string{"a:Timestamp", "b:Timestamp", "c:Timestamp", "d:Timestamp", "e:Timestamp", "f:Timestamp", "g:Timestamp", "h:Timestamp", "i:Timestamp"},
		payload: `{"a":1.5,"b":"2023-11-14","c":true,"d":9223372036854776,"e":"2023-11-14T22:13:20","f":"2023-11-14 22:13:20Z","g":"2023-02-29T00:00:00Z","h":"1700000000123","i":"2023-11-14T24:00:00Z"}`,
		want:    []string{"Mismatch", "Mismatch", "Mismatch", "Mismatch", "Mismatch", "Mismatch", "Mismatch", "Mismatch", "Mismatch"}, overflow: "payload"},
	{name: "date", fields: []string{"a:Date", "b:Date", "c:Date", "d:Date", "e:Date", "f:Date", "g:Date", "h:Date"},
		payload:  `{"a":"2024-02-29","b":"2024-02-29T23:30:00-01:00","c":86399999,"d":-1,"e":"1970-01-01","f":"0000-01-01","g":"1969-12-31T23:59:59.999Z","h":"\u0032024-01-01"}`,
		want:     []string{days("2024-02-29"), days("2024-03-01"), "0", "-1", "0", days("0000-01-01"), "-1", days("2024-01-01")},
		overflow: "NULL"},
	{name: "date mismatch", fields: []string{"a:Date", "b:Date", "c:Date", "d:Date", "e:Date", "f:Date", "g:Date", "h:Date"},
		payload: `{"a":"2023-02-29","b":"2024-13-01","c":1.0,"d":9000000000000000000,"e":"2024-1-01","f":"20240101","g":{},"h":"2024-01-01T"}`,
		want:    []string{"Mismatch", "Mismatch", "Mismatch", "Mismatch", "Mismatch", "Mismatch", "Mismatch", "Mismatch"}, overflow: "payload"},

	{name: "not preserved", fields: eventFields, payload: event, drop: true,
		want: []string{`"u123"`, `"click"`, "42", "19.99"}, overflow: "NULL"},
	{name: "not preserved, invalid", fields: eventFields, payload: `{"action":"x"`, drop: true, invalid: true, overflow: "NULL"},
	{name: "deep skipped value", fields: []string{"b:Int64"}, payload: `{"a":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `,"b":1}`,
		want: []string{"1"}, overflow: `{"a":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `}`},
}

// Payloads that are not JSON objects: every value is Missing and the overflow
// is the payload.
var notObjects = []string{
	``, ` `, `[1,2]`, `42`, `"s"`, `null`, `true`, `[{"action":"x"}]`,
	"\x00\xff\xfe binary", "\xef\xbb\xbf{}", // a byte-order mark
	`{"action":"x"`, `{"action":"x",}`, `{"action":"x"}}`, `{"action":"x"} x`, `{"action":"x"}{}`,
	`{,}`, `{"action" "x"}`, `{'action':'x'}`, `{action:"x"}`, `{"action":"x";"value":1}`,
	`{"value":01}`, `{"value":1.}`, `{"value":.5}`, `{"value":-}`, `{"value":1e}`, `{"value":+1}`, `{"value":0x1}`,
	`{"value":NaN}`, `{"value":tru}`, `{"value":nul}`, `{"value":True}`,
	"{\"action\":\"\x01\"}", `{"action":"\u12"}`, `{"action":"\q"}`, `{"action":"x\"}`, `{"x":[1,2,]}`, `{"x":[1 2]}`,
	`{"x":{"a":1,}}`, `{"x":{"a"}}`, `{"x":]}`, `{"x":[}`,
	"{\"action\":\"\xff\"}", "{\"action\":\"\xc3\x28\"}", "{\"\xed\xa0\x80\":1}", // invalid UTF-8, in a value, a key, a surrogate
	"{\"action\":\"x\"}\xff", "{\"y\":\"\xf4\x90\x80\x80\"}", // trailing garbage, beyond U+10FFFF
	`{"action":"x","value":1,"user":{"id":"u"},"z":[` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `]}`, // too deep
}

func TestExtract(t *testing.T) {
	for _, tc := range extractCases {
		t.Run(tc.name, func(t *testing.T) {
			tb := table(t, !tc.drop, tc.fields...)
			x := NewExtractor(tb)
			vals := make([]Value, len(tb.Fields))
			for i := range vals {
				vals[i] = Value{State: OK, Int: 9, Bytes: []byte("left over")}
			}
			payload := []byte(tc.payload)
			overflow, object := x.Extract(payload, vals)
			if object == tc.invalid {
				t.Errorf("object = %v", object)
			}
			for i, v := range vals {
				want := "Missing"
				if tc.want != nil {
					want = tc.want[i]
				}
				if got := show(v, tb.Fields[i].Type); got != want {
					t.Errorf("field %d (%s %v) = %s, want %s", i, tb.Fields[i].JSONPath, tb.Fields[i].Type, got, want)
				}
			}
			want := tc.overflow
			if want == "payload" {
				want = tc.payload
				if len(overflow) > 0 && &overflow[0] != &payload[0] {
					t.Errorf("overflow is a copy of the payload")
				}
			}
			if got := showOverflow(overflow); got != want {
				t.Errorf("overflow = %s\n           want %s", got, want)
			}
			if overflow != nil && !json.Valid(overflow) {
				t.Errorf("overflow is not valid JSON")
			}
			if cap(overflow) != len(overflow) && overflow != nil && want != tc.payload {
				t.Errorf("overflow has room to append: len %d cap %d", len(overflow), cap(overflow))
			}
		})
	}
}

func TestExtractNotObject(t *testing.T) {
	for _, preserve := range []bool{true, false} {
		tb := table(t, preserve, append(eventFields, "z:Utf8")...)
		x := NewExtractor(tb)
		vals := make([]Value, len(tb.Fields))
		for _, p := range notObjects {
			payload := []byte(p)
			overflow, object := x.Extract(payload, vals)
			if object {
				t.Errorf("%.60q: object", p)
			}
			for i, v := range vals {
				if !zero(v) {
					t.Errorf("%.60q: field %d = %+v", p, i, v)
				}
			}
			if want := payload; !preserve && overflow != nil || preserve && (len(overflow) != len(want) || len(want) > 0 && &overflow[0] != &want[0]) {
				t.Errorf("%.60q: overflow %.60q", p, overflow)
			}
			// encoding/json agrees, but for UTF-8, which it does not check.
			var v any
			if json.Unmarshal(payload, &v) == nil && !bytes.ContainsAny(payload, "\xff\xed\xc3\xf4") {
				if _, isObject := v.(map[string]any); isObject {
					t.Errorf("%.60q: encoding/json reads an object", p)
				}
			}
		}
	}
}

// Nesting may be as deep as encoding/json allows: 10000.
func TestExtractDepth(t *testing.T) {
	tb := table(t, true, "a.b:Int64", "c:Int64")
	x := NewExtractor(tb)
	vals := make([]Value, 2)
	for _, tc := range []struct {
		payload string
		ok      bool
	}{
		{`{"c":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}`, true},
		{`{"c":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, false},
		{`{"a":{"b":1,"x":` + strings.Repeat(`{"a":`, 9998) + "1" + strings.Repeat("}", 9998) + `}}`, true},
		{`{"a":{"b":1,"x":` + strings.Repeat(`{"a":`, 9999) + "1" + strings.Repeat("}", 9999) + `}}`, false},
		{`{"a":{"b":1,"x":` + strings.Repeat(`{"a":`, 9997) + "[]" + strings.Repeat("}", 9997) + `}}`, true},
		{`{"a":{"b":1,"x":` + strings.Repeat(`{"a":`, 9998) + "{}" + strings.Repeat("}", 9998) + `}}`, false},
	} {
		if json.Valid([]byte(tc.payload)) != tc.ok {
			t.Fatalf("encoding/json disagrees on %.40q…", tc.payload)
		}
		if _, object := x.Extract([]byte(tc.payload), vals); object != tc.ok {
			t.Errorf("%.40q…: object = %v", tc.payload, object)
		}
	}
}

func TestExtractBinaryFormat(t *testing.T) {
	for _, preserve := range []bool{true, false} {
		tb := table(t, preserve, eventFields...)
		tb.Format = FormatBinary
		x := NewExtractor(tb)
		vals := make([]Value, len(tb.Fields))
		payload := []byte(event)
		overflow, object := x.Extract(payload, vals)
		if object || !zero(vals[0]) || !zero(vals[2]) {
			t.Errorf("object %v, vals %+v", object, vals)
		}
		if preserve && &overflow[0] != &payload[0] || !preserve && overflow != nil {
			t.Errorf("preserve %v: overflow %q", preserve, overflow)
		}
	}
}

// What Extract returns stays valid as the arena grows, until Reset; a
// payload that turns out invalid takes nothing from the arena.
func TestExtractArena(t *testing.T) {
	tb := table(t, true, "s:Utf8", "b:Binary")
	x := NewExtractor(tb)
	vals := make([]Value, 2)
	type result struct{ s, b, overflow []byte }
	var got []result
	const n = 5000 // several chunks
	for i := range n {
		big := strings.Repeat("\\u0041", i%37*50) // forces an arena copy, some larger than a chunk's tail
		payload := fmt.Sprintf(`{"s":"%d\n%s","b":"\t%d","k":%d}`, i, big, i, i)
		if _, object := x.Extract([]byte(payload[:len(payload)-1]), vals); object {
			t.Fatal("invalid payload read")
		}
		overflow, _ := x.Extract([]byte(payload), vals)
		got = append(got, result{vals[0].Bytes, vals[1].Bytes, overflow})
	}
	for i, r := range got {
		if want := fmt.Sprintf("%d\n%s", i, strings.Repeat("A", i%37*50)); string(r.s) != want {
			t.Fatalf("%d: s = %q", i, r.s)
		}
		if want := fmt.Sprintf("\t%d", i); string(r.b) != want {
			t.Fatalf("%d: b = %q", i, r.b)
		}
		if want := fmt.Sprintf(`{"k":%d}`, i); string(r.overflow) != want {
			t.Fatalf("%d: overflow = %q", i, r.overflow)
		}
	}
	if len(x.arena.chunks) < 2 {
		t.Errorf("%d chunks: the test did not grow the arena", len(x.arena.chunks))
	}
	x.Reset()
	if x.arena.cur != 0 || len(x.arena.chunks[0]) != 0 {
		t.Error("Reset kept the contents")
	}
	// After Reset the chunks are reused: the same round needs no new one.
	chunks := len(x.arena.chunks)
	for i := range n {
		x.Extract([]byte(fmt.Sprintf(`{"s":"%d\n%s","k":1}`, i, strings.Repeat("\\u0041", i%37*50))), vals)
	}
	if len(x.arena.chunks) > chunks {
		t.Errorf("chunks %d → %d after Reset", chunks, len(x.arena.chunks))
	}
}

// Once warm, Extract allocates nothing.
func TestExtractAllocs(t *testing.T) {
	tb := table(t, true, "user.id:Utf8", "action:Utf8", "value:Int64", "price:Float64", "ok:Boolean",
		"ts:Timestamp", "ts2:Timestamp", "d:Date", "f:Float32", "bin:Binary", "i:Int32", "k0:Utf8", "k1:Utf8", "k2:Utf8",
		"k3:Utf8", "k4:Utf8", "k5:Utf8", "k6:Utf8", "k7:Utf8", "k8:Utf8")
	payloads := [][]byte{
		[]byte(event),
		[]byte(`{"user":{"id":"u\u0031"},"act\u0069on":"cl\"ick","value":"42","price":1e400,"ok":1,"ts":"2023-11-14T22:13:20.5+05:30",` +
			`"ts2":1700000000000,"d":"2024-02-29","f":1.5,"bin":"\u00ff","i":3000000000,"k5":"x","zz":[1,{"a":null}],"k0":"é"}`),
		[]byte(`{"ts":"not a time","d":"2024-02-30","ts2":"2023-11-14T22:13:20Z","k9":1}`),
		[]byte(`{"user":{"id":"u1"}} trailing`),
		[]byte(`[1,2,3]`),
	}
	x := NewExtractor(tb)
	vals := make([]Value, len(tb.Fields))
	for _, p := range payloads {
		x.Extract(p, vals)
	}
	x.Reset()
	allocs := testing.AllocsPerRun(1000, func() {
		for _, p := range payloads {
			x.Extract(p, vals)
		}
		x.Reset()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
}

// A failed Extract leaves nothing in vals, and what earlier calls returned is
// intact.
func TestExtractInvalidAfterValues(t *testing.T) {
	tb := table(t, true, "a:Utf8", "b:Int64")
	x := NewExtractor(tb)
	vals := make([]Value, 2)
	x.Extract([]byte(`{"a":"\u0041\u0042","b":2,"c":3}`), vals)
	first := vals[0].Bytes
	overflow, object := x.Extract([]byte(`{"a":"\u0058\u0059","b":2,"c":3,"d":}`), vals)
	if object || !zero(vals[0]) || !zero(vals[1]) {
		t.Fatalf("object %v vals %+v", object, vals)
	}
	if string(overflow) != `{"a":"\u0058\u0059","b":2,"c":3,"d":}` {
		t.Errorf("overflow %q", overflow)
	}
	x.Extract([]byte(`{"a":"\u0043\u0044"}`), vals)
	if string(first) != "AB" || string(vals[0].Bytes) != "CD" {
		t.Errorf("first %q, then %q", first, vals[0].Bytes)
	}
}

func TestExtractLenVals(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	x := NewExtractor(table(t, true, "a:Utf8"))
	x.Extract([]byte(`{}`), make([]Value, 2))
}

// parseTime reads what time.Parse reads, and gives the same answer.
func TestParseTime(t *testing.T) {
	for _, s := range []string{
		"2023-11-14T22:13:20Z", "2023-11-14T22:13:20.1Z", "2023-11-14T22:13:20.123456789Z", "2023-11-14T22:13:20.1234567891234Z",
		"2023-11-14T22:13:20+05:30", "2023-11-14T22:13:20-23:59", "2023-11-14T22:13:20+24:00", "2023-11-14T22:13:20+01:60",
		"2023-11-14T22:13:20.Z", "2023-11-14T22:13:20.5", "2023-11-14T22:13:20,5Z", "2023-11-14T2:13:20Z", "2023-11-14T22:3:20Z",
		"2023-11-14t22:13:20Z", "2023-11-14T22:13:20z", "2023-11-14T24:00:00Z", "2023-11-14T23:59:60Z", "2024-02-29T00:00:00Z",
		"2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999-23:59",
		"+999-01-01T00:00:00Z", "-999-01-01T00:00:00Z", "2023-1-14T22:13:20Z", "2023-11-4T22:13:20Z", "2023-11-14T22:13:20+0530",
		"2023-11-14T22:13:20+05:30 ", " 2023-11-14T22:13:20Z", "2023-11-14T22:13:20.-1Z", "2023-11-14T22:13:20Z07:00",
		"2023-11-14T22:13:20+5:30", "2023-11-14T22:13:20UTC", "2023-11-14T22:13:20.000000001+00:00", "1969-12-31T23:59:59.9999995Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		got, ok := parseTime([]byte(s))
		if ok != (err == nil) || ok && got != want.UnixMicro() {
			t.Errorf("%q: got %d %v, time.Parse %d %v", s, got, ok, want.UnixMicro(), err)
		}
		if us, fast := parseRFC3339([]byte(s)); fast && (err != nil || us != want.UnixMicro()) {
			t.Errorf("%q: parseRFC3339 %d, time.Parse %d %v", s, us, want.UnixMicro(), err)
		}
	}
	for _, s := range []string{"2024-02-29", "2023-02-29", "2024-00-01", "2024-12-32", "0000-01-01", "9999-12-31", "2024-1-01", "2024/01/01", "+024-01-01", "2024-01-0a"} {
		want, err := time.Parse(time.DateOnly, s)
		got, ok := parseDate([]byte(s))
		if ok != (err == nil) || ok && got != floorDiv(want.Unix(), 86400) {
			t.Errorf("%q: got %d %v, time.Parse %v %v", s, got, ok, want, err)
		}
	}
}

func TestParseInt(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"-9223372036854775809", "18446744073709551615", "18446744073709551616", "99999999999999999999", "1234567890123456789"} {
		want, err := strconv.ParseInt(s, 10, 64)
		got, ok := parseInt([]byte(s))
		if ok != (err == nil) || got != want && ok {
			t.Errorf("%s: got %d %v, strconv %d %v", s, got, ok, want, err)
		}
	}
	if floorDiv(-1, 86400000) != -1 || floorDiv(86399999, 86400000) != 0 || floorDiv(math.MinInt64, 86400000) != -106751991168 {
		t.Error("floorDiv")
	}
}

func TestMagnitude(t *testing.T) {
	for _, s := range []string{"0", "-0", "0.000", "0e5", "1", "9", "10", "-99.9", "0.1", "0.01", "0.0123", "1e308", "9.9e308",
		"1e309", "0.1e310", "123.456e-10", "1E+2", "0.00001e-3", "5e-324", "3.4e38", "12345678901234567890", "-0.0e-0"} {
		e, zero := magnitude([]byte(s))
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatal(s)
		}
		r.Abs(r)
		if zero != (r.Sign() == 0) {
			t.Errorf("%s: zero %v", s, zero)
			continue
		}
		if zero {
			continue
		}
		pow := func(e int) *big.Rat {
			p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(max(e, -e))), nil)
			if e < 0 {
				return new(big.Rat).SetFrac(big.NewInt(1), p)
			}
			return new(big.Rat).SetInt(p)
		}
		if r.Cmp(pow(e)) < 0 || r.Cmp(pow(e+1)) >= 0 {
			t.Errorf("%s: magnitude %d", s, e)
		}
	}
	if e, _ := magnitude([]byte("1e99999999999999999999")); e < 1<<20 {
		t.Errorf("huge: %d", e)
	}
	if e, _ := magnitude([]byte("1e-99999999999999999999")); e > -1<<20 {
		t.Errorf("tiny: %d", e)
	}
}

// special finds the first byte that is not plain, as the class table says.
func TestSpecial(t *testing.T) {
	r := uint64(0x9E3779B97F4A7C15)
	for i := range 200000 {
		r ^= r << 13
		r ^= r >> 7
		r ^= r << 17
		w := r
		if i%2 == 0 { // mostly plain bytes, as in real strings
			w = w&0x3f3f3f3f3f3f3f3f | 0x4040404040404040
			w ^= uint64(i%251) << (8 * (i % 8))
		}
		first := 8
		for k := range 8 {
			if class[byte(w>>(8*k))]&clsPlain == 0 {
				first = k
				break
			}
		}
		m := special(w)
		got := 8
		if m != 0 {
			got = bits.TrailingZeros64(m) / 8
		}
		if got != first {
			t.Fatalf("%#016x: first special byte %d, special says %d", w, first, got)
		}
	}
}

// fastFloat agrees with strconv.ParseFloat, bit for bit, when it answers.
func TestFastFloat(t *testing.T) {
	for _, s := range []string{"0", "-0", "0.0", "-0.000", "1", "19.99", "-19.99", "0.1", "0.3", "123456789012345",
		"1234567890123456", "0.000000000000000000001", "0.0000000000000000000001", "9007199254740993", "1.7976931348623157",
		"999999999999999.9", "100000000000000000000000", "3.14159", "2.5e3", "00.5"} {
		want, err := strconv.ParseFloat(s, 64)
		got, ok := fastFloat([]byte(s))
		if ok && (err != nil || math.Float64bits(got) != math.Float64bits(want)) {
			t.Errorf("%s: fastFloat %v, strconv %v %v", s, got, want, err)
		}
	}
}
