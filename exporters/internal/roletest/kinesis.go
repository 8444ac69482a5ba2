package roletest

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/aggregation"
)

// Kinesis is an in-memory Kinesis Data Streams endpoint with a fixed set of streams and open
// shards: enough of PutRecords, ListShards, GetShardIterator and GetRecords for the
// producer, the consumer and the agent's producer sink. It behaves as the API reference
// describes the service (Amazon Kinesis Data Streams API Reference, the pages of those four
// actions): PutRecords routes each entry by the MD5 of its partition key, or by its explicit
// hash key, to the shard whose hash key range holds it, and reports a failed entry with an
// ErrorCode and ErrorMessage in its place while the others succeed; GetRecords returns
// records in sequence-number order with a NextShardIterator and MillisBehindLatest, 0 once
// the reader is at the tip.
type Kinesis struct {
	mu      sync.Mutex
	streams map[string][]*shard
	seq     int64
	// throttle is how many PutRecords entries still fail with
	// ProvisionedThroughputExceededException, the code the service gives an entry over the
	// shard's write limit.
	throttle int
}

type shard struct {
	id         string
	start, end aggregation.HashKey
	records    []types.Record
}

// NewKinesis returns an endpoint holding the given streams, each with its number of shards
// splitting the hash key space evenly.
func NewKinesis(streams map[string]int) *Kinesis {
	k := &Kinesis{streams: map[string][]*shard{}}
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	for name, n := range streams {
		step := new(big.Int).Div(space, big.NewInt(int64(n)))
		for i := range n {
			lo := new(big.Int).Mul(step, big.NewInt(int64(i)))
			hi := new(big.Int).Sub(new(big.Int).Add(lo, step), big.NewInt(1))
			if i == n-1 {
				hi = new(big.Int).Sub(space, big.NewInt(1))
			}
			k.streams[name] = append(k.streams[name], &shard{
				id: fmt.Sprintf("shardId-%012d", i), start: hashKey(lo), end: hashKey(hi),
			})
		}
	}
	return k
}

// Throttle makes the next n PutRecords entries fail with
// ProvisionedThroughputExceededException.
func (k *Kinesis) Throttle(n int) {
	k.mu.Lock()
	k.throttle = n
	k.mu.Unlock()
}

func hashKey(b *big.Int) aggregation.HashKey {
	h, err := aggregation.ParseHashKey(b.String())
	if err != nil {
		panic(err)
	}
	return h
}

// stream finds a stream by name or ARN (arn:aws:kinesis:region:account:stream/name).
func (k *Kinesis) stream(name, arn *string) ([]*shard, error) {
	n := aws.ToString(name)
	if n == "" {
		if _, after, ok := strings.Cut(aws.ToString(arn), ":stream/"); ok {
			n = after
		}
	}
	if s, ok := k.streams[n]; ok {
		return s, nil
	}
	return nil, &types.ResourceNotFoundException{Message: aws.String("Stream " + n + " not found")}
}

// PutRecords stores the entries that are not throttled.
func (k *Kinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	shards, err := k.stream(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	var failed int32
	now := time.Now()
	for i, e := range in.Records {
		h, err := aggregation.EffectiveHashKey(aws.ToString(e.PartitionKey), aws.ToString(e.ExplicitHashKey))
		if err != nil {
			return nil, &types.InvalidArgumentException{Message: aws.String(err.Error())}
		}
		if k.throttle > 0 {
			k.throttle--
			failed++
			out.Records[i] = types.PutRecordsResultEntry{
				ErrorCode:    aws.String("ProvisionedThroughputExceededException"),
				ErrorMessage: aws.String("Rate exceeded for shard in stream"),
			}
			continue
		}
		i0 := slices.IndexFunc(shards, func(s *shard) bool { return s.start.Cmp(h) <= 0 && h.Cmp(s.end) <= 0 })
		s := shards[i0]
		k.seq++
		seq := fmt.Sprintf("4960%052d", k.seq)
		s.records = append(s.records, types.Record{
			Data: slices.Clone(e.Data), PartitionKey: e.PartitionKey, SequenceNumber: aws.String(seq),
			ApproximateArrivalTimestamp: aws.Time(now),
		})
		out.Records[i] = types.PutRecordsResultEntry{ShardId: aws.String(s.id), SequenceNumber: aws.String(seq)}
	}
	out.FailedRecordCount = aws.Int32(failed)
	return out, nil
}

// ListShards lists every shard of the stream in one page.
func (k *Kinesis) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	shards, err := k.stream(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	out := &kinesis.ListShardsOutput{}
	for _, s := range shards {
		out.Shards = append(out.Shards, types.Shard{
			ShardId: aws.String(s.id),
			HashKeyRange: &types.HashKeyRange{
				StartingHashKey: aws.String(s.start.String()), EndingHashKey: aws.String(s.end.String()),
			},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")},
		})
	}
	return out, nil
}

// GetShardIterator returns an iterator "stream|shard|index".
func (k *Kinesis) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	shards, err := k.stream(in.StreamName, in.StreamARN)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(shards, func(s *shard) bool { return s.id == aws.ToString(in.ShardId) })
	if i < 0 {
		return nil, &types.ResourceNotFoundException{Message: aws.String("Shard " + aws.ToString(in.ShardId) + " not found")}
	}
	s := shards[i]
	idx := 0
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeLatest:
		idx = len(s.records)
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		want := aws.ToString(in.StartingSequenceNumber)
		for idx < len(s.records) && *s.records[idx].SequenceNumber < want { // same length: string order is numeric order
			idx++
		}
		if in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber && idx < len(s.records) && *s.records[idx].SequenceNumber == want {
			idx++
		}
	}
	name := aws.ToString(in.StreamName)
	if name == "" {
		_, name, _ = strings.Cut(aws.ToString(in.StreamARN), ":stream/")
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(name + "|" + s.id + "|" + strconv.Itoa(idx))}, nil
}

// GetRecords returns up to Limit records after the iterator's position.
func (k *Kinesis) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	parts := strings.Split(aws.ToString(in.ShardIterator), "|")
	invalid := &types.InvalidArgumentException{Message: aws.String("Invalid ShardIterator")}
	if len(parts) != 3 {
		return nil, invalid
	}
	shards, err := k.stream(&parts[0], nil)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(shards, func(s *shard) bool { return s.id == parts[1] })
	idx, err := strconv.Atoi(parts[2])
	if i < 0 || err != nil {
		return nil, invalid
	}
	s := shards[i]
	limit := int(aws.ToInt32(in.Limit))
	if limit <= 0 {
		limit = 10000
	}
	end := min(idx+limit, len(s.records))
	out := &kinesis.GetRecordsOutput{
		Records:            slices.Clone(s.records[idx:end]),
		NextShardIterator:  aws.String(parts[0] + "|" + s.id + "|" + strconv.Itoa(end)),
		MillisBehindLatest: aws.Int64(0),
	}
	if end < len(s.records) {
		// The reader is behind current time by the age of the oldest record it has not read.
		behind := time.Since(*s.records[end].ApproximateArrivalTimestamp).Milliseconds()
		out.MillisBehindLatest = aws.Int64(max(behind, 1))
	}
	return out, nil
}

// userRecordsPerRecord deaggregates every record stored in the stream and returns how many
// user records each one carries.
func (k *Kinesis) userRecordsPerRecord(t testing.TB, stream string) []float64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []float64
	for _, s := range k.streams[stream] {
		for _, r := range s.records {
			urs, err := aggregation.Deaggregate(nil, r.Data, aws.ToString(r.PartitionKey), "")
			if err != nil {
				t.Fatalf("deaggregate a stored record: %v", err)
			}
			out = append(out, float64(len(urs)))
		}
	}
	return out
}
