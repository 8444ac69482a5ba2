package producer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// quietLogger keeps expected warnings out of test output.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// results collects callbacks and fails the test on a second result for one record.
type results struct {
	t  testing.TB
	mu sync.Mutex
	m  map[*Record]Result
	wg sync.WaitGroup
}

func newResults(t testing.TB) *results { return &results{t: t, m: map[*Record]Result{}} }

func (r *results) expect(n int) { r.wg.Add(n) }

func (r *results) done(rec *Record, res Result) {
	r.mu.Lock()
	if _, dup := r.m[rec]; dup {
		r.mu.Unlock()
		r.t.Errorf("second result for record %q: %+v", rec.Data, res)
		return
	}
	r.m[rec] = res
	r.mu.Unlock()
	r.wg.Done()
}

// wait waits for every expected result or fails after d.
func (r *results) wait(d time.Duration) {
	r.t.Helper()
	ch := make(chan struct{})
	go func() { r.wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
		r.mu.Lock()
		n := len(r.m)
		r.mu.Unlock()
		r.t.Fatalf("only %d results after %v", n, d)
	}
}

func (r *results) get(rec *Record) (Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.m[rec]
	return res, ok
}

// makeRecords builds n records over keys partition keys; each record's data names its key
// and its position among the key's records, so order can be checked after reading back.
func makeRecords(n, keys, size int) []Record {
	recs := make([]Record, n)
	count := make([]int, keys)
	for i := range recs {
		k := i % keys
		pk := fmt.Sprintf("key-%d", k)
		head := fmt.Sprintf("%s#%07d#", pk, count[k])
		count[k]++
		data := head
		if pad := size - len(head); pad > 0 {
			data += strings.Repeat("x", pad)
		}
		recs[i] = Record{PartitionKey: pk, Data: []byte(data)}
	}
	return recs
}

// Options of checkStream.
const (
	dupsOK    = 1 << iota // allow duplicates (retries whose first attempt was written after all)
	unordered             // do not check per-key order (partial failures reorder)
)

// checkStream checks that every record in want was read back with its data intact, and
// that, per partition key, records appear in the order they were put. Duplicates are skipped
// when checking order, which is judged on first appearances.
func checkStream(t testing.TB, got []userRecord, want []Record, opts int) {
	t.Helper()
	wantSet := make(map[string]bool, len(want))
	for _, r := range want {
		wantSet[string(r.Data)] = true
	}
	seen := make(map[string]bool, len(got))
	last := map[string]int{}
	dups := 0
	for _, u := range got {
		if !wantSet[u.data] {
			t.Fatalf("read a record that was not put: %.60q", u.data)
		}
		if seen[u.data] {
			dups++
			continue
		}
		seen[u.data] = true
		parts := strings.SplitN(u.data, "#", 3)
		if parts[0] != u.pk {
			t.Fatalf("record %.40q read under partition key %q", u.data, u.pk)
		}
		n, _ := strconv.Atoi(parts[1])
		if prev, ok := last[u.pk]; ok && n < prev && opts&unordered == 0 {
			t.Fatalf("key %s: record %d read after record %d", u.pk, n, prev)
		}
		last[u.pk] = n
	}
	if dups > 0 && opts&dupsOK == 0 {
		t.Fatalf("%d duplicate records", dups)
	}
	missing := 0
	for _, r := range want {
		if !seen[string(r.Data)] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d records missing from the stream", missing, len(want))
	}
}

// checkNoLeak fails when goroutines started during the test outlive it.
func checkNoLeak(t testing.TB) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		var n int
		for range 100 {
			n = runtime.NumGoroutine()
			if n <= before {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines before, %d after Close:\n%s", before, n, buf)
	}
}

func closeProducer(t testing.TB, p *Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
