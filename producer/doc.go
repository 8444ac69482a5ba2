// Package producer writes records to an Amazon Kinesis data stream the way AWS's Kinesis
// Producer Library (KPL) does (aggregation, batching, per-shard rate limiting, retries),
// in-process, with a Go API and an allocation-free hot path.
//
// # Model
//
// A record travels through this pipeline:
//
//		Put ──► validate ──► per-shard aggregator ──► shard queue ──► batcher ──► sender ──► result
//		         │             (shard map from          (backoff,       (≤500 entries,  (PutRecords,
//		         │              ListShards, MD5 of       rate limit)     ≤5 MiB)         retries)
//		         └─► error returned at once
//
//	  - Validate: the partition key (1 to 256 UTF-16 code units, as Kinesis counts), the explicit hash key
//	    (a decimal below 2^128) and the size (data plus key at most the stream's maximum
//	    record size: 1 MiB unless raised, up to 10 MiB, read from DescribeStreamSummary) are checked before
//	    a record is accepted; a violation returns a *ValidationError naming the field and the
//	    limit, and the record is not accepted. A PutAsync of a record over 1 MiB made before the
//	    stream answered waits for the answer; TryPutAsync takes it and fails it when encoded.
//	  - Backpressure: at most MaxBufferedRecords records and MaxBufferedBytes bytes are
//	    accepted and unfinished at once. PutAsync blocks for room (bounded by its context);
//	    TryPutAsync returns ErrBufferFull instead. Blocked puts are let in first come, first
//	    served as results free room, ahead of newer puts; they sleep until then.
//	  - Aggregation: the producer keeps a map of the stream's open shards (ListShards; a shard
//	    is open when its ending sequence number is unset) and predicts each record's shard
//	    from the MD5 of its partition key, or from its explicit hash key. Records predicted
//	    for the same shard are packed into one KPL aggregate (format in package aggregation)
//	    until it reaches AggregationMaxSize or its oldest record has waited Linger. The
//	    aggregate is put under its first record's keys, so it lands on the predicted shard
//	    and every key's records stay on the shard its hash selects; an aggregate of one
//	    record is sent as that plain record, as the KPL does. The producers of a process
//	    share a cache of the hash keys of recent partition keys (8,192 keys of up to 32
//	    bytes, 512 KiB), since keys tend to repeat and the MD5 costs about as much as the
//	    rest of the work on a small record.
//	  - Memory: without compression, a sealed aggregate keeps its records' keys and framing
//	    (a few bytes per record) but no copy of their data; the sender makes its bytes when a
//	    request carries it, into memory lent for that request and given back as soon as the
//	    request's body is written. So an aggregate waiting for its shard's rate limit costs
//	    its records' bookkeeping only, and the records' data exists twice only while its
//	    request is in flight (as data and as the body's base64). A compressed aggregate is
//	    made, and compressed, when it is sealed, since its size is known only then.
//	  - Batching: sealed Kinesis records wait in their shard's queue until a PutRecords
//	    request can be filled (500 entries or 5 MiB) or the oldest has waited Linger; then
//	    every sendable shard contributes to the request. At most MaxConcurrentRequests
//	    requests are in flight. The sender writes the MD5 checksums of all the request's
//	    new aggregates together, sixteen side by side on CPUs with AVX-512, seven to eight
//	    times faster than one by one (aggregation.Checksummer).
//	  - Sending: a shard contributes only when it has no request in flight, is not backing
//	    off, and its rate limiter allows it (RateLimit percent of 1,000 records/s and
//	    1 MiB/s, adapted to throttling, see below). One request in flight per shard keeps a
//	    key's records in order as long as nothing fails; StrictOrdering keeps them in order
//	    across retries as well, by putting a shard's Kinesis records in one request only
//	    while their partition keys differ. While shards are held back, the producer sleeps until the
//	    first of them may send; records put meanwhile do not wake it.
//	  - Wire format: with the kinesis client's default protocol (AWS JSON 1.1), the producer
//	    writes the PutRecords request body itself, the same bytes the SDK would write, into
//	    a buffer it keeps for the next request, and decodes successful answers into memory
//	    it keeps too; the rest of the call (signing, retries, error answers) stays with the
//	    SDK. DisableFastSerializer turns this off; clients configured with another protocol
//	    (RPC v2 CBOR) are always left to the SDK.
//	  - Results: when a request returns, the successful entries' user records get their
//	    result (shard ID, sequence number, subsequence number, attempts). Failed entries are
//	    classified once (see below); retryable ones go back to the front of their shard's
//	    queue behind an exponential backoff with jitter for that shard only, so one hot
//	    shard does not stall the others. Every accepted record gets exactly one result,
//	    success or error, through its Callback.
//
// # Retries and errors
//
// Throttling (ProvisionedThroughputExceededException, KMSThrottlingException), internal
// failures, 5xx answers, timeouts and connection resets are retried, only for the entries
// that failed, until RecordTTL has passed since the record was accepted; then the record
// fails with an *ExpiredError (errors.Is(err, ErrRecordExpired)) carrying the last cause.
// Other failures (a missing stream, denied access, invalid arguments, KMS key problems) fail
// the affected records at once with a *PutError naming the service's error code. A request
// refused as a whole for its content (InvalidArgumentException, ValidationException, or the
// SDK's own validation) is sent again one Kinesis record per request, an aggregate split
// into its user records, so that only the records at fault fail. Nil Data is sent as empty
// data, as the KPL sends it. A call
// that timed out or lost its connection may still have written its records, so a retry can
// write them twice: delivery is at least once, as with any Kinesis producer. When Close gives
// up, records whose call it cancels get an error matching ErrOutcomeUnknown: they may have
// been written.
//
// # Adaptive rate
//
// The KPL caps each shard at a fixed rate. Here each shard's cap adapts to what the service
// reports: when a request comes back with throttled entries for a shard, the shard's rate is
// halved, and while no throttle is reported it climbs back: slowly at first, by a tenth of the
// rate the service refused per second, then faster, the step doubling each second without a
// throttle up to a tenth of RateLimit per second. After a decrease the rate stays put for a
// few seconds while the producer measures how many entries per second the shard accepts
// (Kinesis measures a shard's throughput per second, so the second of the decrease says
// nothing): a shard over its capacity accepts as much at the lower rate, and a further
// throttle halves the rate again; a storm that refuses a share of entries whatever the rate
// (the shard accepts less the less is sent) restores the rate, and no decrease follows for
// ten seconds. An over-capacity load thus settles near what the shard accepts, and a storm
// that slowing down cannot end does not drive the rate to its floor. The AdaptiveRateLimit
// gauge (per shard) and Stats.AdaptiveRateLimit show the current rate; ThrottledRecords
// counts throttled Kinesis records.
//
// A shard's retry backoff grows only while its requests make no progress. Throttled entries
// of an answered request are retried as soon as the shard's adaptive rate allows (its
// saved-up burst is dropped after a throttle), since pacing them is the rate's job; a
// request throttled as a whole backs off as before; a request that had other failures
// but of which some of the shard's entries were accepted retries after RetryBaseDelay. So a
// storm that throttles half of every request does not pin the backoff at RetryMaxDelay.
// With DisableAdaptiveRate, throttles back off like other failures, as in the KPL.
//
// # Resharding
//
// When PutRecords reports a Kinesis record on a shard other than the predicted one (the
// stream was resharded after the map was loaded), the producer counts it delivered only when
// a Java KCL application would see it: a plain record always, an aggregate only when the
// range of the shard it landed on holds every one of its user records, since the KCL drops an
// aggregate whole when one of them lies outside. Every user record of any other aggregate is
// written again, re-aggregated under a refreshed map (a misrouted answer brings the next
// refresh forward to within a second; otherwise refreshes back off so that ListShards is not
// hammered; ShardMapRefreshes counts them). A duplicate written this way is invisible to KCL
// readers; the project's consumer package filters per record and is more lenient.
//
// Per-key order holds across a reshard, with or without StrictOrdering: a refresh moves the
// records queued for closed shards to their new shards ahead of any later record of the same
// key, and while a request to a closed shard is in flight (or its misrouted answer waits for
// the new map), the shards that took over its range send nothing, so the records it brings
// back for writing again go first.
//
// # Compression
//
// With Config.Compression set, each Kinesis record's blob is compressed (zstd, gzip or
// snappy) in the framing of package compression, which consumers undo with
// compression.Decode before deaggregating. It is off by default: consumers that do not
// decode (Lambda, Firehose, the KCL) would see frames.
//
// # Configuration defaults
//
// The zero value of each Config field selects its default:
//
//	Field                  Default        KPL counterpart
//	AggregationMaxSize     51,200 bytes   AggregationMaxSize (51200)
//	AggregationMaxCount    no bound       AggregationMaxCount (4294967295)
//	Linger                 100 ms         RecordMaxBufferedTime (100)
//	MaxBatchRecords        500            CollectionMaxCount (500)
//	MaxBatchBytes          5 MiB          CollectionMaxSize (5242880); at most 10 MiB
//	MaxConcurrentRequests  24             MaxConnections (24)
//	RequestTimeout         10 s           RequestTimeout (6000)
//	MaxBufferedRecords     100,000        none (the KPL buffers without bound)
//	MaxBufferedBytes       64 MiB         none
//	RecordTTL              30 s           RecordTtl (30000)
//	RetryBaseDelay         100 ms         fixed in the KPL
//	RetryMaxDelay          5 s            fixed in the KPL
//	RateLimit              150 percent    RateLimit (150)
//	DisableAggregation     false          AggregationEnabled (true)
//	DisableAdaptiveRate    false          none (the KPL's rate is fixed)
//	FailIfThrottled        false          FailIfThrottled (false)
//	StrictOrdering         false          none
//	DisableFastSerializer  false          none
//	Compression            none           none
//	Logger                 slog.Default()
//	Metrics                private        MetricsLevel, MetricsGranularity
//
// # Ownership and callbacks
//
// PutAsync takes a *Record; the Record and its Data belong to the producer until the
// record's Callback runs, so a caller can recycle both from the callback and put records
// without allocating. Put and PutAll copy their records' data, so the caller's buffers are
// free when they return. Callbacks run on the producer's goroutines and must return quickly.
//
// Put and PutAll wait for results; while they wait the producer sends what it holds without
// waiting for Linger (as Flush does), so a synchronous put costs a round trip, not Linger.
// A put whose context is already done is not accepted and gets the context's error.
//
// # Metrics
//
// The producer records UserRecordsPut, UserRecordsDataPut, KinesisRecordsPut,
// KinesisRecordsDataPut, ThrottledRecords and AdaptiveRateLimit per shard; UserRecordsReceived,
// UserRecordsPending, ErrorsByCode, AllErrors, UserRecordExpired, BufferingTime,
// RetriesPerRecord, RequestTime, ShardMapRefreshes and the per-request distributions per
// stream, in the registry given as Config.Metrics. Stats returns the same figures as a plain
// struct.
package producer
