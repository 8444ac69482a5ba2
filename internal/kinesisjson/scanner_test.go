package kinesisjson

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// skipsWhole reports whether Skip reads b as one value followed only by white space.
func skipsWhole(b []byte) bool {
	var s Scanner
	s.Reset(b)
	if s.Skip() != nil {
		return false
	}
	s.ws()
	return s.Offset() == len(b)
}

// FuzzScannerSkip checks the Scanner's grammar against encoding/json's: Skip reads a whole
// input exactly when json.Valid accepts it (neither checks UTF-8, both stop nesting at
// 10,000).
func FuzzScannerSkip(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `""`, `0`, `-0.5e+3`, `{"a":[1,{"b":null}],"c":"\u00e9\n"}`, `[1,]`, `{"a" 1}`,
		`01`, `1.`, `"\x"`, "\"\x01\"", `[true,false,null]`, `nul`, "\"\xff\"", ` [ 1 , 2 ] `, `{"a":1}{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := skipsWhole(b), json.Valid(b); got != want {
			t.Fatalf("Skip read %q whole: %v, json.Valid: %v", b, got, want)
		}
	})
}

func TestSkipDepthAsEncodingJSON(t *testing.T) {
	for _, n := range []int{MaxDepth, MaxDepth + 1} {
		b := []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
		if got, want := skipsWhole(b), json.Valid(b); got != want {
			t.Fatalf("depth %d: Skip %v, json.Valid %v", n, got, want)
		}
	}
}

// TestScannerValues reads a document through the typed calls, as a hand-written decoder
// does, and checks each value.
func TestScannerValues(t *testing.T) {
	doc := `{"s":"a\"b\u00e9\ud83d\ude00","n":-12,"f":1.5e3,"inf":"-Infinity","t":true,"x":false,"skip":{"deep":[1,[2,{}]]},"z":null}`
	var s Scanner
	s.Reset([]byte(doc))
	if err := s.BeginObject(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]any{}
	for first := true; ; first = false {
		more, err := s.More('}', first)
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
		k, err := s.Key()
		if err != nil {
			t.Fatal(err)
		}
		key := string(k)
		if s.Null() {
			seen[key] = nil
			continue
		}
		var v any
		switch key {
		case "s":
			var b []byte
			b, err = s.AppendString([]byte("prefix:"))
			v = string(b)
		case "n":
			v, err = s.Int64()
		case "f", "inf":
			v, err = s.Float64()
		case "t", "x":
			v, err = s.Bool()
		default:
			err = s.Skip()
			v = "skipped"
		}
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		seen[key] = v
	}
	want := map[string]any{"s": "prefix:a\"bé😀", "n": int64(-12), "f": 1500.0, "t": true, "x": false, "skip": "skipped", "z": nil}
	for k, w := range want {
		if seen[k] != w {
			t.Errorf("%s = %#v, want %#v", k, seen[k], w)
		}
	}
	if f, ok := seen["inf"].(float64); !ok || f > -1e308 {
		t.Errorf("inf = %v", seen["inf"])
	}
	s.Reset([]byte(`"x"`))
	_, err := s.Int64()
	var se *SyntaxError
	if !errors.As(err, &se) || se.Offset != 0 {
		t.Fatalf("Int64 of a string: %v", err)
	}
}
