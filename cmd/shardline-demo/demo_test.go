package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/shardline/shardline/agent"
)

// The generated lines go through the agent exactly as in the demo: the demo's agent.json, the
// agent's COMBINEDAPACHELOG parser, and the counter's parsing of the JSON it produces. No
// emulator is needed: a sink in the test takes the records.
func TestLogLinesParseWithTheAgentsCombinedApacheLogFormat(t *testing.T) {
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	g := newGenerator(42)
	start := time.Date(2025, 11, 23, 10, 30, 0, 0, time.UTC)
	want := map[uint64]request{}
	var data []byte
	for i := uint64(1); i <= n; i++ {
		at := start.Add(time.Duration(i) * 100 * time.Millisecond)
		var status int
		data, status = g.appendLine(data, i, at, i%3 == 0)
		want[i] = request{id: i, status: status, at: at}
	}
	if err := os.WriteFile(filepath.Join(logDir, "access.log"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	conf, err := agentConfig("http://127.0.0.1:1", region, filepath.Join(dir, "state"), logDir, "demo")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.ParseConfig(conf)
	if err != nil {
		t.Fatalf("the demo's agent.json: %v", err)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("the demo's agent.json has settings the agent does not use: %v", cfg.Warnings)
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	got := make(chan []byte, n)
	sink := agent.SinkFunc(func(_ context.Context, rec agent.Record, ack agent.Ack) error {
		got <- rec.Data
		ack.Done(nil)
		return nil
	})
	a, err := agent.New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()

	deadline := time.After(20 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case rec := <-got:
			req, err := parseRecord(rec)
			if err != nil {
				t.Fatalf("record %s: %v", rec, err)
			}
			w := want[req.id]
			// Apache's timestamps have whole seconds.
			if req.status != w.status || !req.at.Equal(w.at.Truncate(time.Second)) {
				t.Fatalf("request %d: got status %d at %v, wrote %d at %v", req.id, req.status, req.at, w.status, w.at)
			}
			delete(want, req.id)
		case <-deadline:
			t.Fatalf("only %d of %d records within 20 s; agent stats %+v", i, n, a.Stats())
		}
	}
	if s := a.Stats(); s.ParseErrors != 0 {
		t.Fatalf("the agent's COMBINEDAPACHELOG parser rejected %d generated lines", s.ParseErrors)
	}
	if len(want) != 0 {
		t.Fatalf("%d requests never arrived", len(want))
	}
}

func TestCounterCountsEachRequestOnceAndTheRest(t *testing.T) {
	c := newCounter()
	rec := func(id int, status int, minute int) []byte {
		return []byte(`{"host":"198.51.100.7","ident":null,"authuser":null,` +
			`"datetime":"23/Nov/2025:10:0` + strconv.Itoa(minute) + `:30 +0000",` +
			`"request":"GET /search?q=tent&rid=` + strconv.Itoa(id) + ` HTTP/1.1",` +
			`"response":"` + strconv.Itoa(status) + `","bytes":"512","referer":null,"agent":"curl/8.5.0"}`)
	}
	c.add(rec(1, 200, 1))
	c.add(rec(2, 404, 1))
	c.add(rec(3, 200, 2))
	c.add(rec(3, 200, 2)) // delivered twice
	c.add(rec(5, 503, 2))
	c.add([]byte("not json"))
	c.add(rec(9, 200, 2)) // never written

	s := c.snapshot()
	if s.processed != 7 || s.unique != 5 || s.duplicates != 1 || s.malformed != 1 {
		t.Fatalf("snapshot %+v, want 7 processed, 5 distinct, 1 duplicate, 1 malformed", s)
	}
	lost, ids, unknown := c.check(5)
	if lost != 1 || len(ids) != 1 || ids[0] != 4 || unknown != 1 {
		t.Fatalf("check(5) = lost %d %v, unknown %d; want lost 1 [4], unknown 1", lost, ids, unknown)
	}
	if c.counts.byStatus[200] != 3 || c.counts.byStatus[404] != 1 || c.counts.byStatus[503] != 1 {
		t.Fatalf("per status %v: the duplicate must count once", c.counts.byStatus)
	}
	m2 := time.Date(2025, 11, 23, 10, 2, 0, 0, time.UTC)
	if row := c.counts.byMinute[m2]; row == nil || *row != [statusClasses]int64{2, 0, 0, 1} {
		t.Fatalf("minute 10:02: %v, want 2xx 2, 5xx 1", row)
	}
}

func TestRequestID(t *testing.T) {
	for line, want := range map[string]uint64{
		"GET /?rid=17 HTTP/1.1":                17,
		"GET /search?q=tent&rid=4711 HTTP/1.1": 4711,
		"GET /search?grid=5 HTTP/1.1":          0,
		"GET / HTTP/1.1":                       0,
		"GET /?rid= HTTP/1.1":                  0,
	} {
		got, ok := requestID(line)
		if got != want || ok != (want != 0) {
			t.Errorf("requestID(%q) = %d, %v; want %d", line, got, ok, want)
		}
	}
}

// The writer rotates three ways during a short run; every line must be in exactly one file,
// and copytruncate must not leave a hole of zero bytes in the live file.
func TestWriterRotationKeepsEveryLineOnce(t *testing.T) {
	dir := t.TempDir()
	var events []string
	w, err := newLogWriter(logPlan{
		dir:       dir,
		duration:  1500 * time.Millisecond,
		rate:      4000,
		window:    5 * time.Minute,
		start:     time.Date(2025, 11, 23, 10, 0, 0, 0, time.UTC),
		rotations: []rotation{{at: 0.25}, {at: 0.5, copy: true}, {at: 0.75}},
		seed:      7,
	}, func(s string) { events = append(events, s) })
	if err != nil {
		t.Fatal(err)
	}
	if err := w.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := w.out
	if out.rotated != 2 || out.copied != 1 || len(out.files) != 4 || len(events) != 3 {
		t.Fatalf("rotations: %d renamed, %d copied, files %v, events %q", out.rotated, out.copied, out.files, events)
	}
	if out.lines < 3000 {
		t.Fatalf("only %d lines written in 1.5 s at 4000/s", out.lines)
	}
	rid := regexp.MustCompile(`[?&]rid=(\d+) `)
	seen := map[uint64]int{}
	for _, f := range out.files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.IndexByte(b, 0) >= 0 {
			t.Fatalf("%s holds zero bytes: the writer wrote at its old offset after the truncation", f)
		}
		for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			m := rid.FindSubmatch(line)
			if m == nil {
				t.Fatalf("%s: line without a request id: %s", f, line)
			}
			id, _ := strconv.ParseUint(string(m[1]), 10, 64)
			seen[id]++
		}
	}
	for id := uint64(1); id <= out.lines; id++ {
		if seen[id] != 1 {
			t.Fatalf("request %d is in the files %d times", id, seen[id])
		}
	}
	if len(seen) != int(out.lines) {
		t.Fatalf("%d distinct ids in the files, %d written", len(seen), out.lines)
	}
	var total int64
	for _, n := range out.counts.byStatus {
		total += n
	}
	if total != int64(out.lines) {
		t.Fatalf("the writer's tally counts %d requests, it wrote %d", total, out.lines)
	}
}
