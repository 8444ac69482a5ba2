package consumer

import (
	"context"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/aggregation"
)

// fakeKinesis is an in-memory Kinesis with one stream, enough of the API for the worker:
// ListShards (paged), GetShardIterator, GetRecords with ChildShards at a shard's end, and
// PutRecord, SplitShard and MergeShards for tests to drive it.
type fakeKinesis struct {
	mu       sync.Mutex
	stream   string
	shards   []*fakeShard
	byID     map[string]*fakeShard
	seq      int64
	pageSize int
	deleted  bool
	// getRecordsErr, when set, may fail a GetRecords call before it is served.
	getRecordsErr func(shardID string) error
	calls         map[string]int
}

type fakeShard struct {
	id          string
	start, end  *big.Int
	parents     []string
	records     []types.Record
	closed      bool
	startSeq    string
	endSeq      string
	children    []string
	createdAtNS int64
}

var maxHash = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

func newFakeKinesis(stream string, shards int) *fakeKinesis {
	f := &fakeKinesis{stream: stream, byID: map[string]*fakeShard{}, pageSize: 3, calls: map[string]int{}}
	width := new(big.Int).Div(new(big.Int).Add(maxHash, big.NewInt(1)), big.NewInt(int64(shards)))
	for i := 0; i < shards; i++ {
		start := new(big.Int).Mul(width, big.NewInt(int64(i)))
		end := new(big.Int).Sub(new(big.Int).Add(start, width), big.NewInt(1))
		if i == shards-1 {
			end = new(big.Int).Set(maxHash)
		}
		f.addShard(start, end, nil)
	}
	return f
}

func (f *fakeKinesis) addShard(start, end *big.Int, parents []string) *fakeShard {
	s := &fakeShard{id: fmt.Sprintf("shardId-%012d", len(f.shards)), start: start, end: end, parents: parents, startSeq: f.nextSeq()}
	f.shards = append(f.shards, s)
	f.byID[s.id] = s
	return s
}

func (f *fakeKinesis) nextSeq() string {
	f.seq++
	return fmt.Sprintf("4968%052d", f.seq)
}

func (f *fakeKinesis) count(op string) {
	f.calls[op]++
}

// shardFor returns the open shard owning hash h.
func (f *fakeKinesis) shardFor(h *big.Int) *fakeShard {
	for _, s := range f.shards {
		if !s.closed && s.start.Cmp(h) <= 0 && h.Cmp(s.end) <= 0 {
			return s
		}
	}
	return nil
}

// put appends data to the shard owning the key (or the explicit hash key) and returns the
// shard and sequence number.
func (f *fakeKinesis) put(pk, ehk string, data []byte) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var h *big.Int
	if ehk != "" {
		h, _ = new(big.Int).SetString(ehk, 10)
	} else {
		k := aggregation.PartitionKeyHash(pk)
		h, _ = new(big.Int).SetString(k.String(), 10)
	}
	s := f.shardFor(h)
	seq := f.nextSeq()
	now := time.Now()
	s.records = append(s.records, types.Record{
		Data: data, PartitionKey: aws.String(pk), SequenceNumber: aws.String(seq), ApproximateArrivalTimestamp: &now,
	})
	return s.id, seq
}

// putToShard appends data to a given shard whatever its range, as a producer with a stale
// shard map would through an explicit hash key of the old range.
func (f *fakeKinesis) putToShard(shardID, pk string, data []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.byID[shardID]
	seq := f.nextSeq()
	now := time.Now()
	s.records = append(s.records, types.Record{Data: data, PartitionKey: aws.String(pk), SequenceNumber: aws.String(seq), ApproximateArrivalTimestamp: &now})
	return seq
}

// split closes shard id and opens two children split at the middle of its range.
func (f *fakeKinesis) split(id string) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.byID[id]
	mid := new(big.Int).Add(p.start, new(big.Int).Rsh(new(big.Int).Sub(p.end, p.start), 1))
	p.closed, p.endSeq = true, f.nextSeq()
	a := f.addShard(new(big.Int).Set(p.start), mid, []string{id})
	b := f.addShard(new(big.Int).Add(mid, big.NewInt(1)), new(big.Int).Set(p.end), []string{id})
	p.children = []string{a.id, b.id}
	return a.id, b.id
}

// merge closes two adjacent shards and opens their merged child.
func (f *fakeKinesis) merge(a, b string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	x, y := f.byID[a], f.byID[b]
	if x.start.Cmp(y.start) > 0 {
		x, y = y, x
	}
	x.closed, x.endSeq = true, f.nextSeq()
	y.closed, y.endSeq = true, f.nextSeq()
	c := f.addShard(new(big.Int).Set(x.start), new(big.Int).Set(y.end), []string{x.id, y.id})
	x.children, y.children = []string{c.id}, []string{c.id}
	return c.id
}

func (f *fakeKinesis) openShards() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.shards {
		if !s.closed {
			out = append(out, s.id)
		}
	}
	return out
}

func (f *fakeKinesis) notFound() error {
	return &types.ResourceNotFoundException{Message: aws.String("Stream " + f.stream + " not found")}
}

func (f *fakeKinesis) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("ListShards")
	if f.deleted {
		return nil, f.notFound()
	}
	from := 0
	if in.NextToken != nil {
		if in.StreamName != nil {
			return nil, &types.InvalidArgumentException{Message: aws.String("NextToken and StreamName cannot be provided together")}
		}
		from, _ = strconv.Atoi(*in.NextToken)
	} else if aws.ToString(in.StreamName) != f.stream {
		return nil, f.notFound()
	}
	out := &kinesis.ListShardsOutput{}
	end := min(from+f.pageSize, len(f.shards))
	for _, s := range f.shards[from:end] {
		sh := types.Shard{
			ShardId:             aws.String(s.id),
			HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(s.start.String()), EndingHashKey: aws.String(s.end.String())},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String(s.startSeq)},
		}
		if s.closed {
			sh.SequenceNumberRange.EndingSequenceNumber = aws.String(s.endSeq)
		}
		if len(s.parents) > 0 {
			sh.ParentShardId = aws.String(s.parents[0])
		}
		if len(s.parents) > 1 {
			sh.AdjacentParentShardId = aws.String(s.parents[1])
		}
		out.Shards = append(out.Shards, sh)
	}
	if end < len(f.shards) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

func (f *fakeKinesis) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("GetShardIterator")
	if f.deleted || aws.ToString(in.StreamName) != f.stream {
		return nil, f.notFound()
	}
	s, ok := f.byID[aws.ToString(in.ShardId)]
	if !ok {
		return nil, &types.ResourceNotFoundException{Message: aws.String("shard not found")}
	}
	idx := 0
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeTrimHorizon:
	case types.ShardIteratorTypeLatest:
		idx = len(s.records)
	case types.ShardIteratorTypeAtTimestamp:
		for idx < len(s.records) && s.records[idx].ApproximateArrivalTimestamp.Before(*in.Timestamp) {
			idx++
		}
	case types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber:
		want := aws.ToString(in.StartingSequenceNumber)
		for idx < len(s.records) && compareSeq(*s.records[idx].SequenceNumber, want) < 0 {
			idx++
		}
		if in.ShardIteratorType == types.ShardIteratorTypeAfterSequenceNumber && idx < len(s.records) && *s.records[idx].SequenceNumber == want {
			idx++
		}
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String(fmt.Sprintf("%s|%d", s.id, idx))}, nil
}

func (f *fakeKinesis) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	it := aws.ToString(in.ShardIterator)
	id, idxs, ok := strings.Cut(it, "|")
	if hook := f.hook(); hook != nil {
		if err := hook(id); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("GetRecords")
	if f.deleted {
		return nil, f.notFound()
	}
	idx, err := strconv.Atoi(idxs)
	s, found := f.byID[id]
	if !ok || err != nil || !found {
		return nil, &types.InvalidArgumentException{Message: aws.String("invalid shard iterator")}
	}
	limit := int(aws.ToInt32(in.Limit))
	if limit <= 0 {
		limit = 10000
	}
	end := min(idx+limit, len(s.records))
	out := &kinesis.GetRecordsOutput{Records: s.records[idx:end:end]}
	if end < len(s.records) {
		if t := s.records[len(s.records)-1].ApproximateArrivalTimestamp; t != nil {
			out.MillisBehindLatest = aws.Int64(max(1, time.Since(*t).Milliseconds()))
		}
	} else {
		out.MillisBehindLatest = aws.Int64(0)
	}
	if s.closed && end == len(s.records) {
		for _, c := range s.children {
			cs := f.byID[c]
			out.ChildShards = append(out.ChildShards, types.ChildShard{
				ShardId:      aws.String(c),
				ParentShards: cs.parents,
				HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String(cs.start.String()), EndingHashKey: aws.String(cs.end.String())},
			})
		}
		return out, nil
	}
	out.NextShardIterator = aws.String(fmt.Sprintf("%s|%d", s.id, end))
	return out, nil
}

func (f *fakeKinesis) hook() func(string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.getRecordsErr
}

func (f *fakeKinesis) setGetRecordsErr(fn func(shardID string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.getRecordsErr = fn
}
