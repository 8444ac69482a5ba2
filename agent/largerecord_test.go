package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/agent"
	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/kinesistest"
	"github.com/shardline/shardline/producer"
)

// largeStream creates a one-shard stream on the emulator with its maximum record size raised
// to kib (https://docs.aws.amazon.com/streams/latest/dev/large-records.html).
func largeStream(t *testing.T, kib int32) (*kinesis.Client, string) {
	t.Helper()
	srv := kinesistest.NewServer(kinesistest.Options{})
	t.Cleanup(srv.Close)
	client := srv.Client()
	ctx := context.Background()
	name := "big"
	if _, err := client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	sum, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, MaxRecordSizeInKiB: aws.Int32(kib)}); err != nil {
		t.Fatal(err)
	}
	return client, name
}

func largeRecordConfig(t *testing.T, dir, stream string, maxRecord int) *agent.Config {
	t.Helper()
	conf := fmt.Sprintf(`{"stateDirectory": %q, "cloudwatch.emitMetrics": false,
	  "flows": [{"filePattern": %q, "kinesisStream": %q, "initialPosition": "START_OF_FILE", "maxRecordSizeBytes": %d, "maxBufferAgeMillis": 1000}]}`,
		filepath.Join(dir, "state"), filepath.Join(dir, "*.log"), stream, maxRecord)
	path := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// On a stream whose maximum record size was raised to 4 MiB, a flow allowing 3 MiB records
// delivers a 2.5 MiB line as one record, whole; a flow allowing more than the stream takes
// is refused at start, naming the field and the stream's limit, instead of failing every
// such record later.
func TestLargeRecordsFollowTheStream(t *testing.T) {
	client, stream := largeStream(t, 4096)

	dir := t.TempDir()
	if _, err := agent.NewProducerSink(client, producer.Config{}, largeRecordConfig(t, dir, stream, 5<<20)); err == nil ||
		!strings.Contains(err.Error(), "flows[0].maxRecordSizeBytes") || !strings.Contains(err.Error(), "4194304") {
		t.Fatalf("a flow allowing 5 MiB records on a 4 MiB stream: %v; want an error naming the field and 4194304", err)
	} else {
		var ce *agent.ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("error %v is not a *agent.ConfigError", err)
		}
	}

	big := append(bytes.Repeat([]byte("x"), 5<<19), '\n') // 2.5 MiB line
	small := []byte("after\n")
	if err := os.WriteFile(filepath.Join(dir, "app.log"), append(append([]byte(nil), big...), small...), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := largeRecordConfig(t, dir, stream, 3<<20)
	sink, err := agent.NewProducerSink(client, producer.Config{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := sink.Close(context.Background()); err != nil {
			t.Errorf("sink Close: %v", err)
		}
	}()

	got := readUntil(t, client, stream, 2, 30*time.Second)
	if len(got) != 2 || !bytes.Equal(got[0], big) || !bytes.Equal(got[1], small) {
		sizes := []int{}
		for _, g := range got {
			sizes = append(sizes, len(g))
		}
		t.Fatalf("read records of %v bytes; want the %d-byte line whole, then %q", sizes, len(big), small)
	}
}

// readUntil reads the user records of the stream's only shard until it has n or the time
// is up, at most four GetRecords a second (the shard allows five).
func readUntil(t *testing.T, client *kinesis.Client, stream string, n int, d time.Duration) [][]byte {
	t.Helper()
	ctx := context.Background()
	it, err := client.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	iter := it.ShardIterator
	for deadline := time.Now().Add(d); len(out) < n && iter != nil && time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		res, err := client.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Records {
			users, err := aggregation.Deaggregate(nil, r.Data, aws.ToString(r.PartitionKey), "")
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range users {
				out = append(out, u.Data)
			}
		}
		iter = res.NextShardIterator
	}
	return out
}
