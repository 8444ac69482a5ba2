package consumer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/internal/testenv"
	"github.com/shardline/shardline/kinesistest"
)

// iteratorFaults sits under a Kinesis client and spoils GetRecords calls: every expireEvery-th
// call is answered with ExpiredIteratorException without reaching the server, and every
// garbleEvery-th starts a burst of six calls sent with a garbage iterator, which kinesis-mock
// answers with a bare HTTP 500 (Kinesis with InvalidArgumentException), so a reader sees
// several in a row and must replace its iterator.
type iteratorFaults struct {
	base        http.RoundTripper
	expireEvery int
	garbleEvery int

	mu               sync.Mutex
	calls            int
	burst            int
	expired, garbled int
}

func (f *iteratorFaults) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".GetRecords") {
		return f.base.RoundTrip(req)
	}
	f.mu.Lock()
	f.calls++
	n := f.calls
	expire := f.expireEvery > 0 && n%f.expireEvery == 0
	if !expire && f.garbleEvery > 0 && n%f.garbleEvery == 0 {
		f.burst = 6
	}
	garble := !expire && f.burst > 0
	if garble {
		f.burst--
	}
	if expire {
		f.expired++
	}
	if garble {
		f.garbled++
	}
	f.mu.Unlock()
	if expire {
		body := `{"__type":"ExpiredIteratorException","message":"Iterator expired (injected)"}`
		return &http.Response{
			StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Request: req, ContentLength: int64(len(body)),
			Header: http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "X-Amzn-Requestid": {"injected"}},
			Body:   io.NopCloser(strings.NewReader(body)),
		}, nil
	}
	if garble {
		b, _ := io.ReadAll(req.Body)
		var in map[string]any
		_ = json.Unmarshal(b, &in)
		in["ShardIterator"] = "AAAAgarbageAAAA"
		b, _ = json.Marshal(in)
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.ContentLength = int64(len(b))
	}
	return f.base.RoundTrip(req)
}

func (f *iteratorFaults) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.expired, f.garbled
}

// checkExactlyOnce fails for any record processed more than once.
func checkExactlyOnce(t testing.TB, c *collector) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for data, n := range c.seen {
		if n != 1 {
			t.Errorf("%s processed %d times", data, n)
		}
	}
}

// TestFaults covers bad input and failures: expired and rejected iterators, throttled reads, a
// stream deleted under the worker, and a lease-table item edited into garbage.
func TestFaults(t *testing.T) {
	keys := testKeys(40)

	t.Run("expired and rejected iterators", func(t *testing.T) {
		checkNoLeak(t)
		inj := &iteratorFaults{base: http.DefaultTransport, expireEvery: 5, garbleEvery: 23}
		env := newEmuEnv(t, 2, testenv.HTTPClient(inj), nil)
		c := newCollector()
		prod := newTestProducer(t, env.kc, env.stream)
		ctx := context.Background()
		w, _ := New(env.config(t, "w1", processorFor(c, "w1", nil)))
		rw := runWorker(t, w)
		total := 0
		for i := 0; i < 12; i++ {
			n, _ := prod.produce(ctx, keys, 2, 0)
			total += n
			time.Sleep(250 * time.Millisecond)
		}
		c.waitDistinct(t, total, 60*time.Second)
		expired, garbled := inj.counts()
		st := w.Stats()
		if expired == 0 || garbled == 0 || st.IteratorsExpired == 0 {
			t.Errorf("injected %d expiries and %d garbage iterators; worker saw %d expiries", expired, garbled, st.IteratorsExpired)
		}
		checkExactlyOnce(t, c)
		checkOrder(t, c.snapshot())
		if err := rw.stop(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("throttled reads", func(t *testing.T) {
		checkNoLeak(t)
		// A storm on top of the shards' own read limits: 60 % of GetRecords calls refused
		// for four seconds.
		env := newKTEnv(t, 2, kinesistest.Options{Seed: 1, Faults: []kinesistest.FaultRule{{
			Operation: "GetRecords", Error: kinesistest.CodeProvisionedThroughputExceeded, Rate: 0.6, Duration: 4 * time.Second,
		}}})
		c := newCollector()
		prod := newTestProducer(t, env.client(nil), env.stream)
		ctx := context.Background()
		total, _ := prod.produce(ctx, keys, 10, 0)
		w, _ := New(env.config(t, env.client(nil), checkpoint.NewMemoryStore(), "app", "w1", processorFor(c, "w1", nil)))
		rw := runWorker(t, w)
		c.waitDistinct(t, total, 60*time.Second)
		if st := w.Stats(); st.ReadsThrottled == 0 || env.srv.FaultCount("GetRecords") == 0 {
			t.Errorf("no throttling seen: worker %d, injected %d", st.ReadsThrottled, env.srv.FaultCount("GetRecords"))
		}
		checkExactlyOnce(t, c)
		if err := rw.stop(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("stream deleted", func(t *testing.T) {
		checkNoLeak(t)
		env := newEmuEnv(t, 2, nil, nil)
		c := newCollector()
		prod := newTestProducer(t, env.kc, env.stream)
		ctx := context.Background()
		total, _ := prod.produce(ctx, keys, 3, 0)
		w, _ := New(env.config(t, "w1", processorFor(c, "w1", nil)))
		rw := runWorker(t, w)
		c.waitDistinct(t, total, 30*time.Second)
		if _, err := env.kc.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String(env.stream), EnforceConsumerDeletion: aws.Bool(true)}); err != nil {
			t.Fatal(err)
		}
		err := rw.wait(30 * time.Second)
		if !errors.Is(err, ErrStreamNotFound) {
			t.Fatalf("Run returned %v, want ErrStreamNotFound", err)
		}
		c.mu.Lock()
		shutdowns := len(c.shutdowns)
		c.mu.Unlock()
		if shutdowns != 2 {
			t.Errorf("%d processors asked to shut down, want 2", shutdowns)
		}

		// A worker started on a missing stream says so at once.
		w2, _ := New(env.config(t, "w2", processorFor(c, "w2", nil)))
		if err := w2.Run(ctx); !errors.Is(err, ErrStreamNotFound) {
			t.Fatalf("Run on a missing stream: %v, want ErrStreamNotFound", err)
		}
	})

	t.Run("lease item edited into garbage", func(t *testing.T) {
		checkNoLeak(t)
		env := newEmuEnv(t, 2, nil, nil)
		c := newCollector()
		prod := newTestProducer(t, env.kc, env.stream)
		ctx := context.Background()
		total, _ := prod.produce(ctx, keys, 3, 0)
		w, _ := New(env.config(t, "w1", processorFor(c, "w1", nil)))
		rw := runWorker(t, w)
		c.waitDistinct(t, total, 30*time.Second)

		victim := prod.openShardIDs()[1]
		// leaseOwner is the lease owner index's hash key, so DynamoDB itself refuses any type
		// but S for it; the garbage goes into attributes no index guards.
		_, err := env.ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(env.table), Item: map[string]ddbtypes.AttributeValue{
			"leaseKey":        &ddbtypes.AttributeValueMemberS{Value: victim},
			"leaseCounter":    &ddbtypes.AttributeValueMemberS{Value: "not a number"},
			"checkpoint":      &ddbtypes.AttributeValueMemberN{Value: "42"},
			"checkpointOwner": &ddbtypes.AttributeValueMemberBOOL{Value: true},
		}})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, "the garbage lease reported", func() bool {
			_, ok := w.Stats().UnreadableLeases[victim]
			return ok
		})
		// The other shard goes on.
		n, _ := prod.produce(ctx, keys, 3, 0)
		total += n
		waitFor(t, 20*time.Second, "the healthy shard processed", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, e := range c.events[len(c.events)-1:] {
				if e.shard != victim {
					return true
				}
			}
			return false
		})
		if w.Stats().LeasesHeld != 1 {
			t.Errorf("holding %d leases, want only the healthy one", w.Stats().LeasesHeld)
		}
		// Deleting the item lets the worker create the lease again; its records are read
		// again from the start: duplicates, but nothing lost.
		if _, err := env.ddb.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(env.table), Key: map[string]ddbtypes.AttributeValue{
			"leaseKey": &ddbtypes.AttributeValueMemberS{Value: victim},
		}}); err != nil {
			t.Fatal(err)
		}
		c.waitDistinct(t, total, 30*time.Second)
		waitFor(t, 10*time.Second, "the report cleared", func() bool { return len(w.Stats().UnreadableLeases) == 0 })
		if err := rw.stop(); err != nil {
			t.Fatal(err)
		}
	})
}
