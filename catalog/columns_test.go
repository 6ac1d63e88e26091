package catalog

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/iceberg-go"
)

// schemaString renders a schema as "name type(id)[!]" (! for required).
func schemaString(s *iceberg.Schema) string {
	var b []string
	for _, f := range s.Fields() {
		x := f.Name + " " + f.Type.String() + "(" + strconv.Itoa(f.ID) + ")"
		if f.Required {
			x += "!"
		}
		b = append(b, x)
	}
	return strings.Join(b, ", ")
}

// The table's schema follows its configured columns through every kind
// of change: created with typed columns (the Rust Zombi's layout, no
// payload), typed columns added to a table of the event schema (payload
// kept, optional), a column added and another widened, a column removed
// from the configuration (kept, optional), typed columns removed
// altogether (payload back), and a type change Iceberg does not allow.
func TestEvolveSchema(t *testing.T) {
	typed := func(overflow bool, cols ...Column) *TableColumns {
		return &TableColumns{Columns: cols, Overflow: overflow}
	}
	used := func(s *iceberg.Schema) map[int]bool {
		m := map[int]bool{}
		for _, f := range s.Fields() {
			m[f.ID] = true
		}
		return m
	}
	step := func(cur *iceberg.Schema, cols *TableColumns, fresh bool, want string) *iceberg.Schema {
		t.Helper()
		next, err := evolveSchema("t", cur, cur.HighestFieldID(), used(cur), cols, fresh)
		if err != nil {
			t.Fatal(err)
		}
		if next == nil {
			if got := schemaString(cur); got != want {
				t.Fatalf("unchanged schema %s, want %s", got, want)
			}
			return cur
		}
		if got := schemaString(next); got != want {
			t.Fatalf("schema\n %s\nwant\n %s", got, want)
		}
		return next
	}
	base := Schema()
	// The event schema, no typed columns: nothing changes.
	step(base, nil, true, schemaString(base))

	// Created with typed columns: the Rust Zombi's layout.
	s := step(base, typed(true, Column{Name: "user_id", Type: "string"}, Column{Name: "n", Type: "int", Required: true}), true,
		"sequence long(1)!, topic string(2)!, partition int(3)!, timestamp_ms long(5)!, idempotency_key string(6), "+
			"user_id string(100), n int(101)!, _payload_overflow binary(99), event_date date(7)!, event_hour int(8)!")
	// Widen n, add country: a new ID after the last.
	s = step(s, typed(true, Column{Name: "user_id", Type: "string"}, Column{Name: "n", Type: "long", Required: true}, Column{Name: "country", Type: "string"}), false,
		"sequence long(1)!, topic string(2)!, partition int(3)!, timestamp_ms long(5)!, idempotency_key string(6), "+
			"user_id string(100), n long(101)!, country string(102), _payload_overflow binary(99), event_date date(7)!, event_hour int(8)!")
	// n removed from the configuration: kept, optional.
	s = step(s, typed(true, Column{Name: "user_id", Type: "string"}, Column{Name: "country", Type: "string"}), false,
		"sequence long(1)!, topic string(2)!, partition int(3)!, timestamp_ms long(5)!, idempotency_key string(6), "+
			"user_id string(100), n long(101), country string(102), _payload_overflow binary(99), event_date date(7)!, event_hour int(8)!")
	// No typed columns any more: payload comes back, with a new ID.
	step(s, nil, false,
		"sequence long(1)!, topic string(2)!, partition int(3)!, payload binary(103), timestamp_ms long(5)!, idempotency_key string(6), "+
			"user_id string(100), n long(101), country string(102), _payload_overflow binary(99), event_date date(7)!, event_hour int(8)!")

	// Typed columns on a table of the event schema that holds data:
	// payload stays (optional), columns from 100 (optional), overflow 99.
	step(base, typed(true, Column{Name: "user_id", Type: "string", Required: true}), false,
		"sequence long(1)!, topic string(2)!, partition int(3)!, payload binary(4), timestamp_ms long(5)!, idempotency_key string(6), "+
			"user_id string(100), _payload_overflow binary(99), event_date date(7)!, event_hour int(8)!")

	// A change Iceberg does not allow.
	_, err := evolveSchema("t", s, s.HighestFieldID(), used(s), typed(true, Column{Name: "user_id", Type: "long"}), false)
	if !errors.Is(err, ErrSchemaConflict) || !strings.Contains(err.Error(), `column "user_id" is string in the table and long`) {
		t.Fatalf("narrowing: %v", err)
	}
}

// Table commits the schema update through the catalog (SQLite), once:
// a second Open with the same columns finds nothing to change.
func TestTableEvolvesItsSchema(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cols := map[string]TableColumns{"clicks": {Columns: []Column{{Name: "action", Type: "string"}, {Name: "n", Type: "int"}}, Overflow: true}}
	open := func(cols map[string]TableColumns) *Table {
		t.Helper()
		c, err := Open(ctx, Options{DataDir: dir, Columns: cols})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		tbl, err := c.Table(ctx, "clicks")
		if err != nil {
			t.Fatal(err)
		}
		return tbl
	}
	tbl := open(cols)
	if got, want := schemaString(tbl.Schema()), "sequence long(1)!, topic string(2)!, partition int(3)!, timestamp_ms long(5)!, idempotency_key string(6), "+
		"action string(100), n int(101), _payload_overflow binary(99), event_date date(7)!, event_hour int(8)!"; got != want {
		t.Fatalf("schema %s", got)
	}
	id := tbl.Schema().ID
	if tbl = open(cols); tbl.Schema().ID != id {
		t.Fatalf("schema %d after a reopen, was %d", tbl.Schema().ID, id)
	}
	cols["clicks"] = TableColumns{Columns: []Column{{Name: "action", Type: "string"}, {Name: "n", Type: "long"}}, Overflow: true}
	if tbl = open(cols); !strings.Contains(schemaString(tbl.Schema()), "n long(101)") {
		t.Fatalf("not widened: %s", schemaString(tbl.Schema()))
	}
}

// Through a REST catalog the schema update is a commit like any other.
func TestRESTCatalogEvolvesSchema(t *testing.T) {
	ctx := context.Background()
	backing := openTest(t, t.TempDir())
	srv := restServer(t, backing.Iceberg(), "tok")
	defer srv.Close()
	c, err := Open(ctx, Options{URI: srv.URL, Token: "tok", Columns: map[string]TableColumns{
		"clicks": {Columns: []Column{{Name: "action", Type: "string"}, {Name: "at", Type: "timestamptz"}}, Overflow: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tbl, err := c.Table(ctx, "clicks")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := schemaString(tbl.Schema()), "sequence long(1)!, topic string(2)!, partition int(3)!, timestamp_ms long(5)!, idempotency_key string(6), "+
		"action string(100), at timestamptz(101), _payload_overflow binary(99), event_date date(7)!, event_hour int(8)!"; got != want {
		t.Fatalf("schema through REST: %s", got)
	}
}
