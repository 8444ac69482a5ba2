package producer

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/shardline/shardline/aggregation"
)

// instantKinesis answers every PutRecords at once with success: what is left to measure is
// the producer's own cost per record.
type instantKinesis struct {
	shards []types.Shard
	ids    []string
	starts []aggregation.HashKey
	seq    *string
	calls  atomic.Int64
}

func newInstant(n int) *instantKinesis {
	k := &instantKinesis{seq: aws.String("49590338271490256608559692538361571095921575989136588898")}
	max := new(big.Int).Lsh(big.NewInt(1), 128)
	step := new(big.Int).Div(max, big.NewInt(int64(n)))
	for i := range n {
		lo := new(big.Int).Mul(step, big.NewInt(int64(i)))
		hi := new(big.Int).Sub(new(big.Int).Mul(step, big.NewInt(int64(i+1))), big.NewInt(1))
		if i == n-1 {
			hi.Sub(max, big.NewInt(1))
		}
		id := "shardId-" + strconv.Itoa(i)
		k.ids = append(k.ids, id)
		start, _ := aggregation.ParseHashKey(lo.String())
		k.starts = append(k.starts, start)
		k.shards = append(k.shards, types.Shard{
			ShardId:             aws.String(id),
			HashKeyRange:        &types.HashKeyRange{StartingHashKey: aws.String(lo.String()), EndingHashKey: aws.String(hi.String())},
			SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("0")},
		})
	}
	return k
}

func (k *instantKinesis) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	k.calls.Add(1)
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	for i, e := range in.Records {
		// The producer puts each aggregate under its first record's key; report the shard
		// that key hashes to, as the service would.
		h, _ := aggregation.EffectiveHashKey(*e.PartitionKey, aws.ToString(e.ExplicitHashKey))
		j := 0
		for j+1 < len(k.starts) && k.starts[j+1].Cmp(h) <= 0 {
			j++
		}
		out.Records[i] = types.PutRecordsResultEntry{ShardId: &k.ids[j], SequenceNumber: k.seq}
	}
	return out, nil
}

func (k *instantKinesis) ListShards(context.Context, *kinesis.ListShardsInput, ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return &kinesis.ListShardsOutput{Shards: k.shards}, nil
}

// BenchmarkProduce measures the client-side cost of one user record through the whole
// pipeline (validation, hashing, aggregation, batching, results) against an instant fake
// service. One op is one record. Reported next to it, as floor-ns/rec, is what the work a
// record cannot avoid costs on this machine: MD5 of its bytes (the aggregate checksum), and
// SHA-256 and base64 of its share of the request body (SigV4's payload hash over the JSON
// wire encoding, which the SDK does and this benchmark's fake does not).
func BenchmarkProduce(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { benchProduce(b, size, false) })
		b.Run(fmt.Sprintf("%dB/parallel", size), func(b *testing.B) { benchProduce(b, size, true) })
	}
}

func benchProduce(b *testing.B, size int, parallel bool) {
	const keys = 1000
	pks := make([]string, keys)
	for i := range pks {
		pks[i] = "partition-key-" + strconv.Itoa(i)
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	floor := floorPerRecord(size, len(pks[0]))

	fake := newInstant(4)
	p, err := New(fake, Config{StreamName: "bench", Logger: quietLogger, RateLimit: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	// Wait for the shard map so that records do not queue unrouted.
	for len(p.table.Load().shards) == 0 {
		time.Sleep(time.Millisecond)
	}
	// A ring of records reused once their result came back: more slots than the buffer
	// holds, so a slot is nearly always free again when its turn comes.
	const ring = 1 << 18
	recs := make([]Record, ring)
	busy := make([]atomic.Bool, ring)
	done := func(rec *Record, res Result) {
		if res.Err != nil {
			b.Error(res.Err)
		}
		busy[rec.Meta.(int)].Store(false)
	}
	for i := range recs {
		recs[i] = Record{Data: data, Meta: i}
	}
	var next atomic.Int64
	put := func(ctx context.Context) {
		i := int(next.Add(1)-1) & (ring - 1)
		for !busy[i].CompareAndSwap(false, true) {
			time.Sleep(time.Microsecond)
		}
		recs[i].PartitionKey = pks[i%keys]
		if err := p.PutAsync(ctx, &recs[i], done); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(size))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	b.ResetTimer()
	start := time.Now()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				put(ctx)
			}
		})
	} else {
		for range b.N {
			put(ctx)
		}
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&ms)
	// allocs/op is rounded to an integer; this is the same count, unrounded.
	b.ReportMetric(float64(ms.Mallocs-mallocs)/float64(b.N), "allocs/rec")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rec/s")
	b.ReportMetric(floor, "floor-ns/rec")
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
}

// floorPerRecord times the unavoidable per-byte work for records of size bytes packed into
// full aggregates, per record.
func floorPerRecord(size, pkLen int) float64 {
	perAgg := aggregation.DefaultMaxAggregateSize / (size + pkLen/4 + 6) // records per aggregate, roughly
	agg := make([]byte, aggregation.DefaultMaxAggregateSize)
	for i := range agg {
		agg[i] = byte(i)
	}
	enc := make([]byte, base64.StdEncoding.EncodedLen(len(agg)))
	const rounds = 200
	start := time.Now()
	for range rounds {
		_ = md5.Sum(agg)
		base64.StdEncoding.Encode(enc, agg)
		_ = sha256.Sum256(enc)
	}
	return float64(time.Since(start).Nanoseconds()) / rounds / float64(perAgg)
}
