package catalog

// Typed columns: the columns that flush/ extracts from JSON payloads
// (ZOMBI_TABLE_SCHEMA) are part of the table's Iceberg schema. Table
// brings the schema in line with Options.Columns when it first loads a
// table, with Iceberg schema evolution: columns are added (never
// removed), widened where Iceberg allows it (int → long, float →
// double), and made optional when no longer filled. Field IDs follow the
// Rust Zombi's layout, so that tables written by either server read the
// same: extracted columns from 100, _payload_overflow at 99; a table
// created with typed columns has no payload column.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Field IDs of the typed-column layout (the Rust Zombi's).
const (
	// FieldPayloadOverflow is _payload_overflow: the payload minus the
	// extracted members.
	FieldPayloadOverflow = 99
	// FieldExtractedStart is the ID of the first extracted column of a
	// table created with typed columns; later ones follow.
	FieldExtractedStart = 100
)

// OverflowColumn is the name of the overflow column.
const OverflowColumn = "_payload_overflow"

// ErrSchemaConflict is returned when the configured columns cannot be
// reconciled with the table's schema by a schema update Iceberg allows
// (a type change other than int → long or float → double).
var ErrSchemaConflict = errors.New("catalog: configured columns conflict with the table's schema")

// Column is one typed column of a table.
type Column struct {
	// Name is the column name.
	Name string
	// Type is the Iceberg primitive type: "string", "int", "long",
	// "float", "double", "boolean", "binary", "timestamptz" or "date".
	Type string
	// Required makes the column required when the table is created with
	// it; a column added to a table that holds data is always optional.
	Required bool
}

// TableColumns are the typed columns of one table.
type TableColumns struct {
	// Columns are the extracted columns, in configuration order.
	Columns []Column
	// Overflow adds the _payload_overflow binary column.
	Overflow bool
}

// primitive returns the iceberg type named by s.
func primitive(s string) (iceberg.PrimitiveType, error) {
	switch s {
	case "string":
		return iceberg.PrimitiveTypes.String, nil
	case "int":
		return iceberg.PrimitiveTypes.Int32, nil
	case "long":
		return iceberg.PrimitiveTypes.Int64, nil
	case "float":
		return iceberg.PrimitiveTypes.Float32, nil
	case "double":
		return iceberg.PrimitiveTypes.Float64, nil
	case "boolean":
		return iceberg.PrimitiveTypes.Bool, nil
	case "binary":
		return iceberg.PrimitiveTypes.Binary, nil
	case "timestamptz":
		return iceberg.PrimitiveTypes.TimestampTz, nil
	case "date":
		return iceberg.PrimitiveTypes.Date, nil
	}
	return nil, fmt.Errorf("catalog: unknown column type %q", s)
}

// widens reports whether Iceberg allows a column of type from to become to.
func widens(from, to iceberg.Type) bool {
	return from.Equals(to) ||
		from.Equals(iceberg.PrimitiveTypes.Int32) && to.Equals(iceberg.PrimitiveTypes.Int64) ||
		from.Equals(iceberg.PrimitiveTypes.Float32) && to.Equals(iceberg.PrimitiveTypes.Float64)
}

// evolveSchema returns the schema cur must become for cols (nil when it
// is right already); cols is nil for a table without typed columns.
// fresh says that the table holds no data yet (created by this process),
// so that payload may be dropped and columns added as required, to match
// the Rust Zombi's layout exactly.
//
// used holds every field ID any schema of the table ever had, so that
// none is given to another column.
func evolveSchema(tableName string, cur *iceberg.Schema, lastID int, used map[int]bool, cols *TableColumns, fresh bool) (*iceberg.Schema, error) {
	fields := slices.Clone(cur.Fields())
	changed := false
	index := func(name string) int {
		return slices.IndexFunc(fields, func(f iceberg.NestedField) bool { return f.Name == name })
	}
	nextID := func(floor int) int {
		id := max(lastID+1, floor)
		for used[id] {
			id++
		}
		lastID = id
		return id
	}
	// insertAt is where a new typed column goes: before the overflow
	// column, or before the partition columns (the Rust Zombi's order).
	insertAt := func(overflow bool) int {
		if !overflow {
			if i := index(OverflowColumn); i >= 0 {
				return i
			}
		}
		if i := index("event_date"); i >= 0 {
			return i
		}
		return len(fields)
	}
	var errs []error
	wanted := map[string]bool{}
	if cols != nil {
		for _, c := range cols.Columns {
			wanted[c.Name] = true
			typ, err := primitive(c.Type)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			i := index(c.Name)
			if i < 0 {
				f := iceberg.NestedField{Name: c.Name, Type: typ, Required: c.Required && fresh, ID: nextID(FieldExtractedStart)}
				fields = slices.Insert(fields, insertAt(false), f)
				changed = true
				continue
			}
			f := &fields[i]
			switch {
			case f.Type.Equals(typ):
			case widens(f.Type, typ):
				f.Type = typ
				changed = true
			default:
				errs = append(errs, fmt.Errorf("%w: table %s column %q is %s in the table and %s in ZOMBI_TABLE_SCHEMA: "+
					"Iceberg can only widen int to long and float to double; give the column a new name",
					ErrSchemaConflict, tableName, c.Name, f.Type, typ))
				continue
			}
			if f.Required && !c.Required {
				f.Required = false
				changed = true
			}
		}
		if cols.Overflow {
			wanted[OverflowColumn] = true
			if index(OverflowColumn) < 0 {
				id := FieldPayloadOverflow
				if used[id] {
					id = nextID(0)
				}
				lastID = max(lastID, id)
				fields = slices.Insert(fields, insertAt(true), iceberg.NestedField{Name: OverflowColumn, Type: iceberg.PrimitiveTypes.Binary, ID: id})
				changed = true
			}
		}
	}
	typed := cols != nil
	switch i := index("payload"); {
	case typed && i >= 0 && fresh:
		// A table created with typed columns has no payload column.
		fields = slices.Delete(fields, i, i+1)
		changed = true
	case typed && i >= 0 && fields[i].Required:
		// Older rows keep their payload; new ones have typed columns.
		fields[i].Required = false
		changed = true
	case !typed && i < 0:
		// Typed columns no longer configured: events go to payload again.
		at := index("timestamp_ms")
		if at < 0 {
			at = len(fields)
		}
		fields = slices.Insert(fields, at, iceberg.NestedField{Name: "payload", Type: iceberg.PrimitiveTypes.Binary, ID: nextID(0)})
		changed = true
	}
	// Columns no longer configured stay (no rewrite), NULL from now on.
	for i := range fields {
		f := &fields[i]
		if f.ID > FieldEventHour && !wanted[f.Name] && f.Required {
			f.Required = false
			changed = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if !changed {
		return nil, nil
	}
	return iceberg.NewSchema(cur.ID+1, fields...), nil
}

// ensureColumnsLocked brings the table's schema in line with its
// configured columns (Options.Columns), committing a schema update when
// needed. fresh says the table was just created by this process.
//
// Lock should be held.
func (t *Table) ensureColumnsLocked(ctx context.Context, fresh bool) error {
	cols, typed := t.c.opts.Columns[t.name]
	var cp *TableColumns
	if typed {
		cp = &cols
	}
	_, err := t.attemptLocked(ctx, "schema update", false, func(int) (bool, error) {
		meta := t.tbl.Metadata()
		cur := t.tbl.Schema()
		used := map[int]bool{}
		for _, s := range meta.Schemas() {
			for _, f := range s.Fields() {
				used[f.ID] = true
			}
		}
		next, err := evolveSchema(t.name, cur, meta.LastColumnID(), used, cp, fresh && t.tbl.CurrentSnapshot() == nil)
		if err != nil || next == nil {
			return false, err
		}
		reqs := []table.Requirement{
			table.AssertTableUUID(meta.TableUUID()),
			table.AssertCurrentSchemaID(cur.ID),
			table.AssertLastAssignedFieldID(meta.LastColumnID()),
		}
		updates := []table.Update{table.NewAddSchemaUpdate(next), table.NewSetCurrentSchemaUpdate(-1)}
		if _, _, err := t.c.cat.CommitTable(ctx, t.ident, reqs, updates); err != nil {
			return true, fmt.Errorf("catalog: update the schema of %s: %w", t.name, err)
		}
		if err := t.refreshLocked(ctx); err != nil {
			return true, err
		}
		t.c.opts.Logger.Info("iceberg schema updated for the configured columns", "table", t.name,
			"schema_id", t.tbl.Schema().ID, "columns", columnNames(t.tbl.Schema()))
		return false, nil
	})
	return err
}

func columnNames(s *iceberg.Schema) string {
	names := make([]string, 0, len(s.Fields()))
	for _, f := range s.Fields() {
		names = append(names, fmt.Sprintf("%s %s(%d)", f.Name, f.Type, f.ID))
	}
	return strings.Join(names, ", ")
}

// Schema returns the table's current Iceberg schema, as last loaded.
func (t *Table) Schema() *iceberg.Schema { return t.Iceberg().Schema() }
