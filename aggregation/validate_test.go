package aggregation

import (
	"strings"
	"testing"
)

// TestIsASCII puts one non-ASCII byte at every position of keys of every length around
// the eight-byte words isASCII reads, so that neither the words nor the tail miss it.
func TestIsASCII(t *testing.T) {
	for n := 0; n <= 25; n++ {
		s := strings.Repeat("k", n)
		if !isASCII(s) {
			t.Fatalf("%q: not ASCII", s)
		}
		for i := range n {
			b := []byte(s)
			b[i] = 0x80
			if isASCII(string(b)) {
				t.Fatalf("%q: ASCII", b)
			}
		}
	}
}
