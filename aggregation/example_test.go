package aggregation_test

import (
	"errors"
	"fmt"

	"github.com/shardline/shardline/aggregation"
)

func ExampleAggregator() {
	agg := aggregation.Aggregator{MaxSize: 200, UnwrapSingle: true}
	var puts []aggregation.KinesisRecord
	for i := range 5 {
		r := aggregation.UserRecord{PartitionKey: fmt.Sprintf("device-%d", i%2), Data: make([]byte, 50)}
		err := agg.Add(r)
		if errors.Is(err, aggregation.ErrFull) {
			rec, _ := agg.Flush()
			puts = append(puts, rec)
			err = agg.Add(r)
		}
		if err != nil {
			panic(err)
		}
	}
	if rec, ok := agg.Flush(); ok {
		puts = append(puts, rec)
	}
	for _, rec := range puts {
		fmt.Printf("put %d bytes under %s: %d records, aggregated %v\n", len(rec.Data), rec.PartitionKey, rec.Records, rec.Aggregated)
	}
	// Output:
	// put 152 bytes under device-0: 2 records, aggregated true
	// put 152 bytes under device-0: 2 records, aggregated true
	// put 50 bytes under device-0: 1 records, aggregated false
}

func ExampleAggregator_SizeWith() {
	var agg aggregation.Aggregator
	fmt.Println(agg.SizeWith("key", "", 100))
	_ = agg.Add(aggregation.UserRecord{PartitionKey: "key", Data: make([]byte, 100)})
	// The key is already in the table, so the next record costs less.
	fmt.Println(agg.SizeWith("key", "", 100) - agg.Size())
	// Output:
	// 131
	// 106
}

func ExampleDeaggregate() {
	var agg aggregation.Aggregator
	for _, s := range []string{"first", "second", "third"} {
		_ = agg.Add(aggregation.UserRecord{PartitionKey: "user-" + s[:1], Data: []byte(s)})
	}
	rec, _ := agg.Flush()

	// What a consumer sees: the Kinesis record's data and partition key.
	records, err := aggregation.Deaggregate(nil, rec.Data, rec.PartitionKey, rec.ExplicitHashKey)
	if err != nil {
		panic(err)
	}
	for _, r := range records {
		fmt.Printf("%d %s %s\n", r.SubSequenceNumber, r.PartitionKey, r.Data)
	}

	// A plain record passes through; a damaged aggregate too, with an error.
	records, _ = aggregation.Deaggregate(records[:0], []byte("plain"), "pk", "")
	fmt.Println(len(records), records[0].Aggregated, string(records[0].Data))
	rec.Data[len(rec.Data)-1] ^= 1
	records, err = aggregation.Deaggregate(records[:0], rec.Data, "pk", "")
	fmt.Println(len(records), errors.Is(err, aggregation.ErrCorrupt), err)
	// Output:
	// 0 user-f first
	// 1 user-s second
	// 2 user-t third
	// 1 false plain
	// 1 true aggregation: corrupt aggregate: checksum mismatch
}

func ExampleShardMap() {
	lo, _ := aggregation.ParseHashKey("0")
	mid, _ := aggregation.ParseHashKey("170141183460469231731687303715884105727")
	hi, _ := aggregation.ParseHashKey("170141183460469231731687303715884105728")
	shards, err := aggregation.NewShardMap([]aggregation.ShardRange{
		{ShardID: "shardId-000000000001", Start: hi, End: aggregation.MaxHashKey},
		{ShardID: "shardId-000000000000", Start: lo, End: mid},
	})
	if err != nil {
		panic(err)
	}
	k := aggregation.PartitionKeyHash("user-42")
	shard, _ := shards.Lookup(k)
	fmt.Println(k, shard.ShardID)
	// Output:
	// 157107139746365290205026809710278036035 shardId-000000000000
}
