package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestLeaseErrorMessage(t *testing.T) {
	cause := errors.New("ConditionalCheckFailedException")
	err := error(&LeaseError{
		Op: OpRenewLease, Key: "shardId-1", Err: ErrLeaseLost, Detail: detailNotHeld,
		Current: &Lease{Owner: "w2", Counter: 9, CheckpointOwner: "w1"}, Cause: cause,
	})
	msg := err.Error()
	for _, part := range []string{"RenewLease", `"shardId-1"`, "lease lost", "no longer held", `owner="w2"`, "counter=9", `checkpointOwner="w1"`} {
		if !strings.Contains(msg, part) {
			t.Errorf("message %q lacks %q", msg, part)
		}
	}
	if !errors.Is(err, ErrLeaseLost) || !errors.Is(err, cause) || errors.Is(err, ErrLeaseNotFound) {
		t.Error("Unwrap does not expose the sentinel and the cause")
	}
	if msg := (&LeaseError{Op: OpGetLease, Key: "k", Err: ErrLeaseNotFound}).Error(); msg != `checkpoint: GetLease "k": lease not found` {
		t.Errorf("plain message %q", msg)
	}
	ce := &CheckpointError{Key: "k", Err: ErrCheckpointBeyondDelivered}
	if !strings.HasSuffix(ce.Error(), "no record was delivered yet") {
		t.Errorf("nothing-delivered message %q", ce.Error())
	}
}

// A change whose commit fails is rolled back, so callers never see state that is not durable;
// a failure that leaves the durable state unknown stops the store.
func TestLocalCommitFailure(t *testing.T) {
	ctx := context.Background()
	fail := error(nil)
	core := newLocalCore(nil, func(map[string]Lease) error { return fail })
	if _, err := core.create(ctx, Lease{Key: "k", Checkpoint: TrimHorizon}); err != nil {
		t.Fatal(err)
	}
	l, _ := core.get(ctx, "k")

	fail = errors.New("disk full")
	if _, err := core.take(ctx, l, "w1"); !errors.Is(err, fail) {
		t.Fatalf("take with failing commit: %v", err)
	}
	if got, _ := core.get(ctx, "k"); got.Owner != "" || got.Counter != 0 {
		t.Fatalf("failed take left %+v", got)
	}
	if _, err := core.create(ctx, Lease{Key: "k2", Checkpoint: TrimHorizon}); !errors.Is(err, fail) {
		t.Fatalf("create with failing commit: %v", err)
	}
	if _, err := core.get(ctx, "k2"); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("failed create left a lease: %v", err)
	}
	// An ordinary failure leaves the store usable.
	fail = nil
	if _, err := core.take(ctx, l, "w1"); err != nil {
		t.Fatalf("take after a failed commit: %v", err)
	}

	fail = &uncertainError{errors.New("sync directory: I/O error")}
	if err := core.delete(ctx, Lease{Key: "k", Counter: 1}); err == nil {
		t.Fatal("delete with uncertain commit succeeded")
	}
	fail = nil
	if _, err := core.get(ctx, "k"); err == nil || !strings.Contains(err.Error(), "I/O error") {
		t.Fatalf("store still serving after an uncertain commit: %v", err)
	}
}

func TestLeaseHolderCheckpointWithoutChecks(t *testing.T) {
	ctx := context.Background()
	_, h, _ := heldCheckpointer(t, esn("500", 0))
	// The holder itself does not order checkpoints; the Checkpointer does.
	l, err := h.Checkpoint(ctx, esn("100", 0))
	if err != nil || l.Checkpoint != esn("100", 0) {
		t.Fatalf("holder checkpoint: %+v, %v", l, err)
	}
	if esn("garbage", 0).Compare(esn("junk", 0)) >= 0 || esn("junk", 1).Compare(esn("junk", 0)) <= 0 {
		t.Error("malformed values do not compare by text, then subsequence")
	}
}

// Every sentinel names the package, as the other packages' sentinels do, and the typed errors
// that wrap one name it only once.
func TestSentinelsNameThePackage(t *testing.T) {
	sentinels := []error{ErrLeaseNotFound, ErrLeaseExists, ErrLeaseLost, ErrInvalidLease, ErrInvalidSequenceNumber,
		ErrCheckpointRegression, ErrCheckpointBeyondDelivered, ErrStoreClosed, ErrTableSchema, ErrTableNotFound}
	for _, s := range sentinels {
		if !strings.HasPrefix(s.Error(), "checkpoint: ") {
			t.Errorf("sentinel %q lacks the package prefix", s)
		}
		for _, err := range []error{
			&LeaseError{Op: OpTakeLease, Key: "k", Err: s},
			&CheckpointError{Key: "k", Err: s},
			&CheckpointError{Key: "k", Err: fmt.Errorf("%w: %q", s, "x")},
		} {
			msg := err.Error()
			rest, ok := strings.CutPrefix(msg, "checkpoint: ")
			if !ok || strings.Contains(rest, s.Error()) || !strings.Contains(rest, strings.TrimPrefix(s.Error(), "checkpoint: ")) {
				t.Errorf("%q should name the package once, at its start, and then the reason", msg)
			}
		}
	}
}
