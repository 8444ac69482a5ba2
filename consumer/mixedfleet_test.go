package consumer

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// kcl2Renewer stands in for a live KCL 2.x worker's lease renewer: every interval it renews
// each lease it holds the way DynamoDBLeaseRefresher.renewLease does in KCL 2.x, an UpdateItem
// that sets leaseCounter to its own count plus one on the sole condition that leaseCounter is
// still its count (the owner is not checked, and no other attribute is written). A refused
// renewal is checked with a read for a spurious retry (owner and counter as expected);
// otherwise the lease is lost, as DynamoDBLeaseRenewer drops it, and the worker stops
// processing the shard. It never answers a KCL 3.x handoff request (checkpointOwner), which
// KCL 2.x does not know, and it takes no leases (a KCL worker at its target).
type kcl2Renewer struct {
	ddb   *dynamodb.Client
	table string
	owner string

	mu       sync.Mutex
	counters map[string]int64 // held leases and the counter this worker last wrote
	lost     []string
	renewals int
}

func newKCL2Renewer(ddb *dynamodb.Client, table, owner string, held map[string]int64) *kcl2Renewer {
	return &kcl2Renewer{ddb: ddb, table: table, owner: owner, counters: held}
}

func (r *kcl2Renewer) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		keys := make([]string, 0, len(r.counters))
		for k := range r.counters {
			keys = append(keys, k)
		}
		r.mu.Unlock()
		for _, k := range keys {
			r.renew(ctx, k)
		}
	}
}

func (r *kcl2Renewer) renew(ctx context.Context, key string) {
	r.mu.Lock()
	c := r.counters[key]
	r.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := r.ddb.UpdateItem(cctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(r.table),
		Key:                       map[string]ddbtypes.AttributeValue{"leaseKey": kclS(key)},
		UpdateExpression:          aws.String("SET leaseCounter = :next"),
		ConditionExpression:       aws.String("leaseCounter = :seen"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":next": kclN(strconv.FormatInt(c+1, 10)), ":seen": kclN(strconv.FormatInt(c, 10))},
	})
	var ccf *ddbtypes.ConditionalCheckFailedException
	switch {
	case err == nil:
		r.mu.Lock()
		r.counters[key] = c + 1
		r.renewals++
		r.mu.Unlock()
	case errors.As(err, &ccf):
		out, gerr := r.ddb.GetItem(cctx, &dynamodb.GetItemInput{TableName: aws.String(r.table), Key: map[string]ddbtypes.AttributeValue{"leaseKey": kclS(key)}, ConsistentRead: aws.Bool(true)})
		if gerr == nil {
			owner, _ := out.Item["leaseOwner"].(*ddbtypes.AttributeValueMemberS)
			counter, _ := out.Item["leaseCounter"].(*ddbtypes.AttributeValueMemberN)
			if owner != nil && owner.Value == r.owner && counter != nil && counter.Value == strconv.FormatInt(c+1, 10) {
				r.mu.Lock()
				r.counters[key] = c + 1
				r.mu.Unlock()
				return
			}
		}
		r.mu.Lock()
		delete(r.counters, key)
		r.lost = append(r.lost, key)
		r.mu.Unlock()
	}
}

func (r *kcl2Renewer) state() (held int, lost []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counters), append([]string(nil), r.lost...)
}

// startKCL2Renewer runs the renewer until the test ends.
func startKCL2Renewer(t *testing.T, r *kcl2Renewer, every time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.run(ctx, every) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestMixedFleetWithKCL2Worker runs Shardline workers beside a live KCL 2.x worker during a
// rolling migration. The KCL worker renews but never answers a handoff request.
func TestMixedFleetWithKCL2Worker(t *testing.T) {
	// The weighted balance would ask for one of the KCL worker's two hot leases, but by the
	// KCL 2.x rule (target 2 of 3 leases) nothing may be stolen from it: the unanswered
	// request must be withdrawn, and the lease left with its live owner.
	t.Run("no steal below the KCL 2.x target", func(t *testing.T) {
		checkNoLeak(t)
		env := newEmuEnv(t, 3, nil, nil)
		hot := func(key string) map[string]ddbtypes.AttributeValue {
			item := kclLease(key, "kcl-2x", "10", "TRIM_HORIZON")
			// Written by an earlier KCL 3.x owner; KCL 2.x updates leave it in place.
			item["throughputKBps"] = kclN("100")
			return item
		}
		putKCLItems(t, env, hot("shardId-000000000000"), hot("shardId-000000000001"))
		kcl := newKCL2Renewer(env.ddb, env.table, "kcl-2x", map[string]int64{"shardId-000000000000": 10, "shardId-000000000001": 10})
		startKCL2Renewer(t, kcl, 500*time.Millisecond)

		c := newCollector()
		cfg := env.config(t, "w1", processorFor(c, "w1", nil))
		cfg.HandoffTimeout = time.Second
		w, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		rw := runWorker(t, w)
		waitFor(t, 30*time.Second, "the handoff request withdrawn", func() bool { return w.Stats().HandoffsCancelled > 0 })
		// Long enough for a take after the timeout, and for a second request.
		time.Sleep(cfg.HandoffTimeout + 2*emuFailover)
		if held, lost := kcl.state(); held != 2 || len(lost) != 0 {
			t.Errorf("KCL worker holds %d leases and lost %v; want both kept", held, lost)
		}
		ls := leaseKeys(t, env)
		for _, k := range []string{"shardId-000000000000", "shardId-000000000001"} {
			if l := ls[k]; l.Owner != "kcl-2x" || l.CheckpointOwner != "" {
				t.Errorf("%s: owner %q, checkpoint owner %q; want the KCL worker's, no handoff left", k, l.Owner, l.CheckpointOwner)
			}
		}
		if st := w.Stats(); st.LeasesHeld != 1 {
			t.Errorf("Shardline worker holds %d leases, want 1", st.LeasesHeld)
		}
		if err := rw.stop(); err != nil {
			t.Fatal(err)
		}
	})

	// The KCL worker holds every lease: by the KCL 2.x rule a worker below its target steals
	// one at a time, so the Shardline worker ends with its share and the KCL worker loses
	// exactly that.
	t.Run("steal by the KCL 2.x rule", func(t *testing.T) {
		checkNoLeak(t)
		env := newEmuEnv(t, 2, nil, nil)
		putKCLItems(t, env, kclLease("shardId-000000000000", "kcl-2x", "3", "TRIM_HORIZON"), kclLease("shardId-000000000001", "kcl-2x", "3", "TRIM_HORIZON"))
		kcl := newKCL2Renewer(env.ddb, env.table, "kcl-2x", map[string]int64{"shardId-000000000000": 3, "shardId-000000000001": 3})
		startKCL2Renewer(t, kcl, 500*time.Millisecond)
		c := newCollector()
		cfg := env.config(t, "w1", processorFor(c, "w1", nil))
		cfg.HandoffTimeout = time.Second
		w, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		rw := runWorker(t, w)
		waitFor(t, 30*time.Second, "the Shardline worker holding a lease", func() bool { return w.Stats().LeasesHeld == 1 })
		time.Sleep(2 * emuFailover)
		if held, lost := kcl.state(); held != 1 || len(lost) != 1 {
			t.Errorf("KCL worker holds %d leases and lost %v; want one kept, one lost", held, lost)
		}
		if st := w.Stats(); st.LeasesHeld != 1 || st.HandoffsCancelled == 0 {
			t.Errorf("Shardline worker holds %d leases after %d withdrawn requests; want 1 after at least one", st.LeasesHeld, st.HandoffsCancelled)
		}
		if err := rw.stop(); err != nil {
			t.Fatal(err)
		}
	})
}
