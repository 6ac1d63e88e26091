package columns

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzFields use the keys of the unit tests' payloads, so that the fuzzer
// starts from payloads that have them.
var fuzzFields = []string{
	"a:Utf8", "a.b:Int64", "a.b.c:Int64", "b:Int32", "c:Float32", "d:Date", "e:Timestamp", "f:Binary", "g:Boolean",
	"h:Float64", "value:Int64", "price:Float64", "action:Utf8", "user.id:Utf8", "user.id:Int64", "ts:Timestamp",
	"s:Utf8", "v:Int32", "v:Utf8", "é:Utf8", "id:Binary", "x:Date", "k0:Int64",
}

// FuzzExtract checks Extract against encoding/json and the coercion rules.
func FuzzExtract(f *testing.F) {
	for _, tc := range extractCases {
		f.Add([]byte(tc.payload))
	}
	for _, p := range notObjects {
		if len(p) < 1000 {
			f.Add([]byte(p))
		}
	}
	tb := table(f, true, fuzzFields...)
	x := NewExtractor(tb)
	tb.PreserveOverflow = false
	drop := NewExtractor(tb)
	vals := make([]Value, len(tb.Fields))
	dropVals := make([]Value, len(tb.Fields))

	f.Fuzz(func(t *testing.T, payload []byte) {
		x.Reset()
		drop.Reset()
		overflow, object := x.Extract(payload, vals)

		// Without the overflow, the same values.
		dropOverflow, dropObject := drop.Extract(payload, dropVals)
		if dropObject != object || dropOverflow != nil {
			t.Fatalf("preserve_overflow false: object %v overflow %q", dropObject, dropOverflow)
		}
		for i := range vals {
			if !reflect.DeepEqual(vals[i], dropVals[i]) {
				t.Fatalf("preserve_overflow false: field %d is %+v, not %+v", i, dropVals[i], vals[i])
			}
		}

		ref, ok := refDecode(payload)
		obj, isObject := ref.(refObject)
		if !ok || !isObject {
			if object {
				t.Fatalf("object, but encoding/json reads %T (valid %v)", ref, ok)
			}
			for i, v := range vals {
				if !zero(v) {
					t.Fatalf("not an object, but field %d is %+v", i, v)
				}
			}
			if len(overflow) != len(payload) || len(payload) > 0 && &overflow[0] != &payload[0] {
				t.Fatalf("not an object, but the overflow is %q", overflow)
			}
			return
		}
		if !object {
			t.Fatal("an object, but Extract did not read it")
		}

		// Each value is what the rules give from encoding/json's.
		oks := make(map[string]bool) // top-level keys with an OK value
		for i, fd := range tb.Fields {
			rv, found := obj.lookup(strings.Split(fd.JSONPath, "."))
			want := refCoerce(rv, found, fd.Type)
			if got := vals[i]; !reflect.DeepEqual(got, want) && !(got.State == OK && want.State == OK &&
				bytes.Equal(got.Bytes, want.Bytes) && got.Int == want.Int &&
				math.Float64bits(got.Float) == math.Float64bits(want.Float)) {
				t.Fatalf("field %d (%s %v) = %+v, want %+v (from %#v)", i, fd.JSONPath, fd.Type, got, want, rv)
			}
			if vals[i].State == OK && !strings.Contains(fd.JSONPath, ".") {
				oks[fd.JSONPath] = true
			}
		}

		// The overflow is the object less the first member of each key that
		// went into a column.
		var rest refObject
		taken := make(map[string]bool)
		for _, m := range obj {
			if oks[m.key] && !taken[m.key] {
				taken[m.key] = true
				continue
			}
			rest = append(rest, m)
		}
		if len(rest) == 0 {
			if overflow != nil {
				t.Fatalf("no member left, but the overflow is %q", overflow)
			}
			return
		}
		got, ok := refDecode(overflow)
		if !ok {
			t.Fatalf("the overflow is not valid JSON: %q", overflow)
		}
		if !reflect.DeepEqual(got, rest) {
			t.Fatalf("overflow %q\ndecodes to %#v\nwant       %#v", overflow, got, rest)
		}
	})
}

// refObject is a JSON object as encoding/json reads it, with its members in
// order and every member of a repeated key.
type refObject []refMember

type refMember struct {
	key string
	val any
}

// lookup returns the value at path, taking the first member of each key.
func (o refObject) lookup(path []string) (any, bool) {
	for _, m := range o {
		if m.key != path[0] {
			continue
		}
		if len(path) == 1 {
			return m.val, true
		}
		next, ok := m.val.(refObject)
		if !ok {
			return nil, false
		}
		return next.lookup(path[1:])
	}
	return nil, false
}

// refDecode decodes b with encoding/json (UseNumber), objects as refObject,
// if it is valid JSON and valid UTF-8 (which encoding/json does not check).
func refDecode(b []byte) (any, bool) {
	if !utf8.Valid(b) || !json.Valid(b) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := refValue(dec)
	if err != nil {
		panic(fmt.Sprintf("encoding/json: valid, but %v", err))
	}
	return v, true
}

func refValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := refObject{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := refValue(dec)
			if err != nil {
				return nil, err
			}
			o = append(o, refMember{k.(string), v})
		}
		_, err := dec.Token()
		return o, err
	case json.Delim('['):
		a := []any{}
		for dec.More() {
			v, err := refValue(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return tok, nil
}

// refCoerce applies the rules of the package comment to a value encoding/json
// decoded.
func refCoerce(v any, found bool, t Type) Value {
	if !found || v == nil {
		return Value{}
	}
	bad := Value{State: Mismatch}
	integer := func() (int64, bool) {
		n, ok := v.(json.Number)
		if !ok || strings.ContainsAny(string(n), ".eE") {
			return 0, false
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		return i, err == nil
	}
	rfc3339 := func() (time.Time, bool) {
		s, ok := v.(string)
		if !ok {
			return time.Time{}, false
		}
		ts, err := time.Parse(time.RFC3339Nano, s)
		return ts, err == nil
	}
	switch t {
	case Utf8:
		switch v := v.(type) {
		case string:
			return Value{State: OK, Bytes: []byte(v)}
		case json.Number:
			return Value{State: OK, Bytes: []byte(v)}
		case bool:
			return Value{State: OK, Bytes: []byte(strconv.FormatBool(v))}
		}
	case Binary:
		if s, ok := v.(string); ok {
			return Value{State: OK, Bytes: []byte(s)}
		}
	case Int32, Int64:
		if i, ok := integer(); ok && (t == Int64 || int64(int32(i)) == i) {
			return Value{State: OK, Int: i}
		}
	case Float32, Float64:
		if n, ok := v.(json.Number); ok {
			bits := 64
			if t == Float32 {
				bits = 32
			}
			if f, err := strconv.ParseFloat(string(n), bits); err == nil {
				return Value{State: OK, Float: f}
			}
		}
	case Boolean:
		if b, ok := v.(bool); ok {
			if b {
				return Value{State: OK, Int: 1}
			}
			return Value{State: OK}
		}
	case Timestamp:
		if ms, ok := integer(); ok {
			if us := ms * 1000; us/1000 == ms {
				return Value{State: OK, Int: us}
			}
			return bad
		}
		if ts, ok := rfc3339(); ok {
			return Value{State: OK, Int: ts.UnixMicro()}
		}
	case Date:
		var d int64
		if ms, ok := integer(); ok {
			d = ms / 86400000
			if ms%86400000 < 0 {
				d--
			}
		} else if s, ok := v.(string); ok {
			if ts, err := time.Parse(time.DateOnly, s); err == nil {
				d = ts.Unix() / 86400
			} else if ts, ok := rfc3339(); ok {
				y, m, dd := ts.UTC().Date()
				d = time.Date(y, m, dd, 0, 0, 0, 0, time.UTC).Unix() / 86400
			} else {
				return bad
			}
		} else {
			return bad
		}
		if int64(int32(d)) == d {
			return Value{State: OK, Int: d}
		}
	}
	return bad
}
