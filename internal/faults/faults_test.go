package faults_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/internal/faults"
	"github.com/shardline/shardline/internal/testenv"
)

// readAll returns every record's data in the stream, across shards.
func readAll(t *testing.T, kc *kinesis.Client, stream string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	shards, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: &stream})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, sh := range shards.Shards {
		it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{
			StreamName: &stream, ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon,
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
				got[string(r.Data)] = true
			}
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return got
}

func putEntries(n int) []types.PutRecordsRequestEntry {
	entries := make([]types.PutRecordsRequestEntry, n)
	for i := range entries {
		entries[i] = types.PutRecordsRequestEntry{
			Data:         []byte("record-" + strconv.Itoa(i)),
			PartitionKey: aws.String("key-" + strconv.Itoa(i)),
		}
	}
	return entries
}

func TestThrottleEntriesFailsOnlySelectedEntriesAndKeepsThemOutOfTheStream(t *testing.T) {
	inj := faults.New(nil, 1)
	kc := testenv.Kinesis(t, testenv.HTTPClient(inj))
	stream := testenv.CreateStream(t, kc, 2)

	inj.Add(faults.Rule{
		Operation:   "PutRecords",
		Kind:        faults.ThrottleEntries,
		Probability: 0.3,
		Entries:     func(e faults.Entry) bool { return e.PartitionKey != "key-0" },
	})
	out, err := kc.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: &stream, Records: putEntries(200)})
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]bool{}
	for i, r := range out.Records {
		if r.ErrorCode != nil {
			if *r.ErrorCode != "ProvisionedThroughputExceededException" {
				t.Fatalf("entry %d: error code %q", i, *r.ErrorCode)
			}
			failed["record-"+strconv.Itoa(i)] = true
		} else if r.SequenceNumber == nil || r.ShardId == nil {
			t.Fatalf("entry %d: neither error nor sequence number", i)
		}
	}
	if int(*out.FailedRecordCount) != len(failed) {
		t.Fatalf("FailedRecordCount %d, entries with errors %d", *out.FailedRecordCount, len(failed))
	}
	if failed["record-0"] {
		t.Fatal("entry excluded by the selector was failed")
	}
	if len(failed) < 30 || len(failed) > 100 {
		t.Fatalf("%d of 200 entries failed at probability 0.3", len(failed))
	}
	if got := inj.Count("PutRecords", faults.ThrottleEntries); got != len(failed) {
		t.Fatalf("Count = %d, want %d", got, len(failed))
	}
	inStream := readAll(t, kc, stream)
	for i := 0; i < 200; i++ {
		data := "record-" + strconv.Itoa(i)
		if inStream[data] == failed[data] {
			t.Fatalf("%s: in stream %v, failed %v", data, inStream[data], failed[data])
		}
	}
}

func TestWholeRequestFaults(t *testing.T) {
	inj := faults.New(nil, 2)
	kc := testenv.Kinesis(t, testenv.HTTPClient(inj))
	stream := testenv.CreateStream(t, kc, 1)
	put := func(ctx context.Context, data string) error {
		_, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: &stream, Data: []byte(data), PartitionKey: aws.String("k")})
		return err
	}

	remove := inj.Add(faults.Rule{Operation: "PutRecord", Kind: faults.Throttle, Times: 1})
	var pte *types.ProvisionedThroughputExceededException
	if err := put(context.Background(), "throttled"); !errors.As(err, &pte) {
		t.Fatalf("throttle: got %v, want ProvisionedThroughputExceededException", err)
	}
	if err := put(context.Background(), "after-throttle"); err != nil {
		t.Fatalf("rule with Times=1 fired twice: %v", err)
	}
	remove()

	inj.Add(faults.Rule{Operation: "PutRecord", Kind: faults.InternalError, Times: 1})
	if err := put(context.Background(), "internal"); err == nil {
		t.Fatal("internal error: no error")
	}

	inj.Add(faults.Rule{Operation: "PutRecord", Kind: faults.ConnectionReset, Times: 1})
	if err := put(context.Background(), "reset"); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reset: got %v, want ECONNRESET", err)
	}

	inj.Add(faults.Rule{Operation: "PutRecord", Kind: faults.ResetAfterForward, Times: 1})
	if err := put(context.Background(), "written-but-reset"); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reset after forward: got %v, want ECONNRESET", err)
	}

	inj.Add(faults.Rule{Operation: "PutRecord", Kind: faults.Timeout, Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := put(ctx, "timeout"); err == nil {
		t.Fatal("timeout: no error")
	}

	inj.Add(faults.Rule{Operation: "GetRecords", Kind: faults.Throttle, Duration: time.Nanosecond})
	time.Sleep(time.Millisecond)
	got := readAll(t, kc, stream) // the expired rule must not fire
	want := map[string]bool{"after-throttle": true, "written-but-reset": true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stream holds %v, want %v", got, want)
	}
	for _, k := range []faults.Kind{faults.Throttle, faults.InternalError, faults.ConnectionReset, faults.ResetAfterForward, faults.Timeout} {
		if n := inj.Count("PutRecord", k); n != 1 {
			t.Errorf("Count(PutRecord, %v) = %d, want 1", k, n)
		}
	}
	if n := inj.Count("GetRecords", faults.Throttle); n != 0 {
		t.Errorf("expired rule fired %d times", n)
	}
}
