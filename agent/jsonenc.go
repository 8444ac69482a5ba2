package agent

import (
	"unicode/utf8"
)

// field is one parsed value; null marks a value the line did not have (an Apache "-", an
// optional group that did not match), which JSON shows as null.
type field struct {
	name string
	val  []byte
	null bool
}

// appendJSONString appends s as a JSON string.
//
// Log files are not always valid UTF-8, and records must not lose bytes, so an invalid byte
// is written as the escape \udcXX, where XX is the byte: the "surrogateescape" convention.
// The output is valid JSON; decoders that keep lone surrogates (Python's json, with
// .encode("utf-8", "surrogateescape")) recover the exact bytes, and the others (Go's
// encoding/json, Jackson) read U+FFFD there, as they would for any replacement. Valid UTF-8,
// including U+FFFD itself, is written unchanged apart from the escapes JSON requires.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', 'd', 'c', hexDigit[c>>4], hexDigit[c&0xf])
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigit = "0123456789abcdef"

// appendJSONObject writes fields as a JSON object in their order, as the Amazon Kinesis
// Agent does. Pretty output is indented by two spaces.
func appendJSONObject(dst []byte, fields []field, pretty bool) []byte {
	dst = append(dst, '{')
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		if pretty {
			dst = append(dst, "\n  "...)
		}
		dst = appendJSONString(dst, []byte(f.name))
		if pretty {
			dst = append(dst, " : "...)
		} else {
			dst = append(dst, ':')
		}
		if f.null {
			dst = append(dst, "null"...)
		} else {
			dst = appendJSONString(dst, f.val)
		}
	}
	if pretty && len(fields) > 0 {
		dst = append(dst, '\n')
	}
	return append(dst, '}')
}
