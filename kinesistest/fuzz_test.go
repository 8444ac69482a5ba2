package kinesistest

import (
	"testing"
	"time"
)

// The server parses shard iterators, sequence numbers and hash keys that clients send back;
// none of them may panic, and what one accepts must be what the server would have issued.
func FuzzOpenIterator(f *testing.F) {
	srv := &Server{limits: Limits{}.resolved()}
	now := time.Unix(1767323045, 0)
	f.Add(string(srv.appendIterator(nil, iterator{stream: "s", streamID: 7, shard: 1, pos: 9, issued: now.UnixNano()})))
	f.Add("AAAAAAAAAAF")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		it, aerr := srv.openIterator(tok, now)
		if aerr != nil {
			return
		}
		if again := string(srv.appendIterator(nil, it)); again != tok {
			t.Fatalf("accepted %q, which re-encodes as %q", tok, again)
		}
	})
}

func FuzzParseSeq(f *testing.F) {
	f.Add(string(appendSeq(nil, 12, 3, 45)))
	f.Add("49")
	f.Fuzz(func(t *testing.T, s string) {
		id, num, idx, ok := parseSeq(s)
		if ok && string(appendSeq(nil, id, num, idx)) != s {
			t.Fatalf("accepted %q, which formats as %q", s, appendSeq(nil, id, num, idx))
		}
	})
}

func FuzzParseHashKey(f *testing.F) {
	f.Add("0")
	f.Add("340282366920938463463374607431768211455")
	f.Add("340282366920938463463374607431768211456")
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := parseHashKey(s)
		if ok && len(s) > 0 && (s[0] != '0' || s == "0") && h.String() != s {
			t.Fatalf("accepted %q as %s", s, h)
		}
	})
}
