package main

import (
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/shardline/shardline/internal/testenv"
)

var linesReadRe = regexp.MustCompile(`msg=progress .*\blinesRead=(\d+)`)

// linesRead is the agent's count of lines read, from its latest progress line.
func (p *agentProc) linesRead() int {
	m := linesReadRe.FindAllStringSubmatch(p.out.String(), -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// waitLinesRead waits until the agent reports at least n lines read.
func (p *agentProc) waitLinesRead(timeout time.Duration, n int, what string) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for p.linesRead() < n {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %d lines read after %v, want %d", what, p.linesRead(), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tally compares what was delivered with the lines written: lines missing (lost), copies
// beyond the first (duplicated), and records that are no line written (corrupted: a line
// split in two, binary data, a line with garbage).
type tally struct {
	written, delivered, lost, duplicated, corrupted int
	corrupt                                         []string
}

func count(written []string, records []string) tally {
	want := make(map[string]int, len(written))
	for _, l := range written {
		want[l] = 0
	}
	tl := tally{written: len(written), delivered: len(records)}
	for _, r := range records {
		n, ok := want[r]
		if !ok {
			tl.corrupted++
			if len(tl.corrupt) < 5 {
				tl.corrupt = append(tl.corrupt, r)
			}
			continue
		}
		if n > 0 {
			tl.duplicated++
		}
		want[r] = n + 1
	}
	for _, n := range want {
		if n == 0 {
			tl.lost++
		}
	}
	return tl
}

func (tl tally) String() string {
	return fmt.Sprintf("%d lines written, %d records delivered: %d lost, %d duplicated, %d corrupted %q",
		tl.written, tl.delivered, tl.lost, tl.duplicated, tl.corrupted, tl.corrupt)
}

func (tl tally) check(t *testing.T) {
	t.Helper()
	t.Log(tl)
	if tl.lost > 0 || tl.duplicated > 0 || tl.corrupted > 0 {
		t.Errorf("delivery not exact: %v", tl)
	}
}

// TestEndToEndInPlaceTruncation: a log truncated to zero and rewritten in place, with no
// rotation, again and again, with the default maxBufferAgeMillis (60 s: the producer holds
// records that long for their batch). Each round's lines are read before the file is
// truncated again, as the agent's progress line shows, and every one of them reaches the stream
// exactly once, though none of the earlier rounds' records is delivered before the stop.
func TestEndToEndInPlaceTruncation(t *testing.T) {
	kc := testenv.Kinesis(t, nil, func(o *kinesis.Options) { o.RetryMaxAttempts = 5 })
	endpoint := testenv.KinesisEndpoint(t)
	stream := testenv.CreateStream(t, kc, 1)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "agent.json")
	writeJSON(t, conf, map[string]any{
		"kinesis.endpoint":       endpoint,
		"cloudwatch.emitMetrics": false,
		"flows": []any{map[string]any{
			"filePattern":     filepath.Join(logs, "app.log"),
			"kinesisStream":   stream,
			"initialPosition": "START_OF_FILE",
		}},
	})
	path := filepath.Join(logs, "app.log")
	const rounds, perRound = 6, 200
	var written []string
	writeRound := func(r int) {
		var b strings.Builder
		for i := 1; i <= perRound; i++ {
			l := fmt.Sprintf("round %d line %04d %s\n", r, i, strings.Repeat("t", i%50))
			written = append(written, l)
			b.WriteString(l)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil { // O_TRUNC: in place
			t.Fatal(err)
		}
	}
	writeRound(1)
	proc := startAgent(t, agentEnv(t), "-config", conf, "-state-dir", filepath.Join(dir, "state"), "-stats-interval", "100ms")
	for r := 1; r <= rounds; r++ {
		proc.waitLinesRead(20*time.Second, r*perRound, fmt.Sprintf("round %d", r))
		if r < rounds {
			writeRound(r + 1)
		}
	}
	proc.stopGracefully(60 * time.Second)
	rd := newStreamReader(t, kc, stream)
	rd.poll(t)
	count(written, rd.all()).check(t)
}

// TestEndToEndCompressedRotations: logrotate with compress, and a pattern ("app.log*") that
// matches the compressed rotations too. The rotated file is compressed once its lines were read
// (as delaycompress would arrange); the .gz files are never sent, so every record in the stream
// is a line written, once.
func TestEndToEndCompressedRotations(t *testing.T) {
	kc := testenv.Kinesis(t, nil, func(o *kinesis.Options) { o.RetryMaxAttempts = 5 })
	endpoint := testenv.KinesisEndpoint(t)
	stream := testenv.CreateStream(t, kc, 1)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "agent.json")
	writeJSON(t, conf, map[string]any{
		"kinesis.endpoint":       endpoint,
		"cloudwatch.emitMetrics": false,
		"flows": []any{map[string]any{
			"filePattern":          filepath.Join(logs, "app.log*"),
			"kinesisStream":        stream,
			"initialPosition":      "START_OF_FILE",
			"maxBufferAgeMillis":   1000,
			"rescanIntervalMillis": 200,
		}},
	})
	path := filepath.Join(logs, "app.log")
	const rounds, perRound = 4, 300
	var written []string
	write := func(r int) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= perRound; i++ {
			// Random digits, so the compressed file is large and has newline bytes in it.
			l := fmt.Sprintf("rotation %d line %04d %016x%016x\n", r, i, rand.Uint64(), rand.Uint64())
			written = append(written, l)
			f.WriteString(l)
		}
		f.Close()
	}
	compress := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(dst)
		if err != nil {
			t.Fatal(err)
		}
		zw := gzip.NewWriter(f)
		zw.Write(b)
		zw.Close()
		f.Close()
		os.Remove(src)
	}
	write(1)
	proc := startAgent(t, agentEnv(t), "-config", conf, "-state-dir", filepath.Join(dir, "state"), "-stats-interval", "100ms")
	for r := 1; r <= rounds; r++ {
		proc.waitLinesRead(20*time.Second, r*perRound, fmt.Sprintf("rotation %d", r))
		if r == rounds {
			break
		}
		// logrotate: rename, create, and compress the rotated file.
		rotated := fmt.Sprintf("%s.%d", path, r)
		if err := os.Rename(path, rotated); err != nil {
			t.Fatal(err)
		}
		write(r + 1)
		compress(rotated, rotated+".gz")
	}
	// Rescans that would find the .gz files, and longer than a short new file is given to
	// fill its fingerprint.
	time.Sleep(3 * time.Second)
	proc.stopGracefully(60 * time.Second)
	rd := newStreamReader(t, kc, stream)
	rd.poll(t)
	count(written, rd.all()).check(t)
}

// TestEndToEndSlowLines: a writer that stops mid-line for longer than the old 5 s partial-line
// timeout, and a block-buffered writer whose 4 KiB blocks end mid-line with pauses between
// them. With the default settings every line reaches the stream whole, in one record.
func TestEndToEndSlowLines(t *testing.T) {
	kc := testenv.Kinesis(t, nil, func(o *kinesis.Options) { o.RetryMaxAttempts = 5 })
	endpoint := testenv.KinesisEndpoint(t)
	stream := testenv.CreateStream(t, kc, 1)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "agent.json")
	writeJSON(t, conf, map[string]any{
		"kinesis.endpoint":       endpoint,
		"cloudwatch.emitMetrics": false,
		"flows": []any{map[string]any{
			"filePattern":        filepath.Join(logs, "*.log"),
			"kinesisStream":      stream,
			"initialPosition":    "START_OF_FILE",
			"maxBufferAgeMillis": 1000,
		}},
	})
	var written []string
	var slow, blocks strings.Builder
	for i := 1; i <= 100; i++ {
		l := fmt.Sprintf("slow writer line %04d %s\n", i, strings.Repeat("s", i%30))
		written = append(written, l)
		slow.WriteString(l)
	}
	for i := 1; blocks.Len() < 3*4096; i++ {
		l := fmt.Sprintf("buffered writer line %04d %s\n", i, strings.Repeat("b", i%70))
		written = append(written, l)
		blocks.WriteString(l)
	}
	slowText, blockText := slow.String(), blocks.String()
	if blockText[4095] == '\n' || blockText[2*4096-1] == '\n' {
		t.Fatal("the blocks should end mid-line")
	}
	half := len(slowText) - 10 // the last line stops mid-way
	appendLines := func(name, s string) {
		f, err := os.OpenFile(filepath.Join(logs, name), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	appendLines("slow.log", slowText[:half])
	appendLines("buffered.log", blockText[:4096])
	proc := startAgent(t, agentEnv(t), "-config", conf, "-state-dir", filepath.Join(dir, "state"), "-stats-interval", "100ms")
	pause := 6500 * time.Millisecond // longer than the 5 s after which a partial line used to be sent
	time.Sleep(pause)
	appendLines("buffered.log", blockText[4096:2*4096])
	appendLines("slow.log", slowText[half:])
	time.Sleep(pause)
	appendLines("buffered.log", blockText[2*4096:])
	proc.waitLinesRead(20*time.Second, len(written), "every line")
	proc.stopGracefully(60 * time.Second)
	rd := newStreamReader(t, kc, stream)
	rd.poll(t)
	count(written, rd.all()).check(t)
}
