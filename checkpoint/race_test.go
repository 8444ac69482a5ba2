package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/shardline/shardline/internal/testenv"
)

// ownershipLedger records every successful ownership write: which worker won which counter
// value of which lease. Every such write moves the counter by exactly one and is conditional
// on the previous value, so each (lease, counter) must be won exactly once; two winners would
// mean two workers both believed they held the lease at that version.
type ownershipLedger struct {
	mu          sync.Mutex
	winners     map[string]map[int64]string
	checkpoints map[string]map[int64]ExtendedSequenceNumber
	staleTries  int
}

func newLedger() *ownershipLedger {
	return &ownershipLedger{winners: map[string]map[int64]string{}, checkpoints: map[string]map[int64]ExtendedSequenceNumber{}}
}

// won records that worker's write, made from a view at counter from, succeeded with lease. The
// write must have produced exactly the next version of that view: a store that let a write
// from a stale view through would hand out a later counter and be caught here.
func (l *ownershipLedger) won(t *testing.T, op string, from int64, lease Lease, worker string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lease.Counter != from+1 {
		t.Errorf("%s by %s on %s: acted on counter %d but produced %d", op, worker, lease.Key, from, lease.Counter)
	}
	m := l.winners[lease.Key]
	if m == nil {
		m = map[int64]string{}
		l.winners[lease.Key] = m
	}
	if prev, ok := m[lease.Counter]; ok {
		t.Errorf("%s: counter %d of %s won twice, by %s and by %s", op, lease.Counter, lease.Key, prev, worker)
	}
	m[lease.Counter] = worker
}

func (l *ownershipLedger) checkpointed(lease Lease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.checkpoints[lease.Key]
	if m == nil {
		m = map[int64]ExtendedSequenceNumber{}
		l.checkpoints[lease.Key] = m
	}
	m[lease.Counter] = lease.Checkpoint
}

// runOwnershipRace has workers fight over a few leases: each repeatedly takes leases it does
// not hold (without waiting for expiry, to maximize contention), and renews, checkpoints or
// evicts the ones it holds. storeFor returns the store worker i uses. When a worker learns it
// lost a lease, it tries a checkpoint with its stale view, which must fail.
func runOwnershipRace(t *testing.T, storeFor func(i int) Store, workers, leases int, duration time.Duration, maxOps int) {
	ctx := context.Background()
	setup := storeFor(0)
	if err := setup.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, leases)
	for i := range keys {
		keys[i] = fmt.Sprintf("shardId-%012d", i)
		mustCreate(t, setup, keys[i])
	}
	ledger := newLedger()
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := storeFor(w)
			worker := fmt.Sprintf("worker-%d", w)
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			held := map[string]Lease{}
			seq := 0
			staleCheck := func(stale Lease) {
				_, err := s.UpdateCheckpoint(ctx, stale, esn(fmt.Sprintf("9%03d%09d", w, seq), 0))
				if !errors.Is(err, ErrLeaseLost) && !errors.Is(err, ErrLeaseNotFound) {
					t.Errorf("%s: checkpoint with a lost lease %s: got %v, want ErrLeaseLost", worker, stale.Key, err)
				}
				ledger.mu.Lock()
				ledger.staleTries++
				ledger.mu.Unlock()
			}
			for op := 0; op < maxOps && time.Now().Before(deadline); op++ {
				key := keys[rng.IntN(len(keys))]
				l, holds := held[key]
				if !holds {
					seen, err := s.GetLease(ctx, key)
					if err != nil {
						t.Errorf("%s: get %s: %v", worker, key, err)
						return
					}
					got, err := s.TakeLease(ctx, seen, worker)
					switch {
					case err == nil:
						ledger.won(t, "take", seen.Counter, got, worker)
						held[key] = got
					case !errors.Is(err, ErrLeaseLost):
						t.Errorf("%s: take %s: %v", worker, key, err)
						return
					}
					continue
				}
				var (
					got Lease
					err error
					cp  bool
				)
				switch r := rng.IntN(10); {
				case r < 5:
					got, err = s.RenewLease(ctx, l)
				case r < 9:
					seq++
					// Digits encode the worker and its own sequence, so every value is unique.
					got, err = s.UpdateCheckpoint(ctx, l, esn(fmt.Sprintf("1%03d%09d", w, seq), 0))
					cp = true
				default:
					got, err = s.EvictLease(ctx, l)
					if err == nil {
						ledger.won(t, "evict", l.Counter, got, worker)
						delete(held, key)
						continue
					}
				}
				switch {
				case err == nil:
					ledger.won(t, "renew/checkpoint", l.Counter, got, worker)
					if cp {
						ledger.checkpointed(got)
					}
					held[key] = got
				case errors.Is(err, ErrLeaseLost):
					delete(held, key)
					staleCheck(l)
				default:
					t.Errorf("%s: write %s: %v", worker, key, err)
					return
				}
			}
		}()
	}
	wg.Wait()

	total := 0
	for _, key := range keys {
		final, err := setup.GetLease(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		wins := ledger.winners[key]
		total += len(wins)
		// Every version from 1 to the final counter was produced by exactly one reported
		// success: no write succeeded without its caller knowing, none twice.
		if int64(len(wins)) != final.Counter {
			t.Errorf("%s: final counter %d but %d successful writes", key, final.Counter, len(wins))
		}
		for c := int64(1); c <= final.Counter; c++ {
			if _, ok := wins[c]; !ok {
				t.Errorf("%s: nobody reported winning counter %d", key, c)
			}
		}
		// The stored checkpoint is the last one acknowledged: no stale writer overwrote it.
		want, last := TrimHorizon, int64(-1)
		for c, cp := range ledger.checkpoints[key] {
			if c > last {
				want, last = cp, c
			}
		}
		if final.Checkpoint != want {
			t.Errorf("%s: stored checkpoint %v, last acknowledged %v (counter %d)", key, final.Checkpoint, want, last)
		}
	}
	t.Logf("%d workers, %d leases: %d successful ownership writes, %d stale checkpoint attempts refused", workers, leases, total, ledger.staleTries)
	if ledger.staleTries == 0 {
		t.Error("no worker ever lost a lease: the race did not exercise stale writers")
	}
}

func TestOwnershipRaceMemory(t *testing.T) {
	s := NewMemoryStore()
	runOwnershipRace(t, func(int) Store { return s }, 8, 3, time.Second, 3000)
}

// The file store is single-process: all goroutines share one handle, as documented.
func TestOwnershipRaceFile(t *testing.T) {
	s := newFile(t)
	runOwnershipRace(t, func(int) Store { return s }, 6, 3, time.Second, 400)
}

// Each worker has its own DynamoDB client and store, as separate processes would.
func TestOwnershipRaceDynamoDB(t *testing.T) {
	client, table := dynamoTable(t)
	stores := make([]Store, 6)
	stores[0] = newDynamoStore(t, client, table)
	for i := 1; i < len(stores); i++ {
		stores[i] = newDynamoStore(t, testenv.DynamoDB(t, nil), table)
	}
	runOwnershipRace(t, func(i int) Store { return stores[i] }, len(stores), 3, 3*time.Second, 300)
}
