package fleet

import (
	"context"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/consumer"
)

// listShardsPage is ListShards' default page size: "MaxResults ... If you don't specify this
// value, the default is 1,000" (Kinesis API reference, ListShards).
const listShardsPage = 1000

// Stream is a simulated Kinesis data stream behind consumer.KinesisAPI: shards are hash key
// ranges, open shards answer GetRecords with no records and a next iterator, and a split
// closes a shard, after which its readers get its end and its children. There are no record
// payloads: the harness measures lease coordination, not reading.
type Stream struct {
	name string

	mu     sync.Mutex
	shards []*shard
	byID   map[string]*shard

	listShards, getIterator, getRecords atomic.Int64
}

type shard struct {
	id, parent, adjacent string
	start, end           *big.Int
	closed               bool
	children             []string
}

var _ consumer.KinesisAPI = (*Stream)(nil)

// NewStream returns a stream of n shards splitting the hash key space evenly, as CreateStream
// does.
func NewStream(name string, n int) *Stream {
	s := &Stream{name: name, byID: map[string]*shard{}}
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	for i := range n {
		start := new(big.Int).Div(new(big.Int).Mul(space, big.NewInt(int64(i))), big.NewInt(int64(n)))
		end := new(big.Int).Div(new(big.Int).Mul(space, big.NewInt(int64(i+1))), big.NewInt(int64(n)))
		end.Sub(end, big.NewInt(1))
		s.add(&shard{start: start, end: end})
	}
	return s
}

func (s *Stream) add(sh *shard) {
	sh.id = fmt.Sprintf("shardId-%012d", len(s.shards))
	s.shards = append(s.shards, sh)
	s.byID[sh.id] = sh
}

// OpenShards returns the number of open shards.
func (s *Stream) OpenShards() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sh := range s.shards {
		if !sh.closed {
			n++
		}
	}
	return n
}

// OpenShardIDs returns the IDs of the open shards.
func (s *Stream) OpenShardIDs() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for _, sh := range s.shards {
		if !sh.closed {
			out[sh.id] = true
		}
	}
	return out
}

// SplitAll splits every open shard at the middle of its range, doubling the open shards; the
// parents close.
func (s *Stream) SplitAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	open := []*shard{}
	for _, sh := range s.shards {
		if !sh.closed {
			open = append(open, sh)
		}
	}
	for _, p := range open {
		mid := new(big.Int).Add(p.start, p.end)
		mid.Rsh(mid, 1)
		a := &shard{parent: p.id, start: p.start, end: mid}
		b := &shard{parent: p.id, start: new(big.Int).Add(mid, big.NewInt(1)), end: p.end}
		s.add(a)
		s.add(b)
		p.closed = true
		p.children = []string{a.id, b.id}
	}
}

// Requests returns the Kinesis requests answered: ListShards, GetShardIterator, GetRecords.
func (s *Stream) Requests() (list, iter, get int64) {
	return s.listShards.Load(), s.getIterator.Load(), s.getRecords.Load()
}

func (sh *shard) api() types.Shard {
	out := types.Shard{
		ShardId:      aws.String(sh.id),
		HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String(sh.start.String()), EndingHashKey: aws.String(sh.end.String())},
		SequenceNumberRange: &types.SequenceNumberRange{
			StartingSequenceNumber: aws.String("49" + strings.Repeat("0", 54)),
		},
	}
	if sh.parent != "" {
		out.ParentShardId = aws.String(sh.parent)
	}
	if sh.adjacent != "" {
		out.AdjacentParentShardId = aws.String(sh.adjacent)
	}
	if sh.closed {
		out.SequenceNumberRange.EndingSequenceNumber = aws.String("49" + strings.Repeat("9", 54))
	}
	return out
}

// ListShards returns the shards in creation order, listShardsPage at a time.
func (s *Stream) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	s.listShards.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	from := 0
	if in.NextToken != nil {
		if in.StreamName != nil || in.StreamARN != nil {
			return nil, &types.InvalidArgumentException{Message: aws.String("NextToken and StreamName cannot be provided together")}
		}
		n, err := strconv.Atoi(aws.ToString(in.NextToken))
		if err != nil {
			return nil, &types.InvalidArgumentException{Message: aws.String("bad NextToken")}
		}
		from = n
	} else if aws.ToString(in.StreamName) != s.name {
		return nil, &types.ResourceNotFoundException{Message: aws.String("stream not found")}
	}
	page := listShardsPage
	if in.MaxResults != nil {
		page = int(*in.MaxResults)
	}
	out := &kinesis.ListShardsOutput{}
	to := min(from+page, len(s.shards))
	for _, sh := range s.shards[from:to] {
		out.Shards = append(out.Shards, sh.api())
	}
	if to < len(s.shards) {
		out.NextToken = aws.String(strconv.Itoa(to))
	}
	return out, nil
}

// GetShardIterator returns an iterator naming the shard.
func (s *Stream) GetShardIterator(_ context.Context, in *kinesis.GetShardIteratorInput, _ ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	s.getIterator.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.byID[aws.ToString(in.ShardId)]; !ok {
		return nil, &types.ResourceNotFoundException{Message: aws.String("shard not found")}
	}
	return &kinesis.GetShardIteratorOutput{ShardIterator: aws.String("it/" + aws.ToString(in.ShardId))}, nil
}

// GetRecords returns no records: the same iterator while the shard is open, its end and
// children once it closed.
func (s *Stream) GetRecords(_ context.Context, in *kinesis.GetRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	s.getRecords.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	id := strings.TrimPrefix(aws.ToString(in.ShardIterator), "it/")
	sh, ok := s.byID[id]
	if !ok {
		return nil, &types.InvalidArgumentException{Message: aws.String("bad iterator")}
	}
	out := &kinesis.GetRecordsOutput{MillisBehindLatest: aws.Int64(0), Records: []types.Record{}}
	if !sh.closed {
		out.NextShardIterator = in.ShardIterator
		return out, nil
	}
	for _, c := range sh.children {
		ch := s.byID[c]
		out.ChildShards = append(out.ChildShards, types.ChildShard{
			ShardId:      aws.String(c),
			ParentShards: []string{sh.id},
			HashKeyRange: &types.HashKeyRange{StartingHashKey: aws.String(ch.start.String()), EndingHashKey: aws.String(ch.end.String())},
		})
	}
	return out, nil
}
