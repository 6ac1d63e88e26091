package wire

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/zombihq/zombi/engine"
	"github.com/zombihq/zombi/jsonstr"
)

// The JSON bodies of the write API:
//
//	event: {"payload": "text" | any JSON value, "payload_base64": "…",
//	        "partition": 0, "timestamp_ms": 1700000000000, "idempotency_key": "k"}
//	bulk:  {"records": [event, …]}
//
// The body must be UTF-8 and strict JSON (RFC 8259). Unknown fields are
// checked and ignored; of a field given twice, the last counts ("records"
// excepted: the first). A payload that is not a string is stored as its
// JSON text with the whitespace between tokens removed.

// maxDepth bounds the nesting of a JSON value.
const maxDepth = 300

// JSONEvent decodes the body of POST /tables/{t}.
func (d *Decoder) JSONEvent(body []byte) (engine.Record, error) {
	d.reset()
	if !utf8.Valid(body) {
		return engine.Record{}, errNotUTF8()
	}
	s := scanner{b: body}
	s.ws()
	err := d.event(&s)
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return engine.Record{}, settle(body, err)
	}
	d.resolve()
	return d.recs[0], nil
}

// JSONBulk decodes the body of POST /tables/{t}/bulk.
func (d *Decoder) JSONBulk(body []byte) ([]engine.Record, error) {
	d.reset()
	if !utf8.Valid(body) {
		return nil, errNotUTF8()
	}
	s := scanner{b: body}
	s.ws()
	err := d.bulk(&s)
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, settle(body, err)
	}
	d.resolve()
	return d.recs, nil
}

// ValidJSON reports whether body is one strict JSON value, nested at most
// 300 deep; the error says where it is not.
func ValidJSON(body []byte) error {
	if !utf8.Valid(body) {
		return errNotUTF8()
	}
	var stack [maxDepth]byte
	s := scanner{b: body}
	s.ws()
	if _, err := s.skip(stack[:0]); err != nil {
		return err
	}
	if err := s.end(); err != nil {
		return err
	}
	return nil
}

// settle makes the error of a body that is both malformed and not an
// event the syntax error: the decoders stop at the first problem, and a
// record in error may come before the syntax error.
func settle(body []byte, err *Error) error {
	if !err.syntax {
		if verr := ValidJSON(body); verr != nil {
			return verr
		}
	}
	return err
}

// errNotUTF8 refuses a body that is not UTF-8 (RFC 8259 §8.1), as
// serde_json does in the Rust Zombi. Binary payloads go in payload_base64.
func errNotUTF8() *Error {
	return &Error{Kind: BadRequest, syntax: true, Msg: "Invalid JSON: the body is not valid UTF-8 (send binary payloads as payload_base64)"}
}

// bulk decodes {"records": [event, …]} at s.
func (d *Decoder) bulk(s *scanner) *Error {
	if s.peek() != '{' {
		return s.notA("an object with a \"records\" array")
	}
	s.i++
	s.ws()
	found := false
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			key, err := d.member(s)
			if err != nil {
				return err
			}
			if string(key) == "records" && !found {
				found = true
				err = d.records(s)
			} else {
				_, err = s.skip(d.stack[:0])
			}
			if err != nil {
				return err
			}
			more, err := s.next('}')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	if !found {
		return badRequest("Invalid JSON: missing field `records`")
	}
	return nil
}

// records decodes the array of a bulk request at s.
func (d *Decoder) records(s *scanner) *Error {
	if s.peek() != '[' {
		return badRequest("Invalid JSON: `records` must be an array")
	}
	s.i++
	s.ws()
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		if d.MaxRecords > 0 && len(d.recs) >= d.MaxRecords {
			return tooManyRecords(d.MaxRecords)
		}
		if err := d.event(s); err != nil {
			if !err.syntax {
				err.Msg = fmt.Sprintf("records[%d]: %s", len(d.recs), err.Msg)
			}
			return err
		}
		more, err := s.next(']')
		if err != nil || !more {
			return err
		}
	}
}

// field is a value of an event object, kept until the object is read.
type field struct {
	kind fieldKind
	raw  []byte // a string's contents between the quotes, or the value's text
}

type fieldKind uint8

const (
	fieldNone      fieldKind = iota
	fieldString              // a string without escapes
	fieldEscaped             // a string with escapes
	fieldValue               // any other value, no whitespace inside
	fieldValueWide           // any other value, with whitespace inside
)

// event decodes one event object at s and appends it to d.recs.
func (d *Decoder) event(s *scanner) *Error {
	if s.peek() != '{' {
		return s.notA("an object")
	}
	s.i++
	s.ws()
	idx := len(d.recs)
	r := engine.Record{Partition: d.defaultPartition()}
	var payload, b64 field
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			key, err := d.member(s)
			if err != nil {
				return err
			}
			switch string(key) {
			case "payload":
				payload, err = d.value(s)
			case "payload_base64":
				b64, err = d.value(s)
			case "partition":
				var n int64
				var ok bool
				if n, ok, err = s.integer(); err == nil && (!ok || n < 0 || n > math.MaxUint32) {
					err = badRequest("Invalid JSON: `partition` must be a non-negative integer")
				}
				r.Partition = uint32(n)
			case "timestamp_ms":
				var ok bool
				if r.TimestampMs, ok, err = s.integer(); err == nil && !ok {
					err = badRequest("Invalid JSON: `timestamp_ms` must be an integer (milliseconds)")
				}
			case "idempotency_key":
				err = d.idemKey(s, &r, idx)
			default:
				_, err = s.skip(d.stack[:0])
			}
			if err != nil {
				return err
			}
			more, err := s.next('}')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	switch {
	case payload.kind != fieldNone && b64.kind != fieldNone:
		return invalidInput("Give either `payload` or `payload_base64`, not both")
	case payload.kind == fieldString || payload.kind == fieldValue:
		r.Payload = payload.raw
	case payload.kind == fieldEscaped:
		start := len(d.scratch)
		d.scratch = jsonstr.AppendUnescaped(d.scratch, payload.raw)
		d.fix = append(d.fix, scratchRef{rec: idx, start: start, end: len(d.scratch)})
	case payload.kind == fieldValueWide:
		start := len(d.scratch)
		d.scratch = appendCompact(d.scratch, payload.raw)
		d.fix = append(d.fix, scratchRef{rec: idx, start: start, end: len(d.scratch)})
	case b64.kind == fieldString || b64.kind == fieldEscaped:
		src := b64.raw
		if b64.kind == fieldEscaped {
			d.keyBuf = jsonstr.AppendUnescaped(d.keyBuf[:0], src)
			src = d.keyBuf
		}
		start := len(d.scratch)
		var err error
		if d.scratch, err = appendBase64(d.scratch, src); err != nil {
			d.scratch = d.scratch[:start]
			return invalidInput("Invalid `payload_base64`: %v", err)
		}
		d.fix = append(d.fix, scratchRef{rec: idx, start: start, end: len(d.scratch)})
	case b64.kind != fieldNone:
		return badRequest("Invalid JSON: `payload_base64` must be a string")
	default:
		return badRequest("Invalid JSON: missing field `payload`")
	}
	if len(r.Payload) == 0 {
		r.Payload = nil
	}
	d.recs = append(d.recs, r)
	return nil
}

// idemKey reads the idempotency_key at s into r (string or null).
func (d *Decoder) idemKey(s *scanner, r *engine.Record, idx int) *Error {
	d.dropKeyFix(idx)
	if s.peek() == 'n' {
		r.Key = nil
		return s.literal("null")
	}
	if s.peek() != '"' {
		return badRequest("Invalid JSON: `idempotency_key` must be a string")
	}
	raw, esc, err := s.str()
	if err != nil {
		return err
	}
	if !esc {
		r.Key = raw
		return nil
	}
	// Resolved later, unless a later key replaces it.
	start := len(d.scratch)
	d.scratch = jsonstr.AppendUnescaped(d.scratch, raw)
	r.Key = nil
	d.fix = append(d.fix, scratchRef{rec: idx, start: start, end: len(d.scratch), key: true})
	return nil
}

// dropKeyFix forgets an escaped idempotency key of recs[idx] met
// earlier in its object: a later one replaces it.
func (d *Decoder) dropKeyFix(idx int) {
	for i := len(d.fix) - 1; i >= 0 && d.fix[i].rec == idx; i-- {
		if d.fix[i].key {
			d.fix = append(d.fix[:i], d.fix[i+1:]...)
		}
	}
}

// value reads any value at s as a field.
func (d *Decoder) value(s *scanner) (field, *Error) {
	if s.peek() == '"' {
		raw, esc, err := s.str()
		if esc {
			return field{fieldEscaped, raw}, err
		}
		return field{fieldString, raw}, err
	}
	start := s.i
	wide, err := s.skip(d.stack[:0])
	if wide {
		return field{fieldValueWide, s.b[start:s.i]}, err
	}
	return field{fieldValue, s.b[start:s.i]}, err
}

// member reads an object key and its colon at s; the key is unescaped
// into d.keyBuf when it has escapes.
func (d *Decoder) member(s *scanner) ([]byte, *Error) {
	if s.peek() != '"' {
		return nil, s.syntaxErr("a string key")
	}
	key, esc, err := s.str()
	if err != nil {
		return nil, err
	}
	if esc {
		d.keyBuf = jsonstr.AppendUnescaped(d.keyBuf[:0], key)
		key = d.keyBuf
	}
	if err := s.colon(); err != nil {
		return nil, err
	}
	return key, nil
}

// scanner is a position in a JSON text.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// ws skips whitespace and reports whether there was any.
func (s *scanner) ws() bool {
	i := s.i
	for i < len(s.b) && (s.b[i] == ' ' || s.b[i] == '\n' || s.b[i] == '\r' || s.b[i] == '\t') {
		i++
	}
	wide := i != s.i
	s.i = i
	return wide
}

func (s *scanner) syntaxErr(want string) *Error {
	if s.i >= len(s.b) {
		return &Error{Kind: BadRequest, syntax: true, Msg: "Invalid JSON: unexpected end of input, expected " + want}
	}
	return &Error{Kind: BadRequest, syntax: true, Msg: fmt.Sprintf("Invalid JSON: expected %s at byte %d, found %q", want, s.i, s.b[s.i])}
}

// notA answers a value at s that is not the one wanted: a syntax error if
// it is not a value at all, else "expected <want>".
func (s *scanner) notA(want string) *Error {
	var stack [maxDepth]byte
	if _, err := s.skip(stack[:0]); err != nil {
		return err
	}
	return badRequest("Invalid JSON: expected %s", want)
}

// end checks that only whitespace follows the value.
func (s *scanner) end() *Error {
	s.ws()
	if s.i != len(s.b) {
		return s.syntaxErr("the end of the input")
	}
	return nil
}

// colon reads the ':' after an object key, and the whitespace around it.
func (s *scanner) colon() *Error {
	s.ws()
	if s.peek() != ':' {
		return s.syntaxErr("':'")
	}
	s.i++
	s.ws()
	return nil
}

// next reads what follows a member or an element: ',' (more is true) or
// closer (more is false), with the whitespace around.
func (s *scanner) next(closer byte) (more bool, err *Error) {
	s.ws()
	switch s.peek() {
	case ',':
		s.i++
		s.ws()
		return true, nil
	case closer:
		s.i++
		return false, nil
	}
	return false, s.syntaxErr("',' or '" + string(closer) + "'")
}

// strPlain marks the bytes that need no attention inside a string:
// everything but '"', '\\' and control characters.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads the string at s (at its opening quote) and returns what is
// between the quotes, and whether it holds escapes.
func (s *scanner) str() (raw []byte, esc bool, err *Error) {
	b := s.b
	i := s.i + 1
	start := i
	for {
		for i+8 <= len(b) && plain8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && strPlain[b[i]] {
			i++
		}
		if i >= len(b) {
			s.i = i
			return nil, false, s.syntaxErr("'\"'")
		}
		switch c := b[i]; c {
		case '"':
			s.i = i + 1
			return b[start:i], esc, nil
		case '\\':
			esc = true
			if i+1 >= len(b) {
				s.i = len(b)
				return nil, false, s.syntaxErr("an escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					s.i = i
					return nil, false, s.syntaxErr("a \\uXXXX escape")
				}
				i += 6
			default:
				s.i = i
				return nil, false, s.syntaxErr("a valid escape")
			}
		default:
			s.i = i
			return nil, false, &Error{Kind: BadRequest, syntax: true,
				Msg: fmt.Sprintf("Invalid JSON: control character %#02x in a string at byte %d", c, i)}
		}
	}
}

// plain8 reports whether none of the 8 bytes of x is '"', '\\' or a
// control character (bytes ≥ 0x80 are plain: the body is UTF-8).
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	ctl := (x - 0x20*ones) &^ x // a byte below 0x20 sets its high bit
	quote := x ^ '"'*ones
	bslash := x ^ '\\'*ones
	return (ctl|(quote-ones)&^quote|(bslash-ones)&^bslash)&highs == 0
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// appendCompact appends a JSON value's text without the whitespace
// between its tokens.
func appendCompact(dst, raw []byte) []byte {
	in := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if in {
			dst = append(dst, c)
			if c == '\\' {
				i++
				dst = append(dst, raw[i])
			} else if c == '"' {
				in = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			in = true
		}
		dst = append(dst, c)
	}
	return dst
}

// literal reads the literal word at s.
func (s *scanner) literal(word string) *Error {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return s.syntaxErr(word)
	}
	s.i += len(word)
	return nil
}

// number reads the number at s.
func (s *scanner) number() *Error {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		s.i = i
		return s.syntaxErr("a value")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.i = i
			return s.syntaxErr("a digit")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			s.i = i
			return s.syntaxErr("a digit")
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	s.i = i
	return nil
}

// integer reads the value at s as an int64: ok is false when it is a
// well-formed value that is not an integer in range; null is 0.
func (s *scanner) integer() (n int64, ok bool, err *Error) {
	switch c := s.peek(); {
	case c == 'n':
		return 0, true, s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
	default:
		return 0, false, nil
	}
	b, i := s.b, s.i
	neg := b[i] == '-'
	if neg {
		i++
	}
	var u uint64
	over := false
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			over = over || u > (math.MaxUint64-9)/10
			u = u*10 + uint64(b[i]-'0')
		}
	default:
		s.i = i
		return 0, false, s.syntaxErr("a digit")
	}
	if i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E') {
		// A fraction or an exponent: well-formed or not, not an integer.
		err := s.number()
		return 0, false, err
	}
	s.i = i
	switch {
	case over:
	case !neg && u <= math.MaxInt64:
		return int64(u), true, nil
	case neg && u <= 1<<63:
		return -int64(u), true, nil // -(1<<63) wraps to itself
	}
	return 0, false, nil
}

// skip reads any value at s, using stack for its open containers, and
// reports whether it has whitespace inside.
func (s *scanner) skip(stack []byte) (wide bool, err *Error) {
	for {
		// A value starts here.
		switch c := s.peek(); c {
		case '{', '[':
			if len(stack) >= maxDepth {
				return wide, &Error{Kind: BadRequest, syntax: true,
					Msg: fmt.Sprintf("Invalid JSON: nesting depth exceeds %d at byte %d", maxDepth, s.i)}
			}
			s.i++
			wide = s.ws() || wide
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			if s.peek() == closer {
				s.i++
				break // an empty container is a whole value
			}
			stack = append(stack, closer)
			if c == '{' {
				if err := s.key(&wide); err != nil {
					return wide, err
				}
			}
			continue
		case '"':
			if _, _, err := s.str(); err != nil {
				return wide, err
			}
		case 't':
			err = s.literal("true")
		case 'f':
			err = s.literal("false")
		case 'n':
			err = s.literal("null")
		default:
			err = s.number()
		}
		if err != nil {
			return wide, err
		}
		// A value ended: close containers, or go on to the next element.
		for {
			if len(stack) == 0 {
				return wide, nil
			}
			wide = s.ws() || wide
			closer := stack[len(stack)-1]
			c := s.peek()
			if c == closer {
				s.i++
				stack = stack[:len(stack)-1]
				continue
			}
			if c != ',' {
				return wide, s.syntaxErr("',' or '" + string(closer) + "'")
			}
			s.i++
			wide = s.ws() || wide
			if closer == '}' {
				if err := s.key(&wide); err != nil {
					return wide, err
				}
			}
			break
		}
	}
}

// key reads a key and its colon inside a skipped object.
func (s *scanner) key(wide *bool) *Error {
	if s.peek() != '"' {
		return s.syntaxErr("a string key")
	}
	if _, _, err := s.str(); err != nil {
		return err
	}
	*wide = s.ws() || *wide
	if s.peek() != ':' {
		return s.syntaxErr("':'")
	}
	s.i++
	*wide = s.ws() || *wide
	return nil
}

// appendBase64 decodes standard base64, padded or not, onto dst.
func appendBase64(dst, s []byte) ([]byte, error) {
	enc := base64.StdEncoding
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	return enc.AppendDecode(dst, s)
}
