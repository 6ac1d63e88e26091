package columns

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// The JSON scanning primitives. Each takes the payload and the index of the
// first byte of what it scans, and returns the index just past it; ok is
// false when the payload is not valid JSON there. None allocates.

// maxDepth is how deeply arrays and objects may nest, as in encoding/json.
const maxDepth = 10000

// Byte classes.
const (
	clsSpace  = 1 << iota // JSON whitespace
	clsPlain              // a string byte that needs no second look
	clsDigit              // 0-9
	clsNumber             // a byte that can follow a number's first byte
)

var class = func() (c [256]uint8) {
	for _, b := range " \t\n\r" {
		c[b] |= clsSpace
	}
	for b := 0x20; b < 0x80; b++ {
		if b != '"' && b != '\\' {
			c[b] |= clsPlain
		}
	}
	for b := '0'; b <= '9'; b++ {
		c[b] |= clsDigit | clsNumber
	}
	for _, b := range ".eE+-" {
		c[b] |= clsNumber
	}
	return c
}()

// ws skips whitespace.
func ws(b []byte, p int) int {
	for p < len(b) && b[p] <= ' ' && class[b[p]]&clsSpace != 0 {
		p++
	}
	return p
}

// scanString scans the string whose opening quote is at b[p]. esc reports
// whether it holds an escape. Its contents must be valid UTF-8.
func scanString(b []byte, p int) (end int, esc, ok bool) {
	i := p + 1
	for {
		// Go to the next byte that is not plain: eight bytes at a time,
		// then one at a time near the end.
		if i+8 <= len(b) {
			m := special(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) / 8
		} else {
			for i < len(b) && class[b[i]]&clsPlain != 0 {
				i++
			}
			if i >= len(b) {
				return i, esc, false
			}
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, esc, true
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return i, esc, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if hex4(b, i+2) < 0 {
					return i, esc, false
				}
				i += 6
			default:
				return i, esc, false
			}
		case c < 0x20:
			return i, esc, false
		default: // c >= 0x80
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, esc, false
			}
			i += size
		}
	}
}

// special returns a mask of the bytes of w, read little-endian, that are not
// plain string bytes: '"', '\\', below 0x20 or from 0x80. The lowest set
// bit is exact; bits above it may not be (a borrow can carry).
func special(w uint64) uint64 {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	quote := w ^ ('"' * ones)
	backslash := w ^ ('\\' * ones)
	return ((quote-ones)&^quote | (backslash-ones)&^backslash | (w-0x20*ones)&^w | w) & highs
}

// hex4 returns the value of the four hex digits at b[p:], or -1.
func hex4(b []byte, p int) rune {
	if p+4 > len(b) {
		return -1
	}
	var r rune
	for _, c := range b[p : p+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// scanNumber scans the number that starts at b[p]. isInt reports whether it
// has neither a fraction nor an exponent.
func scanNumber(b []byte, p int) (end int, isInt, ok bool) {
	i := p
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, false, false
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i++
		for i < len(b) && class[b[i]]&clsDigit != 0 {
			i++
		}
	default:
		return i, false, false
	}
	isInt = true
	if i == len(b) || class[b[i]]&clsNumber == 0 {
		return i, isInt, true // the common case
	}
	if b[i] == '.' {
		isInt = false
		i++
		if i >= len(b) || class[b[i]]&clsDigit == 0 {
			return i, false, false
		}
		for i < len(b) && class[b[i]]&clsDigit != 0 {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		isInt = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || class[b[i]]&clsDigit == 0 {
			return i, false, false
		}
		for i < len(b) && class[b[i]]&clsDigit != 0 {
			i++
		}
	}
	return i, isInt, true
}

// scanLiteral scans lit ("true", "false" or "null") at b[p].
func scanLiteral(b []byte, p int, lit string) (int, bool) {
	if len(b)-p < len(lit) || string(b[p:p+len(lit)]) != lit {
		return p, false
	}
	return p + len(lit), true
}

// scanKey scans a member's key and the colon after it, from b[p], and
// returns the index of the member's value.
func scanKey(b []byte, p int) (int, bool) {
	if p >= len(b) || b[p] != '"' {
		return p, false
	}
	p, _, ok := scanString(b, p)
	if !ok {
		return p, false
	}
	p = ws(b, p)
	if p >= len(b) || b[p] != ':' {
		return p, false
	}
	return ws(b, p+1), true
}

// skip scans the value at b[p], nested in depth arrays and objects, and
// checks it is valid. stack is scratch space for the nesting; skip returns
// it, maybe grown, for reuse.
func skip(b []byte, p, depth int, stack []byte) (end int, ok bool, _ []byte) {
	stack = stack[:0]
	for {
		// Here a value starts at b[p].
		if p >= len(b) {
			return p, false, stack
		}
		switch c := b[p]; c {
		case '"':
			if p, _, ok = scanString(b, p); !ok {
				return p, false, stack
			}
		case '{', '[':
			if depth+len(stack) >= maxDepth {
				return p, false, stack
			}
			closer := c + 2 // '}' or ']'
			p = ws(b, p+1)
			if p < len(b) && b[p] == closer {
				p++
				break
			}
			stack = append(stack, closer)
			if c == '{' {
				if p, ok = scanKey(b, p); !ok {
					return p, false, stack
				}
			}
			continue
		case 't':
			if p, ok = scanLiteral(b, p, "true"); !ok {
				return p, false, stack
			}
		case 'f':
			if p, ok = scanLiteral(b, p, "false"); !ok {
				return p, false, stack
			}
		case 'n':
			if p, ok = scanLiteral(b, p, "null"); !ok {
				return p, false, stack
			}
		default:
			if p, _, ok = scanNumber(b, p); !ok {
				return p, false, stack
			}
		}
		// Here a value ended at b[p]: close what it closes.
		for {
			if len(stack) == 0 {
				return p, true, stack
			}
			p = ws(b, p)
			if p >= len(b) {
				return p, false, stack
			}
			closer := stack[len(stack)-1]
			if b[p] == closer {
				stack = stack[:len(stack)-1]
				p++
				continue
			}
			if b[p] != ',' {
				return p, false, stack
			}
			p = ws(b, p+1)
			if closer == '}' {
				if p, ok = scanKey(b, p); !ok {
					return p, false, stack
				}
			}
			break
		}
	}
}
