package producer_test

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// leakCheck counts goroutines now and returns a function that fails the test if more are
// running later, after a short settle. closeIdle, if set, closes the HTTP client's idle
// keep-alive connections first: their goroutines belong to the transport, not the producer.
func leakCheck(t *testing.T, closeIdle func()) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		var n int
		for range 150 {
			if closeIdle != nil {
				closeIdle()
			}
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
