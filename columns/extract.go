package columns

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/zombihq/zombi/jsonstr"
)

// State says what a column got from a payload.
type State uint8

const (
	Missing  State = iota // the key is absent, or its value is JSON null: NULL
	Mismatch              // the value does not fit the column's type: NULL
	OK                    // the value is in Value
)

func (s State) String() string {
	switch s {
	case Missing:
		return "Missing"
	case Mismatch:
		return "Mismatch"
	case OK:
		return "OK"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Value is one extracted value.
type Value struct {
	State State
	// Int holds Int32, Int64, Boolean (0 or 1), Timestamp (microseconds since
	// the epoch, UTC) and Date (days since 1970-01-01).
	Int int64
	// Float holds Float32 (rounded to float32 precision) and Float64.
	Float float64
	// Bytes holds Utf8 and Binary. It points into the payload or into the
	// extractor's arena, and stays valid until Reset.
	Bytes []byte
}

// Extractor extracts a table's typed columns from payloads. It is not safe
// for concurrent use.
type Extractor struct {
	t     Table
	root  *node   // the payload's top-level object
	nodes []*node // all of them, root first
	gen   uint32  // counts Extract calls, for node.seen

	// Of the Extract in progress.
	vals    []Value
	members int    // top-level members seen
	removed []span // top-level members whose value went into a column

	stack   []byte // skip's nesting
	scratch []byte // an unescaped key, or time
	arena   arena  // unescaped strings and overflows, until Reset
}

// node is a key of some json_path: the keys of all paths form a tree, whose
// root stands for the payload's top-level object.
type node struct {
	fields []fieldRef       // the fields whose path ends at this key
	kids   []kid            // the keys that follow it in some path
	index  map[string]*node // kids by key, when there are many
	seen   uint32           // the gen in which the key was last met
}

type kid struct {
	key  string
	node *node
}

type fieldRef struct {
	i int32 // index in Table.Fields and in vals
	t Type
}

// span is a member of the payload's top-level object: from its key's
// opening quote to the end of its value.
type span struct{ start, end int }

// indexAbove is how many children a node may have before they get a map.
const indexAbove = 8

// NewExtractor returns an extractor of t's fields. A Format other than
// FormatJSON reads payloads as binary.
func NewExtractor(t Table) *Extractor {
	t.Fields = slices.Clone(t.Fields)
	x := &Extractor{t: t, root: new(node)}
	x.nodes = append(x.nodes, x.root)
	for i, f := range t.Fields {
		n := x.root
		for key := range strings.SplitSeq(f.JSONPath, ".") {
			n = x.kid(n, key)
		}
		n.fields = append(n.fields, fieldRef{int32(i), f.Type})
	}
	for _, n := range x.nodes {
		if len(n.kids) > indexAbove {
			n.index = make(map[string]*node, len(n.kids))
			for _, k := range n.kids {
				n.index[k.key] = k.node
			}
		}
	}
	return x
}

// kid returns node n's child for key, adding it if needed.
func (x *Extractor) kid(n *node, key string) *node {
	for _, k := range n.kids {
		if k.key == key {
			return k.node
		}
	}
	k := new(node)
	x.nodes = append(x.nodes, k)
	n.kids = append(n.kids, kid{key, k})
	return k
}

// Reset drops the contents of the arena, keeping its memory: the byte
// slices returned so far become invalid.
func (x *Extractor) Reset() { x.arena.reset() }

// Extract reads one payload into vals, which must have one Value per field of
// the table: vals[i] is field i. It returns the value of the overflow column
// (nil is NULL) and whether the payload is a JSON object (always false for a
// binary table). The byte slices it returns point into the payload (the
// overflow may be the payload itself) or into the arena, where they stay
// valid until Reset.
func (x *Extractor) Extract(payload []byte, vals []Value) (overflow []byte, object bool) {
	if len(vals) != len(x.t.Fields) {
		panic("columns: Extract: len(vals) is " + strconv.Itoa(len(vals)) +
			", the table has " + strconv.Itoa(len(x.t.Fields)) + " fields")
	}
	clear(vals)
	if x.t.Format != FormatJSON {
		return x.whole(payload), false
	}
	open := ws(payload, 0)
	if open >= len(payload) || payload[open] != '{' {
		return x.whole(payload), false // not an object, valid JSON or not
	}
	if x.gen++; x.gen == 0 { // wrapped: forget what was seen
		for _, n := range x.nodes {
			n.seen = 0
		}
		x.gen = 1
	}
	m := x.arena.mark()
	x.vals, x.members, x.removed = vals, 0, x.removed[:0]
	end, ok := x.object(payload, open, x.root, 0)
	x.vals = nil
	if ok && ws(payload, end) != len(payload) {
		ok = false // trailing garbage
	}
	if !ok {
		clear(vals)
		x.arena.rollback(m)
		return x.whole(payload), false
	}
	if !x.t.PreserveOverflow || x.members == len(x.removed) {
		return nil, true
	}
	if len(x.removed) == 0 {
		return payload, true
	}
	return x.overflow(payload, open, end-1), true
}

// whole is the overflow of a payload that is not read.
func (x *Extractor) whole(payload []byte) []byte {
	if x.t.PreserveOverflow {
		return payload
	}
	return nil
}

// object reads the object that starts at b[p], nested in depth arrays and
// objects, whose members are node n's children.
func (x *Extractor) object(b []byte, p int, n *node, depth int) (int, bool) {
	if depth >= maxDepth {
		return p, false
	}
	depth++
	top := n == x.root
	p = ws(b, p+1)
	if p < len(b) && b[p] == '}' {
		return p + 1, true
	}
	for {
		start := p
		if p >= len(b) || b[p] != '"' {
			return p, false
		}
		end, esc, ok := scanString(b, p)
		if !ok {
			return end, false
		}
		p = ws(b, end)
		if p >= len(b) || b[p] != ':' {
			return p, false
		}
		p = ws(b, p+1)
		if top {
			x.members++
		}
		if k := x.find(n, b[start+1:end-1], esc); k != nil && k.seen != x.gen {
			k.seen = x.gen // a later member with the same key is not read
			var taken bool
			if p, taken, ok = x.member(b, p, k, depth); !ok {
				return p, false
			}
			if top && taken {
				x.removed = append(x.removed, span{start, p})
			}
		} else if p, ok, x.stack = skip(b, p, depth, x.stack); !ok {
			return p, false
		}
		p = ws(b, p)
		if p >= len(b) {
			return p, false
		}
		switch b[p] {
		case ',':
			p = ws(b, p+1)
		case '}':
			return p + 1, true
		default:
			return p, false
		}
	}
}

// find returns node n's child for the raw key, or nil.
func (x *Extractor) find(n *node, key []byte, esc bool) *node {
	if len(n.kids) == 0 {
		return nil
	}
	if esc {
		x.scratch = jsonstr.AppendUnescaped(x.scratch[:0], key)
		key = x.scratch
	}
	if n.index != nil {
		return n.index[string(key)]
	}
	for _, k := range n.kids {
		if len(k.key) == len(key) && (len(key) == 0 || k.key[0] == key[0]) && k.key == string(key) {
			return k.node
		}
	}
	return nil
}

// Kinds of token.
const (
	tokString = iota + 1
	tokNumber
	tokBool
	tokComposite // an object or an array
)

// token is a scalar value being coerced, or a composite one.
type token struct {
	kind  uint8
	esc   bool   // a string with escapes
	isInt bool   // a number with neither fraction nor exponent
	raw   []byte // a string's contents, a number's or a boolean's literal
	text  []byte // a string's unescaped text, once made
}

// member reads the value at b[p], nested in depth arrays and objects, of
// the member whose key is node n. taken reports whether a field of n got it.
func (x *Extractor) member(b []byte, p int, nd *node, depth int) (end int, taken, ok bool) {
	if p >= len(b) {
		return p, false, false
	}
	c := b[p]
	if c == '{' && len(nd.kids) > 0 {
		p, ok := x.object(b, p, nd, depth)
		for _, f := range nd.fields {
			x.vals[f.i].State = Mismatch
		}
		return p, false, ok
	}
	if len(nd.fields) == 0 {
		p, ok, x.stack = skip(b, p, depth, x.stack)
		return p, false, ok
	}
	var tok token
	start := p
	switch c {
	case '"':
		tok.kind = tokString
		if p, tok.esc, ok = scanString(b, p); !ok {
			return p, false, false
		}
		tok.raw = b[start+1 : p-1]
	case 't':
		tok.kind = tokBool
		p, ok = scanLiteral(b, p, "true")
		tok.raw = b[start:p]
	case 'f':
		tok.kind = tokBool
		p, ok = scanLiteral(b, p, "false")
		tok.raw = b[start:p]
	case 'n':
		p, ok = scanLiteral(b, p, "null") // Missing
		return p, false, ok
	case '{', '[':
		tok.kind = tokComposite
		p, ok, x.stack = skip(b, p, depth, x.stack)
	default:
		tok.kind = tokNumber
		p, tok.isInt, ok = scanNumber(b, p)
		tok.raw = b[start:p]
	}
	if !ok {
		return p, false, false
	}
	for _, f := range nd.fields {
		v := &x.vals[f.i]
		x.coerce(v, f.t, &tok)
		taken = taken || v.State == OK
	}
	return p, taken, true
}

// coerce sets v from tok, for a column of type t.
func (x *Extractor) coerce(v *Value, t Type, tok *token) {
	v.State = Mismatch
	switch t {
	case Utf8:
		switch tok.kind {
		case tokString:
			v.Bytes, v.State = x.text(tok), OK
		case tokNumber, tokBool:
			v.Bytes, v.State = tok.raw[:len(tok.raw):len(tok.raw)], OK
		}
	case Binary:
		if tok.kind == tokString {
			v.Bytes, v.State = x.text(tok), OK
		}
	case Int32, Int64:
		if tok.kind == tokNumber && tok.isInt {
			if i, ok := parseInt(tok.raw); ok && (t == Int64 || math.MinInt32 <= i && i <= math.MaxInt32) {
				v.Int, v.State = i, OK
			}
		}
	case Float32, Float64:
		if tok.kind == tokNumber {
			bits, limit := 64, 308 // 1e308 < math.MaxFloat64 < 1e309
			if t == Float32 {
				bits, limit = 32, 38
			}
			if t == Float64 {
				if f, ok := fastFloat(tok.raw); ok {
					v.Float, v.State = f, OK
					return
				}
			}
			// Refuse what is surely out of range first: ParseFloat's
			// error allocates.
			if e, zero := magnitude(tok.raw); !zero && e > limit {
				return
			}
			if f, err := strconv.ParseFloat(str(tok.raw), bits); err == nil {
				v.Float, v.State = f, OK
			}
		}
	case Boolean:
		if tok.kind == tokBool {
			v.State = OK
			if tok.raw[0] == 't' {
				v.Int = 1
			}
		}
	case Timestamp:
		switch tok.kind {
		case tokNumber:
			if !tok.isInt {
				return
			}
			if ms, ok := parseInt(tok.raw); ok && math.MinInt64/1000 <= ms && ms <= math.MaxInt64/1000 {
				v.Int, v.State = ms*1000, OK
			}
		case tokString:
			if us, ok := parseTime(x.unescaped(tok)); ok {
				v.Int, v.State = us, OK
			}
		}
	case Date:
		var days int64
		switch tok.kind {
		case tokNumber:
			if !tok.isInt {
				return
			}
			ms, ok := parseInt(tok.raw)
			if !ok {
				return
			}
			days = floorDiv(ms, 24*60*60*1000)
		case tokString:
			s := x.unescaped(tok)
			if d, ok := parseDate(s); ok {
				days = d
			} else if us, ok := parseTime(s); ok {
				days = floorDiv(us, 24*60*60*1_000_000)
			} else {
				return
			}
		default:
			return
		}
		if math.MinInt32 <= days && days <= math.MaxInt32 {
			v.Int, v.State = days, OK
		}
	}
}

// text returns the unescaped text of a string token.
func (x *Extractor) text(tok *token) []byte {
	if !tok.esc {
		return tok.raw[:len(tok.raw):len(tok.raw)]
	}
	if tok.text == nil {
		tok.text = x.arena.commit(jsonstr.AppendUnescaped(x.arena.reserve(len(tok.raw)), tok.raw))
	}
	return tok.text
}

// unescaped returns the unescaped text of a string token, to read and forget:
// it may be in the scratch space.
func (x *Extractor) unescaped(tok *token) []byte {
	if !tok.esc {
		return tok.raw
	}
	if tok.text != nil {
		return tok.text
	}
	x.scratch = jsonstr.AppendUnescaped(x.scratch[:0], tok.raw)
	return x.scratch
}

// overflow returns the payload's top-level object, from b[open] to
// b[close], without the removed members.
func (x *Extractor) overflow(b []byte, open, close int) []byte {
	buf := x.arena.reserve(close - open + 1)
	buf = append(buf, '{')
	from, first := open+1, true
	for _, r := range x.removed {
		buf, first = appendMembers(buf, b[from:r.start], first)
		from = r.end
	}
	buf, _ = appendMembers(buf, b[from:close], first)
	buf = append(buf, '}')
	return x.arena.commit(buf)
}

// appendMembers appends the members in g, the text between two removed
// members (or a brace), trimmed of whitespace and of the commas at either
// end; it adds a comma before them unless they are the first.
func appendMembers(dst, g []byte, first bool) ([]byte, bool) {
	i, j := ws(g, 0), len(g)
	if i < j && g[i] == ',' {
		i = ws(g, i+1)
	}
	for j > i && class[g[j-1]]&clsSpace != 0 {
		j--
	}
	if j > i && g[j-1] == ',' {
		j--
		for j > i && class[g[j-1]]&clsSpace != 0 {
			j--
		}
	}
	if i >= j {
		return dst, first
	}
	if !first {
		dst = append(dst, ',')
	}
	return append(dst, g[i:j]...), false
}

// parseInt parses an integer literal scanNumber accepted.
func parseInt(s []byte) (int64, bool) {
	neg := s[0] == '-'
	if neg {
		s = s[1:]
	}
	if len(s) > 19 { // no leading zeros: more than 19 digits is out of range
		return 0, false
	}
	var u uint64 // 19 digits fit
	for _, c := range s {
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true // -(1<<63) wraps to itself, math.MinInt64
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// pow10 holds the powers of ten that are exact in a float64.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// fastFloat reads the usual number, a few digits with maybe a fraction, as
// strconv.ParseFloat(s, 64) does, faster: when its digits and the power of
// ten that scales them are exact float64s, one correctly rounded division
// gives the correctly rounded value (Clinger's fast path). ok is false for
// another number.
func fastFloat(s []byte) (f float64, ok bool) {
	i, neg := 0, s[0] == '-'
	if neg {
		i++
	}
	var m uint64
	digits, dot := 0, -1
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			if m != 0 || c != '0' { // leading zeros do not count
				if digits++; digits > 15 { // m < 10^15 < 2^53: exact
					return 0, false
				}
				m = m*10 + uint64(c-'0')
			}
		case c == '.':
			dot = i
		default: // an exponent
			return 0, false
		}
	}
	f = float64(m)
	if dot >= 0 {
		scale := len(s) - 1 - dot // digits after the dot
		if scale >= len(pow10) {
			return 0, false
		}
		f /= pow10[scale]
	}
	if neg {
		f = -f
	}
	return f, true
}

// magnitude returns the decimal exponent e of a number scanNumber accepted:
// its absolute value is at least 10^e and less than 10^(e+1); or zero if
// the number is 0. A huge exponent is clamped.
func magnitude(s []byte) (e int, zero bool) {
	const clamp = 1 << 20
	i := 0
	if s[i] == '-' {
		i++
	}
	intStart := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intDigits := i - intStart
	if s[intStart] == '0' {
		intDigits = 0
	}
	lead := 0 // the fraction's leading zeros
	nonzero := intDigits > 0
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] == '0' {
			i++
			lead++
		}
		if i < len(s) && isDigit(s[i]) {
			nonzero = true
		}
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if !nonzero {
		return 0, true
	}
	exp := 0
	if i < len(s) { // 'e' or 'E'
		i++
		neg := s[i] == '-'
		if s[i] == '-' || s[i] == '+' {
			i++
		}
		for ; i < len(s); i++ {
			if exp < clamp {
				exp = exp*10 + int(s[i]-'0')
			}
		}
		if neg {
			exp = -exp
		}
	}
	if intDigits > 0 {
		return intDigits - 1 + exp, false
	}
	return exp - lead - 1, false
}

// parseTime parses s as time.Parse(time.RFC3339Nano, s) does, into
// microseconds since the epoch. The usual form is read here, without the
// allocation of a fixed zone; time.Parse reads the rest, after a cheap check
// that s can be one (an error allocates).
func parseTime(s []byte) (int64, bool) {
	if len(s) < len("2006-01-02T1:04:05Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' {
		return 0, false
	}
	if us, ok := parseRFC3339(s); ok {
		return us, true
	}
	t, err := time.Parse(time.RFC3339Nano, str(s))
	return t.UnixMicro(), err == nil
}

// parseRFC3339 reads "2006-01-02T15:04:05[.999999999](Z|±07:00)", with the
// ranges time.Parse checks, into microseconds since the epoch. It reads
// fewer strings than time.Parse, and gives the same answer on them.
func parseRFC3339(s []byte) (int64, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	y, mo := digits(s[0:4]), digits(s[5:7])
	if y < 0 || mo < 1 || mo > 12 {
		return 0, false
	}
	d, h, mi, sec := digits(s[8:10]), digits(s[11:13]), digits(s[14:16]), digits(s[17:19])
	if d < 1 || d > daysIn(mo, y) || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 {
		return 0, false
	}
	s = s[19:]
	ns := 0
	if len(s) >= 2 && s[0] == '.' && isDigit(s[1]) {
		n := 1
		for n < len(s) && isDigit(s[n]) {
			n++
		}
		for i := 1; i < 10; i++ { // nine digits, more are dropped
			ns *= 10
			if i < n {
				ns += int(s[i] - '0')
			}
		}
		s = s[n:]
	}
	off := 0
	if len(s) != 1 || s[0] != 'Z' {
		if len(s) != len("-07:00") || s[0] != '+' && s[0] != '-' || s[3] != ':' {
			return 0, false
		}
		oh, om := digits(s[1:3]), digits(s[4:6])
		if oh < 0 || oh > 23 || om < 0 || om > 59 {
			return 0, false
		}
		if off = (oh*60 + om) * 60; s[0] == '-' {
			off = -off
		}
	}
	unix := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC).Unix() - int64(off)
	return unix*1_000_000 + int64(ns/1000), true
}

// parseDate parses "YYYY-MM-DD", as time.Parse(time.DateOnly, s) does, into
// days since 1970-01-01.
func parseDate(s []byte) (int64, bool) {
	if len(s) != len("2006-01-02") || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	y, m, d := digits(s[:4]), digits(s[5:7]), digits(s[8:])
	if y < 0 || m < 1 || m > 12 || d < 1 || d > daysIn(m, y) {
		return 0, false
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC).Unix() / (24 * 60 * 60), true
}

// digits returns the value of the decimal digits s, or -1.
func digits(s []byte) int {
	n := 0
	for _, c := range s {
		if !isDigit(c) {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// daysIn returns the number of days in month m of year y.
func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// str returns b as a string without copying, for a callee that does not keep
// it: strconv and time copy the input they put in their errors.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
