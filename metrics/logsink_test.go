package metrics

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the sink's goroutine and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogSinkLogsIntervalAggregates(t *testing.T) {
	checkNoLeak(t)
	reg := NewRegistry()
	stream := Dim(DimStreamName, "orders")
	reg.Counter(RecordsProcessed, UnitCount, LevelSummary, stream).Add(12)
	reg.Gauge(MillisBehindLatest, UnitMilliseconds, LevelSummary, stream).Set(250)
	d := reg.Distribution(ProcessingTime, UnitMilliseconds, LevelSummary, stream)
	for i := 1; i <= 100; i++ {
		d.Observe(float64(i))
	}
	reg.Counter(UserRecordsReceived, UnitCount, LevelDetailed).Add(1) // above the sink's level

	var buf syncBuffer
	sink := NewLogSink(reg, newTestLogger(&buf), time.Hour, LevelSummary)
	sink.Flush(t.Context())
	recs := buf.records(t)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3 (the detailed series is filtered): %v", len(recs), recs)
	}
	byName := map[string]map[string]any{}
	for _, r := range recs {
		if r["msg"] != "metric" || r["level"] != "INFO" {
			t.Errorf("record %v", r)
		}
		if dims, _ := r["dims"].(map[string]any); dims["StreamName"] != "orders" {
			t.Errorf("record %v lacks its dimensions", r)
		}
		byName[r["name"].(string)] = r
	}
	if c := byName[RecordsProcessed]; c["delta"] != 12.0 || c["total"] != 12.0 || c["unit"] != "Count" {
		t.Errorf("counter record %v", c)
	}
	if g := byName[MillisBehindLatest]; g["value"] != 250.0 || g["samples"] != 1.0 {
		t.Errorf("gauge record %v", g)
	}
	p := byName[ProcessingTime]
	if p["count"] != 100.0 || p["sum"] != 5050.0 || p["min"] != 1.0 || p["max"] != 100.0 {
		t.Errorf("distribution record %v", p)
	}
	if p50 := p["p50"].(float64); p50 < 50*(1-1.0/64) || p50 > 50*(1+1.0/64) {
		t.Errorf("p50 = %g, want about 50", p50)
	}

	// Nothing new: only the gauge, which still has a value, is logged. Close logs the last
	// interval once.
	reg.Counter(RecordsProcessed, UnitCount, LevelSummary, stream).Add(3)
	if err := sink.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	recs = buf.records(t)[3:]
	if len(recs) != 2 {
		t.Fatalf("Close logged %d records, want 2: %v", len(recs), recs)
	}
	for _, r := range recs {
		if r["name"] == RecordsProcessed && (r["delta"] != 3.0 || r["total"] != 15.0) {
			t.Errorf("second interval counter %v", r)
		}
	}
}

func TestLogSinkRunsOnItsInterval(t *testing.T) {
	checkNoLeak(t)
	reg := NewRegistry()
	c := reg.Counter(LinesRead, UnitCount, LevelSummary, Dim(DimFile, "/var/log/app.log"))
	var buf syncBuffer
	sink := NewLogSink(reg, newTestLogger(&buf), 10*time.Millisecond, 0)
	defer sink.Close(t.Context())
	c.Add(1)
	deadline := time.Now().Add(5 * time.Second)
	for len(buf.records(t)) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if recs := buf.records(t); len(recs) != 1 || recs[0]["name"] != LinesRead {
		t.Fatalf("records %v, want one LinesRead record", recs)
	}
}

func TestLogSinkDisabled(t *testing.T) {
	checkNoLeak(t)
	var buf syncBuffer
	reg := NewRegistry()
	reg.Counter(LinesRead, UnitCount, LevelSummary).Add(1)
	for _, s := range []*LogSink{NewLogSink(reg, newTestLogger(&buf), time.Millisecond, LevelNone), NewLogSink(nil, newTestLogger(&buf), time.Millisecond, LevelDetailed)} {
		s.Flush(t.Context())
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(buf.records(t)); n != 0 {
		t.Fatalf("disabled sinks logged %d records", n)
	}
}
