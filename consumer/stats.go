package consumer

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/metrics"
)

// counters are the worker's totals behind Stats; they are kept whether or not a metrics
// registry is configured.
type counters struct {
	leasesTaken, leasesLost, leasesReleased, leasesCreated, leasesDeleted atomic.Int64
	handoffsRequested, handoffsCancelled                                  atomic.Int64
	recordsProcessed, bytesProcessed, batches, processingNanos            atomic.Int64
	deaggregationErrors, corruptRecords, outsideRange                     atomic.Int64
	processorErrors, shardEndNotCheckpointed, shardsEnded                 atomic.Int64
	renewals, renewalFailures, renewalNanos                               atomic.Int64
	iteratorsExpired, readsThrottled, readErrors, shardSyncs              atomic.Int64
	retrievalFallbacks, vanishedShards, foreignLeases                     atomic.Int64
}

// workerMetrics holds the registry handles; every handle is a no-op with a nil registry.
type workerMetrics struct {
	reg    *metrics.Registry
	stream string

	leasesHeld                      *metrics.Gauge
	leasesTaken, leasesLost         *metrics.Counter
	renewalLatency                  *metrics.Distribution
	deaggregationErrors             *metrics.Counter
	corruptRecords, outsideRange    *metrics.Counter
	processorErrors                 *metrics.Counter
	shardEndNotCheckpointed         *metrics.Counter
	unreadableLeases                *metrics.Gauge
	retrievalFallbacks              *metrics.Counter
	requestsPerShardHour            *metrics.Gauge
	readThrottles, expiredIterators *metrics.Counter
	readErrors                      *metrics.Counter
	mu                              sync.Mutex
	shardHandles                    map[string]shardMetrics
	streamDim, workerDim            metrics.Dimension
}

func def(name string) metrics.Definition {
	if d, ok := metrics.LookupDefinition(name); ok {
		return d
	}
	return metrics.Definition{Name: name, Unit: metrics.UnitCount, Level: metrics.LevelDetailed}
}

func newWorkerMetrics(reg *metrics.Registry, stream, worker string) *workerMetrics {
	m := &workerMetrics{reg: reg, stream: stream, shardHandles: map[string]shardMetrics{}}
	m.streamDim = metrics.Dim(metrics.DimStreamName, stream)
	m.workerDim = metrics.Dim(metrics.DimWorkerID, worker)
	counter := func(name string, dims ...metrics.Dimension) *metrics.Counter {
		d := def(name)
		return reg.Counter(d.Name, d.Unit, d.Level, append([]metrics.Dimension{m.streamDim}, dims...)...)
	}
	hd := def(metrics.LeasesHeld)
	m.leasesHeld = reg.Gauge(hd.Name, hd.Unit, hd.Level, m.streamDim, m.workerDim)
	m.leasesTaken = counter(metrics.LeasesTaken, m.workerDim)
	m.leasesLost = counter(metrics.LeasesLost, m.workerDim)
	rd := def(metrics.RenewalLatency)
	m.renewalLatency = reg.Distribution(rd.Name, rd.Unit, rd.Level, m.streamDim)
	m.deaggregationErrors = counter(metrics.DeaggregationErrors)
	m.corruptRecords = counter(metrics.CorruptRecords)
	m.outsideRange = counter(metrics.RecordsOutsideShardRange)
	m.processorErrors = counter(metrics.ProcessorErrors)
	m.shardEndNotCheckpointed = counter(metrics.ShardEndNotCheckpointed)
	ud := def(metrics.UnreadableLeases)
	m.unreadableLeases = reg.Gauge(ud.Name, ud.Unit, ud.Level, m.streamDim)
	m.retrievalFallbacks = counter(metrics.RetrievalFallbacks)
	qd := def(metrics.LeaseTableRequestsPerShardHour)
	m.requestsPerShardHour = reg.Gauge(qd.Name, qd.Unit, qd.Level, m.streamDim, m.workerDim)
	ed := def(metrics.ErrorsByCode)
	errs := func(code string) *metrics.Counter {
		return reg.Counter(ed.Name, ed.Unit, ed.Level, m.streamDim, metrics.Dim(metrics.DimOperation, "GetRecords"), metrics.Dim(metrics.DimErrorCode, code))
	}
	m.readThrottles = errs("ProvisionedThroughputExceededException")
	m.expiredIterators = errs("ExpiredIteratorException")
	m.readErrors = errs("Other")
	return m
}

// forShard returns the handles of one shard's series.
func (m *workerMetrics) forShard(shardID string) shardMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.shardHandles[shardID]; ok {
		return h
	}
	dims := []metrics.Dimension{m.streamDim, metrics.Dim(metrics.DimShardID, shardID)}
	rp, bp, mb, pt := def(metrics.RecordsProcessed), def(metrics.BytesProcessed), def(metrics.MillisBehindLatest), def(metrics.ProcessingTime)
	h := shardMetrics{
		records:    m.reg.Counter(rp.Name, rp.Unit, rp.Level, dims...),
		bytes:      m.reg.Counter(bp.Name, bp.Unit, bp.Level, dims...),
		behind:     m.reg.Gauge(mb.Name, mb.Unit, mb.Level, dims...),
		processing: m.reg.Distribution(pt.Name, pt.Unit, pt.Level, dims...),
	}
	m.shardHandles[shardID] = h
	return h
}

// dropShard removes the lag gauge of a shard this worker no longer processes, so a stale
// value does not linger; counters stay, being totals.
func (m *workerMetrics) dropShard(shardID string) {
	m.mu.Lock()
	delete(m.shardHandles, shardID)
	m.mu.Unlock()
	if m.reg != nil {
		m.reg.Remove(metrics.MillisBehindLatest, m.streamDim, metrics.Dim(metrics.DimShardID, shardID))
	}
}

// Stats is a snapshot of a worker's state and totals since it started.
type Stats struct {
	WorkerID  string    // the worker's identifier in the lease table
	Retrieval Retrieval // the retrieval in use (Polling after a fallback from FanOut)

	LeasesHeld        int   // leases held now
	LeasesTaken       int64 // leases taken (unassigned, expired, handed over or stolen)
	LeasesLost        int64 // leases lost to other workers or to failed renewals
	LeasesReleased    int64 // leases released (shutdown, handoff, SHARD_END)
	LeasesCreated     int64 // leases this worker's shard syncs created
	LeasesDeleted     int64 // finished leases this worker cleaned up
	HandoffsRequested int64 // graceful handoffs this worker asked for
	HandoffsCancelled int64 // handoff requests withdrawn: the owner kept renewing without answering

	RecordsProcessed    int64         // user records handed to processors
	BytesProcessed      int64         // their data bytes
	Batches             int64         // ProcessRecords calls
	ProcessingTime      time.Duration // total time in ProcessRecords
	MillisBehindLatest  int64         // the largest lag of the shards held now
	DeaggregationErrors int64         // corrupt KPL aggregates, delivered whole
	CorruptRecords      int64         // records with a corrupt compression frame, delivered whole
	RecordsOutsideRange int64         // aggregated user records dropped: hash outside the shard

	ProcessorErrors         int64 // failed or panicking processor calls
	ShardEndNotCheckpointed int64 // ShardEnded calls without the SHARD_END checkpoint
	ShardsEnded             int64 // shards processed to SHARD_END
	VanishedShards          int64 // leased shards the stream no longer has, ended as at SHARD_END
	ForeignLeases           int64 // lease-table rows of other streams, seen by the last scan and ignored

	Renewals             int64                     // successful renewals
	RenewalFailures      int64                     // renewals that failed for a reason other than a lost lease
	MeanRenewalLatency   time.Duration             // over the successful renewals
	IteratorsExpired     int64                     // shard iterators replaced after ExpiredIteratorException
	ReadsThrottled       int64                     // GetRecords calls refused for throughput
	ReadErrorsRetried    int64                     // other GetRecords failures retried
	ShardSyncs           int64                     // completed shard syncs
	RetrievalFallbacks   int64                     // starts in polling mode although fan-out was configured
	UnreadableLeases     map[string]string         // lease keys whose items cannot be read, with why
	Shards               []ShardStats              // one per lease held, sorted by shard ID
	LeaseTable           *checkpoint.DynamoDBStats // lease-table requests and capacity (DynamoDB store only)
	LeaseHours           float64                   // leases held × hours, integrated since the start
	RequestsPerLeaseHour float64                   // lease-table requests / LeaseHours (DynamoDB store only)
}

// ShardStats describes one shard this worker processes.
type ShardStats struct {
	ShardID            string                            // the shard (and lease key)
	State              string                            // StateProcessing, StateWaitingOnParents, ...
	RecordsProcessed   int64                             // user records processed since this worker took the lease
	MillisBehindLatest int64                             // lag of the last batch read
	Checkpoint         checkpoint.ExtendedSequenceNumber // the stored checkpoint as of the last write
}

// Stats returns a snapshot of the worker's state and totals.
func (w *Worker) Stats() Stats {
	c := &w.stats
	s := Stats{
		WorkerID:                w.cfg.WorkerID,
		Retrieval:               w.sources().mode(),
		LeasesTaken:             c.leasesTaken.Load(),
		LeasesLost:              c.leasesLost.Load(),
		LeasesReleased:          c.leasesReleased.Load(),
		LeasesCreated:           c.leasesCreated.Load(),
		LeasesDeleted:           c.leasesDeleted.Load(),
		HandoffsRequested:       c.handoffsRequested.Load(),
		HandoffsCancelled:       c.handoffsCancelled.Load(),
		RecordsProcessed:        c.recordsProcessed.Load(),
		BytesProcessed:          c.bytesProcessed.Load(),
		Batches:                 c.batches.Load(),
		ProcessingTime:          time.Duration(c.processingNanos.Load()),
		DeaggregationErrors:     c.deaggregationErrors.Load(),
		CorruptRecords:          c.corruptRecords.Load(),
		RecordsOutsideRange:     c.outsideRange.Load(),
		ProcessorErrors:         c.processorErrors.Load(),
		ShardEndNotCheckpointed: c.shardEndNotCheckpointed.Load(),
		ShardsEnded:             c.shardsEnded.Load(),
		VanishedShards:          c.vanishedShards.Load(),
		ForeignLeases:           c.foreignLeases.Load(),
		Renewals:                c.renewals.Load(),
		RenewalFailures:         c.renewalFailures.Load(),
		IteratorsExpired:        c.iteratorsExpired.Load(),
		ReadsThrottled:          c.readsThrottled.Load(),
		ReadErrorsRetried:       c.readErrors.Load(),
		ShardSyncs:              c.shardSyncs.Load(),
		RetrievalFallbacks:      c.retrievalFallbacks.Load(),
		UnreadableLeases:        w.syncer.unreadableLeases(),
	}
	if s.Renewals > 0 {
		s.MeanRenewalLatency = time.Duration(c.renewalNanos.Load() / s.Renewals)
	}
	for _, sc := range w.heldConsumers() {
		st, _ := sc.state.Load().(string)
		ss := ShardStats{
			ShardID:            sc.shardID,
			State:              st,
			RecordsProcessed:   sc.records.Load(),
			MillisBehindLatest: sc.behind.Load(),
			Checkpoint:         *sc.stored.Load(),
		}
		s.MillisBehindLatest = max(s.MillisBehindLatest, ss.MillisBehindLatest)
		s.Shards = append(s.Shards, ss)
	}
	slices.SortFunc(s.Shards, func(a, b ShardStats) int {
		switch {
		case a.ShardID < b.ShardID:
			return -1
		case a.ShardID > b.ShardID:
			return 1
		}
		return 0
	})
	s.LeasesHeld = len(s.Shards)
	w.mu.Lock()
	s.LeaseHours = w.leaseTime.hours
	w.mu.Unlock()
	if w.ddb != nil {
		st := w.ddb.Stats()
		s.LeaseTable = &st
		if s.LeaseHours > 0 {
			s.RequestsPerLeaseHour = float64(totalRequests(st)) / s.LeaseHours
		}
	}
	return s
}
