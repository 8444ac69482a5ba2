package producer

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/compression"
	"github.com/shardline/shardline/metrics"
)

// Kinesis limits the producer enforces client-side, since some endpoints (emulators among
// them) do not.
const (
	// MaxBatchRecords is the most entries a PutRecords request may carry.
	MaxBatchRecords = 500
	// MaxBatchBytes is the default bound on the data plus partition key bytes of a
	// PutRecords request, the KPL's CollectionMaxSize.
	MaxBatchBytes = 5 << 20
	// MaxRequestBytes is the most data plus partition key bytes a PutRecords request may
	// carry, as the current PutRecords reference gives it (the kinesis SDK's PutRecords
	// documentation since records of up to 10 MiB were allowed); Config.MaxBatchBytes may
	// be raised to it. A record larger than MaxBatchBytes travels in a request of its own.
	MaxRequestBytes = 10 << 20
	// MaxStreamRecordSize is the largest maximum record size a stream may be given
	// (UpdateMaxRecordSize takes 1 to 10 MiB); the default stays 1 MiB
	// (aggregation.MaxRecordSize).
	MaxStreamRecordSize = 10 << 20
	// ShardRecordsPerSecond is the write limit of one shard in records.
	ShardRecordsPerSecond = 1000
	// ShardBytesPerSecond is the write limit of one shard in bytes.
	ShardBytesPerSecond = 1 << 20
)

// Defaults applied to zero Config fields. The doc.go table lists them with their KPL
// counterparts.
const (
	DefaultAggregationMaxSize    = aggregation.DefaultMaxAggregateSize
	DefaultLinger                = 100 * time.Millisecond
	DefaultMaxConcurrentRequests = 24
	DefaultRequestTimeout        = 10 * time.Second
	DefaultMaxBufferedRecords    = 100_000
	DefaultMaxBufferedBytes      = 64 << 20
	DefaultRecordTTL             = 30 * time.Second
	DefaultRateLimit             = 150
	DefaultRetryBaseDelay        = 100 * time.Millisecond
	DefaultRetryMaxDelay         = 5 * time.Second
)

// Config configures a Producer. The zero value of every field selects its default, as for
// http.Server; only the stream must be named.
type Config struct {
	// StreamName names the stream to write to. One of StreamName and StreamARN is required;
	// when both are set both are sent, as the API allows.
	StreamName string
	// StreamARN is the stream's ARN, which AWS recommends over the name.
	StreamARN string

	// DisableAggregation sends every user record as its own Kinesis record. Aggregation (on
	// by default) packs the records bound for one shard into KPL aggregates, which is what
	// makes small records cheap: Kinesis counts its per-shard record limit and bills PUT
	// payload units per Kinesis record.
	DisableAggregation bool
	// AggregationMaxSize bounds an aggregate's encoded size, like the KPL's
	// AggregationMaxSize. Default 51,200 bytes; at most 1 MiB.
	AggregationMaxSize int
	// AggregationMaxCount bounds the user records packed into one aggregate, like the KPL's
	// AggregationMaxCount. Zero (the default) sets no bound beyond AggregationMaxSize, as
	// the KPL's default of 4,294,967,295 does; 1 sends every record on its own. Negative
	// values are refused.
	AggregationMaxCount int

	// Linger is how long a record may wait for others to share its aggregate and its
	// PutRecords request, like the KPL's RecordMaxBufferedTime. Default 100 ms. A negative
	// value sends as soon as a request slot is free. While shards' rate limits hold records
	// back, a request short of a full one also waits up to Linger for the limits to let more
	// through, so that requests stay full; the shards' throughput is the same.
	Linger time.Duration
	// MaxBatchRecords bounds the entries of one PutRecords request. Default and maximum 500.
	MaxBatchRecords int
	// MaxBatchBytes bounds the data plus partition key bytes of one PutRecords request.
	// Default 5 MiB, at most MaxRequestBytes (10 MiB); a single record larger than it is
	// sent in a request of its own.
	MaxBatchBytes int
	// MaxConcurrentRequests bounds the PutRecords calls in flight, like the KPL's
	// MaxConnections. Default 24.
	MaxConcurrentRequests int
	// RequestTimeout bounds one PutRecords or ListShards call; a call that times out is
	// retried, and may have written its records, which then appear twice. Default 10 s
	// (the KPL uses 6 s; a longer timeout means fewer duplicates).
	RequestTimeout time.Duration

	// MaxBufferedRecords bounds the user records accepted but not yet finished (buffered,
	// in flight or waiting for a retry). PutAsync blocks and TryPutAsync fails with
	// ErrBufferFull beyond it. Default 100,000.
	MaxBufferedRecords int
	// MaxBufferedBytes bounds the data plus partition key bytes of those records. A record
	// larger than the bound is accepted only into an empty buffer. Default 64 MiB. Beyond
	// the records themselves (whose Data is the caller's memory, held until the callback),
	// the producer keeps about 150 bytes per buffered record and, for the requests in
	// flight, their bodies (4/3 of their data, base64): without compression it keeps no
	// second copy of the data of aggregates waiting to be sent (see the package doc).
	MaxBufferedBytes int64

	// RecordTTL bounds how long the producer keeps trying to write a record, like the KPL's
	// RecordTtl; a record not written by then fails with an *ExpiredError carrying the last
	// cause. Records aggregated together share the TTL of the oldest, so one may expire up
	// to Linger early. Default 30 s.
	RecordTTL time.Duration
	// RetryBaseDelay is the first backoff after a shard's records fail; it doubles with each
	// further failure (with jitter) up to RetryMaxDelay, and resets when the shard succeeds.
	// A request that made progress for the shard (some entries accepted) does not grow it,
	// and throttles alone do not back off at all while the rate adapts: the adaptive rate
	// paces their retries. Default 100 ms.
	RetryBaseDelay time.Duration
	// RetryMaxDelay caps the backoff. Default 5 s.
	RetryMaxDelay time.Duration

	// FailIfThrottled fails a record at once, with the service's *PutError, when its entry
	// is throttled (ProvisionedThroughputExceededException), instead of retrying it, like the
	// KPL's FailIfThrottled: a caller can then react, say by sending it to another shard
	// with a different key. Other failures are retried as usual. Default false.
	FailIfThrottled bool

	// StrictOrdering keeps the records of a partition key in order even across retries. By
	// default a shard has at most one PutRecords request in flight, which keeps order as
	// long as nothing fails; but when one entry of a request fails and a later entry for the
	// same shard succeeds, the retry lands after it. With StrictOrdering a request carries
	// a shard's Kinesis records only as long as no two of them hold records of the same key
	// (up to 2,048 user records per shard and request), so a retry never has a successor
	// of its own key in flight. The cost: a shard whose records share keys gets one Kinesis
	// record (with aggregation up to AggregationMaxSize bytes) per round trip, about 1 MB/s
	// per shard at 50 ms latency with aggregation; without aggregation, records of distinct
	// keys fill requests as they would without StrictOrdering.
	StrictOrdering bool

	// RateLimit caps each shard's send rate at this percentage of the shard's limits (1,000
	// records/s and 1 MiB/s), like the KPL's RateLimit, so a hot key is held back locally
	// instead of being throttled by the service. Default 150: one producer can saturate a
	// shard, since the service's limit is not measured the way the local one is.
	RateLimit int
	// DisableAdaptiveRate keeps each shard's rate at RateLimit. By default the rate adapts:
	// it halves when the service throttles the shard and the shard is found over its
	// capacity (it accepts as much at the lower rate; see the package documentation), and
	// climbs back additively, by up to 10% of RateLimit per second, while it is not
	// throttled, so an over-capacity load settles at what the shard accepts instead of
	// spiralling into retries, and a storm that refuses a share of entries at any rate does
	// not starve the shard.
	DisableAdaptiveRate bool

	// Compression compresses every Kinesis record's blob in the compression package's
	// framing. Off (compression.None) by default, because consumers that do not call
	// compression.Decode (Lambda, Firehose, the KCL) would see frames. Kinesis limits apply
	// to the compressed blob.
	Compression compression.Codec

	// OnResult receives the results of records put with a nil Callback. With neither, results
	// are only counted in Stats and metrics, and failures are logged at Warn.
	OnResult Callback

	// Logger receives the producer's logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics receives the producer's metrics, with StreamName and ShardId dimensions. nil
	// keeps them private: Stats still reports them.
	Metrics *metrics.Registry

	// DisableFastSerializer leaves PutRecords requests and answers to the SDK's serializer.
	// By default, when the client speaks the AWS JSON 1.1 protocol (the kinesis client's
	// default), the producer writes the request body itself, byte for byte what the SDK
	// would write, into a buffer it reuses, and decodes successful answers into memory it
	// reuses: the SDK's serializer spends more CPU and memory on the base64 of the records
	// than the rest of the producer does on them, and allocates per entry of an answer.
	// Signing, retries and error answers stay with the SDK. Clients configured with another
	// protocol, such as RPC v2 CBOR, are always left to the SDK.
	DisableFastSerializer bool

	// SDKRetries lets the SDK retry PutRecords calls as its client is configured to. By
	// default the producer turns them off for its calls (RetryMaxAttempts 1), because it
	// retries per record and per shard itself and needs to see every throttle to adapt.
	SDKRetries bool
}

// withDefaults returns the configuration with defaults applied, or an error naming the first
// invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.StreamName == "" && c.StreamARN == "" {
		return c, errors.New("producer: Config.StreamName or Config.StreamARN is required")
	}
	if c.AggregationMaxSize == 0 {
		c.AggregationMaxSize = DefaultAggregationMaxSize
	}
	if c.AggregationMaxSize < 64 || c.AggregationMaxSize > aggregation.MaxRecordSize {
		return c, fmt.Errorf("producer: Config.AggregationMaxSize %d outside [64, %d]", c.AggregationMaxSize, aggregation.MaxRecordSize)
	}
	if c.AggregationMaxCount < 0 {
		return c, fmt.Errorf("producer: Config.AggregationMaxCount %d below 0", c.AggregationMaxCount)
	}
	switch {
	case c.Linger == 0:
		c.Linger = DefaultLinger
	case c.Linger < 0:
		c.Linger = 0
	}
	if c.MaxBatchRecords == 0 {
		c.MaxBatchRecords = MaxBatchRecords
	}
	if c.MaxBatchRecords < 1 || c.MaxBatchRecords > MaxBatchRecords {
		return c, fmt.Errorf("producer: Config.MaxBatchRecords %d outside [1, %d]", c.MaxBatchRecords, MaxBatchRecords)
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = MaxBatchBytes
	}
	if c.MaxBatchBytes < 1 || c.MaxBatchBytes > MaxRequestBytes {
		return c, fmt.Errorf("producer: Config.MaxBatchBytes %d outside [1, %d]", c.MaxBatchBytes, MaxRequestBytes)
	}
	if c.MaxConcurrentRequests == 0 {
		c.MaxConcurrentRequests = DefaultMaxConcurrentRequests
	}
	if c.MaxConcurrentRequests < 1 {
		return c, fmt.Errorf("producer: Config.MaxConcurrentRequests %d below 1", c.MaxConcurrentRequests)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.MaxBufferedRecords == 0 {
		c.MaxBufferedRecords = DefaultMaxBufferedRecords
	}
	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if c.MaxBufferedRecords < 1 || c.MaxBufferedBytes < 1 {
		return c, errors.New("producer: Config.MaxBufferedRecords and MaxBufferedBytes must be positive")
	}
	if c.RecordTTL == 0 {
		c.RecordTTL = DefaultRecordTTL
	}
	if c.RetryBaseDelay == 0 {
		c.RetryBaseDelay = DefaultRetryBaseDelay
	}
	if c.RetryMaxDelay == 0 {
		c.RetryMaxDelay = DefaultRetryMaxDelay
	}
	if c.RetryMaxDelay < c.RetryBaseDelay {
		c.RetryMaxDelay = c.RetryBaseDelay
	}
	if c.RequestTimeout < 0 || c.RecordTTL < 0 || c.RetryBaseDelay < 0 {
		return c, errors.New("producer: Config durations must not be negative")
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateLimit < 1 {
		return c, fmt.Errorf("producer: Config.RateLimit %d below 1", c.RateLimit)
	}
	if !c.Compression.Valid() {
		return c, fmt.Errorf("producer: Config.Compression: unknown codec %d", uint8(c.Compression))
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}
