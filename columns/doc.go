// Package columns turns fields of JSON event payloads into typed columns.
//
// # The setting
//
// ZOMBI_TABLE_SCHEMA (or the file named by ZOMBI_TABLE_SCHEMA_FILE) is a JSON
// array with one entry per table, read as the Rust Zombi reads it:
//
//	[{"table": "clicks",
//	  "payload_format": "json",
//	  "fields": [{"name": "user_id", "json_path": "user.id", "data_type": "Utf8", "nullable": true}],
//	  "preserve_overflow": true}]
//
// table, payload_format ("json" or "binary"), fields, and each field's name,
// json_path and data_type are required; nullable and preserve_overflow
// default to true. A key that is not one of these is an error, so that a
// misspelt "nullabel" cannot silently fall back to the default. data_type is
// one of the Rust Zombi's Utf8, Int32, Int64, Float64, Boolean and Binary,
// or one of ours: Float32, Timestamp (microseconds, UTC) and Date. A json_path
// is a dot-separated list of keys into nested objects: "user.id" is the "id"
// member of the top-level "user" member. [Parse] reports every problem of the
// setting at once, each naming its entry (counted from 1) and field.
//
// # Extraction
//
// The flusher calls [Extractor.Extract] once per event. It parses the payload
// in one pass, builds no tree and, once its scratch arena has grown, allocates
// nothing (but for the error of the rare value only strconv or time can
// refuse: a float within a factor of ten of its type's limit, a timestamp in
// a form time.Parse reads beyond the usual one). A payload of a "binary" table is not parsed: every column is
// NULL and the whole payload is the overflow. A payload of a "json" table that
// is not valid JSON (RFC 8259, UTF-8, nesting at most 10000 deep as in
// encoding/json, nothing but whitespace after the value) or whose top-level
// value is not an object is treated the same way. A value is never taken from
// a payload that later turns out to be invalid.
//
// Keys are compared byte-wise after unescaping ("\u0069d" is "id"). When an
// object holds the same key twice, the first member is the one extracted; a
// later one is an ordinary member.
//
// # Coercion
//
// A key that is absent, or whose value is JSON null, gives Missing (NULL).
// A value that is present but does not fit the column gives Mismatch (also
// NULL, and the member stays in the overflow, so nothing is lost):
//
//	Utf8       a string: its unescaped text (a lone surrogate escape becomes
//	           U+FFFD, as in encoding/json); a number: its literal text as
//	           written; true or false: "true" or "false"
//	Int32      a number written as an integer (no fraction, no exponent) in
//	Int64      the column's range: 42 fits, 42.0, 4.2e1, "42" and, for Int32,
//	           3000000000 do not
//	Float32    any number, rounded to the column's precision; one beyond its
//	Float64    range does not fit
//	Boolean    true or false
//	Binary     a string: its unescaped bytes
//	Timestamp  an integer: milliseconds since the epoch; or an RFC 3339
//	           string (time.RFC3339Nano, any offset): microseconds since
//	           the epoch, UTC
//	Date       a "YYYY-MM-DD" string; an RFC 3339 string: its UTC date; or
//	           an integer: milliseconds since the epoch, its UTC date; as
//	           days since 1970-01-01, which must fit 32 bits (Iceberg's date)
//
// Objects and arrays fit no column.
//
// # Overflow
//
// With preserve_overflow (the default), the _payload_overflow column keeps
// what the typed columns did not take: the payload's top-level object minus
// the top-level members whose value went into a column. As in the Rust Zombi,
// a member on the way to a nested path ("user" for "user.id") is not removed.
// Unlike the Rust Zombi, which drops it, a member whose value was Missing or
// Mismatch stays, so that nothing is lost. The overflow is "{",
// the remaining members exactly as written in the payload joined by ",", and
// "}"; it is the payload itself when nothing was removed, and NULL when no
// member remains.
package columns
