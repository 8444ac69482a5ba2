package producer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/internal/testenv"
)

// TestIntegrationFastBody writes records with partition keys that JSON must escape, and
// binary and empty data, to kinesis-mock, once with the producer's own request bodies and
// once with the SDK's, and reads every record back as it was put.
func TestIntegrationFastBody(t *testing.T) {
	kc := testenv.Kinesis(t, nil)
	keys := []string{
		`quote"inside`, `back\slash`, `\"`, "tab\there", "nl\nkey", "ctl\x01\x1f", "del\x7f",
		"</script>&", "héllo wörld", "日本語のキー", "emoji 😀🚀", "line\u2028sep",
		strings.Repeat("é", 256),
	}
	for _, fast := range []bool{true, false} {
		name := "sdk"
		if fast {
			name = "fast"
		}
		t.Run(name, func(t *testing.T) {
			stream := testenv.CreateStream(t, kc, 2)
			// Without aggregation every record is a Kinesis record of its own, so its
			// partition key and data travel in the request body as they were put.
			p, err := New(kc, Config{StreamName: stream, DisableAggregation: true, Linger: 10 * time.Millisecond,
				DisableFastSerializer: !fast, Logger: quietLogger, RequestTimeout: 20 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{}
			var recs []Record
			for i, k := range keys {
				data := make([]byte, i*37)
				for j := range data {
					data[j] = byte(i*31 + j*7)
				}
				recs = append(recs, Record{PartitionKey: k, Data: data})
				want[k] = string(data)
			}
			recs = append(recs, Record{PartitionKey: "explicit", ExplicitHashKey: "170141183460469231731687303715884105728", Data: []byte("\x00\xff")})
			want["explicit"] = "\x00\xff"
			r := newResults(t)
			putAll(t, p, recs, r)
			r.wait(30 * time.Second)
			for i := range recs {
				if res, _ := r.get(&recs[i]); res.Err != nil {
					t.Fatalf("record %q: %v", recs[i].PartitionKey, res.Err)
				}
			}
			closeProducer(t, p)
			if built := len(p.bodies.free) > 0; built != fast {
				t.Fatalf("producer built its own bodies: %v, want %v", built, fast)
			}

			got := map[string]string{}
			ctx := context.Background()
			shards, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range shards.Shards {
				it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
					ShardId: s.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
				if err != nil {
					t.Fatal(err)
				}
				// Read until the shard answers empty twice: one answer need not hold all.
				for iter, empty := it.ShardIterator, 0; iter != nil && empty < 2; {
					out, err := kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
					if err != nil {
						t.Fatal(err)
					}
					if len(out.Records) == 0 {
						empty++
					}
					for _, rec := range out.Records {
						got[aws.ToString(rec.PartitionKey)] = string(rec.Data)
					}
					iter = out.NextShardIterator
				}
			}
			for k, v := range want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("key %q: read %q (found %v), want %q", k, g, ok, v)
				}
			}
			if len(got) != len(want) {
				t.Errorf("read %d keys, want %d", len(got), len(want))
			}
		})
	}
}
