package producer

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/compression"
)

// fakeKinesis is an in-memory Kinesis stream for unit tests: it routes entries by hash key
// like the service, enforces the request limits the producer must respect (failing the test
// when they are broken), and lets a test inject failures per call or per entry.
type fakeKinesis struct {
	t testing.TB

	mu      sync.Mutex
	shards  []*fakeShard
	nextID  int
	seq     int64
	calls   int
	entries int

	maxEntries, maxBytes int // largest request seen

	// callHook, when set, runs first on every PutRecords; a non-nil error fails the call.
	callHook func(call int, in *kinesis.PutRecordsInput) error
	// entryHook, when set, may fail one entry with an error code.
	entryHook func(shardID string, e types.PutRecordsRequestEntry) string
	// gate, when set, is received from before each PutRecords completes (after storing).
	gate chan struct{}
	// listErr fails ListShards.
	listErr error
	// perCall lets a test inspect each request.
	perCall func(in *kinesis.PutRecordsInput)
	// maxRecordKiB is the stream's maximum record size in KiB as DescribeStreamSummary
	// reports it; 0 reports none (the 1 MiB default, as on streams never raised).
	maxRecordKiB int32
	// describeGate, when set, is received from before DescribeStreamSummary answers.
	describeGate chan struct{}
}

// DescribeStreamSummary reports the stream's maximum record size, as AWS does in
// StreamDescriptionSummary.MaxRecordSizeInKiB.
func (f *fakeKinesis) DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	f.mu.Lock()
	gate := f.describeGate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{StreamName: in.StreamName}}
	if f.maxRecordKiB > 0 {
		out.StreamDescriptionSummary.MaxRecordSizeInKiB = aws.Int32(f.maxRecordKiB)
	}
	return out, nil
}

func (f *fakeKinesis) maxRecordBytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.maxRecordKiB > 0 {
		return int(f.maxRecordKiB) << 10
	}
	return aggregation.MaxRecordSize
}

type fakeShard struct {
	id         string
	start, end aggregation.HashKey
	open       bool
	records    []storedRecord
}

type storedRecord struct {
	pk, ehk string
	data    []byte
	seq     string
}

func newFake(t testing.TB, shards int) *fakeKinesis {
	f := &fakeKinesis{t: t}
	max := new(big.Int).Lsh(big.NewInt(1), 128)
	step := new(big.Int).Div(max, big.NewInt(int64(shards)))
	for i := range shards {
		lo := new(big.Int).Mul(step, big.NewInt(int64(i)))
		hi := new(big.Int).Sub(new(big.Int).Mul(step, big.NewInt(int64(i+1))), big.NewInt(1))
		if i == shards-1 {
			hi.Sub(max, big.NewInt(1))
		}
		f.addShard(bigKey(lo), bigKey(hi))
	}
	return f
}

func bigKey(b *big.Int) aggregation.HashKey {
	k, err := aggregation.ParseHashKey(b.String())
	if err != nil {
		panic(err)
	}
	return k
}

func (f *fakeKinesis) addShard(start, end aggregation.HashKey) *fakeShard {
	s := &fakeShard{id: fmt.Sprintf("shardId-%012d", f.nextID), start: start, end: end, open: true}
	f.nextID++
	f.shards = append(f.shards, s)
	return s
}

// split closes the open shard holding k and opens two children dividing its range in half.
func (f *fakeKinesis) split(index int) (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var open []*fakeShard
	for _, s := range f.shards {
		if s.open {
			open = append(open, s)
		}
	}
	s := open[index]
	s.open = false
	lo, _ := new(big.Int).SetString(s.start.String(), 10)
	hi, _ := new(big.Int).SetString(s.end.String(), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	a := f.addShard(s.start, bigKey(mid))
	b := f.addShard(bigKey(new(big.Int).Add(mid, big.NewInt(1))), s.end)
	return a.id, b.id
}

func (f *fakeKinesis) route(k aggregation.HashKey) *fakeShard {
	for _, s := range f.shards {
		if s.open && s.start.Cmp(k) <= 0 && k.Cmp(s.end) <= 0 {
			return s
		}
	}
	return nil
}

func (f *fakeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	f.calls++
	call := f.calls
	hook, perCall := f.callHook, f.perCall
	f.mu.Unlock()
	if perCall != nil {
		perCall(in)
	}
	if hook != nil {
		if err := hook(call, in); err != nil {
			return nil, err
		}
	}
	if err := sdkValidation(in); err != nil {
		return nil, err
	}
	if len(in.Records) > MaxBatchRecords {
		f.t.Errorf("PutRecords with %d entries", len(in.Records))
	}
	total, limit := 0, f.maxRecordBytes()
	for _, e := range in.Records {
		n := len(e.Data) + len(aws.ToString(e.PartitionKey))
		if n > limit {
			f.t.Errorf("PutRecords entry of %d bytes", n)
		}
		total += n
	}
	// The current PutRecords reference allows 10 MiB per request; the producer's default
	// bound is 5 MiB, which only a record larger than it may exceed, alone.
	if total > MaxRequestBytes || total > MaxBatchBytes && len(in.Records) > 1 {
		f.t.Errorf("PutRecords request of %d bytes in %d entries", total, len(in.Records))
	}
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	f.mu.Lock()
	f.maxEntries = max(f.maxEntries, len(in.Records))
	f.maxBytes = max(f.maxBytes, total)
	for i, e := range in.Records {
		pk := aws.ToString(e.PartitionKey)
		ehk := aws.ToString(e.ExplicitHashKey)
		k, err := aggregation.EffectiveHashKey(pk, ehk)
		if err != nil {
			f.mu.Unlock()
			return nil, &types.InvalidArgumentException{Message: aws.String(err.Error())}
		}
		s := f.route(k)
		if f.entryHook != nil {
			if code := f.entryHook(s.id, e); code != "" {
				out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String("injected")}
				out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
				continue
			}
		}
		f.seq++
		seq := strconv.FormatInt(f.seq, 10)
		s.records = append(s.records, storedRecord{pk: pk, ehk: ehk, data: slices.Clone(e.Data), seq: seq})
		f.entries++
		out.Records[i] = types.PutRecordsResultEntry{ShardId: aws.String(s.id), SequenceNumber: aws.String(seq)}
	}
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

func (f *fakeKinesis) ListShards(ctx context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErr != nil {
		return nil, f.listErr
	}
	// Pages of two shards exercise NextToken.
	start := 0
	if in.NextToken != nil {
		if in.StreamName != nil {
			f.t.Errorf("ListShards with both NextToken and StreamName")
		}
		start, _ = strconv.Atoi(*in.NextToken)
	}
	out := &kinesis.ListShardsOutput{}
	for i := start; i < len(f.shards) && i < start+2; i++ {
		s := f.shards[i]
		sh := types.Shard{
			ShardId: aws.String(s.id),
			HashKeyRange: &types.HashKeyRange{
				StartingHashKey: aws.String(s.start.String()),
				EndingHashKey:   aws.String(s.end.String()),
			},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")},
		}
		if !s.open {
			sh.SequenceNumberRange.EndingSequenceNumber = aws.String("999")
		}
		out.Shards = append(out.Shards, sh)
	}
	if start+2 < len(f.shards) {
		out.NextToken = aws.String(strconv.Itoa(start + 2))
	}
	return out, nil
}

// userRecord is a user record as a consumer would see it, with the shard it was read from.
type userRecord struct {
	shard string
	pk    string
	data  string
}

// read returns every user record in the stream, shard by shard in shard order (parents
// before children), decoding compression and aggregation as a Java KCL consumer does: an
// aggregate with any user record outside its shard's range is dropped whole.
func (f *fakeKinesis) read(t testing.TB) []userRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []userRecord
	for _, s := range f.shards {
		for _, r := range s.records {
			blob, err := compression.Decode(r.data)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			urs, err := aggregation.Deaggregate(nil, blob, r.pk, r.ehk)
			if err != nil {
				t.Fatalf("deaggregate: %v", err)
			}
			if len(urs) > 0 && urs[0].Aggregated && !allInRange(urs, s.start, s.end) {
				continue // the KCL drops the whole aggregate, see allInRange
			}
			for _, u := range urs {
				out = append(out, userRecord{shard: s.id, pk: u.PartitionKey, data: string(u.Data)})
			}
		}
	}
	return out
}

func (f *fakeKinesis) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeKinesis) set(fn func(f *fakeKinesis)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// allInRange applies the Java KCL's rule for an aggregate read from a shard
// (software.amazon.kinesis.retrieval.AggregatorUtil.deaggregate in awslabs/amazon-kinesis-client):
// as soon as one user record's effective hash key lies outside the shard's range, the records
// of that aggregate already taken are removed and the rest skipped, so the application sees
// none of them. A plain (not aggregated) record is passed on without a range check.
func allInRange(urs []aggregation.UserRecord, start, end aggregation.HashKey) bool {
	for _, u := range urs {
		k, err := aggregation.EffectiveHashKey(u.PartitionKey, u.ExplicitHashKey)
		if err != nil || k.Cmp(start) < 0 || k.Cmp(end) > 0 {
			return false
		}
	}
	return true
}

// sdkValidation returns the error the Kinesis SDK's validation middleware returns, before
// sending anything, for a PutRecords call with an entry whose Data is nil
// (validatePutRecordsRequestEntry in service/kinesis/validators.go).
func sdkValidation(in *kinesis.PutRecordsInput) error {
	for i, e := range in.Records {
		if e.Data == nil {
			entry := smithy.InvalidParamsError{Context: "PutRecordsRequestEntry"}
			entry.Add(smithy.NewErrParamRequired("Data"))
			list := smithy.InvalidParamsError{Context: "PutRecordsRequestEntryList"}
			list.AddNested(fmt.Sprintf("[%d]", i), entry)
			top := smithy.InvalidParamsError{Context: "PutRecordsInput"}
			top.AddNested("Records", list)
			return &smithy.OperationError{ServiceID: "Kinesis", OperationName: "PutRecords", Err: top}
		}
	}
	return nil
}
