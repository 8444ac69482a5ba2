package checkpoint

import (
	"errors"
	"fmt"
	"strings"
)

// Errors that callers match with errors.Is. Every store returns them for the same situations,
// wrapped in a *LeaseError or *CheckpointError that says which lease and why.
var (
	// ErrLeaseNotFound: no lease with that key exists (it was never created or was deleted).
	ErrLeaseNotFound = errors.New("checkpoint: lease not found")
	// ErrLeaseExists: a lease with that key already exists, so it was not created again.
	ErrLeaseExists = errors.New("checkpoint: lease already exists")
	// ErrLeaseLost: the lease changed since the caller read it (another worker took or renewed
	// it, or it was evicted), so the conditional write was refused. A worker that gets it for a
	// lease it held must stop processing that shard: someone else may own it now.
	ErrLeaseLost = errors.New("checkpoint: lease lost")
	// ErrInvalidLease: the request itself is malformed (empty key or owner, a lease the caller
	// does not hold, a malformed checkpoint); no request was sent.
	ErrInvalidLease = errors.New("checkpoint: invalid lease request")
	// ErrInvalidSequenceNumber: a sequence number is neither a decimal number nor a sentinel, or
	// a subsequence number is negative.
	ErrInvalidSequenceNumber = errors.New("checkpoint: invalid sequence number")
	// ErrCheckpointRegression: the requested checkpoint is before the stored one; checkpoints
	// only move forward.
	ErrCheckpointRegression = errors.New("checkpoint: checkpoint before the current checkpoint")
	// ErrCheckpointBeyondDelivered: the requested checkpoint is after the last record the
	// consumer delivered to the application, so it would skip records nobody processed.
	ErrCheckpointBeyondDelivered = errors.New("checkpoint: checkpoint beyond the last delivered record")
	// ErrStoreClosed: the store was closed.
	ErrStoreClosed = errors.New("checkpoint: lease store closed")
	// ErrTableSchema: the table exists but its key is not the lease table's (leaseKey, type S).
	ErrTableSchema = errors.New("checkpoint: table is not a lease table")
	// ErrTableNotFound: the lease table does not exist (DynamoDB answered
	// ResourceNotFoundException): it was never created (call EnsureTable) or was deleted.
	ErrTableNotFound = errors.New("checkpoint: lease table not found")
)

// LeaseError describes a refused lease operation: which operation, on which lease, the
// sentinel that says why (ErrLeaseLost, ErrLeaseExists, ErrLeaseNotFound, ErrInvalidLease) and,
// when the store learned it, the lease as it is now, so a caller can refresh its view without
// another read.
type LeaseError struct {
	Op      string // store operation, for example "TakeLease"
	Key     string // lease key
	Err     error  // one of the sentinel errors
	Detail  string // human-readable reason, may be empty
	Current *Lease // the stored lease after the refusal, nil when unknown or absent
	Cause   error  // underlying error (for example the DynamoDB exception), may be nil
}

// Error says which operation on which lease was refused, why, and, when known, who holds the
// lease now.
func (e *LeaseError) Error() string {
	msg := fmt.Sprintf("checkpoint: %s %q: %s", e.Op, e.Key, reason(e.Err))
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Current != nil {
		msg += fmt.Sprintf(" (now owner=%q counter=%d", e.Current.Owner, e.Current.Counter)
		if e.Current.CheckpointOwner != "" {
			msg += fmt.Sprintf(" checkpointOwner=%q", e.Current.CheckpointOwner)
		}
		msg += ")"
	}
	return msg
}

// Unwrap exposes both the sentinel and the underlying cause to errors.Is and errors.As.
func (e *LeaseError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// CheckpointError describes a checkpoint the Checkpointer refused before writing anything:
// the position asked for, the stored checkpoint and the last delivered position, and the
// sentinel that says why (ErrCheckpointRegression, ErrCheckpointBeyondDelivered,
// ErrInvalidSequenceNumber).
type CheckpointError struct {
	Key           string                 // lease key
	Requested     ExtendedSequenceNumber // the checkpoint asked for; zero for "at the last delivered" with nothing delivered
	Current       ExtendedSequenceNumber // the stored checkpoint
	LastDelivered ExtendedSequenceNumber // zero when nothing was delivered yet
	Err           error                  // the sentinel (or a validation error wrapping ErrInvalidSequenceNumber)
}

// Error names the refused position and the bound it crossed.
func (e *CheckpointError) Error() string {
	switch {
	case errors.Is(e.Err, ErrCheckpointRegression):
		return fmt.Sprintf("checkpoint: lease %q: %s: requested %s, stored checkpoint is %s", e.Key, reason(e.Err), e.Requested, e.Current)
	case errors.Is(e.Err, ErrCheckpointBeyondDelivered) && e.LastDelivered.IsZero() && e.Requested.IsZero():
		return fmt.Sprintf("checkpoint: lease %q: %s: no record was delivered yet", e.Key, reason(e.Err))
	case errors.Is(e.Err, ErrCheckpointBeyondDelivered) && e.LastDelivered.IsZero():
		return fmt.Sprintf("checkpoint: lease %q: %s: requested %s, but no record was delivered yet", e.Key, reason(e.Err), e.Requested)
	case errors.Is(e.Err, ErrCheckpointBeyondDelivered):
		return fmt.Sprintf("checkpoint: lease %q: %s: requested %s, last delivered is %s", e.Key, reason(e.Err), e.Requested, e.LastDelivered)
	}
	return fmt.Sprintf("checkpoint: lease %q: requested %s: %s", e.Key, e.Requested, reason(e.Err))
}

// Unwrap returns the sentinel.
func (e *CheckpointError) Unwrap() error { return e.Err }

// reason is an error's text without the package prefix that the sentinels carry, for messages
// that already start with it.
func reason(err error) string {
	if err == nil {
		return "<nil>"
	}
	return strings.TrimPrefix(err.Error(), "checkpoint: ")
}

func invalid(op, key, format string, args ...any) error {
	return &LeaseError{Op: op, Key: key, Err: ErrInvalidLease, Detail: fmt.Sprintf(format, args...)}
}
