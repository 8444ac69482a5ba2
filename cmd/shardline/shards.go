package main

import (
	"context"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// hashSpace is the size of the Kinesis hash key space, 2^128.
var hashSpace = new(big.Int).Lsh(big.NewInt(1), 128)

// listShards returns every shard of the stream the API still lists, open and closed, in the
// order the service gives (by shard ID).
func listShards(ctx context.Context, kc *kinesis.Client, stream string) ([]types.Shard, error) {
	var shards []types.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(stream)}
	for {
		out, err := kc.ListShards(ctx, in)
		if err != nil {
			return nil, apiError(stream, "listing shards of stream "+stream, err)
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil || *out.NextToken == "" || len(out.Shards) == 0 {
			return shards, nil
		}
		// The API refuses StreamName together with NextToken.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// shardOpen reports whether a shard still takes records: a closed shard has an ending
// sequence number.
func shardOpen(s types.Shard) bool {
	return s.SequenceNumberRange == nil || s.SequenceNumberRange.EndingSequenceNumber == nil
}

// shardRange parses a shard's hash key range.
func shardRange(s types.Shard) (start, end *big.Int, err error) {
	if s.HashKeyRange == nil {
		return nil, nil, fmt.Errorf("shard %s has no hash key range", aws.ToString(s.ShardId))
	}
	start, ok1 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
	end, ok2 := new(big.Int).SetString(aws.ToString(s.HashKeyRange.EndingHashKey), 10)
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("shard %s has an unreadable hash key range", aws.ToString(s.ShardId))
	}
	return start, end, nil
}

// keyspacePercent is the share of the hash key space a shard covers, which shows at a glance
// how evenly records spread over the open shards.
func keyspacePercent(s types.Shard) float64 {
	start, end, err := shardRange(s)
	if err != nil {
		return 0
	}
	width := new(big.Int).Sub(end, start)
	width.Add(width, big.NewInt(1))
	f, _ := new(big.Rat).SetFrac(width, hashSpace).Float64()
	return f * 100
}

// normalizeShardID accepts a shard's number alone ("3") as well as its ID
// ("shardId-000000000003"), because the number is what people read off a listing.
func normalizeShardID(id string) string {
	if n, err := strconv.ParseUint(id, 10, 63); err == nil {
		return fmt.Sprintf("shardId-%012d", n)
	}
	return id
}

// findShard returns the shard with the given ID.
func findShard(shards []types.Shard, id string) (types.Shard, bool) {
	for _, s := range shards {
		if aws.ToString(s.ShardId) == id {
			return s, true
		}
	}
	return types.Shard{}, false
}

// openShardIDs lists the open shards, for messages that tell what could have been meant.
func openShardIDs(shards []types.Shard) string {
	var ids []string
	for _, s := range shards {
		if shardOpen(s) {
			ids = append(ids, aws.ToString(s.ShardId))
		}
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// formatRange writes a shard's hash key range as [start, end].
func formatRange(s types.Shard) string {
	if s.HashKeyRange == nil {
		return "[?]"
	}
	return "[" + aws.ToString(s.HashKeyRange.StartingHashKey) + ", " + aws.ToString(s.HashKeyRange.EndingHashKey) + "]"
}
