package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/consumer"
)

// Options configure a Fleet.
type Options struct {
	// Speed is how many times faster than real time the fleet lives. The consumer has no
	// clock to inject, so every interval of its configuration (failover time, renewal, take
	// scan, shard sync, handoff timeout, cleanup delay) and the table's latency are divided
	// by Speed, and the times and per-hour rates the harness reports are converted back: a
	// duration measured on the wall clock is multiplied by Speed, a rate divided by it. The
	// few fixed pauses inside the consumer that do not derive from its configuration (the
	// 500 ms start and 1 s shard-sync retry backoffs, the 5 ms floor of the renewer's tick)
	// are not scaled; they matter only after failed requests, in the throttling scenario.
	Speed float64
	// FailoverTime is the simulated failover time. Default: consumer.DefaultFailoverTime.
	FailoverTime time.Duration
	// Latency is the simulated round trip of a DynamoDB request. Default 5 ms.
	Latency time.Duration
	// StaleFor is how long after a write a simulated eventually consistent read may return
	// the item before it, StaleChance how often it does. Defaults 100 ms and 0.5.
	StaleFor    time.Duration
	StaleChance float64
	// IdleTimeBetweenReads is the wall-clock pause of each shard's reader after an empty
	// GetRecords. The stream carries no records, so reads only need to notice a shard's end;
	// it is not scaled, to keep thousands of readers cheap. Default 1 s.
	IdleTimeBetweenReads time.Duration
}

func (o *Options) defaults() {
	if o.Speed <= 0 {
		o.Speed = 10
	}
	if o.FailoverTime <= 0 {
		o.FailoverTime = consumer.DefaultFailoverTime
	}
	if o.Latency <= 0 {
		o.Latency = 5 * time.Millisecond
	}
	if o.StaleFor <= 0 {
		o.StaleFor = 100 * time.Millisecond
	}
	if o.StaleChance <= 0 {
		o.StaleChance = 0.5
	}
	if o.IdleTimeBetweenReads <= 0 {
		o.IdleTimeBetweenReads = time.Second
	}
}

// Fleet runs consumer.Workers of one application on a Table and a Stream.
type Fleet struct {
	opts   Options
	Table  *Table
	Stream *Stream
	logs   *logCounter

	mu      sync.Mutex
	members map[string]*member
	nextID  int
	// last is the last worker that processed each lease; moves counts how often a lease
	// went to another worker since MarkMoves; kinds counts the moves by how they happened.
	last  map[string]string
	moves map[string]int
	kinds map[string]int
}

type member struct {
	w      *consumer.Worker
	cancel context.CancelFunc
	done   chan error
}

const (
	appName    = "fleet"
	streamName = "fleet-stream"
)

// New returns a fleet with no workers over a new table and a stream of shards shards.
func New(shards int, opts Options) *Fleet {
	opts.defaults()
	f := &Fleet{
		opts:    opts,
		Table:   NewTable(),
		Stream:  NewStream(streamName, shards),
		logs:    &logCounter{byMsg: map[string]int{}},
		members: map[string]*member{},
		last:    map[string]string{},
		moves:   map[string]int{},
		kinds:   map[string]int{},
	}
	f.Table.Latency = f.wall(opts.Latency)
	f.Table.StaleFor = f.wall(opts.StaleFor)
	f.Table.StaleChance = opts.StaleChance
	f.Table.OnOwnerChange(f.ownerChanged)
	// The table exists before the first worker, so no worker waits for it to become
	// ACTIVE (the store polls every second of wall time).
	_, _ = f.Table.CreateTable(context.Background(), &dynamodb.CreateTableInput{TableName: aws.String(appName)})
	return f
}

// wall converts a simulated duration to the wall clock.
func (f *Fleet) wall(d time.Duration) time.Duration { return time.Duration(float64(d) / f.opts.Speed) }

// Sim converts a wall-clock duration to simulated time.
func (f *Fleet) Sim(d time.Duration) time.Duration { return time.Duration(float64(d) * f.opts.Speed) }

// Failover is the simulated failover time; TakeInterval the simulated take interval, which
// Add gives every worker (the consumer's default, half the failover time).
func (f *Fleet) Failover() time.Duration     { return f.opts.FailoverTime }
func (f *Fleet) TakeInterval() time.Duration { return f.opts.FailoverTime / 2 }

// Sleep waits d of simulated time.
func (f *Fleet) Sleep(d time.Duration) { time.Sleep(f.wall(d)) }

func (f *Fleet) ownerChanged(key, from, to string, handoff bool) {
	if to == "" {
		return // released; the move is counted when a worker takes it
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	prev, seen := f.last[key]
	f.last[key] = to
	if !seen || prev == to {
		return
	}
	f.moves[key]++
	_, prevAlive := f.members[prev]
	switch {
	case handoff:
		f.kinds["handoff"]++
	case from == "":
		f.kinds["released"]++
	case !prevAlive:
		f.kinds["failover"]++
	default:
		// Taken from a worker that is alive without its consent: its renewals fell behind.
		f.kinds["unrequested"]++
	}
}

// Add starts n workers and returns their IDs.
func (f *Fleet) Add(n int) []string {
	var ids []string
	for range n {
		f.mu.Lock()
		f.nextID++
		id := fmt.Sprintf("w%03d", f.nextID)
		f.mu.Unlock()
		o := f.opts
		w, err := consumer.New(consumer.Config{
			StreamName:      streamName,
			ApplicationName: appName,
			WorkerID:        id,
			Processor:       consumer.RecordFunc(func(context.Context, consumer.Record) error { return nil }),
			Kinesis:         f.Stream,
			DynamoDB:        newSDKRetry(f.Table, o.Speed), // each worker its own client

			InitialPosition:      consumer.TrimHorizon,
			FailoverTime:         f.wall(o.FailoverTime),
			TakeInterval:         f.wall(f.TakeInterval()),
			ShardSyncInterval:    f.wall(consumer.DefaultShardSyncInterval),
			LeaseCleanupDelay:    f.wall(consumer.DefaultLeaseCleanupDelay),
			HandoffTimeout:       f.wall(consumer.DefaultHandoffTimeout),
			ShutdownTimeout:      f.wall(consumer.DefaultShutdownTimeout),
			MaxProcessingBackoff: f.wall(consumer.DefaultMaxProcessingBackoff),
			IdleTimeBetweenReads: o.IdleTimeBetweenReads,
			Logger:               slog.New(f.logs),
		})
		if err != nil {
			panic(err) // a configuration the harness builds; cannot fail at run time
		}
		ctx, cancel := context.WithCancel(context.Background())
		m := &member{w: w, cancel: cancel, done: make(chan error, 1)}
		f.mu.Lock()
		f.members[id] = m
		f.mu.Unlock()
		go func() { m.done <- w.Run(ctx) }()
		ids = append(ids, id)
	}
	return ids
}

// Kill crashes a worker: its leases stay its own until they expire.
func (f *Fleet) Kill(id string) {
	f.mu.Lock()
	m := f.members[id]
	delete(f.members, id)
	f.mu.Unlock()
	m.w.Kill()
	<-m.done
	m.cancel()
}

// Stop shuts a worker down gracefully: it releases its leases.
func (f *Fleet) Stop(id string) error {
	f.mu.Lock()
	m := f.members[id]
	f.mu.Unlock()
	m.cancel()
	err := <-m.done
	f.mu.Lock()
	delete(f.members, id)
	f.mu.Unlock()
	return err
}

// Close stops every worker gracefully.
func (f *Fleet) Close() {
	for _, id := range f.IDs() {
		_ = f.Stop(id)
	}
}

// IDs returns the running workers, sorted.
func (f *Fleet) IDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id := range f.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// State is the fleet's assignment as the table shows it.
type State struct {
	Leases  int // leases not processed to SHARD_END
	Unowned int // of those, processed by no running worker
	Spread  int // most minus fewest such leases held by a running worker
}

// Balanced reports every lease owned and no worker more than one lease from another.
func (s State) Balanced() bool { return s.Unowned == 0 && s.Spread <= 1 }

// State reads the table, without charge.
func (f *Fleet) State() State {
	snap := f.Table.Snapshot()
	f.mu.Lock()
	counts := make(map[string]int, len(f.members))
	for id := range f.members {
		counts[id] = 0
	}
	f.mu.Unlock()
	var s State
	for _, it := range snap {
		if attrString(it, checkpoint.AttrCheckpoint) == checkpoint.ShardEnd.SequenceNumber {
			continue
		}
		s.Leases++
		o := actualOwner(it)
		if _, ok := counts[o]; !ok {
			s.Unowned++
			continue
		}
		counts[o]++
	}
	lo, hi := math.MaxInt, 0
	for _, n := range counts {
		lo, hi = min(lo, n), max(hi, n)
	}
	if len(counts) > 0 {
		s.Spread = hi - lo
	}
	return s
}

// WaitFor polls the state every simulated 100 ms until ok holds or limit passes, and returns
// the simulated time it took and the largest spread seen meanwhile.
func (f *Fleet) WaitFor(limit time.Duration, ok func(State) bool) (time.Duration, int, error) {
	start := time.Now()
	worst := 0
	for {
		s := f.State()
		worst = max(worst, s.Spread)
		if ok(s) {
			return f.Sim(time.Since(start)), worst, nil
		}
		if f.Sim(time.Since(start)) > limit {
			return f.Sim(time.Since(start)), worst, fmt.Errorf("fleet: not reached within %s (simulated): %+v", limit, s)
		}
		f.Sleep(100 * time.Millisecond)
	}
}

// Moves are the lease moves since MarkMoves.
type Moves struct {
	Total, Twice int            // moves, and leases moved more than once
	Kinds        map[string]int // by how: handoff, failover, released, unrequested
}

// MarkMoves starts counting moves afresh.
func (f *Fleet) MarkMoves() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moves, f.kinds = map[string]int{}, map[string]int{}
}

// Moves returns the moves since MarkMoves.
func (f *Fleet) Moves() Moves {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := Moves{Kinds: maps.Clone(f.kinds)}
	for _, n := range f.moves {
		m.Total += n
		if n > 1 {
			m.Twice++
		}
	}
	return m
}

// Logs returns the warnings and errors the workers logged, by message.
func (f *Fleet) Logs() map[string]int { return f.logs.snapshot() }

// logCounter is a slog.Handler that counts warnings and errors by message and drops the rest:
// a hundred workers' logs would cost more than their lease coordination.
type logCounter struct {
	mu    sync.Mutex
	byMsg map[string]int
	n     atomic.Int64
}

func (l *logCounter) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.n.Add(1)
	l.mu.Lock()
	l.byMsg[r.Message]++
	l.mu.Unlock()
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) snapshot() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.byMsg)
}

// ErrUnknownRequest reports that the store sent the table a request it cannot interpret.
var ErrUnknownRequest = errors.New("fleet: the table could not interpret a request")

// Check returns ErrUnknownRequest when the table met a request it could not interpret.
func (f *Fleet) Check() error {
	if errs := f.Table.Errors(); len(errs) > 0 {
		return fmt.Errorf("%w: %w (and %d more)", ErrUnknownRequest, errs[0], len(errs)-1)
	}
	return nil
}
