package kinesistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// A restored server serves the same streams, shards, records, sequence numbers, tags and
// consumers as the one the snapshot was taken of.
func TestSnapshotRestore(t *testing.T) {
	ctx := context.Background()
	clock := NewManualClock(epoch)
	a := NewServer(Options{Clock: clock})
	ca := a.Client()
	if _, err := ca.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("orders"), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("1000")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: aws.String("orders"), Tags: map[string]string{"team": "shop"}}); err != nil {
		t.Fatal(err)
	}
	desc, err := ca.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: desc.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("reader")}); err != nil {
		t.Fatal(err)
	}
	var seqs []string
	for i := range 20 {
		out, err := ca.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String(fmt.Sprint("k", i)), Data: []byte(fmt.Sprint("record ", i))})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
	}
	before := readStream(t, ca, "orders")
	if len(before) != 20 {
		t.Fatalf("read %d records before the snapshot, want 20", len(before))
	}
	a.Close()
	var snap bytes.Buffer
	if err := a.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}

	b, err := Start(Options{Clock: clock, Restore: bytes.NewReader(snap.Bytes())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cb := b.Client()
	after := readStream(t, cb, "orders")
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("records after the restore differ:\nbefore %v\nafter  %v", before, after)
	}
	tags, err := cb.ListTagsForStream(ctx, &kinesis.ListTagsForStreamInput{StreamName: aws.String("orders")})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Value) != "shop" {
		t.Errorf("tags after the restore: %v, %v", tags, err)
	}
	cons, err := cb.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: desc.StreamDescriptionSummary.StreamARN})
	if err != nil || len(cons.Consumers) != 1 || aws.ToString(cons.Consumers[0].ConsumerName) != "reader" {
		t.Errorf("consumers after the restore: %v, %v", cons, err)
	}
	// New records continue the shard's sequence numbers.
	out, err := cb.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k0"), Data: []byte("later")})
	if err != nil {
		t.Fatal(err)
	}
	if seqLess(aws.ToString(out.SequenceNumber), seqs[0]) || aws.ToString(out.SequenceNumber) == seqs[0] {
		t.Errorf("new sequence number %s does not follow %s", aws.ToString(out.SequenceNumber), seqs[0])
	}
}

func seqLess(a, b string) bool { return len(a) < len(b) || len(a) == len(b) && a < b }

// readStream reads every record of every shard of a stream, as "shard seq data" strings.
func readStream(t *testing.T, c *kinesis.Client, name string) []string {
	t.Helper()
	ctx := context.Background()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs.Records {
			out = append(out, aws.ToString(sh.ShardId)+" "+aws.ToString(r.SequenceNumber)+" "+string(r.Data))
		}
	}
	return out
}

// Every snapshot that cannot be loaded is refused with ErrSnapshot and a reason.
func TestSnapshotRefused(t *testing.T) {
	srv := NewServer(Options{})
	if _, err := srv.Client().CreateStream(context.Background(), &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	var good bytes.Buffer
	if err := srv.Snapshot(&good); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, data, want string }{
		{"empty", "", "empty"},
		{"not a snapshot", "{\"Streams\":[]}\n", "not a kinesistest snapshot"},
		{"other version", strings.Replace(good.String(), "v1\n", "v2\n", 1), "format version 2"},
		{"truncated", good.String()[:good.Len()/2], "decoding"},
		{"gap in the hash keys", strings.Replace(good.String(), `"Start":"0"`, `"Start":"1"`, 1), "do not cover"},
		{"other region", strings.Replace(good.String(), `"Region":"us-east-1"`, `"Region":"eu-west-1"`, 1), "eu-west-1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Start(Options{Restore: strings.NewReader(c.data)})
			if !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want an ErrSnapshot about %q, got %v", c.want, err)
			}
		})
	}
}

// Start reports an address it cannot listen on instead of panicking.
func TestStartBadAddr(t *testing.T) {
	if _, err := Start(Options{Addr: "256.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "256.0.0.1:1") {
		t.Fatalf("want an error naming the address, got %v", err)
	}
}

// The snapshot decoder must not panic on any input, and whatever it accepts must load into
// a server that serves it.
func FuzzDecodeSnapshot(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "snapshot", "*.snap"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("kinesistest-snapshot v1\n{}"))
	f.Add([]byte("kinesistest-snapshot v1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := decodeSnapshot(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrSnapshot) {
				t.Fatalf("error %v does not wrap ErrSnapshot", err)
			}
			return
		}
		s := &Server{region: sf.Region, account: sf.Account, limits: Limits{}.resolved(), clock: systemClock{}, streams: map[string]*stream{}}
		if err := s.restore(sf); err != nil {
			t.Fatal(err)
		}
		// Every accepted stream routes every hash key to an open shard.
		for _, st := range s.streams {
			for _, h := range []hashKey{{}, maxHashKey, {hi: 1 << 63}} {
				if st.route(h) == nil {
					t.Fatalf("stream %s routes %s nowhere", st.name, h)
				}
			}
		}
	})
}
