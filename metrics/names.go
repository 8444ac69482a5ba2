package metrics

// Metric names. Where a KPL, KCL or Kinesis Agent metric means the same thing, Shardline uses
// its name, so existing dashboards and alarms carry over. The package documentation has the
// table of units, kinds, levels and meanings; Definitions returns the same table.
const (
	// Producer.
	UserRecordsReceived                = "UserRecordsReceived"
	UserRecordsPending                 = "UserRecordsPending"
	UserRecordsPut                     = "UserRecordsPut"
	UserRecordsDataPut                 = "UserRecordsDataPut"
	KinesisRecordsPut                  = "KinesisRecordsPut"
	KinesisRecordsDataPut              = "KinesisRecordsDataPut"
	ErrorsByCode                       = "ErrorsByCode"
	AllErrors                          = "AllErrors"
	RetriesPerRecord                   = "RetriesPerRecord"
	BufferingTime                      = "BufferingTime"
	RequestTime                        = "RequestTime"
	UserRecordExpired                  = "UserRecordExpired"
	UserRecordsPerKinesisRecord        = "UserRecordsPerKinesisRecord"
	KinesisRecordsPerPutRecordsRequest = "KinesisRecordsPerPutRecordsRequest"
	UserRecordsPerPutRecordsRequest    = "UserRecordsPerPutRecordsRequest"
	ShardMapRefreshes                  = "ShardMapRefreshes"
	ThrottledRecords                   = "ThrottledRecords"
	AdaptiveRateLimit                  = "AdaptiveRateLimit"

	// Consumer.
	MillisBehindLatest    = "MillisBehindLatest"
	RecordsProcessed      = "RecordsProcessed"
	BytesProcessed        = "BytesProcessed"
	ProcessingTime        = "ProcessingTime"
	RecordAge             = "RecordAge"
	LeasesHeld            = "LeasesHeld"
	LeasesTaken           = "LeasesTaken"
	LeasesLost            = "LeasesLost"
	RenewalLatency        = "RenewalLatency"
	DynamoDBReadCapacity  = "DynamoDBReadCapacity"
	DynamoDBWriteCapacity = "DynamoDBWriteCapacity"
	DynamoDBRequests      = "DynamoDBRequests"
	DeaggregationErrors   = "DeaggregationErrors"
	CorruptRecords        = "CorruptRecords"
	// RecordsOutsideShardRange counts aggregated user records dropped because their hash key
	// lies outside the shard they were read from (written under an older shard map; the
	// producer sent them again to the right shard).
	RecordsOutsideShardRange       = "RecordsOutsideShardRange"
	ShardEndNotCheckpointed        = "ShardEndNotCheckpointed"
	ProcessorErrors                = "ProcessorErrors"
	UnreadableLeases               = "UnreadableLeases"
	RetrievalFallbacks             = "RetrievalFallbacks"
	LeaseTableRequestsPerShardHour = "LeaseTableRequestsPerShardHour"

	// Agent.
	LinesRead          = "LinesRead"
	RecordsSent        = "RecordsSent"
	BytesSent          = "BytesSent"
	RecordSendAttempts = "RecordSendAttempts"
	RecordSendErrors   = "RecordSendErrors"
	ServiceErrors      = "ServiceErrors"
	FilesTailed        = "FilesTailed"
)

// Role names used in Definition.Role.
const (
	RoleProducer = "producer"
	RoleConsumer = "consumer"
	RoleAgent    = "agent"
	RoleAny      = "any"
)

// Definition describes one of Shardline's metrics: what a role should register it as.
type Definition struct {
	Name    string // metric name, one of the constants above
	Kind    Kind   // counter, gauge or distribution
	Unit    Unit   // CloudWatch unit
	Level   Level  // LevelSummary or LevelDetailed
	Role    string // RoleProducer, RoleConsumer, RoleAgent or RoleAny
	Meaning string // what the metric measures, as in the package documentation
}

var definitions = []Definition{
	{UserRecordsReceived, KindCounter, UnitCount, LevelDetailed, RoleProducer, "user records accepted by Put"},
	{UserRecordsPending, KindGauge, UnitCount, LevelDetailed, RoleProducer, "user records buffered or in flight"},
	{UserRecordsPut, KindCounter, UnitCount, LevelSummary, RoleProducer, "user records written to the stream"},
	{UserRecordsDataPut, KindCounter, UnitBytes, LevelDetailed, RoleProducer, "bytes of user records written"},
	{KinesisRecordsPut, KindCounter, UnitCount, LevelSummary, RoleProducer, "Kinesis records (after aggregation) written"},
	{KinesisRecordsDataPut, KindCounter, UnitBytes, LevelDetailed, RoleProducer, "bytes of Kinesis records written"},
	{ErrorsByCode, KindCounter, UnitCount, LevelSummary, RoleAny, "failures, per ErrorCode (and Operation)"},
	{AllErrors, KindCounter, UnitCount, LevelSummary, RoleAny, "failures of any code"},
	{RetriesPerRecord, KindDistribution, UnitCount, LevelDetailed, RoleProducer, "retries a user record needed before it was written"},
	{BufferingTime, KindDistribution, UnitMilliseconds, LevelSummary, RoleProducer, "time from Put to the record's first send"},
	{RequestTime, KindDistribution, UnitMilliseconds, LevelDetailed, RoleAny, "latency of each AWS request, per Operation"},
	{UserRecordExpired, KindCounter, UnitCount, LevelSummary, RoleProducer, "user records dropped because their TTL passed"},
	{UserRecordsPerKinesisRecord, KindDistribution, UnitCount, LevelDetailed, RoleProducer, "user records aggregated into one Kinesis record"},
	{KinesisRecordsPerPutRecordsRequest, KindDistribution, UnitCount, LevelDetailed, RoleProducer, "Kinesis records in one PutRecords request"},
	{UserRecordsPerPutRecordsRequest, KindDistribution, UnitCount, LevelDetailed, RoleProducer, "user records in one PutRecords request"},
	{ShardMapRefreshes, KindCounter, UnitCount, LevelDetailed, RoleProducer, "reloads of the shard map"},
	{ThrottledRecords, KindCounter, UnitCount, LevelSummary, RoleProducer, "records rejected for exceeding shard throughput"},
	{AdaptiveRateLimit, KindGauge, UnitCountPerSecond, LevelDetailed, RoleProducer, "send rate the adaptive limiter currently allows"},
	{MillisBehindLatest, KindGauge, UnitMilliseconds, LevelSummary, RoleConsumer, "how far reading lags the tip of the shard"},
	{RecordsProcessed, KindCounter, UnitCount, LevelSummary, RoleConsumer, "records handed to the record processor"},
	{BytesProcessed, KindCounter, UnitBytes, LevelSummary, RoleConsumer, "bytes handed to the record processor"},
	{ProcessingTime, KindDistribution, UnitMilliseconds, LevelSummary, RoleConsumer, "time the record processor took per batch"},
	{RecordAge, KindDistribution, UnitMilliseconds, LevelDetailed, RoleConsumer, "end-to-end age: arrival in the stream to processing"},
	{LeasesHeld, KindGauge, UnitCount, LevelSummary, RoleConsumer, "leases this worker holds"},
	{LeasesTaken, KindCounter, UnitCount, LevelDetailed, RoleConsumer, "leases this worker took (expired or stolen)"},
	{LeasesLost, KindCounter, UnitCount, LevelSummary, RoleConsumer, "leases this worker lost to others"},
	{RenewalLatency, KindDistribution, UnitMilliseconds, LevelDetailed, RoleConsumer, "time to renew one lease"},
	{DynamoDBReadCapacity, KindDistribution, UnitCount, LevelDetailed, RoleConsumer, "read capacity units one lease-table request used"},
	{DynamoDBWriteCapacity, KindDistribution, UnitCount, LevelDetailed, RoleConsumer, "write capacity units one lease-table request used"},
	{DynamoDBRequests, KindCounter, UnitCount, LevelDetailed, RoleConsumer, "lease-table requests, per Operation"},
	{DeaggregationErrors, KindCounter, UnitCount, LevelSummary, RoleConsumer, "aggregated records that could not be unpacked"},
	{CorruptRecords, KindCounter, UnitCount, LevelSummary, RoleConsumer, "records skipped because they failed validation"},
	{RecordsOutsideShardRange, KindCounter, UnitCount, LevelSummary, RoleConsumer, "aggregated user records dropped: hash key outside the shard"},
	{ShardEndNotCheckpointed, KindCounter, UnitCount, LevelSummary, RoleConsumer, "ShardEnded calls that did not checkpoint at SHARD_END"},
	{ProcessorErrors, KindCounter, UnitCount, LevelSummary, RoleConsumer, "record-processor calls that failed or panicked"},
	{UnreadableLeases, KindGauge, UnitCount, LevelSummary, RoleConsumer, "lease-table items of the stream that cannot be read"},
	{RetrievalFallbacks, KindCounter, UnitCount, LevelSummary, RoleConsumer, "shards read by polling because fan-out was unavailable"},
	{LeaseTableRequestsPerShardHour, KindGauge, UnitCount, LevelDetailed, RoleConsumer, "lease-table requests per lease held for an hour"},
	{LinesRead, KindCounter, UnitCount, LevelSummary, RoleAgent, "lines read from tailed files"},
	{RecordsSent, KindCounter, UnitCount, LevelSummary, RoleAgent, "records written to the stream"},
	{BytesSent, KindCounter, UnitBytes, LevelSummary, RoleAgent, "bytes written to the stream"},
	{RecordSendAttempts, KindCounter, UnitCount, LevelDetailed, RoleAgent, "records sent, counting each retry"},
	{RecordSendErrors, KindCounter, UnitCount, LevelSummary, RoleAgent, "record sends that failed, counting each retry"},
	{ServiceErrors, KindCounter, UnitCount, LevelSummary, RoleAgent, "send calls that failed with a service error"},
	{FilesTailed, KindGauge, UnitCount, LevelSummary, RoleAgent, "files being tailed"},
}

var definitionsByName = func() map[string]Definition {
	m := make(map[string]Definition, len(definitions))
	for _, d := range definitions {
		m[d.Name] = d
	}
	return m
}()

// Definitions returns the definition of every metric Shardline's roles publish, in the order
// of the table in the package documentation.
func Definitions() []Definition {
	return append([]Definition(nil), definitions...)
}

// LookupDefinition returns the definition of a metric name.
func LookupDefinition(name string) (Definition, bool) {
	d, ok := definitionsByName[name]
	return d, ok
}
