// Package shardlineotel bridges a Shardline metrics.Registry to the OpenTelemetry metrics
// SDK.
//
// It is its own Go module, github.com/shardline/shardline/exporters/otel, so that programs
// using Shardline without OpenTelemetry do not pull in the SDK.
//
// A Producer reads the registry the producer, consumer and agent record into
// (Config.Metrics) whenever a reader collects; give it to the reader of the MeterProvider
// that exports the program's own metrics:
//
//	reg := metrics.NewRegistry() // give it to producer.Config.Metrics, consumer.Config.Metrics, ...
//	bridge, err := shardlineotel.NewProducer(reg, shardlineotel.Options{})
//	if err != nil { ... }
//	exp, err := otlpmetricgrpc.New(ctx)
//	if err != nil { ... }
//	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(
//		sdkmetric.NewPeriodicReader(exp, sdkmetric.WithProducer(bridge))))
//
// # Names, units and attributes
//
// Every metric is named shardline. followed by its Shardline name in snake_case, without
// words that repeat the unit (see MetricName); the unit is in the metric's Unit, in UCUM as
// OpenTelemetry specifies: times in s, converted from the milliseconds Shardline records,
// sizes in By, counts {count}. Dimensions become attributes in snake_case: StreamName is
// stream_name, ShardId shard_id, ErrorCode error_code, WorkerIdentifier worker_identifier.
// OpenTelemetry's rules for translating into Prometheus turn these names into the ones the
// Prometheus collector in github.com/shardline/shardline/exporters/prometheus uses, so
// dashboards work with either. The metrics come under the instrumentation scope ScopeName.
//
// Counters are cumulative monotonic Sums, as an observable counter reports; gauges are
// Gauges (a gauge never set is left out); distributions are cumulative explicit-bucket
// Histograms with exact Sum, Min and Max. Each event is recorded once, in the series with the
// finest dimensions the role knew, so summing a stream's series counts nothing twice.
//
//	Shardline name                      OpenTelemetry name and unit
//	----------------------------------  ----------------------------------------------------
//	UserRecordsReceived                 shardline.user_records_received {count} (sum)
//	UserRecordsPending                  shardline.user_records_pending {count} (gauge)
//	UserRecordsPut                      shardline.user_records_put {count} (sum)
//	UserRecordsDataPut                  shardline.user_records_data_put_bytes By (sum)
//	KinesisRecordsPut                   shardline.kinesis_records_put {count} (sum)
//	KinesisRecordsDataPut               shardline.kinesis_records_data_put_bytes By (sum)
//	ErrorsByCode                        shardline.errors_by_code {count} (sum)
//	AllErrors                           shardline.all_errors {count} (sum)
//	RetriesPerRecord                    shardline.retries_per_record {count} (histogram)
//	BufferingTime                       shardline.buffering_time s (histogram)
//	RequestTime                         shardline.request_time s (histogram)
//	UserRecordExpired                   shardline.user_record_expired {count} (sum)
//	UserRecordsPerKinesisRecord         shardline.user_records_per_kinesis_record {count} (histogram)
//	KinesisRecordsPerPutRecordsRequest  shardline.kinesis_records_per_put_records_request {count} (histogram)
//	UserRecordsPerPutRecordsRequest     shardline.user_records_per_put_records_request {count} (histogram)
//	ShardMapRefreshes                   shardline.shard_map_refreshes {count} (sum)
//	ThrottledRecords                    shardline.throttled_records {count} (sum)
//	AdaptiveRateLimit                   shardline.adaptive_rate_limit {count}/s (gauge)
//	MillisBehindLatest                  shardline.behind_latest s (gauge)
//	RecordsProcessed                    shardline.records_processed {count} (sum)
//	BytesProcessed                      shardline.processed_bytes By (sum)
//	ProcessingTime                      shardline.processing_time s (histogram)
//	RecordAge                           shardline.record_age s (histogram)
//	LeasesHeld                          shardline.leases_held {count} (gauge)
//	LeasesTaken                         shardline.leases_taken {count} (sum)
//	LeasesLost                          shardline.leases_lost {count} (sum)
//	RenewalLatency                      shardline.renewal_latency s (histogram)
//	DynamoDBReadCapacity                shardline.dynamodb_read_capacity {count} (histogram)
//	DynamoDBWriteCapacity               shardline.dynamodb_write_capacity {count} (histogram)
//	DynamoDBRequests                    shardline.dynamodb_requests {count} (sum)
//	DeaggregationErrors                 shardline.deaggregation_errors {count} (sum)
//	CorruptRecords                      shardline.corrupt_records {count} (sum)
//	RecordsOutsideShardRange            shardline.records_outside_shard_range {count} (sum)
//	ShardEndNotCheckpointed             shardline.shard_end_not_checkpointed {count} (sum)
//	ProcessorErrors                     shardline.processor_errors {count} (sum)
//	UnreadableLeases                    shardline.unreadable_leases {count} (gauge)
//	RetrievalFallbacks                  shardline.retrieval_fallbacks {count} (sum)
//	LeaseTableRequestsPerShardHour      shardline.lease_table_requests_per_shard_hour {count} (gauge)
//	LinesRead                           shardline.lines_read {count} (sum)
//	RecordsSent                         shardline.records_sent {count} (sum)
//	BytesSent                           shardline.sent_bytes By (sum)
//	RecordSendAttempts                  shardline.record_send_attempts {count} (sum)
//	RecordSendErrors                    shardline.record_send_errors {count} (sum)
//	ServiceErrors                       shardline.service_errors {count} (sum)
//	FilesTailed                         shardline.files_tailed {count} (gauge)
//
// # Histograms
//
// Shardline's distributions keep a log-linear histogram: each power of two split into 32
// buckets of equal width. The Producer exports those buckets merged into
// Options.BucketsPerOctave per power of two (8 by default), so every count is exact: a merged
// bucket's bounds are Shardline bounds. Only bounds some series of the metric needs are
// listed, and all the metric's points list the same ones. Shardline buckets include their
// lower bound where OpenTelemetry's include their upper one, so a value exactly on a bound is
// counted one bucket higher.
//
// # Start times
//
// Registry values are cumulative from the series' creation, which the registry does not
// record. A series' start time is the previous collection before which it did not exist, or
// NewProducer's time for a series present at the first collection; a series removed from the
// registry and registered again restarts with a new start time, which backends read as a
// reset.
package shardlineotel
