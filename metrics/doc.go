// Package metrics records the producer's, consumer's and agent's metrics and publishes them
// to Amazon CloudWatch, to a log, or to nobody: every role exposes the same numbers through
// its Stats() method whether or not CloudWatch is configured.
//
// # Recording
//
// A Registry holds series: a metric name plus a set of dimensions, of one of three kinds.
// A Counter counts (records put, bytes processed, errors), a Gauge holds a current state
// (records pending, leases held) and a Distribution collects observations (latencies, sizes,
// retries per record) in a histogram. Roles look up a handle once, off the hot path, passing
// the finest dimensions they know, typically StreamName and ShardId, and then record through
// the handle. Recording is a few atomic operations on memory the handle owns: no lock, no
// map lookup and, in the steady state, no allocation. A handle that many goroutines update
// at once (a stream's UserRecordsReceived on the producer's Put path) spreads over per-CPU
// cells after its first contended update, so recording scales with cores. A nil Registry hands out nil handles whose methods
// do nothing, so a role runs with metrics off at no cost and without branches.
//
// Values in a Registry are cumulative. Registry.Snapshot reads them all into plain structs
// (counter totals, gauge values, and DistributionSnapshots with Count, Sum, Min, Max, Mean
// and Quantile), which the roles return from Stats(). Readers that report per interval, the
// CloudWatchPublisher and the LogSink, each keep their previous reading and report the
// difference, so they never disturb the registry or each other. Exporters that carry the
// histogram itself read it with DistributionSnapshot.Buckets: the Prometheus collector and
// the OpenTelemetry bridge, modules of their own under exporters/.
//
// # What an interval publishes
//
// Every Interval (one minute by default, aligned to the clock so each interval falls in one
// CloudWatch period) the publisher turns each series into a datapoint stamped with the
// interval's start:
//
//   - a counter becomes a statistic set (SampleCount, Sum, Minimum, Maximum) with one sample:
//     its increase over the interval;
//   - a gauge becomes a statistic set of the readings taken every GaugeSampleInterval (5 s),
//     so Minimum and Maximum show its range within the minute;
//   - a distribution becomes Values and Counts: one value per histogram bucket with the
//     number of observations in it. This is the only form from which CloudWatch computes
//     percentiles (a statistic set only supports them when all its samples are equal). A
//     MetricDatum carries exactly one of Value, StatisticValues or Values/Counts, and at
//     most 150 values, so a distribution with more non-empty buckets is sent as several
//     datums of the same metric and timestamp, which CloudWatch combines; none of them
//     carries a statistic set, which would count the observations twice.
//
// Counters that did not move and distributions that observed nothing are not sent:
// CloudWatch bills a custom metric for every hour in which it receives data, and a missing
// datapoint reads as zero in a Sum (alarms should treat missing data as not breaching).
//
// The histogram splits each power of two into 32 buckets, so a bucket's midpoint is within
// 1.6% of any value in it, from 1e-6 to 1.7e13. Values sent to CloudWatch are bucket
// midpoints, except that the distribution's lowest and highest value so far stand in for
// one observation of the lowest and highest bucket when they fall in it. CloudWatch's
// SampleCount is exact; its Minimum and Maximum are exact for an interval that saw the
// distribution's lowest or highest value so far and within 1.6% otherwise; its Sum and
// percentiles are within 1.6%. Distributions are meant for non-negative values: values
// below 1e-6, zero and negatives included, share one bucket reported as 0 (CloudWatch
// computes no percentiles for a metric with a negative value). Local snapshots keep Count,
// Sum, Min and Max exact.
//
// # Levels, granularity and roll-up
//
// As in the KPL and KCL, every series has a Level (LevelSummary or LevelDetailed) and a
// publisher configured with level L sends the series whose level is at most L: LevelDetailed
// (the default) sends everything, LevelSummary the metrics most dashboards need, LevelNone
// nothing.
//
// Granularity chooses how finely StreamName and ShardId are kept. A series recorded per
// shard is published at its own level only with GranularityShard; with GranularityStream
// (the default) and coarser it is merged into its stream's series, and at every granularity
// it is also merged into a global series without either dimension. Other dimensions
// (ErrorCode, Operation, WorkerIdentifier, File, ...) are kept at every level, and the
// publisher's ExtraDimensions, such as a Host, are added to all. Merging combines samples:
// a stream's UserRecordsPut has one sample per shard that put records, so its Sum is the
// stream's total and its Maximum the busiest shard's; a stream's BufferingTime merges the
// shards' histograms. The KPL defaults to shard granularity, and the PutMetricData traffic
// of per-shard series on large streams gets throttled; Shardline asks for it explicitly.
//
// For one metric recorded per shard with C combinations of its other dimensions, over S
// streams with N shards in all, the number of CloudWatch series published is
//
//	GranularityGlobal:  C
//	GranularityStream:  C × (S + 1)
//	GranularityShard:   C × (N + S + 1)
//
// (precisely, the sum over each combination of 1 + the streams + the shards it was recorded
// for). Two streams of two shards give 7 series per metric at shard granularity, 3 at stream
// granularity. A metric recorded without StreamName and ShardId, such as LeasesHeld per
// WorkerIdentifier, is one series per dimension set at every granularity. ExtraDimensions
// add no series within a process, but a Host dimension multiplies a fleet's series by its
// number of hosts.
//
// # Uploading
//
// Aggregation hands requests to the uploader through a bounded buffer (BufferSize datums).
// Requests respect PutMetricData's limits: at most 1,000 datums (MaxDatumsPerRequest), 1 MB
// of body (MaxRequestBytes, estimated for the verbose awsQuery encoding before compression),
// 150 values per datum (MaxValuesPerDatum) and 30 dimensions per datum
// (MaxDimensionsPerDatum). Series CloudWatch would reject, which would fail the whole
// request, are left out and counted: non-ASCII or over-long names and dimension values,
// unknown units, values that are not finite or beyond ±2^360.
//
// Throttling, 5xx responses, connection errors and attempts that exceed RequestTimeout are
// retried with jittered exponential backoff up to MaxRetries times; other errors drop the
// request. While CloudWatch is slow or down the buffer fills and its oldest requests are
// dropped, so recording never waits and memory stays bounded. Close uploads the last
// partial interval and what is buffered, and returns by its context's deadline whatever
// CloudWatch does. Every datum sent, dropped (and why) or left out is counted in
// PublisherStats.
//
// CloudWatch accepts the SDK's default protocol; emulators such as moto speak only awsQuery,
// so a client for them is built with
//
//	cloudwatch.NewFromConfig(cfg, func(o *cloudwatch.Options) {
//		o.BaseEndpoint = aws.String(endpoint)
//		o.Protocol = awsquery.New(schemas.GraniteServiceVersion20100801)
//	})
//
// using github.com/aws/smithy-go/transport/http/protocol/awsquery and
// github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas.
//
// Without CloudWatch, a LogSink writes the same per-interval aggregates, before roll-up, to a
// log/slog Logger.
//
// # Metrics
//
// Names follow the KPL, KCL and Kinesis Agent where the meaning is the same. The level is
// the one roles register the metric at; Definitions returns this table.
//
//	Name                                Kind          Unit          Level     Role      Meaning
//	----------------------------------  ------------  ------------  --------  --------  -------
//	UserRecordsReceived                 counter       Count         detailed  producer  user records accepted by Put
//	UserRecordsPending                  gauge         Count         detailed  producer  user records buffered or in flight
//	UserRecordsPut                      counter       Count         summary   producer  user records written to the stream
//	UserRecordsDataPut                  counter       Bytes         detailed  producer  bytes of user records written
//	KinesisRecordsPut                   counter       Count         summary   producer  Kinesis records (after aggregation) written
//	KinesisRecordsDataPut               counter       Bytes         detailed  producer  bytes of Kinesis records written
//	ErrorsByCode                        counter       Count         summary   any       failures, per ErrorCode (and Operation)
//	AllErrors                           counter       Count         summary   any       failures of any code
//	RetriesPerRecord                    distribution  Count         detailed  producer  retries a user record needed before it was written
//	BufferingTime                       distribution  Milliseconds  summary   producer  time from Put to the record's first send
//	RequestTime                         distribution  Milliseconds  detailed  any       latency of each AWS request, per Operation
//	UserRecordExpired                   counter       Count         summary   producer  user records dropped because their TTL passed
//	UserRecordsPerKinesisRecord         distribution  Count         detailed  producer  user records aggregated into one Kinesis record
//	KinesisRecordsPerPutRecordsRequest  distribution  Count         detailed  producer  Kinesis records in one PutRecords request
//	UserRecordsPerPutRecordsRequest     distribution  Count         detailed  producer  user records in one PutRecords request
//	ShardMapRefreshes                   counter       Count         detailed  producer  reloads of the shard map
//	ThrottledRecords                    counter       Count         summary   producer  records rejected for exceeding shard throughput
//	AdaptiveRateLimit                   gauge         Count/Second  detailed  producer  send rate the adaptive limiter currently allows
//	MillisBehindLatest                  gauge         Milliseconds  summary   consumer  how far reading lags the tip of the shard
//	RecordsProcessed                    counter       Count         summary   consumer  records handed to the record processor
//	BytesProcessed                      counter       Bytes         summary   consumer  bytes handed to the record processor
//	ProcessingTime                      distribution  Milliseconds  summary   consumer  time the record processor took per batch
//	RecordAge                           distribution  Milliseconds  detailed  consumer  end-to-end age: arrival in the stream to processing
//	LeasesHeld                          gauge         Count         summary   consumer  leases this worker holds
//	LeasesTaken                         counter       Count         detailed  consumer  leases this worker took (expired or stolen)
//	LeasesLost                          counter       Count         summary   consumer  leases this worker lost to others
//	RenewalLatency                      distribution  Milliseconds  detailed  consumer  time to renew one lease
//	DynamoDBReadCapacity                distribution  Count         detailed  consumer  read capacity units one lease-table request used
//	DynamoDBWriteCapacity               distribution  Count         detailed  consumer  write capacity units one lease-table request used
//	DynamoDBRequests                    counter       Count         detailed  consumer  lease-table requests, per Operation
//	DeaggregationErrors                 counter       Count         summary   consumer  aggregated records that could not be unpacked
//	CorruptRecords                      counter       Count         summary   consumer  records skipped because they failed validation
//	RecordsOutsideShardRange            counter       Count         summary   consumer  aggregated user records dropped: hash key outside the shard
//	ShardEndNotCheckpointed             counter       Count         summary   consumer  ShardEnded calls that did not checkpoint at SHARD_END
//	ProcessorErrors                     counter       Count         summary   consumer  record-processor calls that failed or panicked
//	UnreadableLeases                    gauge         Count         summary   consumer  lease-table items of the stream that cannot be read
//	RetrievalFallbacks                  counter       Count         summary   consumer  shards read by polling because fan-out was unavailable
//	LeaseTableRequestsPerShardHour      gauge         Count         detailed  consumer  lease-table requests per lease held for an hour
//	LinesRead                           counter       Count         summary   agent     lines read from tailed files
//	RecordsSent                         counter       Count         summary   agent     records written to the stream
//	BytesSent                           counter       Bytes         summary   agent     bytes written to the stream
//	RecordSendAttempts                  counter       Count         detailed  agent     records sent, counting each retry
//	RecordSendErrors                    counter       Count         summary   agent     record sends that failed, counting each retry
//	ServiceErrors                       counter       Count         summary   agent     send calls that failed with a service error
//	FilesTailed                         gauge         Count         summary   agent     files being tailed
//
// Dimensions: roles pass the finest they have. Per-record producer and consumer metrics
// carry StreamName and ShardId (StreamName alone before a record has a shard); lease
// metrics carry WorkerIdentifier; DynamoDB metrics TableName and Operation; agent metrics
// StreamName and, per file, File. ErrorsByCode adds ErrorCode and, where useful, Operation.
package metrics
