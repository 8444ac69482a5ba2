package consumer

import (
	"errors"
	"fmt"
)

// Errors callers match with errors.Is.
var (
	// ErrInvalidConfig: New was given a Config it cannot run with; the message says which field.
	ErrInvalidConfig = errors.New("consumer: invalid configuration")
	// ErrStreamNotFound: the stream does not exist (never created, or deleted while the worker
	// ran). Run returns it after shutting down gracefully. A ResourceNotFoundException from a
	// read of one shard is not enough: the worker lists the stream first, and when the stream
	// is there but the shard is not, only that shard is ended (see the package documentation).
	ErrStreamNotFound = errors.New("consumer: stream not found")
	// ErrLeaseTableNotFound: the lease table disappeared while the worker ran (deleted by hand,
	// or by a stack update). Run shuts down and returns it, also matching
	// checkpoint.ErrTableNotFound. The worker does not create the table again: a new table has
	// none of the fleet's checkpoints, and every shard would start over from InitialPosition,
	// which is a decision for whoever supervises the fleet. (A missing table at start is
	// created, as the KCL creates it.)
	ErrLeaseTableNotFound = errors.New("consumer: lease table not found")
	// ErrKilled: the worker was stopped with Kill, without a graceful shutdown.
	ErrKilled = errors.New("consumer: worker killed")
	// ErrAlreadyStarted: Run was called more than once on one Worker.
	ErrAlreadyStarted = errors.New("consumer: worker already started")
	// ErrShardEndNotCheckpointed: a processor's ShardEnded returned without checkpointing at
	// SHARD_END, so the shard's children cannot start. The worker logs it, counts it and calls
	// ShardEnded again after a pause until the processor checkpoints or the lease is lost.
	ErrShardEndNotCheckpointed = errors.New("consumer: processor did not checkpoint at SHARD_END")
	// ErrUnreadableLease: a lease-table item for a shard cannot be read as a lease (edited by
	// hand, or written by an incompatible program). The shard is not processed until the item is
	// fixed or deleted (deleting it lets the worker create a fresh lease); Stats.UnreadableLeases
	// and the UnreadableLeases metric report it.
	ErrUnreadableLease = errors.New("consumer: unreadable lease")
)

// ProcessorError reports a record-processor call that failed: which shard, which call and the
// error the processor returned (or the panic it raised, as an error).
type ProcessorError struct {
	ShardID string // shard being processed
	Call    string // "Initialize", "ProcessRecords", "ShardEnded", "ShutdownRequested"
	Err     error  // what the processor returned
}

// Error names the shard and the call.
func (e *ProcessorError) Error() string {
	return fmt.Sprintf("consumer: shard %s: processor %s: %v", e.ShardID, e.Call, e.Err)
}

// Unwrap returns the processor's error.
func (e *ProcessorError) Unwrap() error { return e.Err }

// panicError carries a recovered panic from a processor call.
type panicError struct{ v any }

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.v) }
