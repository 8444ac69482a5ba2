package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/compression"
)

// aggregate packs records "pk/i" for the given keys into one KPL aggregate.
func aggregate(t testing.TB, keys ...string) []byte {
	t.Helper()
	a := aggregation.NewAggregator(0)
	for i, k := range keys {
		if err := a.Add(aggregation.UserRecord{PartitionKey: k, Data: []byte(fmt.Sprintf("%s/%d", k, i))}); err != nil {
			t.Fatal(err)
		}
	}
	kr, _ := a.Flush()
	return kr.Data
}

func kinesisRecord(seq string, data []byte) types.Record {
	now := time.Unix(1_700_000_000, 0)
	return types.Record{SequenceNumber: aws.String(seq), PartitionKey: aws.String("pk"), Data: data, ApproximateArrivalTimestamp: &now}
}

// keyIn returns a partition key whose hash falls in [lo, hi] of the key space's 16 slices.
func keyIn(t testing.TB, slice uint64) string {
	t.Helper()
	for i := 0; i < 100000; i++ {
		k := fmt.Sprintf("k%d", i)
		if aggregation.PartitionKeyHash(k).Hi>>60 == slice {
			return k
		}
	}
	t.Fatal("no key found")
	return ""
}

func quarterRange(q uint64) *checkpoint.HashKeyRange {
	start := aggregation.HashKey{Hi: q << 62}
	end := aggregation.HashKey{Hi: q<<62 | (1<<62 - 1), Lo: ^uint64(0)}
	return &checkpoint.HashKeyRange{StartingHashKey: start.String(), EndingHashKey: end.String()}
}

func TestDecoderDeaggregatesAndDecompresses(t *testing.T) {
	agg := aggregate(t, "a", "b", "c")
	framed, err := compression.Encode(nil, agg, compression.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	d := newRecordDecoder(nil, checkpoint.TrimHorizon)
	out := d.decode([]types.Record{kinesisRecord("100", []byte("plain")), kinesisRecord("200", framed)})
	if len(out) != 4 {
		t.Fatalf("got %d records, want 4", len(out))
	}
	if out[0].Aggregated || string(out[0].Data) != "plain" || out[0].SubSequenceNumber != 0 {
		t.Errorf("plain record: %+v", out[0])
	}
	for i, r := range out[1:] {
		if !r.Aggregated || r.SequenceNumber != "200" || r.SubSequenceNumber != int64(i) || r.ApproximateArrivalTimestamp.IsZero() {
			t.Errorf("user record %d: %+v", i, r)
		}
	}
	if d.stats.last != (checkpoint.ExtendedSequenceNumber{SequenceNumber: "200", SubSequenceNumber: 2}) {
		t.Errorf("last position %v, want 200/2", d.stats.last)
	}
}

func TestDecoderPassesCorruptRecordsThrough(t *testing.T) {
	agg := aggregate(t, "a", "b")
	agg[len(agg)-1] ^= 0xff // checksum mismatch
	badFrame := append([]byte(compression.Magic), 9, 9, 9)
	d := newRecordDecoder(nil, checkpoint.TrimHorizon)
	out := d.decode([]types.Record{kinesisRecord("1", agg), kinesisRecord("2", badFrame)})
	if len(out) != 2 {
		t.Fatalf("got %d records, want both delivered whole", len(out))
	}
	if d.stats.corruptAggregates != 1 || d.stats.corruptFrames != 1 {
		t.Errorf("stats %+v, want one corrupt aggregate and one corrupt frame", d.stats)
	}
	if out[0].Aggregated || len(out[0].Data) != len(agg) {
		t.Errorf("corrupt aggregate not delivered raw: %+v", out[0])
	}
}

func TestDecoderDropsRecordsOutsideTheShard(t *testing.T) {
	in, out1, out2 := keyIn(t, 4), keyIn(t, 0), keyIn(t, 12) // quarter 1 holds slices 4..7
	d := newRecordDecoder(quarterRange(1), checkpoint.TrimHorizon)
	got := d.decode([]types.Record{kinesisRecord("10", aggregate(t, in, out1, in, out2))})
	if len(got) != 2 || d.stats.outsideRange != 2 {
		t.Fatalf("kept %d, dropped %d; want 2 and 2", len(got), d.stats.outsideRange)
	}
	// A record that is not an aggregate is never dropped: its key decided its shard.
	got = d.decode([]types.Record{kinesisRecord("11", []byte("x"))})
	if len(got) != 1 {
		t.Fatalf("plain record dropped")
	}
	// Nothing is dropped when the range is unknown or the whole key space.
	for _, r := range []*checkpoint.HashKeyRange{nil, {StartingHashKey: "0", EndingHashKey: aggregation.MaxHashKey.String()}} {
		d := newRecordDecoder(r, checkpoint.TrimHorizon)
		if got := d.decode([]types.Record{kinesisRecord("10", aggregate(t, in, out1))}); len(got) != 2 {
			t.Errorf("range %v: kept %d, want 2", r, len(got))
		}
	}
}

func TestDecoderResumesInsideAnAggregate(t *testing.T) {
	agg := aggregate(t, "a", "b", "c", "d")
	recs := []types.Record{kinesisRecord("500", agg), kinesisRecord("600", []byte("next"))}
	cases := []struct {
		cp   checkpoint.ExtendedSequenceNumber
		want []string
	}{
		{checkpoint.ExtendedSequenceNumber{SequenceNumber: "500", SubSequenceNumber: 1}, []string{"c/2", "d/3", "next"}},
		{checkpoint.ExtendedSequenceNumber{SequenceNumber: "500", SubSequenceNumber: 0}, []string{"b/1", "c/2", "d/3", "next"}},
		{checkpoint.ExtendedSequenceNumber{SequenceNumber: "500", SubSequenceNumber: 3}, []string{"next"}},
		{checkpoint.TrimHorizon, []string{"a/0", "b/1", "c/2", "d/3", "next"}},
	}
	for _, tc := range cases {
		d := newRecordDecoder(nil, tc.cp)
		var got []string
		for _, r := range d.decode(recs) {
			got = append(got, string(r.Data))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("resume after %v: got %v, want %v", tc.cp, got, tc.want)
		}
	}
	// A plain record checkpointed with subsequence 0 is skipped as a whole.
	d := newRecordDecoder(nil, checkpoint.ExtendedSequenceNumber{SequenceNumber: "600"})
	if got := d.decode([]types.Record{kinesisRecord("600", []byte("done")), kinesisRecord("700", []byte("new"))}); len(got) != 1 || string(got[0].Data) != "new" {
		t.Errorf("plain record at the checkpoint delivered again: %v", got)
	}
	// Skipping applies only to the first record read.
	if got := d.decode([]types.Record{kinesisRecord("600", []byte("again"))}); len(got) != 1 {
		t.Errorf("skip applied after the first batch")
	}
}

func TestPositionFor(t *testing.T) {
	ts := time.Unix(1_700_000_000, 0)
	cases := []struct {
		cp   checkpoint.ExtendedSequenceNumber
		kind types.ShardIteratorType
	}{
		{checkpoint.TrimHorizon, types.ShardIteratorTypeTrimHorizon},
		{checkpoint.Latest, types.ShardIteratorTypeLatest},
		{checkpoint.AtTimestamp, types.ShardIteratorTypeAtTimestamp},
		{checkpoint.ExtendedSequenceNumber{SequenceNumber: "123"}, types.ShardIteratorTypeAtSequenceNumber},
		{checkpoint.ExtendedSequenceNumber{SequenceNumber: "123", SubSequenceNumber: 4}, types.ShardIteratorTypeAtSequenceNumber},
	}
	for _, tc := range cases {
		p := positionFor(tc.cp, ts)
		if p.kind != tc.kind {
			t.Errorf("%v: %s, want %s", tc.cp, p.kind, tc.kind)
		}
	}
	// Without a configured time, AT_TIMESTAMP reads from the oldest record.
	if p := positionFor(checkpoint.AtTimestamp, time.Time{}); p.kind != types.ShardIteratorTypeTrimHorizon || !p.ts.IsZero() {
		t.Errorf("AT_TIMESTAMP without a time: %s", p)
	}
}

func TestRecordFuncRetriesFromTheFailingRecord(t *testing.T) {
	store := checkpoint.NewMemoryStore()
	ctx := context.Background()
	l, _ := store.CreateLeaseIfNotExists(ctx, checkpoint.Lease{Key: "s", Checkpoint: checkpoint.TrimHorizon})
	l, _ = store.TakeLease(ctx, l, "w")
	holder, _ := checkpoint.NewLeaseHolder(store, l)
	cp := &Checkpointer{shardID: "s", cp: checkpoint.NewCheckpointer(holder), holder: holder}

	var got []string
	failOnce := true
	proc := RecordFunc(func(ctx context.Context, r Record) error {
		if string(r.Data) == "c" && failOnce {
			failOnce = false
			return errors.New("transient")
		}
		got = append(got, string(r.Data))
		return nil
	}).NewProcessor("s")
	recs := []Record{{Data: []byte("a"), SequenceNumber: "1"}, {Data: []byte("b"), SequenceNumber: "2"}, {Data: []byte("c"), SequenceNumber: "3"}}
	_ = cp.cp.SetLastDelivered("3", 0)
	in := ProcessRecordsInput{ShardID: "s", Records: recs, Checkpointer: cp}
	if err := proc.ProcessRecords(ctx, in); err == nil {
		t.Fatal("want the failure")
	}
	if c := cp.Checkpointed(); c.SequenceNumber != "2" {
		t.Errorf("checkpoint after the failure %v, want 2 (before the failing record)", c)
	}
	if err := proc.ProcessRecords(ctx, in); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[a b c]" {
		t.Errorf("processed %v, want each record once", got)
	}
	if d, ok := holder.DeferredCheckpoint(); !ok || d.SequenceNumber != "3" {
		t.Errorf("checkpoint waiting for the renewal %v, %v; want 3", d, ok)
	}
}

func TestConfigDefaults(t *testing.T) {
	base := Config{StreamName: "s", ApplicationName: "app", Processor: RecordFunc(nil), Kinesis: newFakeKinesis("s", 1), LeaseStore: checkpoint.NewMemoryStore()}
	c, err := base.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.FailoverTime != 10*time.Second || c.RenewInterval != 4*time.Second || c.TakeInterval != 5*time.Second ||
		c.MaxRecords != 10000 || c.IdleTimeBetweenReads != time.Second || c.LeaseTableName != "app" || c.WorkerID == "" ||
		c.InitialPosition != Latest || c.MaxLeasesToStealAtOnce != 1 || c.HandoffTimeout != 30*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	bad := []func(*Config){
		func(c *Config) { c.StreamName = "" },
		func(c *Config) { c.ApplicationName = "" },
		func(c *Config) { c.Processor = nil },
		func(c *Config) { c.Kinesis = nil },
		func(c *Config) { c.LeaseStore = nil },
		func(c *Config) { c.InitialPosition = AtTimestamp },
		func(c *Config) { c.MaxRecords = 20000 },
		func(c *Config) { c.RenewInterval = time.Minute },
	}
	for i, f := range bad {
		c := base
		f(&c)
		if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("case %d: %v, want ErrInvalidConfig", i, err)
		}
	}
}

// recordFuncHarness drives a RecordFunc processor by hand on a memory store.
func recordFuncHarness(t *testing.T, opts ...RecordFuncOption) (RecordProcessor, *Checkpointer, func(seqs ...string) ProcessRecordsInput) {
	t.Helper()
	store := checkpoint.NewMemoryStore()
	ctx := context.Background()
	l, _ := store.CreateLeaseIfNotExists(ctx, checkpoint.Lease{Key: "s", Checkpoint: checkpoint.TrimHorizon})
	l, _ = store.TakeLease(ctx, l, "w")
	holder, _ := checkpoint.NewLeaseHolder(store, l)
	cp := &Checkpointer{shardID: "s", cp: checkpoint.NewCheckpointer(holder), holder: holder}
	proc := RecordFunc(func(ctx context.Context, r Record) error { return nil }, opts...).NewProcessor("s")
	if err := proc.Initialize(ctx, InitializeInput{ShardID: "s", Checkpoint: checkpoint.TrimHorizon}); err != nil {
		t.Fatal(err)
	}
	batch := func(seqs ...string) ProcessRecordsInput {
		var recs []Record
		for _, s := range seqs {
			recs = append(recs, Record{SequenceNumber: s, Data: []byte(s)})
		}
		_ = cp.cp.SetLastDelivered(seqs[len(seqs)-1], 0)
		return ProcessRecordsInput{ShardID: "s", Records: recs, Checkpointer: cp}
	}
	return proc, cp, batch
}

func TestRecordFuncCheckpointCadence(t *testing.T) {
	ctx := context.Background()
	t.Run("with the renewal by default", func(t *testing.T) {
		proc, cp, batch := recordFuncHarness(t)
		if err := proc.ProcessRecords(ctx, batch("1", "2")); err != nil {
			t.Fatal(err)
		}
		if c := cp.Checkpointed(); c != checkpoint.TrimHorizon {
			t.Errorf("checkpoint %v written after the batch, want it to wait for the renewal", c)
		}
		if _, err := cp.holder.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		if c := cp.Checkpointed(); c.SequenceNumber != "2" {
			t.Errorf("checkpoint %v after the renewal, want 2", c)
		}
		// A handoff writes at once what waits for a renewal.
		if err := proc.ProcessRecords(ctx, batch("3")); err != nil {
			t.Fatal(err)
		}
		if err := proc.ShutdownRequested(ctx, ShutdownRequestedInput{ShardID: "s", Cause: CauseHandoff, Checkpointer: cp}); err != nil || cp.Checkpointed().SequenceNumber != "3" {
			t.Errorf("handoff: %v, checkpoint %v; want 3", err, cp.Checkpointed())
		}
	})
	t.Run("every batch", func(t *testing.T) {
		proc, cp, batch := recordFuncHarness(t, CheckpointEveryBatch())
		if err := proc.ProcessRecords(ctx, batch("1", "2")); err != nil {
			t.Fatal(err)
		}
		if c := cp.Checkpointed(); c.SequenceNumber != "2" {
			t.Errorf("checkpoint %v after the batch, want 2", c)
		}
	})
	t.Run("record count", func(t *testing.T) {
		proc, cp, batch := recordFuncHarness(t, CheckpointEveryRecords(5))
		for i, want := range []string{"TRIM_HORIZON", "TRIM_HORIZON", "6"} {
			a, b := fmt.Sprint(2*i+1), fmt.Sprint(2*i+2)
			if err := proc.ProcessRecords(ctx, batch(a, b)); err != nil {
				t.Fatal(err)
			}
			if c := cp.Checkpointed(); c.SequenceNumber != want {
				t.Errorf("after %d records: checkpoint %v, want %s", 2*i+2, c, want)
			}
		}
	})
	t.Run("interval, idle shard, shutdown and shard end", func(t *testing.T) {
		const d = 50 * time.Millisecond
		proc, cp, batch := recordFuncHarness(t, CheckpointInterval(d))
		if err := proc.ProcessRecords(ctx, batch("1", "2")); err != nil {
			t.Fatal(err)
		}
		if c := cp.Checkpointed(); c != checkpoint.TrimHorizon {
			t.Errorf("checkpoint %v before the interval passed, want none", c)
		}
		idle := proc.(idleProcessor)
		if err := idle.idle(ctx, cp); err != nil || cp.Checkpointed() != checkpoint.TrimHorizon {
			t.Errorf("idle before the interval: %v, checkpoint %v; want none", err, cp.Checkpointed())
		}
		time.Sleep(d)
		if err := idle.idle(ctx, cp); err != nil || cp.Checkpointed().SequenceNumber != "2" {
			t.Errorf("idle after the interval: %v, checkpoint %v; want 2", err, cp.Checkpointed())
		}
		if err := proc.ProcessRecords(ctx, batch("3")); err != nil {
			t.Fatal(err)
		}
		if err := proc.ShutdownRequested(ctx, ShutdownRequestedInput{ShardID: "s", Cause: CauseHandoff, Checkpointer: cp}); err != nil || cp.Checkpointed().SequenceNumber != "3" {
			t.Errorf("handoff: %v, checkpoint %v; want 3", err, cp.Checkpointed())
		}
		if err := proc.ProcessRecords(ctx, batch("4")); err != nil {
			t.Fatal(err)
		}
		cp.cp.SetShardEnded()
		if err := proc.ShardEnded(ctx, ShardEndedInput{ShardID: "s", Checkpointer: cp}); err != nil || !cp.Checkpointed().IsShardEnd() {
			t.Errorf("shard end: %v, checkpoint %v; want SHARD_END", err, cp.Checkpointed())
		}
	})
}

// TestRecordFuncIntervalCheckpointsIdleShard runs a worker whose RecordFunc checkpoints on an
// interval: records processed in one burst are checkpointed once the shard stays idle for the
// interval, without waiting for more records or a shutdown.
func TestRecordFuncIntervalCheckpointsIdleShard(t *testing.T) {
	checkNoLeak(t)
	f := newFakeKinesis("s", 1)
	store := checkpoint.NewMemoryStore()
	total := putKeys(f, testKeys(5), 4, map[string]int{})
	var seen atomic.Int64
	cfg := fakeConfig(t, f, store, "w1", RecordFunc(func(ctx context.Context, r Record) error { seen.Add(1); return nil }, CheckpointInterval(200*time.Millisecond)))
	w, _ := New(cfg)
	rw := runWorker(t, w)
	waitFor(t, 5*time.Second, "every record", func() bool { return seen.Load() == int64(total) })
	waitFor(t, 5*time.Second, "the idle shard's checkpoint", func() bool {
		l, err := store.GetLease(context.Background(), "shardId-000000000000")
		return err == nil && !isStartSentinel(l.Checkpoint)
	})
	if err := rw.stop(); err != nil {
		t.Fatal(err)
	}
}

// writeCountingStore counts the lease writes that assert ownership.
type writeCountingStore struct {
	checkpoint.Store
	renewals, checkpoints atomic.Int64
}

func (s *writeCountingStore) RenewLease(ctx context.Context, held checkpoint.Lease) (checkpoint.Lease, error) {
	s.renewals.Add(1)
	return s.Store.RenewLease(ctx, held)
}

func (s *writeCountingStore) UpdateCheckpoint(ctx context.Context, held checkpoint.Lease, cp checkpoint.ExtendedSequenceNumber) (checkpoint.Lease, error) {
	s.checkpoints.Add(1)
	return s.Store.UpdateCheckpoint(ctx, held, cp)
}

// TestRecordFuncCheckpointRidesOnRenewal runs a worker whose RecordFunc has the default
// cadence on a shard with records on every read: its checkpoints are written by the renewals,
// so the lease takes no more writes than renewals, and yet the checkpoint follows the
// records and the graceful shutdown writes the last one at once.
func TestRecordFuncCheckpointRidesOnRenewal(t *testing.T) {
	checkNoLeak(t)
	f := newFakeKinesis("s", 1)
	store := &writeCountingStore{Store: checkpoint.NewMemoryStore()}
	var seen atomic.Int64
	var last atomic.Value
	cfg := fakeConfig(t, f, store, "w1", RecordFunc(func(ctx context.Context, r Record) error {
		seen.Add(1)
		last.Store(r.SequenceNumber)
		return nil
	}))
	w, _ := New(cfg)
	applied, _ := cfg.withDefaults()
	rw := runWorker(t, w)
	waitFor(t, 5*time.Second, "the lease", func() bool { return w.Stats().LeasesHeld == 1 })
	r0, c0, t0 := store.renewals.Load(), store.checkpoints.Load(), time.Now()
	next := map[string]int{}
	for time.Since(t0) < 6*applied.RenewInterval {
		putKeys(f, testKeys(3), 1, next)
		time.Sleep(5 * time.Millisecond)
	}
	renewals, checkpoints, elapsed := store.renewals.Load()-r0, store.checkpoints.Load()-c0, time.Since(t0)
	batches := w.Stats().Batches
	if most := int64(elapsed/applied.RenewInterval) + 2; renewals+checkpoints > most {
		t.Errorf("%d renewals and %d checkpoints in %s (%d batches), want at most %d writes, one per RenewInterval %s",
			renewals, checkpoints, elapsed.Round(time.Millisecond), batches, most, applied.RenewInterval)
	}
	if checkpoints == 0 {
		t.Errorf("no checkpoint written in %s of records", elapsed.Round(time.Millisecond))
	}
	l, _ := store.GetLease(context.Background(), "shardId-000000000000")
	if isStartSentinel(l.Checkpoint) {
		t.Errorf("checkpoint %v while records flow, want a record's", l.Checkpoint)
	}
	total := int64(0)
	for _, n := range next {
		total += int64(n)
	}
	waitFor(t, 5*time.Second, "every record", func() bool { return seen.Load() == total })
	if err := rw.stop(); err != nil {
		t.Fatal(err)
	}
	l, _ = store.GetLease(context.Background(), "shardId-000000000000")
	if want := last.Load().(string); l.Checkpoint.SequenceNumber != want {
		t.Errorf("checkpoint after the shutdown %v, want the last record %s", l.Checkpoint, want)
	}
}
