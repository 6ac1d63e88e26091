package flush

import (
	"bytes"
	"unicode/utf8"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
)

// maxBoundBytes bounds a string column's Iceberg bounds: a file whose
// shortest or longest value is longer gets no bounds for it (a truncated
// upper bound would need incrementing; readers then just scan the file).
const maxBoundBytes = 64

// colStats keeps one column's null count and bounds over a data file,
// for the Iceberg manifest (catalog.DataFile.Nulls and Bounds): query
// engines prune files by them.
type colStats struct {
	col      *column
	nulls    int64
	min, max parquet.Value // null until a value is seen
	// noBounds is set once a value rules out bounds (a long string).
	noBounds bool
}

func (s *colStats) reset() {
	s.nulls, s.min, s.max, s.noBounds = 0, parquet.Value{}, parquet.Value{}, false
}

// boundable reports whether bounds are kept for the column's type.
func (s *colStats) boundable() bool {
	t := s.col.typ
	return !t.Equals(iceberg.PrimitiveTypes.Binary)
}

func (s *colStats) observe(vals []parquet.Value) {
	if !s.boundable() {
		for i := range vals {
			if vals[i].IsNull() {
				s.nulls++
			}
		}
		return
	}
	for i := range vals {
		s.observeOne(vals[i])
	}
}

func (s *colStats) observeOne(v parquet.Value) {
	if v.IsNull() {
		s.nulls++
		return
	}
	if s.noBounds || !s.boundable() {
		return
	}
	if s.min.IsNull() {
		s.min, s.max = v.Clone(), v.Clone()
		if v.Kind() == parquet.ByteArray && len(v.ByteArray()) > maxBoundBytes {
			s.noBounds = true
		}
		return
	}
	switch v.Kind() {
	case parquet.Boolean:
		if !v.Boolean() {
			s.min = v
		} else {
			s.max = v
		}
	case parquet.Int32:
		if x := v.Int32(); x < s.min.Int32() {
			s.min = v
		} else if x > s.max.Int32() {
			s.max = v
		}
	case parquet.Int64:
		if x := v.Int64(); x < s.min.Int64() {
			s.min = v
		} else if x > s.max.Int64() {
			s.max = v
		}
	case parquet.Float:
		if x := v.Float(); x < s.min.Float() {
			s.min = v
		} else if x > s.max.Float() {
			s.max = v
		}
	case parquet.Double:
		if x := v.Double(); x < s.min.Double() {
			s.min = v
		} else if x > s.max.Double() {
			s.max = v
		}
	case parquet.ByteArray:
		b := v.ByteArray()
		if len(b) > maxBoundBytes {
			s.noBounds = true
			return
		}
		if bytes.Compare(b, s.min.ByteArray()) < 0 {
			s.min = v.Clone()
		} else if bytes.Compare(b, s.max.ByteArray()) > 0 {
			s.max = v.Clone()
		}
	}
}

// bounds returns the Iceberg literals of the column's bounds, when known.
func (s *colStats) bounds() (lo, hi iceberg.Literal, ok bool) {
	if s.noBounds || s.min.IsNull() || !s.boundable() {
		return nil, nil, false
	}
	t := s.col.typ
	lit := func(v parquet.Value) iceberg.Literal {
		switch {
		case t.Equals(iceberg.PrimitiveTypes.Int64):
			return iceberg.NewLiteral(v.Int64())
		case t.Equals(iceberg.PrimitiveTypes.TimestampTz):
			return iceberg.NewLiteral(iceberg.Timestamp(v.Int64()))
		case t.Equals(iceberg.PrimitiveTypes.Int32):
			return iceberg.NewLiteral(v.Int32())
		case t.Equals(iceberg.PrimitiveTypes.Date):
			return iceberg.NewLiteral(iceberg.Date(v.Int32()))
		case t.Equals(iceberg.PrimitiveTypes.Float32):
			return iceberg.NewLiteral(v.Float())
		case t.Equals(iceberg.PrimitiveTypes.Float64):
			return iceberg.NewLiteral(v.Double())
		case t.Equals(iceberg.PrimitiveTypes.Bool):
			return iceberg.NewLiteral(v.Boolean())
		case t.Equals(iceberg.PrimitiveTypes.String):
			if b := v.ByteArray(); utf8.Valid(b) {
				return iceberg.NewLiteral(string(b))
			}
		}
		return nil
	}
	lo, hi = lit(s.min), lit(s.max)
	return lo, hi, lo != nil && hi != nil
}
