package kinesisjson

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/internal/testenv"
)

// recorder keeps the body of the last GetRecords answer it carried.
type recorder struct {
	mu   sync.Mutex
	last []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.Header.Get("X-Amz-Target"), ".GetRecords") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.last = body
	r.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func (r *recorder) lastBody() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// TestIntegrationReadBack puts records with keys JSON must escape and binary, empty and large
// data to kinesis-mock, reads them back through the decoder's option and with the plain SDK
// from the same iterators, and compares the two reads, the decoder on the very bytes the SDK
// read, and both with what was put; then it splits the shard and compares the ChildShards of
// the parent's end.
func TestIntegrationReadBack(t *testing.T) {
	rec := &recorder{}
	kc := testenv.Kinesis(t, &http.Client{Transport: rec})
	stream := testenv.CreateStream(t, kc, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	keys := []string{`quote"inside`, `back\slash`, "tab\there", "nl\nkey", "ctl\x01\x1f", "del\x7f",
		"</script>&", "héllo wörld", "日本語のキー", "emoji 😀🚀", "line\u2028sep", strings.Repeat("é", 128)}
	type put struct{ key, data string }
	var want []put
	var entries []types.PutRecordsRequestEntry
	for i := range 240 {
		data := make([]byte, (i*53)%1500)
		switch i % 60 {
		case 7:
			data = []byte{}
		case 11:
			data = make([]byte, 300_000)
		}
		for j := range data {
			data[j] = byte(i*31 + j*7)
		}
		k := fmt.Sprintf("%s-%d", keys[i%len(keys)], i)
		want = append(want, put{k, string(data)})
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(k), Data: data})
	}
	for len(entries) > 0 {
		n := min(len(entries), 40)
		out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries[:n]})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(out.FailedRecordCount) != 0 {
			for _, r := range out.Records {
				if r.ErrorCode != nil {
					t.Fatalf("put failed: %s %s", aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage))
				}
			}
		}
		entries = entries[n:]
	}

	shards, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	parent := aws.ToString(shards.Shards[0].ShardId)
	it, err := kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(parent), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	d := &GetRecordsDecoder{}
	iter := it.ShardIterator
	var got []put
	// compare reads the shard once from iter each way and returns the SDK's read.
	compare := func(iter *string) *kinesis.GetRecordsOutput {
		t.Helper()
		in := &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(100)}
		sdk, err := kc.GetRecords(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		// The decoder on the exact bytes the SDK decoded.
		checkSame(t, &GetRecordsDecoder{}, rec.lastBody())
		fast, err := kc.GetRecords(ctx, in, d.Option())
		if err != nil {
			t.Fatal(err)
		}
		checkSame(t, &GetRecordsDecoder{}, rec.lastBody())
		if t.Failed() {
			t.FailNow()
		}
		// A second read of an iterator may differ in how far behind it is, and kinesis-mock
		// may issue another next iterator: the records and child shards may not.
		a, b := *fast, *sdk
		a.MillisBehindLatest, b.MillisBehindLatest = nil, nil
		a.NextShardIterator, b.NextShardIterator = nil, nil
		if diff := sameOutput(&a, &b); diff != "" {
			t.Fatalf("read through the decoder differs from the SDK's: %s", diff)
		}
		if (fast.NextShardIterator == nil) != (sdk.NextShardIterator == nil) || (fast.MillisBehindLatest == nil) != (sdk.MillisBehindLatest == nil) {
			t.Fatalf("iterator %v / %v, behind %v / %v", fast.NextShardIterator, sdk.NextShardIterator, fast.MillisBehindLatest, sdk.MillisBehindLatest)
		}
		for _, r := range fast.Records {
			if len(r.Data) > 0 && !inData(d, r.Data) {
				t.Fatal("a record's Data was not decoded by the decoder")
			}
		}
		return sdk
	}
	for len(got) < len(want) {
		out := compare(iter)
		for _, r := range out.Records {
			got = append(got, put{aws.ToString(r.PartitionKey), string(r.Data)})
		}
		iter = out.NextShardIterator
		if iter == nil {
			t.Fatal("shard ended early")
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d read back as %.40q, put %.40q", i, got[i], want[i])
		}
	}

	// Split the shard: its end then carries ChildShards.
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: aws.String(parent),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatal(err)
	}
	if err := testenv.WaitStreamActive(ctx, kc, stream); err != nil {
		t.Fatal(err)
	}
	for {
		out := compare(iter)
		if out.NextShardIterator == nil {
			if len(out.ChildShards) != 2 || len(out.ChildShards[0].ParentShards) != 1 || out.ChildShards[0].HashKeyRange == nil {
				t.Fatalf("child shards at the parent's end: %+v", out.ChildShards)
			}
			break
		}
		iter = out.NextShardIterator
	}
}
