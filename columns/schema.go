package columns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Type is the data type of a typed column.
type Type uint8

// The data types, named as in the setting.
const (
	Utf8 Type = iota + 1
	Int32
	Int64
	Float32
	Float64
	Boolean
	Binary
	Timestamp // microseconds since the epoch, UTC
	Date      // days since 1970-01-01
)

// typeInfo holds a Type's names, indexed by the Type.
var typeInfo = [...]struct{ name, iceberg string }{
	Utf8:      {"Utf8", "string"},
	Int32:     {"Int32", "int"},
	Int64:     {"Int64", "long"},
	Float32:   {"Float32", "float"},
	Float64:   {"Float64", "double"},
	Boolean:   {"Boolean", "boolean"},
	Binary:    {"Binary", "binary"},
	Timestamp: {"Timestamp", "timestamptz"},
	Date:      {"Date", "date"},
}

func (t Type) valid() bool { return t >= Utf8 && int(t) < len(typeInfo) }

// String returns the type's name in the setting ("Utf8", "Int32", …).
func (t Type) String() string {
	if !t.valid() {
		return "Type(" + strconv.Itoa(int(t)) + ")"
	}
	return typeInfo[t].name
}

// Iceberg returns the name of the Iceberg type the column has ("string",
// "int", "long", "float", "double", "boolean", "binary", "timestamptz",
// "date"), or "" for an invalid Type.
func (t Type) Iceberg() string {
	if !t.valid() {
		return ""
	}
	return typeInfo[t].iceberg
}

// WidensTo reports whether a column of type t may become a column of type u
// without rewriting data: the same type, or one of Iceberg's allowed
// promotions, Int32 to Int64 and Float32 to Float64.
func (t Type) WidensTo(u Type) bool {
	return t.valid() && (t == u || t == Int32 && u == Int64 || t == Float32 && u == Float64)
}

// ParseType returns the Type named s, spelt exactly as in the setting.
func ParseType(s string) (Type, error) {
	for t := Utf8; t.valid(); t++ {
		if s == typeInfo[t].name {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown data_type %q (want %s)", s, typeNames())
}

func typeNames() string {
	var b strings.Builder
	for t := Utf8; t.valid(); t++ {
		if t > Utf8 {
			b.WriteString(", ")
		}
		b.WriteString(typeInfo[t].name)
	}
	return b.String()
}

// Format is how a table's payloads are read.
type Format uint8

// The payload formats.
const (
	FormatJSON   Format = iota + 1 // "json": fields are extracted
	FormatBinary                   // "binary": nothing is extracted, the payload is the overflow
)

// String returns the format's name in the setting.
func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatBinary:
		return "binary"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// Field is one typed column.
type Field struct {
	Name     string // column name
	JSONPath string // dot-separated keys into nested objects: "user.id"
	Type     Type
	Nullable bool // default true; the extractor reports Missing either way
}

// Table is the typed-column configuration of one table.
type Table struct {
	Table            string // table name
	Format           Format
	Fields           []Field
	PreserveOverflow bool // default true: keep what no column took in OverflowColumn
}

// OverflowColumn is the name of the column that keeps the rest of the payload.
const OverflowColumn = "_payload_overflow"

// reserved are the names of the event columns and of the overflow column.
var reserved = [...]string{
	"sequence", "topic", "partition", "payload", "timestamp_ms",
	"idempotency_key", "event_date", "event_hour", OverflowColumn,
}

// Reserved reports whether name, in any case, is the name of an event column
// or of the overflow column, which a typed column cannot take.
func Reserved(name string) bool {
	for _, r := range reserved {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return false
}

// Limits on a json_path.
const (
	maxPathSegments = 16
	maxPathLen      = 1024
	maxNameLen      = 128 // of a table or column name
)

const settingName = "ZOMBI_TABLE_SCHEMA"

// Parse reads the setting: a JSON array of tables. Empty input (or only
// whitespace) and "[]" give no tables. All problems are reported together
// (errors.Join), each naming the entry, counted from 1, and the field.
func Parse(data []byte) ([]Table, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		return nil, fmt.Errorf("%s: want a JSON array of tables: %w", settingName, err)
	}
	if data[0] != '[' {
		return nil, fmt.Errorf("%s: want a JSON array of tables, got %s", settingName, kind(data))
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("%s: %w", settingName, err)
	}
	var (
		errs   []error
		tables = make([]Table, 0, len(entries))
		seen   = make(map[string]int) // table name → entry number
	)
	for i, raw := range entries {
		p := &parser{at: fmt.Sprintf("%s entry %d", settingName, i+1)}
		t := p.table(raw)
		if validTableName(t.Table) {
			if j, dup := seen[t.Table]; dup {
				p.errorf("table %q is already configured by entry %d", t.Table, j)
			} else {
				seen[t.Table] = i + 1
			}
		}
		errs = append(errs, p.errs...)
		tables = append(tables, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return tables, nil
}

// parser collects the problems of one entry.
type parser struct {
	at   string // "ZOMBI_TABLE_SCHEMA entry 2 (table "clicks")"
	errs []error
}

func (p *parser) errorf(format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", p.at, fmt.Sprintf(format, args...)))
}

var (
	tableKeys = []string{"table", "payload_format", "fields", "preserve_overflow"}
	fieldKeys = []string{"name", "json_path", "data_type", "nullable"}
)

// table reads one entry.
func (p *parser) table(raw json.RawMessage) (t Table) {
	m, err := members(raw)
	if err != nil {
		p.errorf("%v", err)
		return t
	}
	// Name the table in every message, when it has a name.
	if v, has := m["table"]; has {
		if s, ok := jsonString(v); ok {
			p.at += fmt.Sprintf(" (table %q)", s)
		}
	}
	p.keys(m, tableKeys, tableKeys[:3])

	if v, has := m["table"]; has {
		if s, ok := p.str("table", v); ok {
			if !validTableName(s) {
				p.errorf("table name %q must match ^[a-zA-Z][a-zA-Z0-9_-]{0,127}$", s)
			}
			t.Table = s
		}
	}
	if v, has := m["payload_format"]; has {
		if s, ok := p.str("payload_format", v); ok {
			switch s {
			case "json":
				t.Format = FormatJSON
			case "binary":
				t.Format = FormatBinary
			default:
				p.errorf("unknown payload_format %q (want json or binary)", s)
			}
		}
	}
	t.PreserveOverflow = true
	if v, has := m["preserve_overflow"]; has {
		if b, ok := p.bool("preserve_overflow", v); ok {
			t.PreserveOverflow = b
		}
	}
	if v, has := m["fields"]; has {
		var list []json.RawMessage
		if v[0] != '[' || json.Unmarshal(v, &list) != nil {
			p.errorf(`"fields": want an array, got %s`, kind(v))
		} else {
			t.Fields = make([]Field, 0, len(list))
			folded := make(map[string]string) // lower-case name → name
			for i, raw := range list {
				f, ok := p.field(i+1, raw)
				if !ok {
					continue
				}
				low := strings.ToLower(f.Name)
				if prev, dup := folded[low]; dup {
					at := p.at
					p.at = fmt.Sprintf("%s field %q", at, f.Name)
					p.errorf("column name given twice (as %q before; query engines fold case)", prev)
					p.at = at
					continue
				}
				folded[low] = f.Name
				t.Fields = append(t.Fields, f)
			}
		}
	}
	return t
}

// field reads field i (counted from 1) of the entry.
func (p *parser) field(i int, raw json.RawMessage) (f Field, ok bool) {
	at := p.at
	defer func() { p.at = at }()
	n := len(p.errs)
	p.at = fmt.Sprintf("%s field %d", at, i)
	m, err := members(raw)
	if err != nil {
		p.errorf("%v", err)
		return f, false
	}
	if v, has := m["name"]; has {
		if s, ok := jsonString(v); ok {
			p.at = fmt.Sprintf("%s field %q", at, s)
		}
	}
	p.keys(m, fieldKeys, fieldKeys[:3])

	if v, has := m["name"]; has {
		if s, ok := p.str("name", v); ok {
			switch {
			case !validColumnName(s):
				p.errorf("column name %q must match ^[a-zA-Z_][a-zA-Z0-9_]{0,127}$", s)
			case Reserved(s):
				p.errorf("column name %q is reserved (event columns %s; overflow column %s; in any case)", s,
					strings.Join(reserved[:len(reserved)-1], ", "), OverflowColumn)
			}
			f.Name = s
		}
	}
	if v, has := m["json_path"]; has {
		if s, ok := p.str("json_path", v); ok {
			if err := checkPath(s); err != nil {
				p.errorf("json_path %q: %v", s, err)
			}
			f.JSONPath = s
		}
	}
	if v, has := m["data_type"]; has {
		if s, ok := p.str("data_type", v); ok {
			t, err := ParseType(s)
			if err != nil {
				p.errorf("%v", err)
			}
			f.Type = t
		}
	}
	f.Nullable = true
	if v, has := m["nullable"]; has {
		if b, ok := p.bool("nullable", v); ok {
			f.Nullable = b
		}
	}
	return f, len(p.errs) == n
}

// keys reports the unknown and the missing keys of m.
func (p *parser) keys(m map[string]json.RawMessage, known, required []string) {
	var unknown []string
	for k := range m {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		p.errorf("unknown key %q (want %s)", k, strings.Join(known, ", "))
	}
	for _, k := range required {
		if _, has := m[k]; !has {
			p.errorf("missing key %q", k)
		}
	}
}

func (p *parser) str(key string, v json.RawMessage) (string, bool) {
	s, ok := jsonString(v)
	if !ok {
		p.errorf("%q: want a string, got %s", key, kind(v))
	}
	return s, ok
}

func (p *parser) bool(key string, v json.RawMessage) (bool, bool) {
	var b bool
	if len(v) == 0 || v[0] != 't' && v[0] != 'f' || json.Unmarshal(v, &b) != nil {
		p.errorf("%q: want true or false, got %s", key, kind(v))
		return false, false
	}
	return b, true
}

func jsonString(v json.RawMessage) (string, bool) {
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// members decodes a JSON object into its members, refusing a key given twice.
func members(raw json.RawMessage) (map[string]json.RawMessage, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("want an object, got %s", kind(raw))
	}
	m := make(map[string]json.RawMessage)
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // '{'
		return nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("key %q given twice", k)
		}
		m[k] = v
	}
	if _, err := dec.Token(); err != nil && err != io.EOF { // '}'
		return nil, err
	}
	return m, nil
}

// kind names the JSON type of a value, for messages.
func kind(v []byte) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// checkPath checks a json_path: 1 to 16 non-empty dot-separated keys, at
// most 1024 bytes in all.
func checkPath(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > maxPathLen:
		return fmt.Errorf("longer than %d bytes", maxPathLen)
	case s[0] == '.':
		return errors.New("starts with a dot")
	case s[len(s)-1] == '.':
		return errors.New("ends with a dot")
	case strings.Contains(s, ".."):
		return errors.New("empty key between two dots")
	case strings.Count(s, ".") >= maxPathSegments:
		return fmt.Errorf("more than %d keys", maxPathSegments)
	}
	return nil
}

// validTableName reports whether s matches ^[a-zA-Z][a-zA-Z0-9_-]{0,127}$.
func validTableName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen || !isLetter(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// validColumnName reports whether s matches ^[a-zA-Z_][a-zA-Z0-9_]{0,127}$.
func validColumnName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen || !isLetter(s[0]) && s[0] != '_' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
