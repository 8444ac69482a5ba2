package consumer

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/internal/testenv"
)

// emuEnv is a stream on kinesis-mock and a lease table name on dynalite, both removed when the
// test ends.
type emuEnv struct {
	kc     *kinesis.Client
	ddb    *dynamodb.Client
	stream string
	table  string
}

// Failover time of the emulator tests: short, so that failover happens within the test, and
// long enough that renewals on a loaded two-core machine under the race detector keep up.
const emuFailover = 3 * time.Second

func newEmuEnv(t testing.TB, shards int32, kinesisHTTP, ddbHTTP *http.Client) *emuEnv {
	t.Helper()
	var kh, dh aws.HTTPClient
	if kinesisHTTP != nil {
		kh = kinesisHTTP
	}
	if ddbHTTP != nil {
		dh = ddbHTTP
	}
	e := &emuEnv{kc: testenv.Kinesis(t, kh), ddb: testenv.DynamoDB(t, dh)}
	e.stream = testenv.CreateStream(t, e.kc, shards)
	e.table = testenv.TableName(t, e.ddb)
	return e
}

// config is a worker configuration for the emulators with test timings.
func (e *emuEnv) config(t testing.TB, id string, proc ProcessorFactory) Config {
	return Config{
		StreamName:           e.stream,
		ApplicationName:      e.table,
		WorkerID:             id,
		Processor:            proc,
		Kinesis:              e.kc,
		DynamoDB:             e.ddb,
		InitialPosition:      TrimHorizon,
		FailoverTime:         emuFailover,
		ShardSyncInterval:    2 * time.Second,
		LeaseCleanupDelay:    time.Second,
		HandoffTimeout:       6 * time.Second,
		IdleTimeBetweenReads: 100 * time.Millisecond,
		MinTimeBetweenReads:  50 * time.Millisecond,
		ShutdownTimeout:      15 * time.Second,
		Logger:               testLogger(t),
	}
}

// testProducer writes test records "key/idx/padding" aggregated per shard, routed with an
// explicit hash key inside the target shard's range, so the tests do not depend on the
// producer package. Each PutRecords call carries at most one aggregate per shard, which keeps
// every key's records in order.
type testProducer struct {
	kc      *kinesis.Client
	stream  string
	next    map[string]int
	shards  *aggregation.ShardMap
	padding string
}

func newTestProducer(t testing.TB, kc *kinesis.Client, stream string) *testProducer {
	p := &testProducer{kc: kc, stream: stream, next: map[string]int{}, padding: strings.Repeat("x", 60)}
	if err := p.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

// refresh reloads the open shards' ranges.
func (p *testProducer) refresh(ctx context.Context) error {
	shards, err := listShards(ctx, p.kc, p.stream, 10*time.Second)
	if err != nil {
		return err
	}
	var ranges []aggregation.ShardRange
	for _, s := range shards {
		if isClosed(&s) {
			continue
		}
		start, _ := aggregation.ParseHashKey(*s.HashKeyRange.StartingHashKey)
		end, _ := aggregation.ParseHashKey(*s.HashKeyRange.EndingHashKey)
		ranges = append(ranges, aggregation.ShardRange{ShardID: *s.ShardId, Start: start, End: end})
	}
	m, err := aggregation.NewShardMap(ranges)
	if err != nil {
		return err
	}
	p.shards = m
	return nil
}

// round writes one record for each key and returns how many were written.
func (p *testProducer) round(ctx context.Context, keys []string) (int, error) {
	byShard := map[string]*aggregation.Aggregator{}
	var order []aggregation.ShardRange
	for _, k := range keys {
		r, ok := p.shards.Lookup(aggregation.PartitionKeyHash(k))
		if !ok {
			return 0, fmt.Errorf("no shard for key %s", k)
		}
		a := byShard[r.ShardID]
		if a == nil {
			a = aggregation.NewAggregator(0)
			byShard[r.ShardID] = a
			order = append(order, r)
		}
		data := fmt.Sprintf("%s/%d/%s", k, p.next[k], p.padding)
		if err := a.Add(aggregation.UserRecord{PartitionKey: k, Data: []byte(data)}); err != nil {
			return 0, err
		}
		p.next[k]++
	}
	var entries []types.PutRecordsRequestEntry
	for _, r := range order {
		kr, _ := byShard[r.ShardID].Flush()
		entries = append(entries, types.PutRecordsRequestEntry{
			Data: kr.Data, PartitionKey: aws.String(kr.PartitionKey), ExplicitHashKey: aws.String(r.Start.String()),
		})
	}
	return len(keys), p.put(ctx, entries)
}

// put writes entries, retrying the failed ones in order.
func (p *testProducer) put(ctx context.Context, entries []types.PutRecordsRequestEntry) error {
	for attempt := 0; len(entries) > 0; attempt++ {
		if attempt > 20 {
			return fmt.Errorf("PutRecords kept failing")
		}
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		out, err := p.kc.PutRecords(cctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.stream), Records: entries})
		cancel()
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var failed []types.PutRecordsRequestEntry
		for i, r := range out.Records {
			if r.ErrorCode != nil {
				failed = append(failed, entries[i])
			}
		}
		entries = failed
	}
	return nil
}

// produce writes rounds of one record per key, one round every gap.
func (p *testProducer) produce(ctx context.Context, keys []string, rounds int, gap time.Duration) (int, error) {
	n := 0
	for i := 0; i < rounds; i++ {
		m, err := p.round(ctx, keys)
		n += m
		if err != nil {
			return n, err
		}
		if gap > 0 {
			select {
			case <-ctx.Done():
				return n, ctx.Err()
			case <-time.After(gap):
			}
		}
	}
	return n, nil
}

// openShardIDs lists the open shards, sorted by their starting hash key.
func (p *testProducer) openShardIDs() []string {
	var ids []string
	for _, r := range p.shards.Ranges() {
		ids = append(ids, r.ShardID)
	}
	return ids
}

func splitShard(t testing.TB, kc *kinesis.Client, stream, shardID string, shards *aggregation.ShardMap) {
	t.Helper()
	var rng aggregation.ShardRange
	for _, r := range shards.Ranges() {
		if r.ShardID == shardID {
			rng = r
		}
	}
	// The middle of the range: start + (end-start)/2, in 128 bits.
	mid := midpoint(rng.Start, rng.End)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(stream), ShardToSplit: aws.String(shardID), NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatalf("split %s: %v", shardID, err)
	}
	if err := testenv.WaitStreamActive(ctx, kc, stream); err != nil {
		t.Fatal(err)
	}
}

func mergeShards(t testing.TB, kc *kinesis.Client, stream, a, b string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(stream), ShardToMerge: aws.String(a), AdjacentShardToMerge: aws.String(b)}); err != nil {
		t.Fatalf("merge %s %s: %v", a, b, err)
	}
	if err := testenv.WaitStreamActive(ctx, kc, stream); err != nil {
		t.Fatal(err)
	}
}

func midpoint(a, b aggregation.HashKey) aggregation.HashKey {
	// (a + b) / 2 without overflow: a + (b - a) / 2.
	dHi, dLo := b.Hi-a.Hi, b.Lo-a.Lo
	if b.Lo < a.Lo {
		dHi--
	}
	dLo = dLo>>1 | dHi<<63
	dHi >>= 1
	lo := a.Lo + dLo
	hi := a.Hi + dHi
	if lo < a.Lo {
		hi++
	}
	return aggregation.HashKey{Hi: hi, Lo: lo}
}
