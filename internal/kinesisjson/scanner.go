package kinesisjson

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays a Scanner accepts, counting every
// open container from the outermost: the limit of the SDK's JSON parser (and of
// encoding/json), so that a body one accepts the other accepts too.
const MaxDepth = 10_000

// SyntaxError reports JSON the Scanner cannot read, or a value of another type than the one
// asked for.
type SyntaxError struct {
	Offset int    // byte offset in the input where the problem was found
	Msg    string // what was wrong
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg)
}

// Scanner reads one JSON text from a byte slice, value by value, without building a tree. The
// caller says what it expects next (an object's members, a string, a number) and the Scanner
// checks the grammar as it goes; values the caller does not want are skipped with Skip, which
// checks their syntax too.
//
// It accepts exactly what the AWS SDK's JSON parser (smithy-go's shape deserializer) accepts:
// RFC 8259 JSON whose strings need not be valid UTF-8; strings with escapes are decoded the way
// encoding/json decodes them (invalid UTF-8 and unpaired surrogates become U+FFFD), strings
// without escapes are taken byte for byte. It reads no further than asked: a decoder that
// stops after the first value ignores what follows it, as that parser does.
//
// The zero Scanner reads an empty input; Reset points it at another. Slices it returns alias
// the input or, for decoded strings and keys, a buffer of the Scanner valid until its next
// call.
type Scanner struct {
	b     []byte
	i     int
	depth int    // containers open, for MaxDepth
	open  []byte // closing bytes of the containers Skip is inside
	key   []byte // decoded escaped keys
}

// Reset makes s read b from the start.
func (s *Scanner) Reset(b []byte) {
	s.b, s.i, s.depth = b, 0, 0
	s.open = s.open[:0]
}

// Offset is the position of the next byte s reads.
func (s *Scanner) Offset() int { return s.i }

func (s *Scanner) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: s.i, Msg: fmt.Sprintf(format, args...)}
}

// ws skips white space. The common case, none, is inlined.
func (s *Scanner) ws() {
	if s.i < len(s.b) && s.b[s.i] > ' ' {
		return
	}
	s.wsSlow()
}

func (s *Scanner) wsSlow() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, 0 at the end.
func (s *Scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// unexpected describes the byte at the current offset for an error.
func (s *Scanner) unexpected(want string) error {
	if s.i >= len(s.b) {
		return s.errorf("unexpected end of JSON input, expected %s", want)
	}
	return s.errorf("unexpected %q, expected %s", s.b[s.i], want)
}

// push counts a container opened.
func (s *Scanner) push() error {
	s.depth++
	if s.depth > MaxDepth {
		return s.errorf("exceeded max nesting depth %d", MaxDepth)
	}
	return nil
}

// BeginObject reads the '{' that opens an object. Read its members with More and Key.
func (s *Scanner) BeginObject() error {
	if s.peek() != '{' {
		return s.unexpected("'{'")
	}
	s.i++
	return s.push()
}

// BeginArray reads the '[' that opens an array. Read its elements with More.
func (s *Scanner) BeginArray() error {
	if s.peek() != '[' {
		return s.unexpected("'['")
	}
	s.i++
	return s.push()
}

// More reports whether the object or array being read (closing is '}' or ']') has another
// member or element, reading the comma before it unless first, or the closing byte after the
// last one.
func (s *Scanner) More(closing byte, first bool) (bool, error) {
	c := s.peek()
	if c == closing {
		s.i++
		s.depth--
		return false, nil
	}
	if first {
		return true, nil
	}
	if c != ',' {
		return false, s.unexpected(fmt.Sprintf("',' or '%c'", closing))
	}
	s.i++
	return true, nil
}

// Key reads an object member's name and the colon after it. The name is decoded; it aliases
// the input or s's buffer and is valid until the next call.
func (s *Scanner) Key() ([]byte, error) {
	raw, escaped, err := s.String()
	if err != nil {
		return nil, err
	}
	if escaped {
		s.key = AppendUnescaped(s.key[:0], raw)
		raw = s.key
	}
	if s.peek() != ':' {
		return nil, s.unexpected("':'")
	}
	s.i++
	return raw, nil
}

// KnownKey reads an object member's name and the colon after it if the name is quoted, a
// name with its quotes that needs no escapes, and reports whether it did. It is the quick
// test for the names a decoder expects; when it reports false nothing was read, and Key
// reads whatever name there is (perhaps the same one, escaped).
func (s *Scanner) KnownKey(quoted string) bool {
	s.ws()
	if len(s.b)-s.i < len(quoted) || string(s.b[s.i:s.i+len(quoted)]) != quoted {
		return false
	}
	j := s.i + len(quoted)
	for j < len(s.b) && (s.b[j] == ' ' || s.b[j] == '\t' || s.b[j] == '\n' || s.b[j] == '\r') {
		j++
	}
	if j >= len(s.b) || s.b[j] != ':' {
		return false
	}
	s.i = j + 1
	return true
}

// Null reads a null, if one comes next, and reports whether it did.
func (s *Scanner) Null() bool {
	s.ws()
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// stringStop has the high bit set in each byte of v that is a quote, a backslash or a control
// character, the bytes that end a run of a string's plain contents. It may also mark a byte
// after a marked one, which does not matter: the caller looks at the first.
func stringStop(v uint64) uint64 {
	q := v ^ (lsb * '"')
	b := v ^ (lsb * '\\')
	return ((q-lsb)&^q | (b-lsb)&^b | (v-lsb*0x20)&^v) & msb
}

// String reads a string and returns its raw contents, between the quotes, and whether they
// hold escapes (decode them with AppendUnescaped). The escapes are checked: \", \\, \/, \b,
// \f, \n, \r, \t and \u with four hex digits.
func (s *Scanner) String() (raw []byte, escaped bool, err error) {
	if s.peek() != '"' {
		return nil, false, s.unexpected("string")
	}
	b := s.b
	start := s.i + 1
	i := start
	for {
		for i+8 <= len(b) && stringStop(binary.LittleEndian.Uint64(b[i:])) == 0 {
			i += 8
		}
		if i >= len(b) {
			return nil, false, s.errorf("unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return b[start:i], escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				s.i = i
				return nil, false, s.errorf("unterminated escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || getu4(b[i:]) < 0 {
					s.i = i
					return nil, false, s.errorf("invalid unicode escape")
				}
				i += 6
			default:
				s.i = i
				return nil, false, s.errorf("invalid escape character %q", b[i+1])
			}
		case c < 0x20:
			s.i = i
			return nil, false, s.errorf("invalid control character in string")
		default:
			i++
		}
	}
}

// AppendString reads a string and appends its decoded value to dst.
func (s *Scanner) AppendString(dst []byte) ([]byte, error) {
	raw, escaped, err := s.String()
	if err != nil {
		return dst, err
	}
	if !escaped {
		return append(dst, raw...), nil
	}
	return AppendUnescaped(dst, raw), nil
}

// getu4 decodes the \uXXXX escape at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// AppendUnescaped appends the value of a string's raw contents, which String has checked, to
// dst, as encoding/json decodes it: escapes replaced, a surrogate pair joined, an unpaired
// surrogate and each byte of invalid UTF-8 replaced by U+FFFD.
func AppendUnescaped(dst, raw []byte) []byte {
	for r := 0; r < len(raw); {
		c := raw[r]
		switch {
		case c == '\\':
			if r+1 >= len(raw) {
				return dst // String does not let this through
			}
			switch e := raw[r+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := getu4(raw[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(raw[r:])); dec != unicode.ReplacementChar {
						r += 6
						dst = utf8.AppendRune(dst, dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				if rr < 0 {
					rr = unicode.ReplacementChar // String does not let this through
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			rr, size := utf8.DecodeRune(raw[r:])
			r += size
			dst = utf8.AppendRune(dst, rr) // RuneError for invalid bytes: U+FFFD
		}
	}
	return dst
}

// number reads a number and returns its text.
func (s *Scanner) number() ([]byte, error) {
	s.ws()
	b := s.b
	start := s.i
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == digits {
		return nil, s.unexpected("number")
	}
	if b[digits] == '0' && i-digits > 1 {
		return nil, s.errorf("leading zeros not allowed")
	}
	if i < len(b) && b[i] == '.' {
		i++
		frac := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == frac {
			s.i = i
			return nil, s.errorf("no digits after decimal point")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		exp := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == exp {
			s.i = i
			return nil, s.errorf("no digits after exponent")
		}
	}
	s.i = i
	return b[start:i], nil
}

// Number reads a number and returns its text, which is valid JSON.
func (s *Scanner) Number() ([]byte, error) { return s.number() }

// parseInt parses an optionally negative run of decimal digits that fits an int64.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0') // 19 digits cannot overflow a uint64
	}
	switch {
	case !neg && n <= 1<<63-1:
		return int64(n), true
	case neg && n <= 1<<63:
		return -int64(n), true // -(1<<63) wraps to itself, MinInt64
	}
	return 0, false
}

// Int64 reads an integer: a number without fraction or exponent within the int64 range.
func (s *Scanner) Int64() (int64, error) {
	start := s.i
	tok, err := s.number()
	if err != nil {
		return 0, err
	}
	n, ok := parseInt(tok)
	if !ok {
		s.i = start
		return 0, s.errorf("invalid int64 %s", tok)
	}
	return n, nil
}

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// exactFloat converts a JSON number whose digits fit 2^53 and whose decimal exponent is
// small, such as 1.607466963419E9: both operands are then exact and one IEEE operation
// rounds correctly, so the result is the float64 nearest the number, the one
// strconv.ParseFloat returns.
func exactFloat(tok []byte) (float64, bool) {
	i := 0
	neg := tok[0] == '-'
	if neg {
		i++
	}
	var m uint64
	digits, exp := 0, 0
	for ; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
		m = m*10 + uint64(tok[i]-'0')
		digits++
	}
	if i < len(tok) && tok[i] == '.' {
		for i++; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
			m = m*10 + uint64(tok[i]-'0')
			digits++
			exp--
		}
	}
	if digits > 15 {
		return 0, false // m may not be exact (or may have overflowed)
	}
	if i < len(tok) { // 'e' or 'E', validated by number
		i++
		eneg := tok[i] == '-'
		if tok[i] == '-' || tok[i] == '+' {
			i++
		}
		e := 0
		for ; i < len(tok); i++ {
			if e > 1000 {
				return 0, false
			}
			e = e*10 + int(tok[i]-'0')
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	f := float64(m)
	switch {
	case m == 0 || exp == 0:
	case exp < 0 && -exp < len(pow10):
		f /= pow10[-exp]
	case exp > 0 && exp < len(pow10):
		f *= pow10[exp]
	default:
		return 0, false
	}
	if neg {
		f = -f
	}
	return f, true
}

// Float64 reads a floating-point number as Smithy's JSON protocols write one: a number, or
// one of the strings "NaN", "Infinity" and "-Infinity" (in any case).
func (s *Scanner) Float64() (float64, error) {
	if s.peek() == '"' {
		start := s.i
		raw, escaped, err := s.String()
		if err != nil {
			return 0, err
		}
		v := string(raw)
		if escaped {
			v = string(AppendUnescaped(nil, raw))
		}
		switch {
		case strings.EqualFold(v, "NaN"):
			return math.NaN(), nil
		case strings.EqualFold(v, "Infinity"):
			return math.Inf(1), nil
		case strings.EqualFold(v, "-Infinity"):
			return math.Inf(-1), nil
		}
		s.i = start
		return 0, s.errorf("unexpected string value for float: %q", v)
	}
	start := s.i
	tok, err := s.number()
	if err != nil {
		return 0, err
	}
	if n, ok := parseInt(tok); ok {
		return float64(n), nil
	}
	if f, ok := exactFloat(tok); ok {
		return f, nil
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		s.i = start
		return 0, s.errorf("invalid float %s: %v", tok, err)
	}
	return f, nil
}

// Bool reads true or false.
func (s *Scanner) Bool() (bool, error) {
	s.ws()
	switch {
	case s.literal("true"):
		return true, nil
	case s.literal("false"):
		return false, nil
	}
	return false, s.unexpected("true or false")
}

func (s *Scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// Skip reads any one value, checking its syntax and its depth. It loops rather than
// recursing, so a value nested MaxDepth deep costs no stack.
func (s *Scanner) Skip() error {
	base := len(s.open)
	for {
		// A value is expected.
		switch c := s.peek(); {
		case c == '{' || c == '[':
			s.i++
			if err := s.push(); err != nil {
				return err
			}
			closing := byte('}')
			if c == '[' {
				closing = ']'
			}
			if s.peek() == closing {
				s.i++
				s.depth--
				break // an empty container is a whole value
			}
			s.open = append(s.open, closing)
			if closing == '}' {
				if _, _, err := s.String(); err != nil {
					return err
				}
				if s.peek() != ':' {
					return s.unexpected("':'")
				}
				s.i++
			}
			continue
		case c == '"':
			if _, _, err := s.String(); err != nil {
				return err
			}
		case c == 't' || c == 'f' || c == 'n':
			if !s.literal("true") && !s.literal("false") && !s.literal("null") {
				return s.errorf("invalid literal")
			}
		default:
			if _, err := s.number(); err != nil {
				return err
			}
		}
		// A value ended: close containers, or read the comma before the next element.
		for {
			if len(s.open) == base {
				return nil
			}
			closing := s.open[len(s.open)-1]
			c := s.peek()
			if c == closing {
				s.i++
				s.depth--
				s.open = s.open[:len(s.open)-1]
				continue
			}
			if c != ',' {
				return s.unexpected(fmt.Sprintf("',' or '%c'", closing))
			}
			s.i++
			if closing == '}' {
				if _, _, err := s.String(); err != nil {
					return err
				}
				if s.peek() != ':' {
					return s.unexpected("':'")
				}
				s.i++
			}
			break
		}
	}
}
