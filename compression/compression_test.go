package compression_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/shardline/shardline/compression"
)

var codecs = []compression.Codec{compression.None, compression.Gzip, compression.Zstd, compression.Snappy}

func payloads() map[string][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 70_000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte(`{"user":"u-123","event":"click","ts":1700000000}`), 1000)
	return map[string][]byte{
		"empty":  {},
		"one":    {'x'},
		"text":   text,
		"random": random,
		"magic":  []byte(compression.Magic + "looks framed"),
	}
}

func TestRoundTrip(t *testing.T) {
	for name, p := range payloads() {
		for _, c := range codecs {
			frame, err := compression.Encode(nil, p, c)
			if err != nil {
				t.Fatalf("%s/%s: Encode: %v", name, c, err)
			}
			if !compression.IsFramed(frame) || frame[4] != byte(c) {
				t.Fatalf("%s/%s: frame header % x", name, c, frame[:5])
			}
			got, err := compression.Decode(frame)
			if err != nil {
				t.Fatalf("%s/%s: Decode: %v", name, c, err)
			}
			if !bytes.Equal(got, p) {
				t.Fatalf("%s/%s: round trip changed %d bytes into %d", name, c, len(p), len(got))
			}
			// Appending keeps the prefix and reuses capacity.
			prefix := []byte("keep")
			got, err = compression.AppendDecode(prefix, frame)
			if err != nil || !bytes.Equal(got[:4], []byte("keep")) || !bytes.Equal(got[4:], p) {
				t.Fatalf("%s/%s: AppendDecode: %v", name, c, err)
			}
		}
	}
}

func TestCompresses(t *testing.T) {
	text := payloads()["text"]
	for _, c := range codecs[1:] {
		frame, _ := compression.Encode(nil, text, c)
		if len(frame) > len(text)/4 {
			t.Errorf("%s: %d bytes of repetitive JSON framed into %d", c, len(text), len(frame))
		}
	}
}

func TestEncodeAppends(t *testing.T) {
	for _, c := range codecs {
		dst := append(make([]byte, 0, 1<<16), "prefix"...)
		out, err := compression.Encode(dst, []byte("hello hello hello hello"), c)
		if err != nil || string(out[:6]) != "prefix" {
			t.Fatalf("%s: %q %v", c, out, err)
		}
		got, err := compression.Decode(out[6:])
		if err != nil || string(got) != "hello hello hello hello" {
			t.Fatalf("%s: %q %v", c, got, err)
		}
	}
}

func TestEncodeUnknownCodec(t *testing.T) {
	if _, err := compression.Encode(nil, []byte("x"), compression.Codec(9)); !errors.Is(err, compression.ErrUnknownCodec) {
		t.Fatalf("err = %v, want ErrUnknownCodec", err)
	}
}

func TestDecodePassThrough(t *testing.T) {
	for _, b := range [][]byte{nil, {}, []byte("plain"), {0xf3, 0x89, 0x9a, 0xc2, 1, 2, 3}, []byte("\xf8SL")} {
		got, err := compression.Decode(b)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("Decode(%q) = %q, %v; want it unchanged", b, got, err)
		}
		if len(b) > 0 && &got[0] != &b[0] {
			t.Fatalf("Decode(%q) copied an unframed blob", b)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good, _ := compression.Encode(nil, bytes.Repeat([]byte("abc"), 100), compression.Zstd)
	goodSnappy, _ := compression.Encode(nil, bytes.Repeat([]byte("abc"), 100), compression.Snappy)
	goodGzip, _ := compression.Encode(nil, bytes.Repeat([]byte("abc"), 100), compression.Gzip)
	header := func(codec byte, size uint64) []byte {
		b := append([]byte(compression.Magic), codec)
		b = binary.AppendUvarint(b, size)
		return append(b, 0, 0, 0, 0)
	}
	flip := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 0xff
		return c
	}
	cases := []struct {
		name string
		in   []byte
		want compression.Reason // 0: any reason
	}{
		{"magic only", []byte(compression.Magic), compression.ReasonTruncated},
		{"no checksum", append([]byte(compression.Magic), 2, 5, 0), compression.ReasonTruncated},
		{"unknown codec", header(7, 3), compression.ReasonCodec},
		{"unterminated length", append([]byte(compression.Magic), 2, 0x80, 0x80, 0x80, 0x80), compression.ReasonTruncated},
		{"overflowing length", append(append([]byte(compression.Magic), 2), bytes.Repeat([]byte{0xff}, 11)...), compression.ReasonLength},
		{"bomb", header(2, compression.MaxDecodedSize+1), compression.ReasonLength},
		{"zstd garbage", append(header(2, 10), "not zstd at all"...), compression.ReasonPayload},
		{"gzip garbage", append(header(1, 10), "not gzip at all"...), compression.ReasonPayload},
		{"snappy garbage", append(header(3, 10), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), compression.ReasonPayload},
		{"none short", append(header(0, 10), "abc"...), compression.ReasonLength},
		{"checksum", flip(good, len(compression.Magic)+1+2+1), compression.ReasonChecksum},
		{"zstd payload", flip(good, len(good)-3), compression.ReasonPayload},
		{"snappy payload", flip(goodSnappy, len(goodSnappy)-1), 0},
		{"gzip trailer", flip(goodGzip, len(goodGzip)-5), compression.ReasonPayload},
		{"longer than announced", append(header(0, 2), "abc"...), compression.ReasonLength},
	}
	for _, tc := range cases {
		_, err := compression.Decode(tc.in)
		var fe *compression.FrameError
		if !errors.As(err, &fe) || !errors.Is(err, compression.ErrCorrupt) {
			t.Errorf("%s: err = %v, want a *FrameError", tc.name, err)
			continue
		}
		if tc.want != 0 && fe.Reason != tc.want {
			t.Errorf("%s: reason %v (%v), want %v", tc.name, fe.Reason, err, tc.want)
		}
	}
}

func TestParseCodec(t *testing.T) {
	for _, c := range codecs {
		got, err := compression.ParseCodec(c.String())
		if err != nil || got != c {
			t.Fatalf("ParseCodec(%q) = %v, %v", c.String(), got, err)
		}
	}
	if _, err := compression.ParseCodec("lz4"); err == nil {
		t.Fatal("ParseCodec(lz4) succeeded")
	}
}

func TestEncodeAllocations(t *testing.T) {
	p := payloads()["text"][:40_000]
	buf := make([]byte, 0, 64<<10)
	for _, c := range []compression.Codec{compression.None, compression.Snappy, compression.Zstd} {
		_, _ = compression.Encode(buf[:0], p, c) // warm the pools
		allocs := testing.AllocsPerRun(20, func() {
			_, _ = compression.Encode(buf[:0], p, c)
		})
		if allocs > 0 {
			t.Errorf("%s: %.1f allocations per Encode into a large enough buffer", c, allocs)
		}
	}
}

// FuzzDecode checks that Decode never panics, passes unframed input through, and that whatever
// it accepts survives a round trip through Encode.
func FuzzDecode(f *testing.F) {
	for _, p := range payloads() {
		for _, c := range codecs {
			frame, _ := compression.Encode(nil, p[:min(len(p), 300)], c)
			f.Add(frame)
		}
	}
	f.Add([]byte(compression.Magic))
	f.Add([]byte("plain record"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := compression.Decode(in)
		if !compression.IsFramed(in) {
			if err != nil || !bytes.Equal(out, in) {
				t.Fatalf("unframed input changed: %v", err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, compression.ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if len(out) > compression.MaxDecodedSize {
			t.Fatalf("decoded %d bytes", len(out))
		}
		again, err := compression.Encode(nil, out, compression.Codec(in[4]))
		if err != nil {
			t.Fatal(err)
		}
		back, err := compression.Decode(again)
		if err != nil || !bytes.Equal(back, out) {
			t.Fatalf("re-encoded frame does not round trip: %v", err)
		}
	})
}
