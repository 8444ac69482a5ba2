package fanout_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/cenkalti/backoff/v4"
	"github.com/shardline/shardline/internal/fanout"
	"github.com/shardline/shardline/internal/testenv"
	"github.com/shardline/shardline/kinesistest"
)

// fixture is a stream on kinesis-mock with a registered consumer.
type fixture struct {
	kc          *kinesis.Client
	stream      string
	streamARN   string
	consumerARN string
	transport   *http.Transport
}

// newClient returns a Kinesis client for kinesis-mock whose SubscribeToShard streams pass
// through EmulatorTransport, with wrap (may be nil) between it and a transport of the test's
// own, so that its idle connections can be closed when the test ends.
func newClient(t *testing.T, wrap func(http.RoundTripper) http.RoundTripper) (*kinesis.Client, *http.Transport) {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	var rt http.RoundTripper = tr
	if wrap != nil {
		rt = wrap(rt)
	}
	return testenv.Kinesis(t, testenv.HTTPClient(fanout.EmulatorTransport(rt))), tr
}

// setup creates a stream with the given shards on kinesis-mock and registers a consumer on
// it.
func setup(t *testing.T, shards int32, wrap func(http.RoundTripper) http.RoundTripper) *fixture {
	t.Helper()
	kc, tr := newClient(t, wrap)
	return setupOn(t, &fixture{kc: kc, transport: tr}, shards)
}

// setupKinesistest is setup on an in-process kinesistest server started with opts, which it
// returns for its fault rules.
func setupKinesistest(t *testing.T, shards int32, opts kinesistest.Options, wrap func(http.RoundTripper) http.RoundTripper) (*fixture, *kinesistest.Server) {
	t.Helper()
	srv := kinesistest.NewServer(opts)
	t.Cleanup(srv.Close)
	kc := srv.Client(func(o *kinesis.Options) {
		if wrap != nil {
			o.HTTPClient = &http.Client{Transport: wrap(o.HTTPClient.(*http.Client).Transport)}
		}
	})
	return setupOn(t, &fixture{kc: kc}, shards), srv
}

func setupOn(t *testing.T, f *fixture, shards int32) *fixture {
	t.Helper()
	kc := f.kc
	f.stream = testenv.CreateStream(t, kc, shards)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if f.streamARN, err = fanout.StreamARN(ctx, kc, f.stream); err != nil {
		t.Fatal(err)
	}
	if f.consumerARN, err = fanout.EnsureConsumer(ctx, kc, f.streamARN, "app"); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) shards(t *testing.T) []types.Shard {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := f.kc.ListShards(ctx, &kinesis.ListShardsInput{StreamARN: aws.String(f.streamARN)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Shards
}

// put writes n records whose data is prefix-0, prefix-1, ... in that order, all with one
// partition key so that they land in one shard in order, and returns the data strings.
func (f *fixture) put(t *testing.T, prefix string, n int) []string {
	t.Helper()
	var data []string
	for start := 0; start < n; start += 100 {
		var entries []types.PutRecordsRequestEntry
		for i := start; i < n && i < start+100; i++ {
			d := fmt.Sprintf("%s-%d", prefix, i)
			data = append(data, d)
			entries = append(entries, types.PutRecordsRequestEntry{Data: []byte(d), PartitionKey: aws.String("key")})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		out, err := f.kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamARN: aws.String(f.streamARN), Records: entries})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("put: %d records failed", aws.ToInt32(out.FailedRecordCount))
		}
	}
	return data
}

func (f *fixture) subscribe(t *testing.T, cfg fanout.Config) *fanout.Subscriber {
	t.Helper()
	if cfg.Client == nil {
		cfg.Client = f.kc
	}
	if cfg.ConsumerARN == "" {
		cfg.ConsumerARN = f.consumerARN
	}
	if cfg.StartingPosition.Type == "" {
		cfg.StartingPosition.Type = types.ShardIteratorTypeTrimHorizon
	}
	if cfg.NewBackOff == nil {
		cfg.NewBackOff = fastBackOff
	}
	sub, err := fanout.Subscribe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// fastBackOff keeps the tests short; kinesis-mock refuses a new subscription only until it
// notices that the previous connection closed.
func fastBackOff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = time.Second
	b.MaxElapsedTime = 0
	return b
}

// received accumulates what a subscriber delivered.
type received struct {
	data    []string
	seqs    []string
	batches []fanout.Batch
}

// readRecords calls Next until n records have arrived, failing the test after timeout.
func readRecords(t *testing.T, sub *fanout.Subscriber, got *received, n int, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for len(got.data) < n {
		b, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of %d records: %v", len(got.data), n, err)
		}
		got.add(b)
	}
}

func (r *received) add(b fanout.Batch) {
	r.batches = append(r.batches, b)
	for _, rec := range b.Records {
		r.data = append(r.data, string(rec.Data))
		r.seqs = append(r.seqs, aws.ToString(rec.SequenceNumber))
	}
}

// readToEnd calls Next until the batch that ends the shard, failing the test after timeout.
func readToEnd(t *testing.T, sub *fanout.Subscriber, got *received, timeout time.Duration) fanout.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		b, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %d records, before the shard's end: %v (stats %+v)", len(got.data), err, sub.Stats())
		}
		got.add(b)
		if b.ShardEnded {
			return b
		}
	}
}

func sameStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d, want %d\n got %v\nwant %v", what, len(got), len(want), clip(got), clip(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: at %d got %q, want %q", what, i, got[i], want[i])
		}
	}
}

func clip(s []string) []string {
	if len(s) > 20 {
		return append(s[:20:20], "...")
	}
	return s
}

// leakFrames are functions that only run while a subscription is alive.
var leakFrames = []string{
	"fanout.(*Subscriber)",
	"kinesis.(*subscribeToShardEventStreamReader)",
	"kinesis.(*SubscribeToShardEventStream).waitStreamClose",
	"(*EventStreamReader).readEventStream",
}

// checkNoLeaks fails the test when, a few seconds after everything was closed, a goroutine
// still runs subscription code. Only tests that do not run in parallel may use it.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, f := range leakFrames {
				if strings.Contains(g, f) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still running subscription code:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// frameTransport sits under EmulatorTransport and watches the raw SubscribeToShard event
// streams message by message: it counts the messages the client has read and can cut a
// stream in the middle of a message, as a dropped connection does.
type frameTransport struct {
	base http.RoundTripper

	read atomic.Int64 // messages handed to the client, over all streams

	mu       sync.Mutex
	cuts     int // streams still to cut
	cutAfter int // whole messages a cut stream delivers first
	cutDone  int
}

func (ft *frameTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := ft.base.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".SubscribeToShard") || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	ft.mu.Lock()
	cut := -1
	if ft.cuts > 0 {
		ft.cuts--
		ft.cutDone++
		cut = ft.cutAfter
	}
	ft.mu.Unlock()
	resp.Body = &frameBody{body: resp.Body, cutAfter: cut, read: &ft.read}
	return resp, nil
}

func (ft *frameTransport) cutCount() int {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	return ft.cutDone
}

type frameBody struct {
	body     io.ReadCloser
	cutAfter int // -1: never
	read     *atomic.Int64
	pending  []byte
	cut      bool
}

func (b *frameBody) Read(p []byte) (int, error) {
	if len(b.pending) == 0 {
		if b.cut {
			b.body.Close()
			return 0, fmt.Errorf("frame cut by the test: %w", syscall.ECONNRESET)
		}
		msg, err := readFrame(b.body)
		if err != nil {
			return 0, err
		}
		if b.cutAfter == 0 {
			msg = msg[:len(msg)/2]
			b.cut = true
		} else {
			b.read.Add(1)
			if b.cutAfter > 0 {
				b.cutAfter--
			}
		}
		b.pending = msg
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

func (b *frameBody) Close() error { return b.body.Close() }

func readFrame(r io.Reader) ([]byte, error) {
	prelude := make([]byte, 12)
	if _, err := io.ReadFull(r, prelude); err != nil {
		return nil, err
	}
	total := binary.BigEndian.Uint32(prelude[:4])
	if total < 16 || total > 64<<20 {
		return nil, fmt.Errorf("implausible event stream message length %d", total)
	}
	msg := make([]byte, total)
	copy(msg, prelude)
	if _, err := io.ReadFull(r, msg[12:]); err != nil {
		return nil, err
	}
	return msg, nil
}
