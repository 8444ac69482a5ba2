package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/internal/testenv"
)

// The example puts a fixed number of orders and exits; every one must be in the stream once,
// under its customer's partition key.
func TestRunPutsEveryOrder(t *testing.T) {
	kc := testenv.Kinesis(t, nil)
	stream := testenv.CreateStream(t, kc, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const n = 2000
	if err := run(ctx, kc, config{Stream: stream, Count: n, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	got := readOrders(t, kc, stream)
	if len(got) != n {
		t.Fatalf("%d distinct orders in the stream, put %d", len(got), n)
	}
	for i := range n {
		id := fmt.Sprintf("ord-%08d", i)
		if got[id] != 1 {
			t.Fatalf("order %s is in the stream %d times", id, got[id])
		}
	}
}

// Stopping the service (SIGINT or SIGTERM end run's context) sends every order accepted before
// the stop: the stream then holds orders 0..k-1, each once, and nothing after.
func TestRunDeliversWhatItAcceptedWhenStopped(t *testing.T) {
	kc := testenv.Kinesis(t, nil)
	stream := testenv.CreateStream(t, kc, 2)
	ctx, stop := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, stop)

	done := make(chan error, 1)
	go func() { done <- run(ctx, kc, config{Stream: stream, Rate: 500, Logger: testLogger(t)}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return within 30 s of the stop")
	}
	got := readOrders(t, kc, stream)
	if len(got) < 100 {
		t.Fatalf("only %d orders in the stream after 1.5 s at 500/s", len(got))
	}
	for i := range len(got) {
		id := fmt.Sprintf("ord-%08d", i)
		if got[id] != 1 {
			t.Fatalf("order %s is in the stream %d times; %d orders in all", id, got[id], len(got))
		}
	}
}

// readOrders reads every shard from its start and returns how often each order id appears,
// unpacking the producer's KPL aggregates. It checks that each order's partition key is its
// customer.
func readOrders(t *testing.T, kc *kinesis.Client, stream string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	shards, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, sh := range shards.Shards {
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Records {
				users, err := aggregation.Deaggregate(nil, r.Data, aws.ToString(r.PartitionKey), "")
				if err != nil {
					t.Fatalf("record %s: %v", aws.ToString(r.SequenceNumber), err)
				}
				for _, u := range users {
					var o order
					if err := json.Unmarshal(u.Data, &o); err != nil {
						t.Fatalf("not an order: %s", u.Data)
					}
					if u.PartitionKey != o.CustomerID {
						t.Fatalf("order %s has partition key %q, want its customer %q", o.OrderID, u.PartitionKey, o.CustomerID)
					}
					seen[o.OrderID]++
				}
			}
			if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return seen
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testWriter sends log lines to the test's log, shown when it fails or with -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
