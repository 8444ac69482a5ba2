package consumer

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/kinesistest"
)

// ktEnv is a stream on an in-process kinesistest server, which enforces the service's read
// limits, iterator lifetime and fan-out session rules that kinesis-mock lacks. Leases live in
// memory stores, one per application, so the tests need no emulator process.
type ktEnv struct {
	srv    *kinesistest.Server
	clock  *kinesistest.ManualClock // nil when the server runs on the system clock
	stream string
}

// newKTEnv starts a server with opts and creates a stream of the given shards on it. A
// ManualClock in opts.Clock is moved on with real time by a background ticker (so that token
// buckets refill and lease timings agree), and the test jumps it forward with Advance.
func newKTEnv(t testing.TB, shards int32, opts kinesistest.Options) *ktEnv {
	t.Helper()
	e := &ktEnv{stream: "kt-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())}
	if mc, ok := opts.Clock.(*kinesistest.ManualClock); ok {
		e.clock = mc
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			tk := time.NewTicker(5 * time.Millisecond)
			defer tk.Stop()
			last := time.Now()
			for {
				select {
				case <-stop:
					return
				case now := <-tk.C:
					mc.Advance(now.Sub(last))
					last = now
				}
			}
		}()
		t.Cleanup(func() { close(stop); <-done })
	}
	e.srv = kinesistest.NewServer(opts)
	t.Cleanup(e.srv.Close)
	if _, err := e.srv.Client().CreateStream(t.Context(), &kinesis.CreateStreamInput{
		StreamName: aws.String(e.stream), ShardCount: aws.Int32(shards),
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

// client returns a client of the server whose calls c counts (c may be nil).
func (e *ktEnv) client(c *callCounter) *kinesis.Client {
	if c == nil {
		return e.srv.Client()
	}
	return e.srv.Client(func(o *kinesis.Options) {
		base := o.HTTPClient.(*http.Client)
		o.HTTPClient = &http.Client{Transport: &kinesisCallTransport{base: base.Transport, c: c}}
	})
}

// config is a worker configuration with test timings, reading through kc and keeping its
// leases in store (one store per application).
func (e *ktEnv) config(t testing.TB, kc *kinesis.Client, store checkpoint.Store, app, id string, proc ProcessorFactory) Config {
	return Config{
		StreamName:           e.stream,
		ApplicationName:      app,
		WorkerID:             id,
		Processor:            proc,
		Kinesis:              kc,
		LeaseStore:           store,
		InitialPosition:      TrimHorizon,
		FailoverTime:         emuFailover,
		ShardSyncInterval:    time.Second,
		LeaseCleanupDelay:    time.Second,
		HandoffTimeout:       6 * time.Second,
		IdleTimeBetweenReads: 100 * time.Millisecond,
		MinTimeBetweenReads:  50 * time.Millisecond,
		ShutdownTimeout:      15 * time.Second,
		Logger:               testLogger(t),
	}
}

// callCounter counts the calls a client made, per operation, and the error codes the server
// answered them with.
type callCounter struct {
	mu     sync.Mutex
	calls  map[string]int
	errors map[string]int // "Operation ErrorCode" -> answers
}

func newCallCounter() *callCounter {
	return &callCounter{calls: map[string]int{}, errors: map[string]int{}}
}

func (c *callCounter) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

func (c *callCounter) errs(op, code string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errors[op+" "+code]
}

// kinesisCallTransport counts the Kinesis calls, and the error codes of refused ones, that
// reach the HTTP layer.
type kinesisCallTransport struct {
	base http.RoundTripper
	c    *callCounter
}

func (t *kinesisCallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	op := strings.TrimPrefix(req.Header.Get("X-Amz-Target"), "Kinesis_20131202.")
	t.c.mu.Lock()
	t.c.calls[op]++
	t.c.mu.Unlock()
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	// Error answers are small JSON documents {"__type": code, ...}: read the code and hand
	// the body on unchanged.
	body, rerr := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr == nil {
		var doc struct {
			Type string `json:"__type"`
		}
		if json.Unmarshal(body, &doc) == nil {
			code := doc.Type
			if i := strings.LastIndexByte(code, '#'); i >= 0 {
				code = code[i+1:]
			}
			t.c.mu.Lock()
			t.c.errors[op+" "+code]++
			t.c.mu.Unlock()
		}
	}
	return resp, err
}
