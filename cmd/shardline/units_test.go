package main

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestParseFrom(t *testing.T) {
	now := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	for in, want := range map[string]startPos{
		"trim-horizon":                {kind: types.ShardIteratorTypeTrimHorizon},
		"TRIM_HORIZON":                {kind: types.ShardIteratorTypeTrimHorizon},
		"latest":                      {kind: types.ShardIteratorTypeLatest},
		"2025-01-02T10:00:00Z":        {kind: types.ShardIteratorTypeAtTimestamp, at: time.Date(2025, 1, 2, 10, 0, 0, 0, time.UTC)},
		"2025-01-02T10:00:00.5+01:00": {kind: types.ShardIteratorTypeAtTimestamp, at: time.Date(2025, 1, 2, 9, 0, 0, 5e8, time.UTC)},
		"90m":                         {kind: types.ShardIteratorTypeAtTimestamp, at: now.Add(-90 * time.Minute)},
	} {
		got, err := parseFrom(in, now)
		if err != nil || got.kind != want.kind || !got.at.Equal(want.at) {
			t.Errorf("parseFrom(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-5m", "2025-01-32"} {
		if _, err := parseFrom(bad, now); err == nil {
			t.Errorf("parseFrom(%q) succeeded", bad)
		}
	}
}

func TestReadLine(t *testing.T) {
	in := "short\n\n" + strings.Repeat("x", 100) + "\nlast"
	br := bufio.NewReaderSize(strings.NewReader(in), 16) // lines span several buffers
	type got struct {
		line string
		nil  bool
		size int
		err  error
	}
	var all []got
	for {
		line, size, err := readLine(br, 50)
		if err == io.EOF && size == 0 {
			break
		}
		all = append(all, got{string(line), line == nil, size, err})
		if err != nil {
			break
		}
	}
	want := []got{{"short", false, 5, nil}, {"", false, 0, nil}, {"", true, 100, nil}, {"last", false, 4, io.EOF}}
	if len(all) != len(want) {
		t.Fatalf("readLine gave %+v", all)
	}
	for i := range want {
		if all[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, all[i], want[i])
		}
	}
}

func TestJSONKey(t *testing.T) {
	f := jsonKey([]string{"a", "b"})
	for line, want := range map[string]string{
		`{"a":{"b":"x"}}`:         "x",
		`{"a":{"b":12.50}}`:       "12.50",
		`{"a":{"b":false}} `:      "false",
		`{"a":{"b":"é ü"},"c":1}`: "é ü",
	} {
		if got, err := f([]byte(line)); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", line, got, err, want)
		}
	}
	for _, line := range []string{`[1]`, `{"a":1}`, `{"a":{"c":1}}`, `{"a":{"b":null}}`, `{"a":{"b":[1]}}`, `nope`} {
		if got, err := f([]byte(line)); err == nil {
			t.Errorf("%s: key %q, want an error", line, got)
		}
	}
}

func TestSmallHelpers(t *testing.T) {
	for in, want := range map[string]string{"3": "shardId-000000000003", "000012": "shardId-000000000012", "shardId-000000000001": "shardId-000000000001", "x": "x"} {
		if got := normalizeShardID(in); got != want {
			t.Errorf("normalizeShardID(%q) = %q", in, got)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q", n, got)
		}
	}
	for n, want := range map[int64]string{12: "12 B", 2048: "2.0 KiB", 5 << 20: "5.0 MiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q", n, got)
		}
	}
	if got := pluralForm(1, "retry", "retries") + ", " + pluralForm(2, "retry", "retries") + ", " + plural(1000, "record"); got != "1 retry, 2 retries, 1,000 records" {
		t.Errorf("plural: %q", got)
	}
	if got := truncateRunes("⠋ waiting", 4); got != "⠋ wa" {
		t.Errorf("truncateRunes = %q", got)
	}
	if got := roundDuration(1234 * time.Millisecond); got != "1.2s" {
		t.Errorf("roundDuration = %q", got)
	}
}

// TestLiveLine checks the terminal line: drawn at once, redrawn in place, messages printed
// above it, and erased by Stop.
func TestLiveLine(t *testing.T) {
	var buf syncBuffer
	l := startLiveLine(&buf, 10*time.Millisecond, func(time.Duration) string { return "status" })
	time.Sleep(50 * time.Millisecond)
	l.Println("a message")
	l.Stop()
	l.Stop()
	out := buf.String()
	if !strings.HasPrefix(out, clearLine+"⠋ status") || !strings.Contains(out, clearLine+"a message\n") || !strings.HasSuffix(out, clearLine) {
		t.Errorf("live line output %q", out)
	}
	if strings.Count(out, "status") < 3 {
		t.Errorf("line redrawn %d times in 50ms at 10ms", strings.Count(out, "status"))
	}
	after := buf.String()
	time.Sleep(30 * time.Millisecond)
	if buf.String() != after {
		t.Error("line redrawn after Stop")
	}
	var plain bytes.Buffer
	if isTerminal(&plain) {
		t.Error("a buffer is not a terminal")
	}
}
