package fanout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/internal/fanout"
)

// awsLike answers SubscribeToShard the way Kinesis does: an initial-response, then events; one
// script of events per subscription, after which the stream ends as Kinesis ends a
// subscription after 5 minutes. It records the starting position of every subscription.
type awsLike struct {
	t       *testing.T
	scripts [][]string // event payloads per subscription

	mu        sync.Mutex
	positions []string
}

func (a *awsLike) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".SubscribeToShard") {
		http.Error(w, "only SubscribeToShard", http.StatusBadRequest)
		return
	}
	var in struct {
		StartingPosition struct{ Type, SequenceNumber string }
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	n := len(a.positions)
	a.positions = append(a.positions, strings.TrimSpace(in.StartingPosition.Type+" "+in.StartingPosition.SequenceNumber))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	_, _ = w.Write(initialResponse(a.t))
	if n < len(a.scripts) {
		for _, payload := range a.scripts[n] {
			_, _ = w.Write(message(a.t, map[string]string{":message-type": "event", ":event-type": "SubscribeToShardEvent", ":content-type": "application/json"}, payload))
		}
	}
}

func (a *awsLike) starts() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.positions...)
}

func event(cont string, seqs ...int) string {
	var recs []string
	for _, s := range seqs {
		recs = append(recs, fmt.Sprintf(`{"Data":"aGk=","PartitionKey":"k","SequenceNumber":"%d"}`, s))
	}
	c := "null"
	if cont != "" {
		c = fmt.Sprintf("%q", cont)
	}
	return fmt.Sprintf(`{"Records":[%s],"ContinuationSequenceNumber":%s,"MillisBehindLatest":0}`, strings.Join(recs, ","), c)
}

// TestAWSStyleSubscriptions checks, against a server that behaves as the Kinesis
// documentation says, that a subscription Kinesis ends is renewed AFTER_SEQUENCE_NUMBER the
// last continuation sequence number, and that the event with a null continuation and
// ChildShards ends the shard without any ListShards call.
func TestAWSStyleSubscriptions(t *testing.T) {
	t.Parallel()
	const children = `"ChildShards":[` +
		`{"ShardId":"shardId-000000000001","ParentShards":["shardId-000000000000"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"}},` +
		`{"ShardId":"shardId-000000000002","ParentShards":["shardId-000000000000"],"HashKeyRange":{"StartingHashKey":"10","EndingHashKey":"19"}}]`
	srv := &awsLike{t: t, scripts: [][]string{
		{event("2", 1, 2), event("3", 3)},
		{event("3"), event("4", 4)},
		{strings.TrimSuffix(event("", 5), "}") + "," + children + "}"},
	}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()

	sub, err := fanout.Subscribe(context.Background(), fanout.Config{
		Client:             fakeKinesis(t, ts.URL, tr),
		ConsumerARN:        "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1",
		ShardID:            "shardId-000000000000",
		StartingPosition:   types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon},
		ShardCheckInterval: -1,
		NewBackOff:         fastBackOff,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got received
	last := readToEnd(t, sub, &got, 10*time.Second)
	sameStrings(t, "sequence numbers", got.seqs, []string{"1", "2", "3", "4", "5"})
	checkChildren(t, last, "shardId-000000000000", 2)
	sameStrings(t, "starting positions", srv.starts(), []string{
		"TRIM_HORIZON", "AFTER_SEQUENCE_NUMBER 3", "AFTER_SEQUENCE_NUMBER 4",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sub.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("Next after the end: %v, want io.EOF", err)
	}
	if st := sub.Stats(); st.Subscriptions != 3 || st.Retries != 0 || st.ShardChecks != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestEmptySubscriptionsBackOff checks that streams that end without any event are not renewed
// in a tight loop.
func TestEmptySubscriptionsBackOff(t *testing.T) {
	t.Parallel()
	srv := &awsLike{t: t}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	var waits []time.Duration
	var mu sync.Mutex
	sub, err := fanout.Subscribe(context.Background(), fanout.Config{
		Client:             fakeKinesis(t, ts.URL, tr),
		ConsumerARN:        "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1",
		ShardID:            "shardId-000000000000",
		StartingPosition:   types.StartingPosition{Type: types.ShardIteratorTypeLatest},
		ShardCheckInterval: -1,
		NewBackOff:         fastBackOff,
		OnRetry: func(_ error, wait time.Duration) {
			mu.Lock()
			waits = append(waits, wait)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	_ = sub.Close()
	if n := len(srv.starts()); n < 2 || n > 6 {
		t.Fatalf("%d subscriptions in a second of empty streams, want a few", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) == 0 || waits[0] <= 0 {
		t.Fatalf("waits %v", waits)
	}
}
