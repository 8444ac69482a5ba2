package kinesistest

import (
	"time"
)

// Documented service limits. Each comes from the AWS page named beside it; the Limits
// fields below default to these values.
const (
	// PutRecords takes at most 500 entries per call.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html
	DefaultMaxPutRecordsEntries = 500

	// A PutRecords request may carry up to 10 MiB of data and partition keys since the 2025
	// large-record change; before it the limit was 5 MiB (LegacyMaxPutRecordsBytes).
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html
	// https://docs.aws.amazon.com/streams/latest/dev/large-records.html
	DefaultMaxPutRecordsBytes = 10 << 20
	// LegacyMaxPutRecordsBytes is the request limit the PutRecords page gave before 2025.
	LegacyMaxPutRecordsBytes = 5 << 20

	// A stream's maximum record size (data plus partition key) is 1 MiB unless raised with
	// UpdateMaxRecordSize or CreateStream's MaxRecordSizeInKiB, to at most 10 MiB.
	// https://docs.aws.amazon.com/streams/latest/dev/large-records.html
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateMaxRecordSize.html
	DefaultMaxRecordSizeKiB = 1024
	// MaxRecordSizeCeilingKiB is the largest value UpdateMaxRecordSize accepts.
	MaxRecordSizeCeilingKiB = 10240

	// Each shard takes writes of up to 1 MiB/s and 1,000 records/s, and serves reads of up to
	// 2 MiB/s and 5 GetRecords calls/s.
	// https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
	DefaultShardWriteBytesPerSecond   = 1 << 20
	DefaultShardWriteRecordsPerSecond = 1000
	DefaultShardReadBytesPerSecond    = 2 << 20
	DefaultShardReadCallsPerSecond    = 5

	// GetRecords returns at most 10,000 records and 10 MiB per call.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html
	DefaultMaxGetRecordsRecords = 10000
	DefaultMaxGetRecordsBytes   = 10 << 20

	// A shard iterator expires five minutes after it is returned.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html
	DefaultIteratorLifetime = 5 * time.Minute

	// Partition keys are 1 to 256 Unicode characters. The API model gives the length in
	// Smithy's terms, which count Unicode scalar values (not bytes, not UTF-16 units).
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html
	MaxPartitionKeyLength = 256

	// The default account shard quota in us-east-1, us-west-2 and eu-west-1.
	// https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
	DefaultShardLimit = 20000

	// New on-demand streams start with 4 MB/s of write and 8 MB/s of read throughput, which
	// is four shards of 1 MiB/s and 1,000 records/s of writes each (the shard limits hold in
	// both capacity modes). The service then adds shards as traffic grows; this server does
	// not, so an on-demand stream keeps these four until UpdateShardCount.
	// https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
	// https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html
	DefaultOnDemandShardCount = 4

	// An account may have 50 on-demand streams by default (the quotas page's "Number of
	// data streams"); DescribeLimits reports the quota as OnDemandStreamCountLimit.
	// https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeLimits.html
	DefaultOnDemandStreamLimit = 50

	// Retention is 24 hours by default and at most 8,760 hours (365 days).
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_IncreaseStreamRetentionPeriod.html
	DefaultRetentionHours = 24
	MaxRetentionHours     = 8760

	// UpdateShardCount may scale a stream at most ten times per rolling 24 hours.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html
	DefaultUpdateShardCountPerDay = 10
)

// DefaultControlPlaneRates are the documented call rates, in transactions per second, of the
// operations the service limits by account (or, where noted, by stream or open shard).
// Exceeding one gives LimitExceededException. Operations whose page states no rate are
// not limited. Each rate is from the operation's page in the
// API reference, https://docs.aws.amazon.com/kinesis/latest/APIReference/API_<Operation>.html.
var DefaultControlPlaneRates = map[string]float64{
	"CreateStream":          5,
	"DeleteStream":          5,
	"DescribeStream":        10,
	"DescribeStreamSummary": 20,
	"DescribeLimits":        1,
	"ListStreams":           5,
	"ListShards":            1000, // per stream
	"SplitShard":            5,
	"MergeShards":           5,
	"UpdateShardCount":      10,
	"AddTagsToStream":       5,
	"ListTagsForStream":     5,
	"RemoveTagsFromStream":  5,
	"GetShardIterator":      5, // per open shard
}

// Limits are the quotas the server enforces. A zero field takes the documented default
// named in its comment; a negative field (or, for maps, a negative rate) turns that limit
// off.
type Limits struct {
	// MaxPutRecordsEntries is the most entries one PutRecords call may carry.
	// Default DefaultMaxPutRecordsEntries (500).
	MaxPutRecordsEntries int
	// MaxPutRecordsBytes bounds the data plus partition keys of one PutRecords call.
	// Default DefaultMaxPutRecordsBytes (10 MiB); LegacyMaxPutRecordsBytes (5 MiB) gives
	// the service's behaviour before 2025.
	MaxPutRecordsBytes int
	// MaxRecordSizeCeilingKiB is the largest maximum record size a stream may be given.
	// Default MaxRecordSizeCeilingKiB (10 MiB); set DefaultMaxRecordSizeKiB (1 MiB) for the
	// service before large records.
	MaxRecordSizeCeilingKiB int
	// ShardWriteBytesPerSecond and ShardWriteRecordsPerSecond are each shard's write
	// throughput. Defaults 1 MiB/s and 1,000 records/s. The byte bucket holds one second
	// of throughput, or the stream's maximum record size if that is larger, so that one
	// large record can pass, as the large-records page describes.
	ShardWriteBytesPerSecond   int
	ShardWriteRecordsPerSecond int
	// ShardReadBytesPerSecond and ShardReadCallsPerSecond are each shard's read limits.
	// Defaults 2 MiB/s and 5 calls/s. A call that returns more than a second's bytes is
	// served and the shard owes the rest, so calls in the following seconds are refused,
	// as the GetRecords page describes.
	ShardReadBytesPerSecond int
	ShardReadCallsPerSecond int
	// MaxGetRecordsRecords and MaxGetRecordsBytes bound one GetRecords answer.
	// Defaults 10,000 records and 10 MiB.
	MaxGetRecordsRecords int
	MaxGetRecordsBytes   int
	// IteratorLifetime is how long a shard iterator (and a ListShards NextToken) stays
	// valid. Default DefaultIteratorLifetime (5 minutes).
	IteratorLifetime time.Duration
	// ShardLimit is the account's shard quota across streams. Default DefaultShardLimit.
	ShardLimit int
	// OnDemandShardCount is how many shards a new on-demand stream gets. Default 4.
	OnDemandShardCount int
	// OnDemandStreamLimit is how many on-demand streams the account may have, counting
	// streams being created or switched to on-demand. Default DefaultOnDemandStreamLimit (50).
	OnDemandStreamLimit int
	// UpdateShardCountPerDay bounds UpdateShardCount calls per stream per rolling 24 hours.
	// Default 10.
	UpdateShardCountPerDay int
	// ControlPlaneRates overrides entries of DefaultControlPlaneRates (transactions per
	// second, by operation name). A negative rate turns that operation's limit off.
	ControlPlaneRates map[string]float64
	// Unthrottled turns off every token bucket: shard read and write throughput and the
	// control-plane rates. Size limits still apply.
	Unthrottled bool
}

func pick(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return int(^uint(0) >> 1)
	}
	return v
}

// resolved returns l with defaults filled in and negative values turned into "unlimited".
func (l Limits) resolved() Limits {
	l.MaxPutRecordsEntries = pick(l.MaxPutRecordsEntries, DefaultMaxPutRecordsEntries)
	l.MaxPutRecordsBytes = pick(l.MaxPutRecordsBytes, DefaultMaxPutRecordsBytes)
	l.MaxRecordSizeCeilingKiB = pick(l.MaxRecordSizeCeilingKiB, MaxRecordSizeCeilingKiB)
	l.ShardWriteBytesPerSecond = pick(l.ShardWriteBytesPerSecond, DefaultShardWriteBytesPerSecond)
	l.ShardWriteRecordsPerSecond = pick(l.ShardWriteRecordsPerSecond, DefaultShardWriteRecordsPerSecond)
	l.ShardReadBytesPerSecond = pick(l.ShardReadBytesPerSecond, DefaultShardReadBytesPerSecond)
	l.ShardReadCallsPerSecond = pick(l.ShardReadCallsPerSecond, DefaultShardReadCallsPerSecond)
	l.MaxGetRecordsRecords = pick(l.MaxGetRecordsRecords, DefaultMaxGetRecordsRecords)
	l.MaxGetRecordsBytes = pick(l.MaxGetRecordsBytes, DefaultMaxGetRecordsBytes)
	if l.IteratorLifetime == 0 {
		l.IteratorLifetime = DefaultIteratorLifetime
	}
	l.ShardLimit = pick(l.ShardLimit, DefaultShardLimit)
	l.OnDemandShardCount = pick(l.OnDemandShardCount, DefaultOnDemandShardCount)
	l.OnDemandStreamLimit = pick(l.OnDemandStreamLimit, DefaultOnDemandStreamLimit)
	l.UpdateShardCountPerDay = pick(l.UpdateShardCountPerDay, DefaultUpdateShardCountPerDay)
	rates := make(map[string]float64, len(DefaultControlPlaneRates))
	for op, r := range DefaultControlPlaneRates {
		rates[op] = r
	}
	for op, r := range l.ControlPlaneRates {
		rates[op] = r
	}
	l.ControlPlaneRates = rates
	return l
}

// tokenBucket is a classic token bucket on the server's clock. It is not safe for
// concurrent use; its owner's mutex guards it. A nil *tokenBucket never refuses.
type tokenBucket struct {
	rate     float64 // tokens per second
	capacity float64
	tokens   float64
	last     time.Time
}

func newBucket(rate, capacity float64, now time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, capacity: capacity, tokens: capacity, last: now}
}

func (b *tokenBucket) refill(now time.Time) {
	if el := now.Sub(b.last); el > 0 {
		b.tokens += el.Seconds() * b.rate
		if b.tokens > b.capacity {
			b.tokens = b.capacity
		}
	}
	b.last = now
}

// take removes n tokens if the bucket holds them.
func (b *tokenBucket) take(n float64, now time.Time) bool {
	if b == nil {
		return true
	}
	b.refill(now)
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// has reports whether n tokens are available without taking them.
func (b *tokenBucket) has(n float64, now time.Time) bool {
	if b == nil {
		return true
	}
	b.refill(now)
	return b.tokens >= n
}

// positive reports whether the bucket is out of debt (used for reads, which are served
// first and paid for afterwards).
func (b *tokenBucket) positive(now time.Time) bool {
	if b == nil {
		return true
	}
	b.refill(now)
	return b.tokens > 0
}

// charge removes n tokens, going into debt if needed.
func (b *tokenBucket) charge(n float64) {
	if b != nil {
		b.tokens -= n
	}
}
