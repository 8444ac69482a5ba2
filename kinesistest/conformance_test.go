package kinesistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/transport/http/protocol/rpcv2"

	"github.com/shardline/shardline/internal/testenv"
)

// The conformance suite drives an endpoint through the SDK client and checks what comes
// back. Every case runs against kinesistest; the cases marked mock also run against
// kinesis-mock (TestConformanceKinesisMock), because kinesis-mock has that behaviour too,
// so two independent implementations agree on them. The expected behaviour is the
// service's, as described on the AWS page each case cites.

// target is the endpoint a case runs against.
type target struct {
	client *kinesis.Client
	// srv and clock are set for kinesistest only; cases that need them are not marked mock.
	srv   *Server
	clock *ManualClock
	// opts are the client options the suite runs with, for clients a case makes itself.
	opts []func(*kinesis.Options)
}

type conformanceCase struct {
	name string
	mock bool
	// opts configures the kinesistest server; the suite adds a ManualClock when Clock is nil.
	opts Options
	run  func(t *testing.T, tg *target)
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestConformance(t *testing.T) { runConformance(t) }

// TestConformanceCBOR runs the suite with the SDK speaking Smithy RPC v2 CBOR.
func TestConformanceCBOR(t *testing.T) {
	runConformance(t, func(o *kinesis.Options) { o.Protocol = rpcv2.NewCBOR(schemas.Kinesis_20131202) })
}

// TestConformanceSigned runs the suite over JSON with every signature verified, so that
// each operation, the fan-out event streams included, is signed as the server expects.
func TestConformanceSigned(t *testing.T) {
	runConformanceWith(t, true)
}

func runConformance(t *testing.T, clientOpts ...func(*kinesis.Options)) {
	runConformanceWith(t, false, clientOpts...)
}

func runConformanceWith(t *testing.T, verify bool, clientOpts ...func(*kinesis.Options)) {
	for _, c := range conformanceCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opts := c.opts
			opts.VerifySignatures = opts.VerifySignatures || verify
			clock := NewManualClock(epoch)
			if opts.Clock == nil {
				opts.Clock = clock
			}
			srv := NewServer(opts)
			t.Cleanup(srv.Close)
			c.run(t, &target{client: srv.Client(clientOpts...), srv: srv, clock: clock, opts: clientOpts})
		})
	}
}

func TestConformanceKinesisMock(t *testing.T) {
	for _, c := range conformanceCases {
		if !c.mock {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			client := testenv.Kinesis(t, nil, func(o *kinesis.Options) {
				o.RetryMaxAttempts = 3 // kinesis-mock is slow under load; retries hide nothing here
			})
			c.run(t, &target{client: client})
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// stream creates a provisioned stream and waits until it is ACTIVE.
func (tg *target) stream(t *testing.T, shards int32) string {
	t.Helper()
	name := testenv.UniqueName(t, "kt")
	ctx := ctxT(t)
	if _, err := tg.client.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	tg.waitActive(t, name)
	t.Cleanup(func() {
		_, _ = tg.client.DeleteStream(context.Background(), &kinesis.DeleteStreamInput{StreamName: aws.String(name)})
	})
	return name
}

func (tg *target) arn(t *testing.T, name string) *string {
	t.Helper()
	out, err := tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return out.StreamDescriptionSummary.StreamARN
}

func (tg *target) waitActive(t *testing.T, name string) {
	t.Helper()
	if err := testenv.WaitStreamActive(ctxT(t), tg.client, name); err != nil {
		t.Fatal(err)
	}
}

func (tg *target) openShards(t *testing.T, name string) []types.Shard {
	t.Helper()
	out, err := tg.client.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String(name),
		ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	if err != nil {
		t.Fatalf("ListShards: %v", err)
	}
	return out.Shards
}

func (tg *target) iterator(t *testing.T, name, shardID string, typ types.ShardIteratorType, seq string) *string {
	t.Helper()
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String(shardID), ShardIteratorType: typ}
	if seq != "" {
		in.StartingSequenceNumber = aws.String(seq)
	}
	out, err := tg.client.GetShardIterator(ctxT(t), in)
	if err != nil {
		t.Fatalf("GetShardIterator %s: %v", typ, err)
	}
	return out.ShardIterator
}

func (tg *target) put(t *testing.T, name string, recs ...types.PutRecordsRequestEntry) *kinesis.PutRecordsOutput {
	t.Helper()
	out, err := tg.client.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: recs})
	if err != nil {
		t.Fatalf("PutRecords: %v", err)
	}
	return out
}

func entry(key, data string) types.PutRecordsRequestEntry {
	return types.PutRecordsRequestEntry{PartitionKey: aws.String(key), Data: []byte(data)}
}

func entries(n, size int) []types.PutRecordsRequestEntry {
	out := make([]types.PutRecordsRequestEntry, n)
	for i := range out {
		out[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("k", i)), Data: bytes.Repeat([]byte{'x'}, size)}
	}
	return out
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func wantCode(t *testing.T, err error, want string) {
	t.Helper()
	if got := code(err); got != want {
		t.Fatalf("error = %v (code %q), want code %s", err, got, want)
	}
}

func bigInt(t *testing.T, s string) *big.Int {
	t.Helper()
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("%q is not a decimal", s)
	}
	return v
}

var hashSpaceEnd = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))

// checkCover checks that shards cover the hash key space contiguously, once.
func checkCover(t *testing.T, shards []types.Shard) {
	t.Helper()
	next := big.NewInt(0)
	for _, sh := range shards {
		start := bigInt(t, aws.ToString(sh.HashKeyRange.StartingHashKey))
		if start.Cmp(next) != 0 {
			t.Fatalf("shard %s starts at %s, want %s", aws.ToString(sh.ShardId), start, next)
		}
		next = new(big.Int).Add(bigInt(t, aws.ToString(sh.HashKeyRange.EndingHashKey)), big.NewInt(1))
	}
	if new(big.Int).Sub(next, big.NewInt(1)).Cmp(hashSpaceEnd) != 0 {
		t.Fatalf("shards end at %s, want 2^128-1", new(big.Int).Sub(next, big.NewInt(1)))
	}
}

func readAll(t *testing.T, tg *target, it *string) (recs []types.Record, out *kinesis.GetRecordsOutput) {
	t.Helper()
	for range 20 {
		var err error
		out, err = tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it})
		if err != nil {
			t.Fatalf("GetRecords: %v", err)
		}
		recs = append(recs, out.Records...)
		if out.NextShardIterator == nil || (len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0) {
			return recs, out
		}
		it = out.NextShardIterator
		if tg.clock != nil {
			tg.clock.Advance(time.Second) // stay inside the read rate
		}
	}
	return recs, out
}

var conformanceCases = []conformanceCase{
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_CreateStream.html
	{name: "CreateStreamSplitsHashSpaceEvenly", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 3)
		out, err := tg.client.DescribeStream(ctxT(t), &kinesis.DescribeStreamInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		d := out.StreamDescription
		if d.StreamStatus != types.StreamStatusActive || len(d.Shards) != 3 || aws.ToInt32(d.RetentionPeriodHours) != 24 {
			t.Fatalf("status %s, %d shards, retention %d; want ACTIVE, 3, 24", d.StreamStatus, len(d.Shards), aws.ToInt32(d.RetentionPeriodHours))
		}
		if !strings.HasSuffix(aws.ToString(d.StreamARN), ":stream/"+name) || !strings.HasPrefix(aws.ToString(d.StreamARN), "arn:aws:kinesis:") {
			t.Fatalf("StreamARN %q", aws.ToString(d.StreamARN))
		}
		checkCover(t, d.Shards)
	}},
	{name: "CreateExistingStreamIsResourceInUse", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		_, err := tg.client.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)})
		wantCode(t, err, CodeResourceInUse)
	}},
	{name: "MissingStreamIsResourceNotFound", mock: true, run: func(t *testing.T, tg *target) {
		_, err := tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(testenv.UniqueName(t, "none"))})
		wantCode(t, err, CodeResourceNotFound)
	}},
	// On-demand streams start with four shards (4 MB/s of write capacity).
	// https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
	{name: "OnDemandStreamStartsWithFourShards", mock: true, run: func(t *testing.T, tg *target) {
		name := testenv.UniqueName(t, "kt")
		_, err := tg.client.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String(name),
			StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}})
		if err != nil {
			t.Fatal(err)
		}
		tg.waitActive(t, name)
		out, err := tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		s := out.StreamDescriptionSummary
		if s.StreamModeDetails.StreamMode != types.StreamModeOnDemand || aws.ToInt32(s.OpenShardCount) != 4 {
			t.Fatalf("mode %s, %d open shards; want ON_DEMAND, 4", s.StreamModeDetails.StreamMode, aws.ToInt32(s.OpenShardCount))
		}
	}},
	// DescribeLimits answers the shard quota, the open shards, and the on-demand stream
	// quota and count, and is limited to one call per second per account.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeLimits.html
	{name: "DescribeLimitsCountsShardsAndOnDemandStreams", opts: Options{Limits: Limits{ShardLimit: 30}}, run: func(t *testing.T, tg *target) {
		tg.stream(t, 3)
		if _, err := tg.client.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String("od"),
			StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}); err != nil {
			t.Fatal(err)
		}
		out, err := tg.client.DescribeLimits(ctxT(t), &kinesis.DescribeLimitsInput{})
		if err != nil {
			t.Fatal(err)
		}
		if got := [4]int32{aws.ToInt32(out.ShardLimit), aws.ToInt32(out.OpenShardCount), aws.ToInt32(out.OnDemandStreamCount), aws.ToInt32(out.OnDemandStreamCountLimit)}; got != [4]int32{30, 7, 1, DefaultOnDemandStreamLimit} {
			t.Errorf("ShardLimit, OpenShardCount, OnDemandStreamCount, OnDemandStreamCountLimit = %v, want [30 7 1 %d]", got, DefaultOnDemandStreamLimit)
		}
		_, err = tg.client.DescribeLimits(ctxT(t), &kinesis.DescribeLimitsInput{})
		wantCode(t, err, CodeLimitExceeded)
		tg.clock.Advance(time.Second)
		if _, err := tg.client.DescribeLimits(ctxT(t), &kinesis.DescribeLimitsInput{}); err != nil {
			t.Errorf("a second later: %v", err)
		}
	}},
	// The account's on-demand streams are limited (50 by default), whether created so or
	// switched to on-demand.
	// https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
	{name: "OnDemandStreamQuota", opts: Options{Limits: Limits{OnDemandStreamLimit: 1}}, run: func(t *testing.T, tg *target) {
		onDemand := &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}
		if _, err := tg.client.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String("od1"), StreamModeDetails: onDemand}); err != nil {
			t.Fatal(err)
		}
		_, err := tg.client.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String("od2"), StreamModeDetails: onDemand})
		wantCode(t, err, CodeLimitExceeded)
		name := tg.stream(t, 1)
		_, err = tg.client.UpdateStreamMode(ctxT(t), &kinesis.UpdateStreamModeInput{StreamARN: tg.arn(t, name), StreamModeDetails: onDemand})
		wantCode(t, err, CodeLimitExceeded)
	}},
	// A new on-demand stream takes 4 MB/s and 4,000 records/s of writes: four shards with the
	// per-shard limits of both capacity modes.
	// https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
	// https://docs.aws.amazon.com/streams/latest/dev/working-with-streams.html
	{name: "OnDemandWriteCapacity", run: func(t *testing.T, tg *target) {
		if _, err := tg.client.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String("od"),
			StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}); err != nil {
			t.Fatal(err)
		}
		shards, err := tg.client.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String("od")})
		if err != nil || len(shards.Shards) != DefaultOnDemandShardCount {
			t.Fatalf("ListShards: %v, %d shards", err, len(shards.Shards))
		}
		put := func(n int) (failed int) {
			for _, sh := range shards.Shards {
				for sent := 0; sent < n; sent += 500 {
					var entries []types.PutRecordsRequestEntry
					for range min(500, n-sent) {
						entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), ExplicitHashKey: sh.HashKeyRange.StartingHashKey, Data: []byte("x")})
					}
					out, err := tg.client.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String("od"), Records: entries})
					if err != nil {
						t.Fatal(err)
					}
					failed += int(aws.ToInt32(out.FailedRecordCount))
				}
			}
			return failed
		}
		if failed := put(DefaultShardWriteRecordsPerSecond); failed != 0 {
			t.Fatalf("%d of 4,000 records in the first second refused", failed)
		}
		if failed := put(1); failed != DefaultOnDemandShardCount {
			t.Fatalf("one more record per shard in the same second: %d refused, want %d", failed, DefaultOnDemandShardCount)
		}
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListStreams.html
	{name: "ListStreamsPagesWithExclusiveStartStreamName", mock: true, run: func(t *testing.T, tg *target) {
		want := map[string]bool{tg.stream(t, 1): true, tg.stream(t, 1): true, tg.stream(t, 1): true}
		seen := map[string]bool{}
		var after *string
		for range 1000 {
			out, err := tg.client.ListStreams(ctxT(t), &kinesis.ListStreamsInput{Limit: aws.Int32(1), ExclusiveStartStreamName: after})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.StreamNames) > 1 {
				t.Fatalf("Limit 1 gave %d names", len(out.StreamNames))
			}
			for _, n := range out.StreamNames {
				seen[n] = true
				after = aws.String(n)
			}
			if !aws.ToBool(out.HasMoreStreams) {
				break
			}
		}
		for n := range want {
			if !seen[n] {
				t.Fatalf("stream %s never listed", n)
			}
		}
	}},
	{name: "ListStreamsPagesWithNextToken", run: func(t *testing.T, tg *target) {
		want := map[string]bool{tg.stream(t, 1): true, tg.stream(t, 1): true, tg.stream(t, 1): true}
		p := kinesis.NewListStreamsPaginator(tg.client, &kinesis.ListStreamsInput{Limit: aws.Int32(1)})
		pages := 0
		for p.HasMorePages() {
			out, err := p.NextPage(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, n := range out.StreamNames {
				delete(want, n)
			}
			if len(out.StreamSummaries) != len(out.StreamNames) {
				t.Fatalf("%d summaries for %d names", len(out.StreamSummaries), len(out.StreamNames))
			}
		}
		if len(want) != 0 || pages != 3 {
			t.Fatalf("%d pages, missing %v", pages, want)
		}
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListShards.html
	{name: "ListShardsPagesWithNextTokenAndAcceptsStreamARN", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 3)
		sum, err := tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		arn := sum.StreamDescriptionSummary.StreamARN
		var ids []string
		in := &kinesis.ListShardsInput{StreamARN: arn, MaxResults: aws.Int32(1)}
		for {
			out, err := tg.client.ListShards(ctxT(t), in)
			if err != nil {
				t.Fatal(err)
			}
			for _, sh := range out.Shards {
				ids = append(ids, aws.ToString(sh.ShardId))
			}
			if out.NextToken == nil {
				break
			}
			in = &kinesis.ListShardsInput{NextToken: out.NextToken, MaxResults: aws.Int32(1)}
		}
		if len(ids) != 3 {
			t.Fatalf("paged through %v, want 3 shards", ids)
		}
	}},
	{name: "ListShardsNextTokenWithStreamNameIsInvalid", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 2)
		out, err := tg.client.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String(name), MaxResults: aws.Int32(1)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tg.client.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String(name), NextToken: out.NextToken})
		wantCode(t, err, CodeInvalidArgument)
	}},
	{name: "ListShardsNextTokenExpiresAfterFiveMinutes", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 2)
		out, err := tg.client.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String(name), MaxResults: aws.Int32(1)})
		if err != nil {
			t.Fatal(err)
		}
		tg.clock.Advance(5*time.Minute + time.Second)
		_, err = tg.client.ListShards(ctxT(t), &kinesis.ListShardsInput{NextToken: out.NextToken})
		wantCode(t, err, CodeExpiredNextToken)
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ShardFilter.html
	{name: "ListShardsFilters", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 2)
		created := tg.clock.Now()
		tg.clock.Advance(time.Hour)
		shards := tg.openShards(t, name)
		split(t, tg, name, shards[0])
		count := func(f *types.ShardFilter) []string {
			out, err := tg.client.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String(name), ShardFilter: f})
			if err != nil {
				t.Fatalf("ListShards %s: %v", f.Type, err)
			}
			var ids []string
			for _, sh := range out.Shards {
				ids = append(ids, aws.ToString(sh.ShardId))
			}
			return ids
		}
		cases := []struct {
			f    *types.ShardFilter
			want string
		}{
			{&types.ShardFilter{Type: types.ShardFilterTypeAtLatest}, "shardId-000000000001 shardId-000000000002 shardId-000000000003"},
			{&types.ShardFilter{Type: types.ShardFilterTypeAtTrimHorizon}, "shardId-000000000000 shardId-000000000001"},
			{&types.ShardFilter{Type: types.ShardFilterTypeFromTrimHorizon}, "shardId-000000000000 shardId-000000000001 shardId-000000000002 shardId-000000000003"},
			{&types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String("shardId-000000000001")}, "shardId-000000000002 shardId-000000000003"},
			{&types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp, Timestamp: aws.Time(created.Add(time.Minute))}, "shardId-000000000000 shardId-000000000001"},
			{&types.ShardFilter{Type: types.ShardFilterTypeFromTimestamp, Timestamp: aws.Time(tg.clock.Now().Add(time.Minute))}, "shardId-000000000001 shardId-000000000002 shardId-000000000003"},
		}
		for _, c := range cases {
			if got := strings.Join(count(c.f), " "); got != c.want {
				t.Errorf("filter %s: %s, want %s", c.f.Type, got, c.want)
			}
		}
		_, err := tg.client.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String(name), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp}})
		wantCode(t, err, CodeInvalidArgument)
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_SplitShard.html
	{name: "SplitShardClosesParentAndCreatesTwoChildren", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		parent := tg.openShards(t, name)[0]
		split(t, tg, name, parent)
		out, err := tg.client.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Shards) != 3 {
			t.Fatalf("%d shards after split, want 3", len(out.Shards))
		}
		if out.Shards[0].SequenceNumberRange.EndingSequenceNumber == nil {
			t.Fatal("parent has no EndingSequenceNumber after the split")
		}
		children := out.Shards[1:]
		for _, c := range children {
			if aws.ToString(c.ParentShardId) != aws.ToString(parent.ShardId) {
				t.Fatalf("child %s has parent %q, want %s", aws.ToString(c.ShardId), aws.ToString(c.ParentShardId), aws.ToString(parent.ShardId))
			}
		}
		checkCover(t, children)
		_, err = tg.client.SplitShard(ctxT(t), &kinesis.SplitShardInput{StreamName: aws.String(name), ShardToSplit: parent.ShardId, NewStartingHashKey: aws.String("5")})
		wantCode(t, err, CodeResourceInUse)
	}},
	{name: "SplitShardOutsideRangeIsInvalid", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 2)
		sh := tg.openShards(t, name)[0]
		_, err := tg.client.SplitShard(ctxT(t), &kinesis.SplitShardInput{StreamName: aws.String(name), ShardToSplit: sh.ShardId, NewStartingHashKey: aws.String(hashSpaceEnd.String())})
		wantCode(t, err, CodeInvalidArgument)
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_MergeShards.html
	{name: "MergeShardsOfAdjacentPair", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 3)
		sh := tg.openShards(t, name)
		_, err := tg.client.MergeShards(ctxT(t), &kinesis.MergeShardsInput{StreamName: aws.String(name), ShardToMerge: sh[0].ShardId, AdjacentShardToMerge: sh[2].ShardId})
		wantCode(t, err, CodeInvalidArgument)
		if _, err := tg.client.MergeShards(ctxT(t), &kinesis.MergeShardsInput{StreamName: aws.String(name), ShardToMerge: sh[0].ShardId, AdjacentShardToMerge: sh[1].ShardId}); err != nil {
			t.Fatal(err)
		}
		tg.waitActive(t, name)
		open := tg.openShards(t, name)
		if len(open) != 2 {
			t.Fatalf("%d open shards after merge, want 2", len(open))
		}
		checkCover(t, sortByStart(t, open))
		var child *types.Shard
		for i := range open {
			if open[i].ParentShardId != nil {
				child = &open[i]
			}
		}
		if child == nil || aws.ToString(child.ParentShardId) != aws.ToString(sh[0].ShardId) || aws.ToString(child.AdjacentParentShardId) != aws.ToString(sh[1].ShardId) {
			t.Fatalf("merged shard %+v, want parents %s and %s", child, aws.ToString(sh[0].ShardId), aws.ToString(sh[1].ShardId))
		}
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html
	// Beyond double or below half the open shards the service answers LimitExceededException
	// ("UpdateShardCount cannot scale up over double your current open shard count");
	// kinesis-mock answers InvalidArgumentException.
	{name: "UpdateShardCountRefusesBeyondDoubleOrHalf", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 4)
		for _, n := range []int32{9, 1} {
			_, err := tg.client.UpdateShardCount(ctxT(t), &kinesis.UpdateShardCountInput{StreamName: aws.String(name), TargetShardCount: aws.Int32(n), ScalingType: types.ScalingTypeUniformScaling})
			wantCode(t, err, CodeLimitExceeded)
		}
	}},
	{name: "UpdateShardCountRefusesAnEleventhScalingInADay", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		var err error
		for i := range 11 {
			_, err = tg.client.UpdateShardCount(ctxT(t), &kinesis.UpdateShardCountInput{StreamName: aws.String(name), TargetShardCount: aws.Int32(int32(1 + i%2)), ScalingType: types.ScalingTypeUniformScaling})
			if i < 10 && err != nil {
				t.Fatalf("scaling %d: %v", i+1, err)
			}
			tg.clock.Advance(time.Second)
		}
		wantCode(t, err, CodeLimitExceeded)
		tg.clock.Advance(24 * time.Hour)
		if _, err := tg.client.UpdateShardCount(ctxT(t), &kinesis.UpdateShardCountInput{StreamName: aws.String(name), TargetShardCount: aws.Int32(2), ScalingType: types.ScalingTypeUniformScaling}); err != nil {
			t.Fatalf("a day later: %v", err)
		}
	}},
	{name: "UpdateShardCountScales", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 2)
		out, err := tg.client.UpdateShardCount(ctxT(t), &kinesis.UpdateShardCountInput{StreamName: aws.String(name), TargetShardCount: aws.Int32(4), ScalingType: types.ScalingTypeUniformScaling})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(out.CurrentShardCount) != 2 || aws.ToInt32(out.TargetShardCount) != 4 {
			t.Fatalf("current %d target %d", aws.ToInt32(out.CurrentShardCount), aws.ToInt32(out.TargetShardCount))
		}
		tg.waitActive(t, name)
		open := tg.openShards(t, name)
		if len(open) != 4 {
			t.Fatalf("%d open shards, want 4", len(open))
		}
		checkCover(t, sortByStart(t, open))
	}},
	{name: "UpdatesPassThroughUpdatingThenActive", opts: Options{Durations: Durations{CreateStream: 10 * time.Second, UpdateShardCount: 30 * time.Second, SplitShard: 5 * time.Second}}, run: func(t *testing.T, tg *target) {
		name := testenv.UniqueName(t, "kt")
		if _, err := tg.client.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
		status := func() types.StreamStatus {
			out, err := tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
			if err != nil {
				t.Fatal(err)
			}
			return out.StreamDescriptionSummary.StreamStatus
		}
		if s := status(); s != types.StreamStatusCreating {
			t.Fatalf("status %s right after CreateStream, want CREATING", s)
		}
		_, err := tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), Data: []byte("x")})
		wantCode(t, err, CodeResourceNotFound)
		tg.clock.Advance(10 * time.Second)
		if s := status(); s != types.StreamStatusActive {
			t.Fatalf("status %s after the create duration, want ACTIVE", s)
		}
		if _, err := tg.client.UpdateShardCount(ctxT(t), &kinesis.UpdateShardCountInput{StreamName: aws.String(name), TargetShardCount: aws.Int32(2), ScalingType: types.ScalingTypeUniformScaling}); err != nil {
			t.Fatal(err)
		}
		if s := status(); s != types.StreamStatusUpdating {
			t.Fatalf("status %s during UpdateShardCount, want UPDATING", s)
		}
		// Writes continue while UPDATING; a second update is refused.
		if _, err := tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), Data: []byte("x")}); err != nil {
			t.Fatalf("PutRecord while UPDATING: %v", err)
		}
		sh := tg.openShards(t, name)[0]
		_, err = tg.client.SplitShard(ctxT(t), &kinesis.SplitShardInput{StreamName: aws.String(name), ShardToSplit: sh.ShardId, NewStartingHashKey: aws.String("1000")})
		wantCode(t, err, CodeResourceInUse)
		tg.clock.Advance(30 * time.Second)
		if s := status(); s != types.StreamStatusActive {
			t.Fatalf("status %s after the update duration, want ACTIVE", s)
		}
	}},
	{name: "DeleteStreamPassesThroughDeleting", opts: Options{Durations: Durations{DeleteStream: 5 * time.Second}}, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		if _, err := tg.client.DeleteStream(ctxT(t), &kinesis.DeleteStreamInput{StreamName: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
		out, err := tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil || out.StreamDescriptionSummary.StreamStatus != types.StreamStatusDeleting {
			t.Fatalf("right after DeleteStream: %v, %+v; want DELETING", err, out)
		}
		tg.clock.Advance(5 * time.Second)
		_, err = tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		wantCode(t, err, CodeResourceNotFound)
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_IncreaseStreamRetentionPeriod.html
	{name: "RetentionChangesAreValidated", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		_, err := tg.client.DecreaseStreamRetentionPeriod(ctxT(t), &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: aws.String(name), RetentionPeriodHours: aws.Int32(23)})
		wantCode(t, err, CodeInvalidArgument)
		_, err = tg.client.IncreaseStreamRetentionPeriod(ctxT(t), &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String(name), RetentionPeriodHours: aws.Int32(8761)})
		wantCode(t, err, CodeInvalidArgument)
		if _, err := tg.client.IncreaseStreamRetentionPeriod(ctxT(t), &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String(name), RetentionPeriodHours: aws.Int32(48)}); err != nil {
			t.Fatal(err)
		}
		_, err = tg.client.IncreaseStreamRetentionPeriod(ctxT(t), &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String(name), RetentionPeriodHours: aws.Int32(36)})
		wantCode(t, err, CodeInvalidArgument)
		tg.waitActive(t, name)
		out, err := tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil || aws.ToInt32(out.StreamDescriptionSummary.RetentionPeriodHours) != 48 {
			t.Fatalf("retention after increase: %v %v, want 48", err, out)
		}
	}},
	{name: "RecordsPastRetentionAreTrimmed", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		tg.put(t, name, entry("a", "old"))
		tg.clock.Advance(23 * time.Hour)
		tg.put(t, name, entry("a", "new"))
		tg.clock.Advance(time.Hour + time.Second)
		sh := tg.openShards(t, name)[0]
		recs, _ := readAll(t, tg, tg.iterator(t, name, aws.ToString(sh.ShardId), types.ShardIteratorTypeTrimHorizon, ""))
		if len(recs) != 1 || string(recs[0].Data) != "new" {
			t.Fatalf("after 24h read %d records, want only the newer one", len(recs))
		}
	}},
	// An increase does not bring back records the old period already dropped.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_IncreaseStreamRetentionPeriod.html
	{name: "RetentionIncreaseDoesNotRestoreExpiredRecords", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		tg.put(t, name, entry("a", "old"))
		tg.clock.Advance(23 * time.Hour)
		tg.put(t, name, entry("a", "new"))
		tg.clock.Advance(time.Hour + time.Second)
		if _, err := tg.client.IncreaseStreamRetentionPeriod(ctxT(t), &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String(name), RetentionPeriodHours: aws.Int32(100)}); err != nil {
			t.Fatal(err)
		}
		recs, _ := readAll(t, tg, tg.iterator(t, name, "shardId-000000000000", types.ShardIteratorTypeTrimHorizon, ""))
		if len(recs) != 1 || string(recs[0].Data) != "new" {
			t.Fatalf("after the increase read %d records, want only the newer one", len(recs))
		}
	}},
	{name: "ClosedShardDisappearsAfterRetention", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		split(t, tg, name, tg.openShards(t, name)[0])
		tg.clock.Advance(24*time.Hour + time.Second)
		out, err := tg.client.ListShards(ctxT(t), &kinesis.ListShardsInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Shards) != 2 || aws.ToString(out.Shards[0].ShardId) == "shardId-000000000000" {
			t.Fatalf("shards %v, want only the two children", out.Shards)
		}
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateStreamMode.html
	{name: "UpdateStreamModeSwitchesCapacityMode", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 2)
		arn := tg.arn(t, name)
		if _, err := tg.client.UpdateStreamMode(ctxT(t), &kinesis.UpdateStreamModeInput{StreamARN: arn, StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}); err != nil {
			t.Fatal(err)
		}
		tg.waitActive(t, name)
		out, err := tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamARN: arn})
		if err != nil || out.StreamDescriptionSummary.StreamModeDetails.StreamMode != types.StreamModeOnDemand {
			t.Fatalf("after UpdateStreamMode: %v, %+v; want ON_DEMAND", err, out)
		}
	}},
	// A stream may switch capacity mode twice per rolling 24 hours.
	// https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html
	{name: "UpdateStreamModeTwicePerDay", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		arn := tg.arn(t, name)
		var err error
		for i, m := range []types.StreamMode{types.StreamModeOnDemand, types.StreamModeProvisioned, types.StreamModeOnDemand} {
			_, err = tg.client.UpdateStreamMode(ctxT(t), &kinesis.UpdateStreamModeInput{StreamARN: arn, StreamModeDetails: &types.StreamModeDetails{StreamMode: m}})
			if i < 2 && err != nil {
				t.Fatalf("switch %d: %v", i+1, err)
			}
			tg.clock.Advance(time.Minute)
		}
		wantCode(t, err, CodeLimitExceeded)
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_StartStreamEncryption.html
	{name: "StreamEncryptionStartsAndStops", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		enc := func() types.EncryptionType {
			out, err := tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
			if err != nil {
				t.Fatal(err)
			}
			return out.StreamDescriptionSummary.EncryptionType
		}
		key := aws.String("alias/aws/kinesis")
		if _, err := tg.client.StartStreamEncryption(ctxT(t), &kinesis.StartStreamEncryptionInput{StreamName: aws.String(name), EncryptionType: types.EncryptionTypeKms, KeyId: key}); err != nil {
			t.Fatal(err)
		}
		tg.waitActive(t, name)
		if e := enc(); e != types.EncryptionTypeKms {
			t.Fatalf("EncryptionType %s after StartStreamEncryption, want KMS", e)
		}
		put, err := tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), Data: []byte("x")})
		if err != nil || put.EncryptionType != types.EncryptionTypeKms {
			t.Fatalf("PutRecord on an encrypted stream: %v, %+v", err, put)
		}
		if _, err := tg.client.StopStreamEncryption(ctxT(t), &kinesis.StopStreamEncryptionInput{StreamName: aws.String(name), EncryptionType: types.EncryptionTypeKms, KeyId: key}); err != nil {
			t.Fatal(err)
		}
		tg.waitActive(t, name)
		if e := enc(); e != types.EncryptionTypeNone {
			t.Fatalf("EncryptionType %s after StopStreamEncryption, want NONE", e)
		}
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_AddTagsToStream.html
	{name: "TagsAddListRemove", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		if _, err := tg.client.AddTagsToStream(ctxT(t), &kinesis.AddTagsToStreamInput{StreamName: aws.String(name), Tags: map[string]string{"team": "a", "env": "test"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := tg.client.RemoveTagsFromStream(ctxT(t), &kinesis.RemoveTagsFromStreamInput{StreamName: aws.String(name), TagKeys: []string{"env"}}); err != nil {
			t.Fatal(err)
		}
		out, err := tg.client.ListTagsForStream(ctxT(t), &kinesis.ListTagsForStreamInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Tags) != 1 || aws.ToString(out.Tags[0].Key) != "team" || aws.ToString(out.Tags[0].Value) != "a" {
			t.Fatalf("tags %+v, want team=a", out.Tags)
		}
	}},
	{name: "StreamARNIsAcceptedForDataPlane", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		sum, err := tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		arn := sum.StreamDescriptionSummary.StreamARN
		put, err := tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamARN: arn, PartitionKey: aws.String("k"), Data: []byte("by-arn")})
		if err != nil {
			t.Fatal(err)
		}
		it, err := tg.client.GetShardIterator(ctxT(t), &kinesis.GetShardIteratorInput{StreamARN: arn, ShardId: put.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		out, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{StreamARN: arn, ShardIterator: it.ShardIterator})
		if err != nil || len(out.Records) != 1 || string(out.Records[0].Data) != "by-arn" {
			t.Fatalf("GetRecords by ARN: %v %+v", err, out)
		}
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html
	{name: "PutRecordsOf501EntriesIsRefusedWhole", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		_, err := tg.client.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries(501, 1)})
		wantCode(t, err, CodeValidation)
		if out := tg.put(t, name, entries(500, 1)...); aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("500 entries: %d failed", aws.ToInt32(out.FailedRecordCount))
		}
	}},
	{name: "PutRecordsOverRequestSizeIsRefusedWhole", opts: Options{Limits: Limits{Unthrottled: true}}, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 4)
		// Eleven records of 1 MiB less their key: 11 MiB, over the 10 MiB request limit.
		big := entries(11, 1<<20-3)
		_, err := tg.client.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: big})
		wantCode(t, err, CodeInvalidArgument)
		if out := tg.put(t, name, big[:10]...); aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("10 MiB request: %d failed", aws.ToInt32(out.FailedRecordCount))
		}
	}},
	{name: "LegacyRequestLimitIsFiveMiB", opts: Options{Limits: Limits{Unthrottled: true, MaxPutRecordsBytes: LegacyMaxPutRecordsBytes}}, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 4)
		_, err := tg.client.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries(6, 1<<20-2)})
		wantCode(t, err, CodeInvalidArgument)
		tg.put(t, name, entries(5, 1<<20-2)...)
	}},
	{name: "RecordSizeCountsThePartitionKey", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		key := "0123456789"
		_, err := tg.client.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: []types.PutRecordsRequestEntry{
			entry("a", "ok"), {PartitionKey: aws.String(key), Data: make([]byte, 1<<20-len(key)+1)}}})
		wantCode(t, err, CodeInvalidArgument)
		if !strings.Contains(err.Error(), "records.2") {
			t.Fatalf("error %v does not name the entry", err)
		}
		_, err = tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String(key), Data: make([]byte, 1<<20-len(key)+1)})
		wantCode(t, err, CodeInvalidArgument)
		if _, err := tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String(key), Data: make([]byte, 1<<20-len(key))}); err != nil {
			t.Fatalf("a record of exactly 1 MiB with its key: %v", err)
		}
	}},
	// https://docs.aws.amazon.com/streams/latest/dev/large-records.html
	{name: "UpdateMaxRecordSizeAdmitsLargerRecords", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		_, err := tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), Data: make([]byte, 3<<20)})
		wantCode(t, err, CodeInvalidArgument)
		sum, _ := tg.client.DescribeStreamSummary(ctxT(t), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
		_, err = tg.client.UpdateMaxRecordSize(ctxT(t), &kinesis.UpdateMaxRecordSizeInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, MaxRecordSizeInKiB: aws.Int32(10241)})
		wantCode(t, err, CodeValidation)
		if _, err := tg.client.UpdateMaxRecordSize(ctxT(t), &kinesis.UpdateMaxRecordSizeInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, MaxRecordSizeInKiB: aws.Int32(4096)}); err != nil {
			t.Fatal(err)
		}
		// The shard's burst capacity grows to the new record size at the sustained 1 MiB/s.
		tg.clock.Advance(3 * time.Second)
		if _, err := tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), Data: make([]byte, 3<<20)}); err != nil {
			t.Fatalf("3 MiB record on a 4 MiB stream: %v", err)
		}
	}},
	// Partition keys are 1 to 256 Unicode characters, not bytes.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html
	{name: "PartitionKeyLengthCountsCharacters", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		tg.put(t, name, entry(strings.Repeat("é", 256), "x"))
		_, err := tg.client.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: []types.PutRecordsRequestEntry{entry(strings.Repeat("a", 257), "x")}})
		wantCode(t, err, CodeValidation)
		_, err = tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String(""), Data: []byte("x")})
		wantCode(t, err, CodeValidation)
	}},
	{name: "ExplicitHashKeyRoutesToItsShard", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 4)
		shards := sortByStart(t, tg.openShards(t, name))
		for _, sh := range shards {
			key := sh.HashKeyRange.EndingHashKey
			out, err := tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("ignored"), ExplicitHashKey: key, Data: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.ShardId) != aws.ToString(sh.ShardId) {
				t.Fatalf("hash key %s went to %s, want %s", aws.ToString(key), aws.ToString(out.ShardId), aws.ToString(sh.ShardId))
			}
		}
	}},
	{name: "ExplicitHashKeyOutOfRangeIsRefused", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		tooBig := new(big.Int).Lsh(big.NewInt(1), 128).String()
		_, err := tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), ExplicitHashKey: aws.String(tooBig), Data: []byte("x")})
		wantCode(t, err, CodeValidation)
	}},
	{name: "SequenceNumbersGrowPerShard", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 2)
		prev := map[string]*big.Int{}
		for i := range 3 {
			out := tg.put(t, name, entries(50, 10)...)
			for j, r := range out.Records {
				seq := bigInt(t, aws.ToString(r.SequenceNumber))
				if p := prev[aws.ToString(r.ShardId)]; p != nil && seq.Cmp(p) <= 0 {
					t.Fatalf("call %d entry %d: %s after %s on %s", i, j, seq, p, aws.ToString(r.ShardId))
				}
				prev[aws.ToString(r.ShardId)] = seq
			}
		}
		if len(prev) != 2 {
			t.Fatalf("records reached %d shards, want 2", len(prev))
		}
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html
	{name: "GetShardIteratorTypes", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		out := tg.put(t, name, entry("k", "r0"), entry("k", "r1"), entry("k", "r2"))
		shardID := aws.ToString(out.Records[0].ShardId)
		second := aws.ToString(out.Records[1].SequenceNumber)
		first := func(it *string) string {
			res, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(1)})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Records) == 0 {
				return ""
			}
			return string(res.Records[0].Data)
		}
		for _, c := range []struct {
			typ  types.ShardIteratorType
			seq  string
			want string
		}{
			{types.ShardIteratorTypeTrimHorizon, "", "r0"},
			{types.ShardIteratorTypeAtSequenceNumber, second, "r1"},
			{types.ShardIteratorTypeAfterSequenceNumber, second, "r2"},
			{types.ShardIteratorTypeLatest, "", ""},
		} {
			if got := first(tg.iterator(t, name, shardID, c.typ, c.seq)); got != c.want {
				t.Errorf("%s: first record %q, want %q", c.typ, got, c.want)
			}
			if tg.clock != nil {
				tg.clock.Advance(time.Second)
			}
		}
		it, err := tg.client.GetShardIterator(ctxT(t), &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String(shardID),
			ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(time.Unix(0, 0))})
		if err != nil {
			t.Fatal(err)
		}
		if got := first(it.ShardIterator); got != "r0" {
			t.Errorf("AT_TIMESTAMP epoch: first record %q, want r0", got)
		}
	}},
	{name: "AtTimestampStartsAtFirstRecordAtOrAfter", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		out := tg.put(t, name, entry("k", "before"))
		tg.clock.Advance(time.Minute)
		at := tg.clock.Now()
		tg.put(t, name, entry("k", "after"))
		it, err := tg.client.GetShardIterator(ctxT(t), &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: out.Records[0].ShardId,
			ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(at)})
		if err != nil {
			t.Fatal(err)
		}
		recs, _ := readAll(t, tg, it.ShardIterator)
		if len(recs) != 1 || string(recs[0].Data) != "after" {
			t.Fatalf("read %d records, want only the one at the timestamp", len(recs))
		}
	}},
	{name: "SequenceNumberOfAnotherShardIsInvalid", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 2)
		shards := tg.openShards(t, name)
		out, err := tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), ExplicitHashKey: shards[0].HashKeyRange.StartingHashKey, Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tg.client.GetShardIterator(ctxT(t), &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: shards[1].ShardId,
			ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: out.SequenceNumber})
		wantCode(t, err, CodeInvalidArgument)
	}},
	{name: "IteratorExpiresAfterFiveMinutes", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		sh := tg.openShards(t, name)[0]
		it := tg.iterator(t, name, aws.ToString(sh.ShardId), types.ShardIteratorTypeTrimHorizon, "")
		tg.clock.Advance(5 * time.Minute)
		out, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it})
		if err != nil {
			t.Fatalf("at exactly five minutes: %v", err)
		}
		tg.clock.Advance(5*time.Minute + time.Millisecond)
		_, err = tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator})
		var expired *types.ExpiredIteratorException
		if !errors.As(err, &expired) {
			t.Fatalf("after five minutes: %v, want ExpiredIteratorException", err)
		}
	}},
	{name: "GarbageIteratorIsInvalidArgument", run: func(t *testing.T, tg *target) {
		_, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: aws.String("AAAAAAAAAAFgarbage")})
		wantCode(t, err, CodeInvalidArgument)
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html
	{name: "GetRecordsHonoursLimit", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		out := tg.put(t, name, entries(30, 5)...)
		it := tg.iterator(t, name, aws.ToString(out.Records[0].ShardId), types.ShardIteratorTypeTrimHorizon, "")
		res, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(7)})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) != 7 || res.NextShardIterator == nil {
			t.Fatalf("%d records, next %v; want 7 and an iterator", len(res.Records), res.NextShardIterator)
		}
		for i, r := range res.Records {
			if aws.ToString(r.SequenceNumber) != aws.ToString(out.Records[i].SequenceNumber) || r.ApproximateArrivalTimestamp == nil {
				t.Fatalf("record %d: %s, want %s with an arrival time", i, aws.ToString(r.SequenceNumber), aws.ToString(out.Records[i].SequenceNumber))
			}
		}
	}},
	{name: "GetRecordsLimitAbove10000IsRefused", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		it := tg.iterator(t, name, "shardId-000000000000", types.ShardIteratorTypeTrimHorizon, "")
		_, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(10001)})
		wantCode(t, err, CodeValidation)
	}},
	{name: "GetRecordsReturnsAtMost10000Records", opts: Options{Limits: Limits{Unthrottled: true}}, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		for range 25 {
			tg.put(t, name, entries(500, 1)...)
		}
		res, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: tg.iterator(t, name, "shardId-000000000000", types.ShardIteratorTypeTrimHorizon, "")})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) != 10000 {
			t.Fatalf("%d records, want 10000", len(res.Records))
		}
	}},
	{name: "GetRecordsReturnsAtMost10MiB", opts: Options{Limits: Limits{Unthrottled: true}}, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		for range 3 {
			tg.put(t, name, entries(4, 1<<20-3)...)
		}
		res, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: tg.iterator(t, name, "shardId-000000000000", types.ShardIteratorTypeTrimHorizon, "")})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) != 10 {
			t.Fatalf("%d records of 1 MiB, want 10", len(res.Records))
		}
	}},
	{name: "MillisBehindLatest", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		tg.put(t, name, entry("k", "a"))
		tg.clock.Advance(3 * time.Second)
		tg.put(t, name, entry("k", "b"))
		tg.clock.Advance(2 * time.Second)
		it := tg.iterator(t, name, "shardId-000000000000", types.ShardIteratorTypeTrimHorizon, "")
		res, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it, Limit: aws.Int32(1)})
		if err != nil {
			t.Fatal(err)
		}
		// One record is left, written two seconds ago.
		if got := aws.ToInt64(res.MillisBehindLatest); got != 2000 {
			t.Fatalf("MillisBehindLatest %d with one record left, want 2000", got)
		}
		res, err = tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: res.NextShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToInt64(res.MillisBehindLatest); got != 0 {
			t.Fatalf("MillisBehindLatest %d at the tip, want 0", got)
		}
	}},
	{name: "ClosedShardEndsWithChildShards", mock: true, run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		tg.put(t, name, entry("k", "before split"))
		parent := tg.openShards(t, name)[0]
		split(t, tg, name, parent)
		recs, last := readAll(t, tg, tg.iterator(t, name, aws.ToString(parent.ShardId), types.ShardIteratorTypeTrimHorizon, ""))
		if len(recs) != 1 {
			t.Fatalf("read %d records from the parent, want 1", len(recs))
		}
		if last.NextShardIterator != nil {
			t.Fatal("NextShardIterator at the closed shard's end is not nil")
		}
		if len(last.ChildShards) != 2 {
			t.Fatalf("%d child shards at the end, want 2", len(last.ChildShards))
		}
		for _, c := range last.ChildShards {
			if len(c.ParentShards) != 1 || c.ParentShards[0] != aws.ToString(parent.ShardId) {
				t.Fatalf("child %s parents %v", aws.ToString(c.ShardId), c.ParentShards)
			}
		}
	}},
	// Per-shard write limits: 1 MiB/s and 1,000 records/s.
	// https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
	{name: "PutRecordsThrottlesEntriesOverShardBytes", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		// 400 entries of 4 KiB = 1.6 MiB, over a second's 1 MiB.
		out := tg.put(t, name, entries(400, 4096-4)...)
		failed := int(aws.ToInt32(out.FailedRecordCount))
		if failed == 0 || failed == 400 {
			t.Fatalf("%d of 400 entries failed, want some but not all", failed)
		}
		ok := 0
		for i, r := range out.Records {
			switch {
			case r.ErrorCode == nil:
				if ok != i {
					t.Fatalf("entry %d succeeded after a throttled one", i)
				}
				ok++
			case aws.ToString(r.ErrorCode) != CodeProvisionedThroughputExceeded || r.ErrorMessage == nil:
				t.Fatalf("entry %d: %s %s", i, aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage))
			}
		}
		if ok != 256 {
			t.Fatalf("%d entries fit, want 256 (1 MiB of 4 KiB records)", ok)
		}
		tg.clock.Advance(time.Second)
		if out := tg.put(t, name, entries(200, 4096-4)...); aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("a second later %d entries failed", aws.ToInt32(out.FailedRecordCount))
		}
	}},
	{name: "PutRecordsThrottlesEntriesOverShardRecords", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		tg.put(t, name, entries(500, 1)...)
		tg.put(t, name, entries(500, 1)...)
		out := tg.put(t, name, entries(10, 1)...)
		if aws.ToInt32(out.FailedRecordCount) != 10 {
			t.Fatalf("record 1,001 to 1,010 in one second: %d failed, want 10", aws.ToInt32(out.FailedRecordCount))
		}
		tg.clock.Advance(10 * time.Millisecond) // ten records' worth
		if out := tg.put(t, name, entries(10, 1)...); aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("after 10 ms: %d failed, want 0", aws.ToInt32(out.FailedRecordCount))
		}
	}},
	{name: "PutRecordThrottlesWholeCall", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		tg.put(t, name, entries(500, 1)...)
		tg.put(t, name, entries(500, 1)...)
		_, err := tg.client.PutRecord(ctxT(t), &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), Data: []byte("x")})
		var pte *types.ProvisionedThroughputExceededException
		if !errors.As(err, &pte) {
			t.Fatalf("PutRecord over the record rate: %v, want ProvisionedThroughputExceededException", err)
		}
	}},
	// Per-shard read limits: 5 calls/s and 2 MiB/s; a large read blocks the next seconds.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html
	{name: "GetRecordsThrottlesOverFiveCallsPerSecond", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		it := tg.iterator(t, name, "shardId-000000000000", types.ShardIteratorTypeTrimHorizon, "")
		for i := range 5 {
			out, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it})
			if err != nil {
				t.Fatalf("call %d: %v", i+1, err)
			}
			it = out.NextShardIterator
		}
		_, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it})
		wantCode(t, err, CodeProvisionedThroughputExceeded)
		tg.clock.Advance(200 * time.Millisecond)
		if _, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it}); err != nil {
			t.Fatalf("200 ms later: %v", err)
		}
	}},
	{name: "GetRecordsThrottlesAfterReadingOverTwoMiB", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		for range 4 { // 4 MiB, one second's write capacity at a time
			tg.put(t, name, entries(4, 256<<10-4)...)
			tg.clock.Advance(time.Second)
		}
		it := tg.iterator(t, name, "shardId-000000000000", types.ShardIteratorTypeTrimHorizon, "")
		out, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: it})
		if err != nil || len(out.Records) != 16 {
			t.Fatalf("first read: %v, %d records", err, len(out.Records))
		}
		// 4 MiB read against 2 MiB/s: the shard owes 2 MiB, repaid in one second.
		tg.clock.Advance(900 * time.Millisecond)
		_, err = tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator})
		wantCode(t, err, CodeProvisionedThroughputExceeded)
		tg.clock.Advance(200 * time.Millisecond)
		if _, err := tg.client.GetRecords(ctxT(t), &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator}); err != nil {
			t.Fatalf("after the debt is repaid: %v", err)
		}
	}},
	{name: "GetShardIteratorRateIsFivePerShard", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		for range 5 {
			tg.iterator(t, name, "shardId-000000000000", types.ShardIteratorTypeLatest, "")
		}
		_, err := tg.client.GetShardIterator(ctxT(t), &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest})
		wantCode(t, err, CodeProvisionedThroughputExceeded)
	}},
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_CreateStream.html (five per second)
	{name: "ControlPlaneRateIsLimitExceeded", run: func(t *testing.T, tg *target) {
		var err error
		for i := range 6 {
			_, err = tg.client.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String(fmt.Sprint("rate-", i)), ShardCount: aws.Int32(1)})
			if i < 5 && err != nil {
				t.Fatalf("call %d: %v", i+1, err)
			}
		}
		var le *types.LimitExceededException
		if !errors.As(err, &le) {
			t.Fatalf("sixth CreateStream in a second: %v, want LimitExceededException", err)
		}
		tg.clock.Advance(200 * time.Millisecond)
		if _, err := tg.client.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String("rate-later"), ShardCount: aws.Int32(1)}); err != nil {
			t.Fatalf("200 ms later: %v", err)
		}
	}},
	{name: "ShardLimitIsLimitExceeded", opts: Options{Limits: Limits{ShardLimit: 3}}, run: func(t *testing.T, tg *target) {
		tg.stream(t, 2)
		_, err := tg.client.CreateStream(ctxT(t), &kinesis.CreateStreamInput{StreamName: aws.String("over"), ShardCount: aws.Int32(2)})
		wantCode(t, err, CodeLimitExceeded)
	}},
	{name: "UnsignedRequestIsRefused", run: func(t *testing.T, tg *target) {
		for _, c := range []struct{ auth, code string }{
			{"", CodeMissingAuthenticationToken},
			{"Bearer x", CodeIncompleteSignature},
			{"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=nothex", CodeIncompleteSignature},
			{"AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/kinesis/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("ab", 32), CodeIncompleteSignature},
		} {
			auth := c.auth
			req, _ := http.NewRequest(http.MethodPost, tg.srv.URL, strings.NewReader(`{}`))
			req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			req.Header.Set("X-Amz-Date", "20260101T000000Z")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode < 400 || !strings.Contains(body.String(), `"__type":"`+c.code+`"`) {
				t.Fatalf("Authorization %q: status %d body %s, want %s", auth, resp.StatusCode, body.String(), c.code)
			}
		}
		// A well-formed header passes.
		req, _ := http.NewRequest(http.MethodPost, tg.srv.URL, strings.NewReader(`{}`))
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Date", "20260101T000000Z")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("ab", 32))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// Checking the shape only, the server takes it; verifying, it knows no such key.
		if want := http.StatusOK; !tg.srv.verify && resp.StatusCode != want {
			t.Fatalf("well-formed SigV4 header: status %d", resp.StatusCode)
		} else if tg.srv.verify && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("well-formed SigV4 header with an unknown key, signatures verified: status %d", resp.StatusCode)
		}
	}},
	{name: "HTTP2WithoutTLS", run: func(t *testing.T, tg *target) {
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		rec := &protoRecorder{rt: &http.Transport{Protocols: &protocols}}
		client := tg.srv.Client(append(tg.opts, func(o *kinesis.Options) { o.HTTPClient = &http.Client{Transport: rec} })...)
		if _, err := client.ListStreams(ctxT(t), &kinesis.ListStreamsInput{}); err != nil {
			t.Fatal(err)
		}
		if rec.major != 2 {
			t.Fatalf("answered over HTTP/%d, want 2", rec.major)
		}
	}},
	{name: "FaultForcesErrorsAndStops", opts: Options{Faults: []FaultRule{{Operation: "ListStreams", Error: CodeInternalFailure, Times: 2}}}, run: func(t *testing.T, tg *target) {
		for range 2 {
			_, err := tg.client.ListStreams(ctxT(t), &kinesis.ListStreamsInput{})
			var re interface{ HTTPStatusCode() int }
			if !errors.As(err, &re) || re.HTTPStatusCode() != 500 || code(err) != CodeInternalFailure {
				t.Fatalf("faulted call: %v, want InternalFailure with status 500", err)
			}
		}
		if _, err := tg.client.ListStreams(ctxT(t), &kinesis.ListStreamsInput{}); err != nil {
			t.Fatalf("third call after a two-call fault: %v", err)
		}
	}},
	{name: "FaultThrottlesEntries", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		tg.srv.SetFaults(FaultRule{Operation: "PutRecords", ThrottleEntries: 1})
		out := tg.put(t, name, entries(5, 1)...)
		if aws.ToInt32(out.FailedRecordCount) != 5 {
			t.Fatalf("%d of 5 failed under ThrottleEntries 1", aws.ToInt32(out.FailedRecordCount))
		}
		tg.srv.SetFaults()
		if out := tg.put(t, name, entries(5, 1)...); aws.ToInt32(out.FailedRecordCount) != 0 {
			t.Fatalf("%d failed with the faults removed", aws.ToInt32(out.FailedRecordCount))
		}
	}},
	{name: "FaultAddsLatency", opts: Options{Faults: []FaultRule{{Operation: "ListStreams", Latency: time.Hour}}}, run: func(t *testing.T, tg *target) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := tg.client.ListStreams(ctx, &kinesis.ListStreamsInput{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call under an hour's latency: %v, want the caller's deadline", err)
		}
	}},
	{name: "FaultResetsConnection", opts: Options{Faults: []FaultRule{{Operation: "ListStreams", Reset: true}}}, run: func(t *testing.T, tg *target) {
		_, err := tg.client.ListStreams(ctxT(t), &kinesis.ListStreamsInput{})
		if err == nil || code(err) != "" {
			t.Fatalf("reset call: %v, want a transport error", err)
		}
	}},
	{name: "FaultEndsAfterItsDuration", run: func(t *testing.T, tg *target) {
		tg.srv.SetFaults(FaultRule{Operation: "ListStreams", Error: CodeServiceUnavailable, Duration: 10 * time.Second})
		if _, err := tg.client.ListStreams(ctxT(t), &kinesis.ListStreamsInput{}); code(err) != CodeServiceUnavailable {
			t.Fatalf("call within the rule's duration: %v, want ServiceUnavailable", err)
		}
		tg.clock.Advance(10 * time.Second)
		if _, err := tg.client.ListStreams(ctxT(t), &kinesis.ListStreamsInput{}); err != nil {
			t.Fatalf("call after the rule's duration: %v", err)
		}
		if n := tg.srv.FaultCount("ListStreams"); n != 1 {
			t.Fatalf("FaultCount = %d, want 1", n)
		}
	}},
	{name: "FaultResetsAfterServing", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		remove := tg.srv.AddFault(FaultRule{Operation: "PutRecords", ResetAfterServe: true, Times: 1})
		_, err := tg.client.PutRecords(ctxT(t), &kinesis.PutRecordsInput{StreamName: &name, Records: entries(3, 1)})
		if err == nil || code(err) != "" {
			t.Fatalf("call reset after serving: %v, want a transport error", err)
		}
		remove()
		shard := tg.openShards(t, name)[0]
		recs, _ := readAll(t, tg, tg.iterator(t, name, aws.ToString(shard.ShardId), types.ShardIteratorTypeTrimHorizon, ""))
		if len(recs) != 3 {
			t.Fatalf("%d records stored by the call whose answer was lost, want 3", len(recs))
		}
	}},
	{name: "FaultFailsSelectedEntries", run: func(t *testing.T, tg *target) {
		name := tg.stream(t, 1)
		recs := entries(6, 1)
		pick := aws.ToString(recs[2].PartitionKey)
		var seen []Entry
		tg.srv.AddFault(FaultRule{Operation: "PutRecords", EntryError: CodeInternalFailure, Entries: func(e Entry) bool {
			seen = append(seen, e)
			return e.PartitionKey == pick
		}})
		out := tg.put(t, name, recs...)
		if aws.ToInt32(out.FailedRecordCount) != 1 || aws.ToString(out.Records[2].ErrorCode) != CodeInternalFailure {
			t.Fatalf("FailedRecordCount %d, entry 3 error %q: want only the selected entry failed with InternalFailure",
				aws.ToInt32(out.FailedRecordCount), aws.ToString(out.Records[2].ErrorCode))
		}
		if len(seen) != 6 || seen[0].ShardID != aws.ToString(out.Records[0].ShardId) {
			t.Fatalf("Entries saw %+v, want the six entries with their shard", seen)
		}
		if n := tg.srv.FaultCount("PutRecords"); n != 1 {
			t.Fatalf("FaultCount = %d, want 1", n)
		}
	}},
}

type protoRecorder struct {
	rt    http.RoundTripper
	major int
}

func (p *protoRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.rt.RoundTrip(r)
	if resp != nil {
		p.major = resp.ProtoMajor
	}
	return resp, err
}

func split(t *testing.T, tg *target, name string, sh types.Shard) {
	t.Helper()
	start := bigInt(t, aws.ToString(sh.HashKeyRange.StartingHashKey))
	end := bigInt(t, aws.ToString(sh.HashKeyRange.EndingHashKey))
	mid := new(big.Int).Add(start, end)
	mid.Rsh(mid, 1)
	if _, err := tg.client.SplitShard(ctxT(t), &kinesis.SplitShardInput{StreamName: aws.String(name), ShardToSplit: sh.ShardId, NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatalf("SplitShard: %v", err)
	}
	tg.waitActive(t, name)
}

func sortByStart(t *testing.T, shards []types.Shard) []types.Shard {
	out := append([]types.Shard(nil), shards...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if bigInt(t, aws.ToString(out[j].HashKeyRange.StartingHashKey)).Cmp(bigInt(t, aws.ToString(out[i].HashKeyRange.StartingHashKey))) < 0 {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
