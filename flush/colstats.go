package flush

import (
	"bytes"
	"unicode/utf8"

	"github.com/apache/iceberg-go"
	"github.com/parquet-go/parquet-go"
)

// maxBoundBytes bounds a string column's Iceberg bounds: a file with a
// longer value gets no bounds for the column (a truncated upper bound
// would need incrementing; readers then just scan the file).
const maxBoundBytes = 64

// boundKind is how a column's bounds are kept.
type boundKind uint8

const (
	boundNone   boundKind = iota // binary: null count only
	boundInt                     // int, long, date, timestamptz, boolean (0/1)
	boundFloat                   // float, double
	boundString                  // string
)

// colStats keeps one column's null count and bounds over a data file,
// for the Iceberg manifest (catalog.DataFile.Nulls and Bounds): query
// engines prune files by them. observe runs once per chunk of values, in
// a loop specialised by type.
type colStats struct {
	col    *column
	kind   boundKind
	nulls  int64
	seen   bool // a non-null value was seen
	lo, hi int64
	flo    float64
	fhi    float64
	slo    []byte
	shi    []byte
	// long is set once a string longer than maxBoundBytes is seen.
	long bool
}

func newColStats(c *column) colStats {
	s := colStats{col: c}
	switch t := c.typ; {
	case t.Equals(iceberg.PrimitiveTypes.Int64), t.Equals(iceberg.PrimitiveTypes.Int32), t.Equals(iceberg.PrimitiveTypes.Date),
		t.Equals(iceberg.PrimitiveTypes.TimestampTz), t.Equals(iceberg.PrimitiveTypes.Bool):
		s.kind = boundInt
	case t.Equals(iceberg.PrimitiveTypes.Float64), t.Equals(iceberg.PrimitiveTypes.Float32):
		s.kind = boundFloat
	case t.Equals(iceberg.PrimitiveTypes.String):
		s.kind = boundString
	}
	return s
}

func (s *colStats) reset() {
	s.nulls, s.seen, s.long = 0, false, false
	s.slo, s.shi = s.slo[:0], s.shi[:0]
}

// intOf returns v's value as an int64 (its physical type is int32,
// int64 or boolean).
func intOf(v *parquet.Value) int64 {
	switch v.Kind() {
	case parquet.Int32:
		return int64(v.Int32())
	case parquet.Boolean:
		if v.Boolean() {
			return 1
		}
		return 0
	}
	return v.Int64()
}

func floatOf(v *parquet.Value) float64 {
	if v.Kind() == parquet.Float {
		return float64(v.Float())
	}
	return v.Double()
}

// observe adds a chunk of the column's values.
func (s *colStats) observe(vals []parquet.Value) {
	switch s.kind {
	case boundNone:
		for i := range vals {
			if vals[i].IsNull() {
				s.nulls++
			}
		}
	case boundInt:
		for i := range vals {
			v := &vals[i]
			if v.IsNull() {
				s.nulls++
				continue
			}
			x := intOf(v)
			if !s.seen {
				s.lo, s.hi, s.seen = x, x, true
			} else if x < s.lo {
				s.lo = x
			} else if x > s.hi {
				s.hi = x
			}
		}
	case boundFloat:
		for i := range vals {
			v := &vals[i]
			if v.IsNull() {
				s.nulls++
				continue
			}
			x := floatOf(v)
			if x != x { // NaN bounds nothing
				continue
			}
			if !s.seen {
				s.flo, s.fhi, s.seen = x, x, true
			} else if x < s.flo {
				s.flo = x
			} else if x > s.fhi {
				s.fhi = x
			}
		}
	case boundString:
		for i := range vals {
			v := &vals[i]
			if v.IsNull() {
				s.nulls++
				continue
			}
			if s.long {
				continue
			}
			b := v.ByteArray()
			switch {
			case len(b) > maxBoundBytes:
				s.long = true
			case !s.seen:
				s.slo, s.shi, s.seen = append(s.slo[:0], b...), append(s.shi[:0], b...), true
			case bytes.Compare(b, s.slo) < 0:
				s.slo = append(s.slo[:0], b...)
			case bytes.Compare(b, s.shi) > 0:
				s.shi = append(s.shi[:0], b...)
			}
		}
	}
}

// bounds returns the Iceberg literals of the column's bounds, when known.
func (s *colStats) bounds() (lo, hi iceberg.Literal, ok bool) {
	if !s.seen || s.long {
		return nil, nil, false
	}
	switch t := s.col.typ; {
	case t.Equals(iceberg.PrimitiveTypes.Int64):
		return iceberg.NewLiteral(s.lo), iceberg.NewLiteral(s.hi), true
	case t.Equals(iceberg.PrimitiveTypes.TimestampTz):
		return iceberg.NewLiteral(iceberg.Timestamp(s.lo)), iceberg.NewLiteral(iceberg.Timestamp(s.hi)), true
	case t.Equals(iceberg.PrimitiveTypes.Int32):
		return iceberg.NewLiteral(int32(s.lo)), iceberg.NewLiteral(int32(s.hi)), true
	case t.Equals(iceberg.PrimitiveTypes.Date):
		return iceberg.NewLiteral(iceberg.Date(s.lo)), iceberg.NewLiteral(iceberg.Date(s.hi)), true
	case t.Equals(iceberg.PrimitiveTypes.Bool):
		return iceberg.NewLiteral(s.lo != 0), iceberg.NewLiteral(s.hi != 0), true
	case t.Equals(iceberg.PrimitiveTypes.Float32):
		return iceberg.NewLiteral(float32(s.flo)), iceberg.NewLiteral(float32(s.fhi)), true
	case t.Equals(iceberg.PrimitiveTypes.Float64):
		return iceberg.NewLiteral(s.flo), iceberg.NewLiteral(s.fhi), true
	case t.Equals(iceberg.PrimitiveTypes.String):
		if utf8.Valid(s.slo) && utf8.Valid(s.shi) {
			return iceberg.NewLiteral(string(s.slo)), iceberg.NewLiteral(string(s.shi)), true
		}
	}
	return nil, nil, false
}
