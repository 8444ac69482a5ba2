// Package consumer reads a Kinesis data stream with a fleet of workers, as the Java Kinesis
// Client Library (KCL) does: the shards are shared among the workers through leases, each
// worker runs one record processor per shard it holds, and processors checkpoint their
// progress so that a shard moves to another worker without losing records.
//
// # Workers, leases and counters
//
// A Worker is one member of a fleet. Workers with the same application name share a lease
// table (DynamoDB, with the KCL's schema, so a KCL application's checkpoints carry over), which
// holds one lease per shard: its owner, a counter, a checkpoint, the shard's parents and hash
// key range, and the throughput its owner measured. Four parts of a worker (named after their
// types in the source) keep it:
//
//   - The shard syncer (shardSyncer) lists the shards at start, every ShardSyncInterval and
//     when a shard ends, and creates leases for new shards. A child shard's lease starts at
//     TRIM_HORIZON and waits until every parent is processed to SHARD_END, so each partition
//     key's records stay in order across splits and merges. Finished leases are deleted once
//     their children started and LeaseCleanupDelay passed.
//   - The lease renewer (leaseRenewer) renews each held lease every RenewInterval, which
//     increments its counter. A shard whose lease was lost, or could not be renewed for most
//     of the FailoverTime, stops before another worker may take it.
//   - The lease taker (leaseTaker) scans the table every TakeInterval. A lease whose counter
//     has not moved for FailoverTime, on this worker's own monotonic clock since it last saw
//     the counter change, is expired; no two machines' clocks are ever compared. The taker
//     takes unassigned and expired leases up to its fair share and balances the fleet without
//     a leader: every worker computes the same view from the table and moves leases only from
//     the most loaded worker, a few at a time, when the move evens the load by more than
//     BalanceHysteresis. Load is measured, not counted: a lease weighs 1 plus its throughput
//     relative to the mean, so a hot shard counts more than an idle one, and an idle stream
//     balances by count as the KCL does.
//   - A shard consumer (shardConsumer) per held lease reads records (polling with GetRecords,
//     or enhanced fan-out), decompresses them (compression.Decode), unpacks KPL aggregates
//     with their subsequence numbers, drops aggregated user records whose hash key lies
//     outside the shard's range (written under an older shard map and re-sent by the
//     producer), and hands batches to the processor.
//
// A worker consumes one stream and uses only the lease-table rows keyed by a bare shard ID.
// Rows of a KCL multi-stream application sharing the table (keys
// "account:stream:creationEpoch:shardId", with streamName and shardId attributes, as the KCL's
// MultiStreamLease) are never taken, ended or deleted, even for a stream of the same name;
// Stats.ForeignLeases counts them.
//
// Every ownership write (take, renew, checkpoint, release) is conditional on the counter the
// writer saw, so of several workers acting on one view at most one succeeds, and a worker that
// lost a lease cannot overwrite its new owner's checkpoint.
//
// Moving a lease to balance the load is a graceful handoff (the KCL 3.x checkpointOwner
// protocol): the thief asks for the lease, the owner's processor gets ShutdownRequested and
// checkpoints, the owner releases the lease, and only then does the thief start, from that
// checkpoint, so rebalancing delivers no record twice. A lease whose counter still moves is
// never taken because a handoff timed out: an owner that stops renewing during the handoff
// loses the lease when it expires, and one that renews without answering within
// HandoffTimeout (a KCL 2.x worker in a mixed fleet, which does not know the request, or a
// processor stuck in ShutdownRequested) gets the request withdrawn (its leaseOwner restored,
// the counter untouched, so its renewals go on) and from then on is balanced by the KCL 2.x
// steal rule (DynamoDBLeaseTaker): only while this worker is below the target of
// ceil(leases / workers) leases and the owner at or above it, at most MaxLeasesToStealAtOnce
// leases a scan, taken outright, as a KCL 2.x worker steals. Stats.HandoffsCancelled counts
// the withdrawn requests.
//
// # Several streams
//
// A MultiStreamWorker consumes several streams with one lease table, as a KCL 3.x
// multi-stream application does, and a KCL multi-stream application's table carries over in
// either direction: each lease is keyed "account:stream:creationEpoch:shardId" (the KCL's
// serialized StreamIdentifier and the shard ID, as MultiStreamLease) and carries them in the
// streamName and shardId attributes, while parents and children stay bare shard IDs. The
// identifier is StreamConfig.Identifier or, by default, the stream ARN's account and the
// stream's creation time in seconds from DescribeStreamSummary. The list of streams comes
// from a StreamListFunc, called at start and every StreamListInterval as the KCL calls
// MultiStreamTracker.streamConfigList; each stream has its own name or ARN and initial
// position. At start, streams the table has leases of but the list lacks are consumed too,
// with new shards at LATEST, as the KCL consumes such orphaned streams. A stream that leaves
// the list keeps being consumed by default (the KCL's NoLeaseDeletionStrategy); with
// FormerStreamLeaseDeletionDelay it is stopped and its leases deleted once it stayed away that
// long (AutoDetectionAndDeferredDeletionStrategy). A deleted stream that is no longer listed
// has its leases deleted. Each stream runs as a Worker over its own leases, sharing the table,
// the clients and the worker ID; leases are balanced per stream, so each stream spreads over
// the fleet (the KCL balances all leases together).
//
// # The processor contract
//
// A RecordProcessor serves one shard for as long as the worker holds its lease:
//
//	method             called                                              checkpoint
//	Initialize         once, before the first batch                        no
//	ProcessRecords     for each non-empty batch                            may
//	LeaseLost          the lease went to another worker or renewals failed cannot
//	ShardEnded         the shard is closed and fully delivered             must, at SHARD_END
//	ShutdownRequested  the worker shuts down, or hands the lease over      may
//
// Exactly one of the last three ends a processor's life (ShardEnded may be repeated, see
// below). Records after the last checkpoint are delivered again to the next owner, so
// processing is at least once. An error from ProcessRecords delivers the batch again after a
// pause; a ShardEnded that returns without checkpointing at SHARD_END is an error
// (ErrShardEndNotCheckpointed, logged and counted in ShardEndNotCheckpointed) and is called
// again after a pause, as the KCL retries its shard-end task: the shard's children cannot
// start until it checkpoints. RecordFunc wraps a per-record function. By default its
// checkpoint rides on the lease renewal (Checkpointer.CheckpointAtNextRenewal): after each
// batch the position waits for the next renewal, which writes it instead of a bare renewal,
// so a busy shard costs the lease table what an idle one does, and a failover processes again
// at most the records of one RenewInterval. CheckpointInterval, CheckpointEveryRecords
// (checked after each batch and, for the interval, on an idle read too) and
// CheckpointEveryBatch write checkpoints of their own instead; after every batch that is up to
// 18,000 writes a shard-hour (five reads a second), and CheckpointInterval(10 * time.Second)
// writes 360, each of which also renews the lease. Whatever the cadence, the checkpoint is
// written at once at shard end, at a handoff or graceful shutdown, and before a failed batch
// comes again; releasing a lease also writes any checkpoint still waiting for a renewal.
//
// A checkpoint inside a KPL aggregate keeps its subsequence number; the next owner reads
// the aggregate again (AT_SEQUENCE_NUMBER) and skips the user records the checkpoint covers,
// which is also right for a record that was not aggregated.
//
// # Retrieval
//
// The stream is named by StreamName or by StreamARN; with an ARN every request names the
// stream by ARN (ListShards, GetShardIterator, GetRecords, and fan-out skips looking the ARN
// up), which is how a worker reads a stream of another account whose resource policy lets the
// worker's credentials in. The lease table stays in the worker's own account.
//
// Polling (the default) reads each shard with GetRecords, sharing the shard's read throughput
// with every other application. FanOut reads with enhanced fan-out: the application
// registers one stream consumer (ConsumerName), which every worker reuses, and each shard is
// a SubscribeToShard subscription, renewed from where it stopped. A worker that cannot use
// fan-out (a client without SubscribeToShard, a registration that fails) reads by polling
// instead and says so in its log and in the RetrievalFallbacks metric; so does a shard whose
// subscription fails for good, from the last record delivered.
//
// A shard read that answers ResourceNotFoundException (GetShardIterator, GetRecords, or a
// subscription that falls back to them) is checked against the stream's shard list. When the
// stream is gone, Run stops with ErrStreamNotFound. When the stream is there and the shard is
// not (a lease left from before the shard expired past retention, or from an earlier stream of
// the same name), the shard is ended as the KCL ends it (KinesisDataFetcher's terminal result,
// then ShutdownTask's SHARD_END path with no children): the processor's ShardEnded checkpoints
// SHARD_END, so child leases waiting on it start, and the lease, being neither listed nor a
// parent of a listed shard, is deleted after LeaseCleanupDelay, as LeaseCleanupManager deletes
// garbage leases. Stats.VanishedShards counts these shards.
//
// # Stopping
//
// Run returns when its context ends, after a graceful shutdown: no more leases are taken,
// every processor gets ShutdownRequested and may checkpoint, and the leases are released so
// that the remaining workers take them at once instead of after the failover time. Kill stops a
// worker abruptly, as a crash would, for tests of failover.
//
// # Configuration defaults
//
//	field                   default                     note
//	FailoverTime            10 s                        the KCL's failoverTimeMillis
//	RenewInterval           FailoverTime × 2/5          the KCL's FailoverTime / 3 − 25 ms
//	TakeInterval            FailoverTime / 2            the KCL scans every 2 × (FailoverTime + 25 ms)
//	MaxLeasesPerWorker      no limit
//	MaxLeasesToStealAtOnce  1                           the KCL's
//	BalanceHysteresis       0.2 lease weights
//	HandoffTimeout          30 s                        the KCL 3.x's gracefulLeaseHandoffTimeoutMillis
//	ShardSyncInterval       1 min                       the KCL's shardSyncIntervalMillis
//	LeaseCleanupDelay       5 min
//	InitialPosition         LATEST                      the KCL's; a lease left at AT_TIMESTAMP
//	                                                    uses InitialTimestamp when configured
//	                                                    AtTimestamp, TRIM_HORIZON otherwise
//	Retrieval               Polling
//	ConsumerName            ApplicationName             the KCL's
//	FanOutShardCheckInterval 10 s
//	MaxRecords              10,000                      the KCL's maxRecords
//	IdleTimeBetweenReads    1 s                         the KCL's idleTimeBetweenReadsInMillis
//	MinTimeBetweenReads     200 ms                      Kinesis allows 5 reads/s per shard
//	ShutdownTimeout         30 s
//	MaxProcessingBackoff    10 s
//	WorkerID                host name + random suffix
//	LeaseTableName          ApplicationName
//	StreamARN               none                        requests name the stream
//	RecordFunc cadence      with the next renewal       CheckpointInterval, CheckpointEveryRecords,
//	                                                    CheckpointEveryBatch
//	StreamListInterval      1 min                       MultiStreamWorker
//	FormerStreamLeaseDeletionDelay 0 (never)            the KCL's NoLeaseDeletionStrategy
//
// # Takeover bound
//
// When one worker dies, each of its shards resumes on another worker within FailoverTime +
// TakeInterval of the death, plus the first read: a survivor saw the lease's last counter
// change at a scan no later than TakeInterval after the renewal, the lease expires
// FailoverTime after that sighting on the survivor's clock, and the survivor scans again at
// that moment. The bound holds on these conditions:
//
//   - The survivors have room. A worker takes expired leases only up to its fair share of the
//     load (the dead worker no longer counts) and never past MaxLeasesPerWorker; the survivors'
//     shares together cover every lease, but a cap that leaves them short leaves shards
//     unprocessed until a worker has room.
//   - The failures do not overlap. A survivor that took a lease and dies before its first
//     renewal gives that lease a fresh expiry, so a shard caught in two failures may take up
//     to twice the bound; a worker that starts after the death (a fleet restarted at once)
//     presumes every owned lease alive for FailoverTime from its own first scan.
//   - The shard's parents are finished: a child waits for them whatever the failover does.
//
// A worker cut off from the lease table stops processing by 0.8 × FailoverTime after its
// last successful renewal, before another worker may take its leases, so the takeover never
// has two workers processing one shard.
//
// # Cost of the lease table
//
// Per lease and hour a worker makes 3600 / RenewInterval renewals (900 at the defaults). A
// RecordFunc with the default cadence adds none: its checkpoints are written by the renewals.
// Per worker, the lease taker scans the table every TakeInterval (720 an hour, one request per
// 1 MB page), shared by the worker's leases; a shard sync uses the taker's fresh scan instead
// of its own. Two workers on 8 shards thus make 900 + 2 × 720 / 8 = 1,080 requests per
// lease-hour, idle or busy. The KCL 2.x, by its intervals, makes 1,133 idle (a renewal every
// 3.308 s, 1,088, and a scan every 20.05 s per worker, 45) and writes each checkpoint besides
// the renewals (1,493 checkpointing every 10 s); the KCL 3.x about 1,201 (its lease discovery
// queries every 9.975 s per worker and its leader scans every 20 s). BenchmarkLeaseTableCost
// counts the requests at the HTTP layer on dynalite: idle 1,275 and busy 15,007 per lease-hour
// before these changes, now about 1,080 both (go test -run '^$' -bench
// BenchmarkLeaseTableCost -benchtime 1x ./consumer/). Stats reports the measured figure
// (RequestsPerLeaseHour) and the LeaseTableRequestsPerShardHour metric publishes it.
//
// The lease table carries the KCL 3.x's LeaseOwnerToLeaseKeyIndex (see the checkpoint
// package), which checkpoint.DynamoDBStore.ListLeaseKeysForOwner queries. A running worker
// does not need it: it knows the leases it holds, and its renewals are conditional writes
// that fail when a lease was taken. What the failover needs, every other lease's counter
// watched on this worker's clock, only a scan shows, so the scan stays at TakeInterval: a
// scan every 2 × (FailoverTime + 25 ms), as the KCL's, would save 135 requests per lease-hour
// here and make the takeover bound FailoverTime + 20 s instead of FailoverTime + 5 s.
package consumer
