package columns

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []Table
	}{
		{"empty", "", nil},
		{"whitespace", " \n\t", nil},
		{"no tables", " [ ] ", []Table{}},
		{
			name: "rust example",
			in:   `[{"table":"clicks","payload_format":"json","fields":[{"name":"user_id","json_path":"user.id","data_type":"Utf8","nullable":true}],"preserve_overflow":true}]`,
			want: []Table{{Table: "clicks", Format: FormatJSON, PreserveOverflow: true, Fields: []Field{
				{Name: "user_id", JSONPath: "user.id", Type: Utf8, Nullable: true},
			}}},
		},
		{
			name: "defaults",
			in: `[{"table":"a","payload_format":"json","fields":[{"name":"x","json_path":"x","data_type":"Int64"}]},
			      {"table":"b","payload_format":"binary","fields":[]}]`,
			want: []Table{
				{Table: "a", Format: FormatJSON, PreserveOverflow: true, Fields: []Field{{Name: "x", JSONPath: "x", Type: Int64, Nullable: true}}},
				{Table: "b", Format: FormatBinary, PreserveOverflow: true, Fields: []Field{}},
			},
		},
		{
			name: "false given",
			in:   `[{"table":"a","payload_format":"json","preserve_overflow":false,"fields":[{"name":"x","json_path":"x","data_type":"Boolean","nullable":false}]}]`,
			want: []Table{{Table: "a", Format: FormatJSON, Fields: []Field{{Name: "x", JSONPath: "x", Type: Boolean}}}},
		},
		{
			name: "every type and long names",
			in: `[{"table":"T-1_` + strings.Repeat("t", 124) + `","payload_format":"json","fields":[
				{"name":"_u","json_path":"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p","data_type":"Utf8"},
				{"name":"i32","json_path":"é","data_type":"Int32"},
				{"name":"i64","json_path":"a b","data_type":"Int64"},
				{"name":"f32","json_path":"f32","data_type":"Float32"},
				{"name":"f64","json_path":"f64","data_type":"Float64"},
				{"name":"b","json_path":"b","data_type":"Boolean"},
				{"name":"bin","json_path":"bin","data_type":"Binary"},
				{"name":"ts","json_path":"ts","data_type":"Timestamp"},
				{"name":"D_` + strings.Repeat("d", 126) + `","json_path":"d","data_type":"Date"}]}]`,
			want: []Table{{Table: "T-1_" + strings.Repeat("t", 124), Format: FormatJSON, PreserveOverflow: true, Fields: []Field{
				{Name: "_u", JSONPath: "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p", Type: Utf8, Nullable: true},
				{Name: "i32", JSONPath: "é", Type: Int32, Nullable: true},
				{Name: "i64", JSONPath: "a b", Type: Int64, Nullable: true},
				{Name: "f32", JSONPath: "f32", Type: Float32, Nullable: true},
				{Name: "f64", JSONPath: "f64", Type: Float64, Nullable: true},
				{Name: "b", JSONPath: "b", Type: Boolean, Nullable: true},
				{Name: "bin", JSONPath: "bin", Type: Binary, Nullable: true},
				{Name: "ts", JSONPath: "ts", Type: Timestamp, Nullable: true},
				{Name: "D_" + strings.Repeat("d", 126), JSONPath: "d", Type: Date, Nullable: true},
			}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	// entry wraps one field in an otherwise valid entry.
	entry := func(field string) string {
		return `{"table":"clicks","payload_format":"json","fields":[` + field + `]}`
	}
	const (
		at  = `ZOMBI_TABLE_SCHEMA entry 1 (table "clicks")`
		at2 = `ZOMBI_TABLE_SCHEMA entry 2 (table "clicks")`
	)
	for _, tc := range []struct {
		name string
		in   string
		want []string // each must be the whole of one of the joined errors
	}{
		{"not json", `[{`, []string{"ZOMBI_TABLE_SCHEMA: want a JSON array of tables: unexpected end of JSON input"}},
		{"trailing garbage", `[] x`, []string{"ZOMBI_TABLE_SCHEMA: want a JSON array of tables: invalid character 'x' after top-level value"}},
		{"object", `{"table":"a"}`, []string{"ZOMBI_TABLE_SCHEMA: want a JSON array of tables, got an object"}},
		{"null", `null`, []string{"ZOMBI_TABLE_SCHEMA: want a JSON array of tables, got null"}},
		{"entry not an object", `[{"table":"a","payload_format":"json","fields":[]}, 3]`, []string{"ZOMBI_TABLE_SCHEMA entry 2: want an object, got a number"}},
		{"key twice", `[{"table":"a","table":"b"}]`, []string{`ZOMBI_TABLE_SCHEMA entry 1: key "table" given twice`}},
		{"missing keys", `[{}]`, []string{
			`ZOMBI_TABLE_SCHEMA entry 1: missing key "table"`,
			`ZOMBI_TABLE_SCHEMA entry 1: missing key "payload_format"`,
			`ZOMBI_TABLE_SCHEMA entry 1: missing key "fields"`,
		}},
		{"unknown keys", `[{"table":"clicks","payload_format":"json","fields":[],"preserve_overflows":true,"Table":"x"}]`, []string{
			at + `: unknown key "Table" (want table, payload_format, fields, preserve_overflow)`,
			at + `: unknown key "preserve_overflows" (want table, payload_format, fields, preserve_overflow)`,
		}},
		{"wrong types", `[{"table":1,"payload_format":null,"fields":{},"preserve_overflow":"true"}]`, []string{
			`ZOMBI_TABLE_SCHEMA entry 1: "table": want a string, got a number`,
			`ZOMBI_TABLE_SCHEMA entry 1: "payload_format": want a string, got null`,
			`ZOMBI_TABLE_SCHEMA entry 1: "preserve_overflow": want true or false, got a string`,
			`ZOMBI_TABLE_SCHEMA entry 1: "fields": want an array, got an object`,
		}},
		{"table name", `[{"table":"1clicks","payload_format":"json","fields":[]},{"table":"a.b","payload_format":"json","fields":[]},{"table":"` + strings.Repeat("a", 129) + `","payload_format":"json","fields":[]}]`, []string{
			`ZOMBI_TABLE_SCHEMA entry 1 (table "1clicks"): table name "1clicks" must match ^[a-zA-Z][a-zA-Z0-9_-]{0,127}$`,
			`ZOMBI_TABLE_SCHEMA entry 2 (table "a.b"): table name "a.b" must match ^[a-zA-Z][a-zA-Z0-9_-]{0,127}$`,
			`ZOMBI_TABLE_SCHEMA entry 3 (table "` + strings.Repeat("a", 129) + `"): table name "` + strings.Repeat("a", 129) + `" must match ^[a-zA-Z][a-zA-Z0-9_-]{0,127}$`,
		}},
		{"table twice", `[` + entry(``) + `,` + entry(``) + `]`, []string{at2 + `: table "clicks" is already configured by entry 1`}},
		{"payload_format", `[{"table":"clicks","payload_format":"JSON","fields":[]}]`, []string{at + `: unknown payload_format "JSON" (want json or binary)`}},
		{"field not an object", `[` + entry(`"x"`) + `]`, []string{at + ` field 1: want an object, got a string`}},
		{"field missing keys", `[` + entry(`{"nullable":true}`) + `]`, []string{
			at + ` field 1: missing key "name"`,
			at + ` field 1: missing key "json_path"`,
			at + ` field 1: missing key "data_type"`,
		}},
		{"field misspelt key", `[` + entry(`{"name":"x","json_path":"x","data_type":"Utf8","nullabel":false}`) + `]`, []string{
			at + ` field "x": unknown key "nullabel" (want name, json_path, data_type, nullable)`,
		}},
		{"field wrong types", `[` + entry(`{"name":1,"json_path":["x"],"data_type":true,"nullable":"no"}`) + `]`, []string{
			at + ` field 1: "name": want a string, got a number`,
			at + ` field 1: "json_path": want a string, got an array`,
			at + ` field 1: "data_type": want a string, got a boolean`,
			at + ` field 1: "nullable": want true or false, got a string`,
		}},
		{"data_type", `[` + entry(`{"name":"ts","json_path":"ts","data_type":"Datetime"},{"name":"s","json_path":"s","data_type":"utf8"}`) + `]`, []string{
			at + ` field "ts": unknown data_type "Datetime" (want Utf8, Int32, Int64, Float32, Float64, Boolean, Binary, Timestamp, Date)`,
			at + ` field "s": unknown data_type "utf8" (want Utf8, Int32, Int64, Float32, Float64, Boolean, Binary, Timestamp, Date)`,
		}},
		{"column name", `[` + entry(`{"name":"user-id","json_path":"x","data_type":"Utf8"},{"name":"","json_path":"x","data_type":"Utf8"},{"name":"9a","json_path":"x","data_type":"Utf8"},{"name":"`+strings.Repeat("c", 129)+`","json_path":"x","data_type":"Utf8"}`) + `]`, []string{
			at + ` field "user-id": column name "user-id" must match ^[a-zA-Z_][a-zA-Z0-9_]{0,127}$`,
			at + ` field "": column name "" must match ^[a-zA-Z_][a-zA-Z0-9_]{0,127}$`,
			at + ` field "9a": column name "9a" must match ^[a-zA-Z_][a-zA-Z0-9_]{0,127}$`,
			at + ` field "` + strings.Repeat("c", 129) + `": column name "` + strings.Repeat("c", 129) + `" must match ^[a-zA-Z_][a-zA-Z0-9_]{0,127}$`,
		}},
		{"column twice", `[` + entry(`{"name":"user_id","json_path":"a","data_type":"Utf8"},{"name":"User_Id","json_path":"b","data_type":"Utf8"}`) + `]`, []string{
			at + ` field "User_Id": column name given twice (as "user_id" before; query engines fold case)`,
		}},
		{"reserved", `[` + entry(`{"name":"Sequence","json_path":"a","data_type":"Int64"},{"name":"_PAYLOAD_OVERFLOW","json_path":"b","data_type":"Binary"}`) + `]`, []string{
			at + ` field "Sequence": column name "Sequence" is reserved (event columns sequence, topic, partition, payload, timestamp_ms, idempotency_key, event_date, event_hour; overflow column _payload_overflow; in any case)`,
			at + ` field "_PAYLOAD_OVERFLOW": column name "_PAYLOAD_OVERFLOW" is reserved (event columns sequence, topic, partition, payload, timestamp_ms, idempotency_key, event_date, event_hour; overflow column _payload_overflow; in any case)`,
		}},
		{"json_path", `[` + entry(
			`{"name":"a","json_path":"","data_type":"Utf8"},`+
				`{"name":"b","json_path":"a..b","data_type":"Utf8"},`+
				`{"name":"c","json_path":".a","data_type":"Utf8"},`+
				`{"name":"d","json_path":"a.","data_type":"Utf8"},`+
				`{"name":"e","json_path":"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q","data_type":"Utf8"},`+
				`{"name":"f","json_path":"`+strings.Repeat("x", 1025)+`","data_type":"Utf8"},`+
				`{"name":"g","json_path":".","data_type":"Utf8"}`) + `]`, []string{
			at + ` field "a": json_path "": empty`,
			at + ` field "b": json_path "a..b": empty key between two dots`,
			at + ` field "c": json_path ".a": starts with a dot`,
			at + ` field "d": json_path "a.": ends with a dot`,
			at + ` field "e": json_path "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q": more than 16 keys`,
			at + ` field "f": json_path "` + strings.Repeat("x", 1025) + `": longer than 1024 bytes`,
			at + ` field "g": json_path ".": starts with a dot`,
		}},
		{"every entry reported", `[{"table":"a","payload_format":"json","fields":[{"name":"x","json_path":"x","data_type":"X"}]},{"table":"b","payload_format":"csv","fields":[]}]`, []string{
			`ZOMBI_TABLE_SCHEMA entry 1 (table "a") field "x": unknown data_type "X" (want Utf8, Int32, Int64, Float32, Float64, Boolean, Binary, Timestamp, Date)`,
			`ZOMBI_TABLE_SCHEMA entry 2 (table "b"): unknown payload_format "csv" (want json or binary)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tables, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("no error; tables %+v", tables)
			}
			if tables != nil {
				t.Errorf("tables %+v with an error", tables)
			}
			var got []string
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					got = append(got, e.Error())
				}
			} else {
				got = []string{err.Error()}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

func TestType(t *testing.T) {
	want := []struct {
		t             Type
		name, iceberg string
	}{
		{Utf8, "Utf8", "string"},
		{Int32, "Int32", "int"},
		{Int64, "Int64", "long"},
		{Float32, "Float32", "float"},
		{Float64, "Float64", "double"},
		{Boolean, "Boolean", "boolean"},
		{Binary, "Binary", "binary"},
		{Timestamp, "Timestamp", "timestamptz"},
		{Date, "Date", "date"},
	}
	for _, w := range want {
		if got := w.t.String(); got != w.name {
			t.Errorf("%d.String() = %q, want %q", w.t, got, w.name)
		}
		if got := w.t.Iceberg(); got != w.iceberg {
			t.Errorf("%v.Iceberg() = %q, want %q", w.t, got, w.iceberg)
		}
		if got, err := ParseType(w.name); got != w.t || err != nil {
			t.Errorf("ParseType(%q) = %v, %v", w.name, got, err)
		}
		for _, u := range want {
			widens := w.t == u.t || w.t == Int32 && u.t == Int64 || w.t == Float32 && u.t == Float64
			if got := w.t.WidensTo(u.t); got != widens {
				t.Errorf("%v.WidensTo(%v) = %v", w.t, u.t, got)
			}
		}
	}
	for _, bad := range []Type{0, Date + 1, 255} {
		if bad.Iceberg() != "" || bad.WidensTo(bad) || !strings.HasPrefix(bad.String(), "Type(") {
			t.Errorf("invalid %d: %q %q %v", bad, bad.String(), bad.Iceberg(), bad.WidensTo(bad))
		}
	}
	for _, bad := range []string{"", "utf8", "String", "Int", "Datetime"} {
		if _, err := ParseType(bad); err == nil {
			t.Errorf("ParseType(%q): no error", bad)
		}
	}
	if FormatJSON.String() != "json" || FormatBinary.String() != "binary" {
		t.Error("Format.String")
	}
}

func TestReserved(t *testing.T) {
	for _, name := range []string{"sequence", "topic", "partition", "payload", "timestamp_ms", "idempotency_key",
		"event_date", "event_hour", "_payload_overflow", "SEQUENCE", "Event_Hour", OverflowColumn} {
		if !Reserved(name) {
			t.Errorf("Reserved(%q) = false", name)
		}
	}
	for _, name := range []string{"", "seq", "sequences", "user_id", "payload_overflow"} {
		if Reserved(name) {
			t.Errorf("Reserved(%q) = true", name)
		}
	}
}

// The errors are joined, so errors.Is and a single message both work.
func TestParseErrorsJoined(t *testing.T) {
	_, err := Parse([]byte(`[{},{}]`))
	var j interface{ Unwrap() []error }
	if !errors.As(err, &j) || len(j.Unwrap()) != 6 {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(err.Error(), "entry 1") || !strings.Contains(err.Error(), "entry 2") {
		t.Errorf("%v", err)
	}
}
