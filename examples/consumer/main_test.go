package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/consumer"
	"github.com/shardline/shardline/internal/testenv"
)

// Orders put before the worker starts are all processed, and each shard's lease in the
// DynamoDB table is checkpointed at the shard's last record.
func TestRunProcessesAndCheckpoints(t *testing.T) {
	kc := testenv.Kinesis(t, nil)
	ddb := testenv.DynamoDB(t, nil)
	stream := testenv.CreateStream(t, kc, 2)
	table := testenv.TableName(t, ddb)

	const n = 400
	last := putOrders(t, kc, stream, n)
	if len(last) != 2 {
		t.Fatalf("orders landed on %d shards, want both", len(last))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, kc, ddb, config{
		Stream: stream, App: table, WorkerID: "example-test", From: consumer.TrimHorizon,
		StopAfter: n, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the worker processed fewer than %d orders within 30 s", n)
	}

	store, err := checkpoint.NewDynamoDBStore(ddb, checkpoint.DynamoDBConfig{TableName: table})
	if err != nil {
		t.Fatal(err)
	}
	leases, err := store.ListLeases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != len(last) {
		t.Fatalf("%d leases in %s, want one per shard (%d)", len(leases), table, len(last))
	}
	for _, l := range leases {
		if l.Checkpoint.SequenceNumber != last[l.Key] {
			t.Errorf("lease %s: checkpoint %v, want the shard's last record %s", l.Key, l.Checkpoint, last[l.Key])
		}
		if l.Owner != "" {
			t.Errorf("lease %s still owned by %q after a graceful shutdown", l.Key, l.Owner)
		}
	}

	// A worker started again resumes from the checkpoints: it finds nothing to process, so it
	// does not reach even one order before its context ends. One that started over from
	// TRIM_HORIZON would process an order within a second or two and stop.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	err = run(ctx2, kc, ddb, config{
		Stream: stream, App: table, WorkerID: "example-test-2", From: consumer.TrimHorizon,
		StopAfter: 1, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if ctx2.Err() == nil {
		t.Fatal("the restarted worker processed orders again instead of resuming from the checkpoints")
	}
}

// putOrders puts n orders with PutRecords and returns the sequence number of the last record
// of each shard.
func putOrders(t *testing.T, kc *kinesis.Client, stream string, n int) map[string]string {
	t.Helper()
	ctx := context.Background()
	last := map[string]string{}
	for start := 0; start < n; start += 100 {
		var entries []types.PutRecordsRequestEntry
		for i := start; i < min(start+100, n); i++ {
			o := order{OrderID: fmt.Sprintf("ord-%08d", i), CustomerID: fmt.Sprintf("cust-%04d", i%37),
				Items: 1 + i%4, TotalCents: 1000 + i, Currency: "EUR", CreatedAt: time.Now().UTC()}
			data, _ := json.Marshal(o)
			entries = append(entries, types.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(o.CustomerID)})
		}
		out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("%d records failed", aws.ToInt32(out.FailedRecordCount))
		}
		for _, r := range out.Records {
			shard, seq := aws.ToString(r.ShardId), aws.ToString(r.SequenceNumber)
			if prev, ok := last[shard]; !ok || bigger(seq, prev) {
				last[shard] = seq
			}
		}
	}
	return last
}

// bigger compares sequence numbers as the integers they are.
func bigger(a, b string) bool {
	x, _ := new(big.Int).SetString(a, 10)
	y, _ := new(big.Int).SetString(b, 10)
	return x.Cmp(y) > 0
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

// testWriter sends log lines to the test's log, shown when it fails or with -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
