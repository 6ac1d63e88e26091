package flush

// A layout is the columns of the data files of one table, as its current
// Iceberg schema has them, each with where its values come from: an
// event field, a typed column extracted from the payload (columns), the
// overflow, or nothing (a column no longer configured: NULL). The Parquet
// schema is built from it, so that one writer serves every table: those
// with the event schema and those with typed columns, whatever their
// schema's history.

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/encoding"

	"github.com/zombihq/zombi/catalog"
	"github.com/zombihq/zombi/columns"
)

// source says where a column's values come from.
type source uint8

const (
	srcNull source = iota // not filled: NULL
	srcSequence
	srcTopic
	srcPartition
	srcPayload
	srcTimestamp
	srcKey
	srcDate
	srcHour
	srcExtracted // layout.table.Fields[column.field]
	srcOverflow
)

var eventSources = map[string]source{
	"sequence": srcSequence, "topic": srcTopic, "partition": srcPartition, "payload": srcPayload,
	"timestamp_ms": srcTimestamp, "idempotency_key": srcKey, "event_date": srcDate, "event_hour": srcHour,
}

// column is one column of a layout.
type column struct {
	id       int // Iceberg field ID
	name     string
	typ      iceberg.Type
	required bool
	src      source
	field    int // srcExtracted: the index of the configured field
	leaf     int // the column's index among the Parquet schema's leaves
	// stats says whether the column's null count and bounds are kept
	// per file (the columns that catalog.DataFile has no field for).
	stats bool
}

// layout is the columns of a table's data files.
type layout struct {
	cols   []column // in Iceberg schema order
	schema *parquet.Schema
	// table is the typed-column configuration (nil: none), whose
	// extractor fills the srcExtracted columns.
	table *columns.Table
	ids   []int // the field IDs, for catalog.DataFile.Columns
}

// newLayout returns the layout of schema for a table configured with
// cfg (nil: no typed columns).
func newLayout(schema *iceberg.Schema, cfg *columns.Table) (*layout, error) {
	lay := &layout{table: cfg}
	group := parquet.Group{}
	for _, f := range schema.Fields() {
		c := column{id: f.ID, name: f.Name, typ: f.Type, required: f.Required, src: srcNull, field: -1}
		if s, ok := eventSources[f.Name]; ok {
			c.src = s
		}
		if cfg != nil {
			if c.src == srcPayload {
				c.src = srcNull // typed columns replace the payload
			}
			if i := slices.IndexFunc(cfg.Fields, func(x columns.Field) bool { return x.Name == f.Name }); i >= 0 {
				if want := cfg.Fields[i].Type.Iceberg(); f.Type.String() != want {
					return nil, fmt.Errorf("flush: column %s is %s in the table and %s in ZOMBI_TABLE_SCHEMA", f.Name, f.Type, want)
				}
				c.src, c.field = srcExtracted, i
			}
			if f.Name == catalog.OverflowColumn && cfg.PreserveOverflow {
				c.src = srcOverflow
			}
		}
		if c.src == srcNull && c.required {
			return nil, fmt.Errorf("flush: column %s is required but nothing fills it", f.Name)
		}
		c.stats = c.src != srcSequence && c.src != srcTopic && c.src != srcPartition && c.src != srcTimestamp &&
			c.src != srcKey && c.src != srcDate && c.src != srcHour
		node, err := parquetNode(c)
		if err != nil {
			return nil, err
		}
		group[f.Name] = node
		lay.ids = append(lay.ids, f.ID)
		lay.cols = append(lay.cols, c)
	}
	lay.schema = parquet.NewSchema("event", group)
	for i := range lay.cols {
		leaf, ok := lay.schema.Lookup(lay.cols[i].name)
		if !ok {
			return nil, fmt.Errorf("BUG: flush: column %s missing from the Parquet schema", lay.cols[i].name)
		}
		lay.cols[i].leaf = leaf.ColumnIndex
	}
	return lay, nil
}

// parquetNode returns the Parquet node of a column: its physical and
// logical type, its field ID, optional unless required, and the
// encodings the event columns have always had (delta for the offsets and
// timestamps, dictionaries for the constant and hourly columns).
func parquetNode(c column) (parquet.Node, error) {
	var n parquet.Node
	var enc encoding.Encoding
	switch {
	case c.typ.Equals(iceberg.PrimitiveTypes.Int64):
		n = parquet.Int(64)
		if c.src == srcSequence || c.src == srcTimestamp {
			enc = &parquet.DeltaBinaryPacked
		}
	case c.typ.Equals(iceberg.PrimitiveTypes.Int32):
		n = parquet.Int(32)
		if c.src == srcPartition || c.src == srcHour {
			enc = &parquet.RLEDictionary
		}
	case c.typ.Equals(iceberg.PrimitiveTypes.String):
		n = parquet.String()
		if c.src == srcTopic {
			enc = &parquet.RLEDictionary
		}
	case c.typ.Equals(iceberg.PrimitiveTypes.Binary):
		n = parquet.Leaf(parquet.ByteArrayType)
	case c.typ.Equals(iceberg.PrimitiveTypes.Date):
		n = parquet.Date()
		if c.src == srcDate {
			enc = &parquet.RLEDictionary
		}
	case c.typ.Equals(iceberg.PrimitiveTypes.Float64):
		n = parquet.Leaf(parquet.DoubleType)
	case c.typ.Equals(iceberg.PrimitiveTypes.Float32):
		n = parquet.Leaf(parquet.FloatType)
	case c.typ.Equals(iceberg.PrimitiveTypes.Bool):
		n = parquet.Leaf(parquet.BooleanType)
	case c.typ.Equals(iceberg.PrimitiveTypes.TimestampTz):
		n = parquet.Timestamp(parquet.Microsecond)
	default:
		return nil, fmt.Errorf("flush: column %s: type %s is not supported", c.name, c.typ)
	}
	if enc != nil {
		n = parquet.Encoded(n, enc)
	}
	if !c.required {
		n = parquet.Optional(n)
	}
	return parquet.FieldID(n, c.id), nil
}

// level returns v placed in column c: its definition level and leaf
// index set (a null v in an optional column has definition level 0).
func (c *column) level(v parquet.Value) parquet.Value {
	def := 0
	if !c.required && !v.IsNull() {
		def = 1
	}
	return v.Level(0, def, c.leaf)
}

// layoutLocked builds the layout of ts's data files for its table's
// current schema, when that changed (or at first use).
//
// ts.mu should be held, and ts.tbl set.
func (f *Flusher) layoutLocked(ts *tableState) error {
	schema := ts.tbl.Schema()
	if ts.lay != nil && ts.layID == schema.ID {
		return nil
	}
	lay, err := newLayout(schema, f.tableColumns(ts.name))
	if err != nil {
		return fmt.Errorf("flush: table %s: %w", ts.name, err)
	}
	ts.lay, ts.layID = lay, schema.ID
	return nil
}

// tableColumns returns the typed-column configuration of table, or nil.
func (f *Flusher) tableColumns(table string) *columns.Table {
	if t, ok := f.opts.Columns[table]; ok {
		return &t
	}
	return nil
}

// extractStats counts, for one table, what extraction could not store as
// is in committed data files.
// Its fields and errors are set when the table's state is made (under
// Flusher.mu) and never change.
type extractStats struct {
	fields    []columns.Field
	errors    []atomic.Int64 // per field
	nonObject atomic.Int64
}

func (s *extractStats) add(c extractCounts) {
	for i, n := range c.errors {
		s.errors[i].Add(n)
	}
	s.nonObject.Add(c.nonObject)
}

// ExtractErrors counts, for one typed column of a table, the values that
// could not be stored as they were: present with a type that does not
// fit the column (NULL, or the type's zero value in a column that is not
// nullable), or missing from a column that is not nullable. The payload
// member stays in _payload_overflow either way.
type ExtractErrors struct {
	Table, Column string
	Count         int64
}

// ExtractStats returns the extraction counts of every table with typed
// columns: per column, and the payloads that were not a JSON object, by
// table. Both count committed events only.
func (f *Flusher) ExtractStats() (errs []ExtractErrors, nonObject map[string]int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	nonObject = map[string]int64{}
	for name, ts := range f.tables {
		if ts.extract.errors == nil {
			continue
		}
		for i := range ts.extract.errors {
			errs = append(errs, ExtractErrors{Table: name, Column: ts.extract.fields[i].Name, Count: ts.extract.errors[i].Load()})
		}
		nonObject[name] = ts.extract.nonObject.Load()
	}
	slices.SortFunc(errs, func(a, b ExtractErrors) int {
		return cmp.Or(strings.Compare(a.Table, b.Table), strings.Compare(a.Column, b.Column))
	})
	return errs, nonObject
}
