package consumer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/metrics"
)

// KinesisAPI is the part of the Kinesis client the worker uses for shard discovery and polling
// retrieval; *kinesis.Client satisfies it, and tests substitute their own.
type KinesisAPI interface {
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
	GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error)
}

var _ KinesisAPI = (*kinesis.Client)(nil)

// InitialPosition says where a shard without a checkpoint starts.
type InitialPosition int

const (
	// Latest starts after the newest record: only records written from now on are processed.
	// It is the zero value, as LATEST is the KCL's default.
	Latest InitialPosition = iota
	// TrimHorizon starts at the oldest record the stream retains.
	TrimHorizon
	// AtTimestamp starts at the first record that arrived at or after Config.InitialTimestamp.
	AtTimestamp
)

// String returns the Kinesis name of the position.
func (p InitialPosition) String() string {
	switch p {
	case Latest:
		return "LATEST"
	case TrimHorizon:
		return "TRIM_HORIZON"
	case AtTimestamp:
		return "AT_TIMESTAMP"
	}
	return fmt.Sprintf("InitialPosition(%d)", int(p))
}

// sentinel is the checkpoint a new lease starts with.
func (p InitialPosition) sentinel() checkpoint.ExtendedSequenceNumber {
	switch p {
	case TrimHorizon:
		return checkpoint.TrimHorizon
	case AtTimestamp:
		return checkpoint.AtTimestamp
	}
	return checkpoint.Latest
}

// Defaults of Config. The lease timings follow the Java KCL's where it has the same setting;
// where Shardline differs (TakeInterval) the reason is on the field.
const (
	DefaultFailoverTime           = 10 * time.Second
	DefaultHandoffTimeout         = 30 * time.Second
	DefaultShardSyncInterval      = time.Minute
	DefaultLeaseCleanupDelay      = 5 * time.Minute
	DefaultMaxRecords             = 10000
	DefaultIdleTimeBetweenReads   = time.Second
	DefaultMinTimeBetweenReads    = 200 * time.Millisecond
	DefaultShutdownTimeout        = 30 * time.Second
	DefaultMaxLeasesToStealAtOnce = 1
	DefaultBalanceHysteresis      = 0.2
	DefaultMaxProcessingBackoff   = 10 * time.Second
)

// Config configures a Worker. StreamName or StreamARN, ApplicationName, Processor, Kinesis and one of
// DynamoDB or LeaseStore are required; every other field has a default used when it is left
// zero. The package documentation has the table of defaults.
type Config struct {
	// StreamName is the Kinesis data stream to consume. One of StreamName and StreamARN is
	// required; with StreamARN alone it is taken from the ARN, and with both they must agree.
	StreamName string
	// StreamARN is the stream's ARN ("arn:aws:kinesis:region:account:stream/name"). Requests
	// then name the stream by ARN, as AWS recommends, which is also how a worker reads a stream
	// of another account: the Kinesis client's credentials need the stream's resource policy
	// (or an assumed role) to allow it, and the lease table stays in the worker's account.
	// Default: none, requests name the stream.
	StreamARN string
	// ApplicationName names the consumer application. Workers with the same application name
	// share the work of one stream; it is also the lease table's name, as in the KCL, so a
	// fleet moving from the KCL keeps its checkpoints.
	ApplicationName string
	// WorkerID identifies this worker in the lease table. It must be unique in the fleet.
	// Default: the host name followed by a random suffix.
	WorkerID string
	// Processor creates one RecordProcessor per shard this worker processes. RecordFunc
	// adapts a per-record function.
	Processor ProcessorFactory

	// Kinesis is the client for shard discovery and polling retrieval.
	Kinesis KinesisAPI
	// DynamoDB is the client of the lease table; the worker creates a checkpoint.DynamoDBStore
	// on it with the table LeaseTableName. Not needed when LeaseStore is set.
	DynamoDB checkpoint.DynamoDBAPI
	// LeaseStore, when set, is used instead of a DynamoDB table, for example a
	// checkpoint.MemoryStore shared by the workers of one process, or a FileStore.
	LeaseStore checkpoint.Store
	// LeaseTableName overrides the lease table's name. Default: ApplicationName.
	LeaseTableName string

	// InitialPosition is where shards without a checkpoint start. Default: Latest.
	InitialPosition InitialPosition
	// InitialTimestamp is the start time for AtTimestamp, also used for leases another worker
	// (or a KCL application) left at AT_TIMESTAMP: the lease table stores that position without
	// its time. With another InitialPosition it is ignored, and such leases are read from
	// TRIM_HORIZON.
	InitialTimestamp time.Time

	// FailoverTime is how long a lease's counter must stay still, as this worker observes it
	// on its own monotonic clock, before the lease counts as expired and may be taken.
	// Default: DefaultFailoverTime (10 s, the KCL's failoverTimeMillis).
	FailoverTime time.Duration
	// RenewInterval is the time between renewals of each held lease. Default: 2/5 of
	// FailoverTime (4 s at the default 10 s). The KCL renews every third of its failover time
	// less 25 ms (DynamoDBLeaseCoordinator); Shardline renews less often because the
	// takeover bound does not depend on it (FailoverTime + TakeInterval from the death, see
	// the package documentation) and renewals are most of the lease table's requests: 900 a
	// lease-hour instead of the KCL's 1,088. A failed renewal is retried every
	// min(RenewInterval/3, FailoverTime/10), so a worker rides out failures for about 0.7 ×
	// FailoverTime (three more attempts) before it stops processing the shard at 0.8 ×
	// FailoverTime after its last renewal.
	RenewInterval time.Duration
	// TakeInterval is the time between scans of the lease table looking for leases to take or
	// balance. Default: half of FailoverTime. The KCL scans every 2×(FailoverTime + 25 ms); a
	// shorter scan bounds the time from a worker's death to another worker taking its leases
	// at FailoverTime + TakeInterval, instead of up to FailoverTime + 2 scans, for one more
	// Scan per TakeInterval per worker.
	TakeInterval time.Duration
	// MaxLeasesPerWorker caps how many leases this worker holds. Default 0: no cap. A cap too
	// low for the fleet leaves shards unprocessed.
	MaxLeasesPerWorker int
	// MaxLeasesToStealAtOnce caps how many leases this worker moves to itself from other
	// workers per scan. Default: DefaultMaxLeasesToStealAtOnce, the KCL's, so a fleet
	// rebalances a little at a time.
	MaxLeasesToStealAtOnce int
	// BalanceHysteresis is how much better, in lease weights (an average lease weighs about
	// 2, an idle one 1), a steal must leave the balance than it was, so that leases do not
	// move back and forth over small differences in load. Default: DefaultBalanceHysteresis.
	BalanceHysteresis float64
	// DisableGracefulHandoff makes rebalancing take leases outright, as the KCL 2.x does,
	// instead of asking the current owner to checkpoint and release first. A taken lease is
	// reprocessed from its last checkpoint, so records after it are processed twice.
	DisableGracefulHandoff bool
	// HandoffTimeout bounds how long a worker that asked for a lease waits for the current
	// owner to release it. Then, if the owner still renews, the request is withdrawn and the
	// owner's leases are balanced by the KCL 2.x steal rule (see the package documentation);
	// a lease whose owner stopped renewing is taken when it expires. Default:
	// DefaultHandoffTimeout (the KCL 3.x's gracefulLeaseHandoffTimeoutMillis).
	HandoffTimeout time.Duration

	// ShardSyncInterval is the time between shard listings that create leases for new shards
	// and clean up finished ones. Shards are also listed at start and whenever a shard ends.
	// Default: DefaultShardSyncInterval (the KCL's shardSyncIntervalMillis).
	ShardSyncInterval time.Duration
	// LeaseCleanupDelay is how long a lease processed to SHARD_END is kept after all its
	// children started, before it is deleted. Default: DefaultLeaseCleanupDelay.
	LeaseCleanupDelay time.Duration

	// Retrieval chooses how records are read. Default: Polling.
	Retrieval Retrieval
	// ConsumerName is the enhanced fan-out stream consumer of the application, registered
	// once and shared by every worker. Default: ApplicationName, as in the KCL.
	ConsumerName string
	// FanOutShardCheckInterval is how often, at most, a fan-out reader whose subscription
	// brings nothing asks ListShards whether its shard closed. Kinesis reports a shard's end
	// in the subscription; some emulators never do, and then these checks find it. Default:
	// the fan-out reader's (10 s); negative disables the checks.
	FanOutShardCheckInterval time.Duration
	// MaxRecords is the GetRecords limit. Default: DefaultMaxRecords (10,000, the KCL's).
	MaxRecords int32
	// IdleTimeBetweenReads is the pause after a GetRecords call that returned no records.
	// Default: DefaultIdleTimeBetweenReads (1 s, the KCL's idleTimeBetweenReadsInMillis).
	IdleTimeBetweenReads time.Duration
	// MinTimeBetweenReads spaces GetRecords calls on one shard even when records keep coming:
	// Kinesis allows five reads per second per shard, shared by every application reading it.
	// Default: DefaultMinTimeBetweenReads. A negative value means no spacing.
	MinTimeBetweenReads time.Duration

	// ShutdownTimeout bounds the graceful shutdown that follows the end of Run's context:
	// processors get ShutdownRequested and leases are released within it. Default:
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// MaxProcessingBackoff caps the pause before a processor call that failed is retried.
	// Default: DefaultMaxProcessingBackoff.
	MaxProcessingBackoff time.Duration

	// Logger receives the worker's events. Default: slog.Default().
	Logger *slog.Logger
	// Metrics receives the consumer metrics; nil records none (Stats still reports them).
	Metrics *metrics.Registry
}

// withDefaults validates c and fills in the defaults.
func (c Config) withDefaults() (Config, error) {
	if c.StreamARN != "" {
		name, err := streamNameFromARN(c.StreamARN)
		switch {
		case err != nil:
			return c, fmt.Errorf("%w: StreamARN: %w", ErrInvalidConfig, err)
		case c.StreamName != "" && c.StreamName != name:
			return c, fmt.Errorf("%w: StreamName %q differs from the stream %q of StreamARN", ErrInvalidConfig, c.StreamName, name)
		}
		c.StreamName = name
	}
	switch {
	case c.StreamName == "":
		return c, fmt.Errorf("%w: StreamName or StreamARN is required", ErrInvalidConfig)
	case c.ApplicationName == "":
		return c, fmt.Errorf("%w: ApplicationName is required", ErrInvalidConfig)
	case c.Processor == nil:
		return c, fmt.Errorf("%w: Processor is required", ErrInvalidConfig)
	case c.Kinesis == nil:
		return c, fmt.Errorf("%w: Kinesis is required", ErrInvalidConfig)
	case c.DynamoDB == nil && c.LeaseStore == nil:
		return c, fmt.Errorf("%w: DynamoDB or LeaseStore is required", ErrInvalidConfig)
	case c.InitialPosition < Latest || c.InitialPosition > AtTimestamp:
		return c, fmt.Errorf("%w: unknown InitialPosition %d", ErrInvalidConfig, int(c.InitialPosition))
	case c.InitialPosition == AtTimestamp && c.InitialTimestamp.IsZero():
		return c, fmt.Errorf("%w: AtTimestamp needs InitialTimestamp", ErrInvalidConfig)
	case c.MaxRecords < 0 || c.MaxRecords > DefaultMaxRecords:
		return c, fmt.Errorf("%w: MaxRecords %d is outside 1..%d", ErrInvalidConfig, c.MaxRecords, DefaultMaxRecords)
	case c.MaxLeasesPerWorker < 0 || c.MaxLeasesToStealAtOnce < 0 || c.BalanceHysteresis < 0:
		return c, fmt.Errorf("%w: negative lease limit", ErrInvalidConfig)
	case c.Retrieval != Polling && c.Retrieval != FanOut:
		return c, fmt.Errorf("%w: unknown Retrieval %d", ErrInvalidConfig, int(c.Retrieval))
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "worker"
		}
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.WorkerID = host + "-" + hex.EncodeToString(b[:])
	}
	if c.LeaseTableName == "" {
		c.LeaseTableName = c.ApplicationName
	}
	if c.ConsumerName == "" {
		c.ConsumerName = c.ApplicationName
	}
	if c.FailoverTime <= 0 {
		c.FailoverTime = DefaultFailoverTime
	}
	if c.RenewInterval <= 0 {
		c.RenewInterval = c.FailoverTime * 2 / 5
	}
	if c.RenewInterval >= c.FailoverTime {
		return c, fmt.Errorf("%w: RenewInterval %s must be shorter than FailoverTime %s", ErrInvalidConfig, c.RenewInterval, c.FailoverTime)
	}
	if c.TakeInterval <= 0 {
		c.TakeInterval = c.FailoverTime / 2
	}
	if c.MaxLeasesToStealAtOnce == 0 {
		c.MaxLeasesToStealAtOnce = DefaultMaxLeasesToStealAtOnce
	}
	if c.BalanceHysteresis == 0 {
		c.BalanceHysteresis = DefaultBalanceHysteresis
	}
	if c.HandoffTimeout <= 0 {
		c.HandoffTimeout = DefaultHandoffTimeout
	}
	if c.ShardSyncInterval <= 0 {
		c.ShardSyncInterval = DefaultShardSyncInterval
	}
	if c.LeaseCleanupDelay <= 0 {
		c.LeaseCleanupDelay = DefaultLeaseCleanupDelay
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	if c.IdleTimeBetweenReads <= 0 {
		c.IdleTimeBetweenReads = DefaultIdleTimeBetweenReads
	}
	switch {
	case c.MinTimeBetweenReads == 0:
		c.MinTimeBetweenReads = DefaultMinTimeBetweenReads
	case c.MinTimeBetweenReads < 0:
		c.MinTimeBetweenReads = 0
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.MaxProcessingBackoff <= 0 {
		c.MaxProcessingBackoff = DefaultMaxProcessingBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// stream names the configured stream in requests.
func (c Config) stream() streamRef { return streamRef{name: c.StreamName, arn: c.StreamARN} }

// streamRef names a stream in requests: by ARN when one is configured, by name otherwise.
type streamRef struct{ name, arn string }

func (r streamRef) String() string {
	if r.arn != "" {
		return r.arn
	}
	return r.name
}

// input returns the StreamName and StreamARN fields of a request: one of them is set.
func (r streamRef) input() (name, arn *string) {
	if r.arn != "" {
		return nil, aws.String(r.arn)
	}
	return aws.String(r.name), nil
}

// streamNameFromARN returns the stream name of a Kinesis stream ARN,
// arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME, checking each part's shape.
func streamNameFromARN(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" || parts[2] != "kinesis" || parts[3] == "" {
		return "", fmt.Errorf("%q is not a Kinesis stream ARN (arn:PARTITION:kinesis:REGION:ACCOUNT:stream/NAME)", arn)
	}
	if len(parts[4]) != 12 || strings.Trim(parts[4], "0123456789") != "" {
		return "", fmt.Errorf("%q: account %q is not 12 digits", arn, parts[4])
	}
	name, ok := strings.CutPrefix(parts[5], "stream/")
	if !ok || name == "" || len(name) > 128 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" {
		return "", fmt.Errorf("%q: resource %q is not stream/NAME with a name of 1 to 128 letters, digits, '_', '.' and '-'", arn, parts[5])
	}
	return name, nil
}

// atTimestamp is the time a lease checkpointed AT_TIMESTAMP starts at: InitialTimestamp when
// the worker is configured AtTimestamp, zero (no time known) otherwise, as the KCL's
// InitialPositionInStreamExtended has a timestamp only for AT_TIMESTAMP.
func (c Config) atTimestamp() time.Time {
	if c.InitialPosition != AtTimestamp {
		return time.Time{}
	}
	return c.InitialTimestamp
}

// renewRetry is the pause before a failed renewal is tried again.
func (c Config) renewRetry() time.Duration {
	return min(c.RenewInterval/3, c.FailoverTime/10)
}

// renewDeadline is how long after the start of its last successful renewal a worker keeps
// processing a shard whose renewals fail. Another worker can take the lease FailoverTime after
// it saw the counter change, which is no earlier than the start of that renewal; the margin
// leaves time to notice and stop.
func (c Config) renewDeadline() time.Duration {
	return c.FailoverTime - c.FailoverTime/5
}

// kinesisCallTimeout bounds one Kinesis request. Reads are not time-critical the way lease
// renewals are, and a busy endpoint answering in seconds is better waited for than retried.
func (c Config) kinesisCallTimeout() time.Duration {
	return max(10*time.Second, c.FailoverTime)
}
