package producer

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/shardline/shardline/metrics"
)

// streamMetrics holds the producer's metric handles. Handles are resolved here, off the hot
// path (per stream at New, per shard when the shard map changes), and then updated with
// atomics only. Series that belong to a shard are registered per shard only: the metrics
// package rolls shard series up into stream and global ones, so registering both would
// count twice.
type streamMetrics struct {
	reg  *metrics.Registry
	dims []metrics.Dimension

	received, allErrors, expired, refreshes *metrics.Counter
	pending                                 *metrics.Gauge
	bufferingTime, requestTime, retries     *metrics.Distribution
	userPerKinesis, kinesisPerRequest       *metrics.Distribution
	userPerRequest                          *metrics.Distribution

	mu     sync.Mutex
	byCode map[string]*metrics.Counter
}

type shardMetrics struct {
	userPut, userBytes, kinesisPut, kinesisBytes, throttled *metrics.Counter
	rate                                                    *metrics.Gauge
}

func newStreamMetrics(reg *metrics.Registry, stream string) *streamMetrics {
	if reg == nil {
		// A private registry keeps every handle real, so the code never branches on
		// whether metrics are wanted; its cost is a few atomics per Kinesis record.
		reg = metrics.NewRegistry()
	}
	d := []metrics.Dimension{metrics.Dim(metrics.DimStreamName, stream)}
	op := append(append([]metrics.Dimension(nil), d...), metrics.Dim(metrics.DimOperation, "PutRecords"))
	return &streamMetrics{
		reg:               reg,
		dims:              d,
		received:          reg.Counter(metrics.UserRecordsReceived, metrics.UnitCount, metrics.LevelDetailed, d...),
		allErrors:         reg.Counter(metrics.AllErrors, metrics.UnitCount, metrics.LevelSummary, d...),
		expired:           reg.Counter(metrics.UserRecordExpired, metrics.UnitCount, metrics.LevelSummary, d...),
		refreshes:         reg.Counter(metrics.ShardMapRefreshes, metrics.UnitCount, metrics.LevelDetailed, d...),
		pending:           reg.Gauge(metrics.UserRecordsPending, metrics.UnitCount, metrics.LevelDetailed, d...),
		bufferingTime:     reg.Distribution(metrics.BufferingTime, metrics.UnitMilliseconds, metrics.LevelSummary, d...),
		requestTime:       reg.Distribution(metrics.RequestTime, metrics.UnitMilliseconds, metrics.LevelDetailed, op...),
		retries:           reg.Distribution(metrics.RetriesPerRecord, metrics.UnitCount, metrics.LevelDetailed, d...),
		userPerKinesis:    reg.Distribution(metrics.UserRecordsPerKinesisRecord, metrics.UnitCount, metrics.LevelDetailed, d...),
		kinesisPerRequest: reg.Distribution(metrics.KinesisRecordsPerPutRecordsRequest, metrics.UnitCount, metrics.LevelDetailed, d...),
		userPerRequest:    reg.Distribution(metrics.UserRecordsPerPutRecordsRequest, metrics.UnitCount, metrics.LevelDetailed, d...),
		byCode:            map[string]*metrics.Counter{},
	}
}

func (m *streamMetrics) shard(id string) *shardMetrics {
	d := append(append([]metrics.Dimension(nil), m.dims...), metrics.Dim(metrics.DimShardID, id))
	r := m.reg
	return &shardMetrics{
		userPut:      r.Counter(metrics.UserRecordsPut, metrics.UnitCount, metrics.LevelSummary, d...),
		userBytes:    r.Counter(metrics.UserRecordsDataPut, metrics.UnitBytes, metrics.LevelDetailed, d...),
		kinesisPut:   r.Counter(metrics.KinesisRecordsPut, metrics.UnitCount, metrics.LevelSummary, d...),
		kinesisBytes: r.Counter(metrics.KinesisRecordsDataPut, metrics.UnitBytes, metrics.LevelDetailed, d...),
		throttled:    r.Counter(metrics.ThrottledRecords, metrics.UnitCount, metrics.LevelSummary, d...),
		rate:         r.Gauge(metrics.AdaptiveRateLimit, metrics.UnitCountPerSecond, metrics.LevelDetailed, d...),
	}
}

// errorCode counts n failures under code. Error paths only, so the map lookup is fine.
func (m *streamMetrics) errorCode(code string, n int64) {
	m.mu.Lock()
	c := m.byCode[code]
	if c == nil {
		d := append(append([]metrics.Dimension(nil), m.dims...), metrics.Dim(metrics.DimErrorCode, code))
		c = m.reg.Counter(metrics.ErrorsByCode, metrics.UnitCount, metrics.LevelSummary, d...)
		m.byCode[code] = c
	}
	m.mu.Unlock()
	c.Add(n)
	m.allErrors.Add(n)
}

// counters back Stats independently of the metrics registry, whose shard series disappear
// from view when a shard is retired.
type counters struct {
	userPut, userBytes, kinesisPut, kinesisBytes atomic.Int64
	failed, expired, retries, throttled          atomic.Int64
	requests, refreshes                          atomic.Int64

	mu    sync.Mutex
	codes map[string]int64
}

func (c *counters) code(code string, n int64) {
	c.mu.Lock()
	if c.codes == nil {
		c.codes = map[string]int64{}
	}
	c.codes[code] += n
	c.mu.Unlock()
}

// Stats is a snapshot of the producer's counters and state. Counters count from New.
type Stats struct {
	// UserRecordsPut is the number of user records written (successful results).
	UserRecordsPut int64
	// UserRecordsDataPut is the data bytes of those records.
	UserRecordsDataPut int64
	// KinesisRecordsPut is the number of Kinesis records (aggregates or single records)
	// written.
	KinesisRecordsPut int64
	// KinesisRecordsDataPut is their data plus partition key bytes, as Kinesis counts them.
	KinesisRecordsDataPut int64
	// UserRecordsFailed is the number of user records whose result was an error, including
	// expired ones.
	UserRecordsFailed int64
	// UserRecordsExpired is the number of user records that failed for RecordTTL.
	UserRecordsExpired int64
	// UserRecordsPending is the number of user records accepted and without a result yet.
	UserRecordsPending int64
	// BytesPending is their data plus partition key bytes.
	BytesPending int64
	// Retries is the number of Kinesis records sent again after a failure.
	Retries int64
	// ThrottledRecords is the number of Kinesis records the service throttled.
	ThrottledRecords int64
	// Requests is the number of PutRecords calls completed.
	Requests int64
	// ErrorsByCode counts failed Kinesis record attempts by error code, retried or not.
	ErrorsByCode map[string]int64
	// ShardMapRefreshes is the number of successful ListShards reloads, the first included.
	ShardMapRefreshes int64
	// Shards is the number of open shards in the current shard map.
	Shards int
	// InFlightRequests is the number of PutRecords calls in flight.
	InFlightRequests int
	// AdaptiveRateLimit is, per open shard, the record rate per second the adaptive limiter
	// allows now (RateLimit percent of 1,000 when there is no throttling).
	AdaptiveRateLimit map[string]float64
	// BufferingTime is the distribution, in milliseconds, of the time from Put to first send
	// of the oldest user record in each Kinesis record.
	BufferingTime metrics.DistributionSnapshot
	// RequestTime is the distribution of PutRecords latency in milliseconds.
	RequestTime metrics.DistributionSnapshot
}

// Stats returns a snapshot of the producer's counters and state.
func (p *Producer) Stats() Stats {
	c := &p.stats
	s := Stats{
		UserRecordsPut:        c.userPut.Load(),
		UserRecordsDataPut:    c.userBytes.Load(),
		KinesisRecordsPut:     c.kinesisPut.Load(),
		KinesisRecordsDataPut: c.kinesisBytes.Load(),
		UserRecordsFailed:     c.failed.Load(),
		UserRecordsExpired:    c.expired.Load(),
		UserRecordsPending:    p.room.recs.Load(),
		BytesPending:          p.room.bytes.Load(),
		Retries:               c.retries.Load(),
		ThrottledRecords:      c.throttled.Load(),
		Requests:              c.requests.Load(),
		ShardMapRefreshes:     c.refreshes.Load(),
		BufferingTime:         p.m.bufferingTime.Snapshot(),
		RequestTime:           p.m.requestTime.Snapshot(),
		AdaptiveRateLimit:     map[string]float64{},
	}
	c.mu.Lock()
	s.ErrorsByCode = maps.Clone(c.codes)
	c.mu.Unlock()
	if s.ErrorsByCode == nil {
		s.ErrorsByCode = map[string]int64{}
	}
	t := p.table.Load()
	s.Shards = len(t.shards)
	now := p.now()
	p.mu.Lock()
	s.InFlightRequests = p.inflightReqs
	for _, sh := range t.shards {
		sh.lim.advance(now)
		s.AdaptiveRateLimit[sh.id] = sh.lim.recordsPerSecond()
	}
	p.mu.Unlock()
	return s
}
