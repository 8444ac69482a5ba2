// Package shardlineprom exports a Shardline metrics.Registry to Prometheus.
//
// It is its own Go module, github.com/shardline/shardline/exporters/prometheus, so that
// programs using Shardline without Prometheus do not pull in the Prometheus client.
//
// A Collector reads the registry the producer, consumer and agent record into
// (Config.Metrics) at every scrape; register it with a prometheus.Registerer and serve the
// registry with promhttp:
//
//	reg := metrics.NewRegistry() // give it to producer.Config.Metrics, consumer.Config.Metrics, ...
//	col, err := shardlineprom.NewCollector(reg, shardlineprom.Options{})
//	if err != nil { ... }
//	prometheus.MustRegister(col)
//	http.Handle("/metrics", promhttp.Handler())
//
// # Names, units and labels
//
// Every metric is named shardline_ followed by its Shardline name in snake_case, with the
// unit as a suffix (see MetricName): _seconds for times, which are converted from the
// milliseconds Shardline records, _bytes for sizes, and _total on counters. Dimensions
// become labels in snake_case: StreamName is stream_name, ShardId shard_id, ErrorCode
// error_code, WorkerIdentifier worker_identifier, Operation operation, TableName table_name,
// File file. Each event is recorded once, in the series with the finest dimensions the role
// knew, so sum by (stream_name) adds up a stream without counting anything twice.
//
// Shardline's counters are Prometheus counters, its gauges gauges (a gauge that was never set
// is not exported), and its distributions histograms. The kinds and units follow
// metrics.Definitions:
//
//	Shardline name                      Prometheus name
//	----------------------------------  ----------------------------------------------------
//	UserRecordsReceived                 shardline_user_records_received_total (counter)
//	UserRecordsPending                  shardline_user_records_pending (gauge)
//	UserRecordsPut                      shardline_user_records_put_total (counter)
//	UserRecordsDataPut                  shardline_user_records_data_put_bytes_total (counter)
//	KinesisRecordsPut                   shardline_kinesis_records_put_total (counter)
//	KinesisRecordsDataPut               shardline_kinesis_records_data_put_bytes_total (counter)
//	ErrorsByCode                        shardline_errors_by_code_total (counter)
//	AllErrors                           shardline_all_errors_total (counter)
//	RetriesPerRecord                    shardline_retries_per_record (histogram)
//	BufferingTime                       shardline_buffering_time_seconds (histogram)
//	RequestTime                         shardline_request_time_seconds (histogram)
//	UserRecordExpired                   shardline_user_record_expired_total (counter)
//	UserRecordsPerKinesisRecord         shardline_user_records_per_kinesis_record (histogram)
//	KinesisRecordsPerPutRecordsRequest  shardline_kinesis_records_per_put_records_request (histogram)
//	UserRecordsPerPutRecordsRequest     shardline_user_records_per_put_records_request (histogram)
//	ShardMapRefreshes                   shardline_shard_map_refreshes_total (counter)
//	ThrottledRecords                    shardline_throttled_records_total (counter)
//	AdaptiveRateLimit                   shardline_adaptive_rate_limit_per_second (gauge)
//	MillisBehindLatest                  shardline_behind_latest_seconds (gauge)
//	RecordsProcessed                    shardline_records_processed_total (counter)
//	BytesProcessed                      shardline_processed_bytes_total (counter)
//	ProcessingTime                      shardline_processing_time_seconds (histogram)
//	RecordAge                           shardline_record_age_seconds (histogram)
//	LeasesHeld                          shardline_leases_held (gauge)
//	LeasesTaken                         shardline_leases_taken_total (counter)
//	LeasesLost                          shardline_leases_lost_total (counter)
//	RenewalLatency                      shardline_renewal_latency_seconds (histogram)
//	DynamoDBReadCapacity                shardline_dynamodb_read_capacity (histogram)
//	DynamoDBWriteCapacity               shardline_dynamodb_write_capacity (histogram)
//	DynamoDBRequests                    shardline_dynamodb_requests_total (counter)
//	DeaggregationErrors                 shardline_deaggregation_errors_total (counter)
//	CorruptRecords                      shardline_corrupt_records_total (counter)
//	RecordsOutsideShardRange            shardline_records_outside_shard_range_total (counter)
//	ShardEndNotCheckpointed             shardline_shard_end_not_checkpointed_total (counter)
//	ProcessorErrors                     shardline_processor_errors_total (counter)
//	UnreadableLeases                    shardline_unreadable_leases (gauge)
//	RetrievalFallbacks                  shardline_retrieval_fallbacks_total (counter)
//	LeaseTableRequestsPerShardHour      shardline_lease_table_requests_per_shard_hour (gauge)
//	LinesRead                           shardline_lines_read_total (counter)
//	RecordsSent                         shardline_records_sent_total (counter)
//	BytesSent                           shardline_sent_bytes_total (counter)
//	RecordSendAttempts                  shardline_record_send_attempts_total (counter)
//	RecordSendErrors                    shardline_record_send_errors_total (counter)
//	ServiceErrors                       shardline_service_errors_total (counter)
//	FilesTailed                         shardline_files_tailed (gauge)
//
// # Histograms
//
// Shardline's distributions keep a log-linear histogram: each power of two is split into 32
// buckets of equal width, from 2^-20 to 2^44 in the recorded unit. The Collector exports
// those buckets with their own bounds, merged into Options.BucketsPerOctave buckets per power
// of two (8 by default), so every bucket count Prometheus sees is exact, not re-estimated:
// the bound of a merged bucket is a Shardline bound. Only bounds that some series of the
// metric needs are listed, and every series of one metric lists the same bounds, so
// histogram_quantile over sum by (le) works across shards and streams. Shardline buckets
// include their lower bound, so a value exactly on a bound is counted in the next le bucket.
// _sum and _count are exact.
//
// A process that has recorded different ranges than another lists different bounds; a query
// that sums by (le) across processes then misses, for each process, the bounds above the
// highest it lists, so aggregate quantiles per process, or across processes only at bounds
// they all list.
package shardlineprom
