package checkpoint_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/shardline/shardline/checkpoint"
)

// A worker takes a new shard's lease, renews it and records a checkpoint; a second worker
// acting on an old view of the lease is refused.
func ExampleMemoryStore() {
	ctx := context.Background()
	store := checkpoint.NewMemoryStore()

	// The shard synchronizer creates one lease per shard, unowned, at the start position.
	lease, err := store.CreateLeaseIfNotExists(ctx, checkpoint.Lease{
		Key:        "shardId-000000000000",
		Checkpoint: checkpoint.TrimHorizon,
	})
	if err != nil {
		panic(err)
	}
	seen := lease

	held, err := store.TakeLease(ctx, seen, "worker-1")
	if err != nil {
		panic(err)
	}
	held, err = store.RenewLease(ctx, held)
	if err != nil {
		panic(err)
	}
	held, err = store.UpdateCheckpoint(ctx, held, checkpoint.ExtendedSequenceNumber{
		SequenceNumber: "49590338271490256608559692538361571095921575989136588898",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("owner:", held.Owner, "counter:", held.Counter)
	fmt.Println("checkpoint:", held.Checkpoint)

	// worker-2 still has the view from before worker-1 took the lease.
	_, err = store.TakeLease(ctx, seen, "worker-2")
	fmt.Println("stale take refused:", errors.Is(err, checkpoint.ErrLeaseLost))
	// Output:
	// owner: worker-1 counter: 3
	// checkpoint: 49590338271490256608559692538361571095921575989136588898
	// stale take refused: true
}

// A record processor checkpoints through a Checkpointer: after the last record delivered, in
// the middle of a KPL aggregate, and at the end of the shard. Checkpoints that would skip
// undelivered records or move backwards are refused with an error that says why.
func ExampleCheckpointer() {
	ctx := context.Background()
	store := checkpoint.NewMemoryStore()
	lease, _ := store.CreateLeaseIfNotExists(ctx, checkpoint.Lease{Key: "shardId-000000000001", Checkpoint: checkpoint.TrimHorizon})
	lease, _ = store.TakeLease(ctx, lease, "worker-1")

	// The consumer keeps the lease through a holder and gives the application a checkpointer.
	holder, err := checkpoint.NewLeaseHolder(store, lease)
	if err != nil {
		panic(err)
	}
	cp := checkpoint.NewCheckpointer(holder)

	// The consumer delivered records up to 1200, an aggregate whose user records 0..9 were
	// all handed to the application.
	_ = cp.SetLastDelivered("1200", 9)

	// The application processed up to the fourth user record of that aggregate.
	if err := cp.CheckpointAt(ctx, "1200", 3); err != nil {
		panic(err)
	}
	fmt.Println("checkpointed:", cp.Checkpointed())

	err = cp.CheckpointAt(ctx, "1300", 0)
	fmt.Println(errors.Is(err, checkpoint.ErrCheckpointBeyondDelivered), err)

	err = cp.CheckpointAt(ctx, "999", 0)
	fmt.Println(errors.Is(err, checkpoint.ErrCheckpointRegression), err)

	// Everything delivered was processed.
	if err := cp.Checkpoint(ctx); err != nil {
		panic(err)
	}
	fmt.Println("checkpointed:", cp.Checkpointed())

	// The shard was closed and every record delivered: its children may start.
	cp.SetShardEnded()
	if err := cp.CheckpointShardEnd(ctx); err != nil {
		panic(err)
	}
	fmt.Println("checkpointed:", cp.Checkpointed())
	// Output:
	// checkpointed: 1200/3
	// true checkpoint: lease "shardId-000000000001": checkpoint beyond the last delivered record: requested 1300, last delivered is 1200/9
	// true checkpoint: lease "shardId-000000000001": checkpoint before the current checkpoint: requested 999, stored checkpoint is 1200/3
	// checkpointed: 1200/9
	// checkpointed: SHARD_END
}
