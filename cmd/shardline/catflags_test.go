package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/aggregation"
)

func TestParseDelimiter(t *testing.T) {
	for in, want := range map[string]string{
		``:           "",
		`\n`:         "\n",
		`\r\n`:       "\r\n",
		`\t`:         "\t",
		`\0`:         "\x00",
		`\\`:         `\`,
		`\x1e`:       "\x1e",
		`\xFF`:       "\xff",
		`--\n`:       "--\n",
		`rec:\t\x00`: "rec:\t\x00",
	} {
		got, err := parseDelimiter(in)
		if err != nil || string(got) != want {
			t.Errorf("parseDelimiter(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		`\`:    `lone \`,
		`a\q`:  `unknown escape \q`,
		`\x1`:  `\x needs two hex digits`,
		`\xzz`: `\xzz: want two hex digits`,
		`\x+1`: `\x+1: want two hex digits`,
	} {
		if _, err := parseDelimiter(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("parseDelimiter(%q): error %v, want one containing %q", in, err, msg)
		}
	}
}

func TestParseFromTimes(t *testing.T) {
	now := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	at := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	for in, want := range map[string]time.Time{
		"2025-01-02":                    at(2025, 1, 2, 0, 0, 0, 0),
		"2025-01-02T10:00:00":           at(2025, 1, 2, 10, 0, 0, 0),
		"2025-01-02 10:00:00.25":        at(2025, 1, 2, 10, 0, 0, 25e7),
		"1735830245":                    at(2025, 1, 2, 15, 4, 5, 0),
		"1735830245.5":                  at(2025, 1, 2, 15, 4, 5, 5e8),
		"1735830245123":                 at(2025, 1, 2, 15, 4, 5, 123e6),
		"1735830245123.5":               at(2025, 1, 2, 15, 4, 5, 1235e5),
		"0":                             time.Unix(0, 0).UTC(),
		"2025-01-02T10:00:00.5+01:00":   at(2025, 1, 2, 9, 0, 0, 5e8),
		"2025-01-02T10:00:00.000000001": at(2025, 1, 2, 10, 0, 0, 1),
	} {
		got, err := parseFrom(in, now)
		if err != nil || got.kind != types.ShardIteratorTypeAtTimestamp || !got.at.Equal(want) {
			t.Errorf("parseFrom(%q) = %+v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"1735830245.", ".5", "-1735830245", "17358302451234567", "2025-13-02", "2025-01-02T25:00:00", "1e9", "0x10"} {
		if _, err := parseFrom(bad, now); err == nil {
			t.Errorf("parseFrom(%q) succeeded", bad)
		}
	}
}

// FuzzParseDelimiter checks that any --delimiter value is either refused or undone into at
// most as many bytes as it has, and that text without a backslash is taken as it is.
func FuzzParseDelimiter(f *testing.F) {
	for _, s := range []string{``, `\n`, `\0`, `\x1e`, `\\`, `\`, `\x`, `\x1`, `a\tb`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseDelimiter(s)
		if err != nil {
			return
		}
		if len(got) > len(s) {
			t.Fatalf("parseDelimiter(%q) = %q, longer than its input", s, got)
		}
		if !strings.Contains(s, `\`) && string(got) != s {
			t.Fatalf("parseDelimiter(%q) = %q, want it unchanged", s, got)
		}
	})
}

// FuzzParseFrom checks that any --from value is refused with a usage error or gives a start
// position, and that epoch seconds round-trip.
func FuzzParseFrom(f *testing.F) {
	for _, s := range []string{"trim-horizon", "latest", "2025-01-02", "2025-01-02 10:00:00", "1735830245.5", "1735830245123", "15m", "2025-01-02T10:00:00Z"} {
		f.Add(s, int64(1735830245))
	}
	now := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string, secs int64) {
		pos, err := parseFrom(s, now)
		if err != nil {
			if _, ok := err.(*usageError); !ok {
				t.Fatalf("parseFrom(%q): %T is not a usage error", s, err)
			}
		} else if pos.kind == "" {
			t.Fatalf("parseFrom(%q) gave no iterator type", s)
		}
		if secs < 0 || secs > 99999999999 { // up to 11 digits are seconds
			return
		}
		pos, err = parseFrom(strconv.FormatInt(secs, 10), now)
		if err != nil || !pos.at.Equal(time.Unix(secs, 0)) {
			t.Fatalf("epoch %d: %+v, %v", secs, pos, err)
		}
	})
}

// TestBinaryCatDelimiters runs the built command on records that end in a newline, as the
// Kinesis Agent's do (its LogInputStreamParser keeps each line's newline), and others that do
// not: by default every record ends in exactly one newline, and --delimiter is written after
// every record as given.
func TestBinaryCatDelimiters(t *testing.T) {
	ep := awsEnv(t)
	name := newStream(t, ep, 1)
	before := time.Now().Add(-2 * time.Second)
	putRaw(t, name,
		aggregation.KinesisRecord{PartitionKey: "k", Data: []byte("agent line\n")},
		aggregation.KinesisRecord{PartitionKey: "k", Data: []byte("no newline")},
		aggregation.KinesisRecord{PartitionKey: "k", Data: []byte("crlf\r\n")},
	)
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "agent line\nno newline\ncrlf\r\n"},
		{[]string{"--delimiter", `\n`}, "agent line\n\nno newline\ncrlf\r\n\n"},
		{[]string{"-D", `\0`}, "agent line\n\x00no newline\x00crlf\r\n\x00"},
		{[]string{"--delimiter", ""}, "agent line\nno newlinecrlf\r\n"},
		{[]string{"--delimiter", `\x1e`, "--base64"}, "YWdlbnQgbGluZQo=\x1ebm8gbmV3bGluZQ==\x1eY3JsZg0K\x1e"},
		{[]string{"--base64"}, "YWdlbnQgbGluZQo=\nbm8gbmV3bGluZQ==\nY3JsZg0K\n"},
		// --from as epoch seconds with a fraction and as a plain UTC date.
		{[]string{"--from", fmt.Sprintf("%d.%03d", before.Unix(), before.Nanosecond()/1e6)}, "agent line\nno newline\ncrlf\r\n"},
		{[]string{"--from", before.UTC().AddDate(0, 0, -1).Format("2006-01-02")}, "agent line\nno newline\ncrlf\r\n"},
	} {
		r := runBinary(ctx, t, bin, "", append([]string{"--endpoint", ep, "cat", name}, c.args...)...)
		if r.code != 0 || r.stdout != c.want {
			t.Errorf("cat %q: stdout %q, want %q\n%s", c.args, r.stdout, c.want, r)
		}
	}
	r := runBinary(ctx, t, bin, "", "--endpoint", ep, "cat", name, "--json", "-D", ",")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--delimiter cannot be used with --json") {
		t.Errorf("cat --json -D: %s", r)
	}
	r = runBinary(ctx, t, bin, "", "--endpoint", ep, "cat", name, "-D", `\q`)
	if r.code != exitUsage || !strings.Contains(r.stderr, `--delimiter "\\q": unknown escape \q`) {
		t.Errorf("cat -D '\\q': %s", r)
	}
}
