package producer

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// TestMisroutedAggregateResent splits the only shard just before the first request is
// stored, so its aggregates land on a child shard although they hold user records of both
// children. A Java KCL reader drops each such aggregate whole (allInRange), so every one of
// its records must be written again, and only records a KCL reader sees may succeed.
func TestMisroutedAggregateResent(t *testing.T) {
	for _, strict := range []bool{false, true} {
		f := newFake(t, 1)
		f.callHook = func(call int, _ *kinesis.PutRecordsInput) error {
			if call == 1 {
				f.split(0)
			}
			return nil
		}
		p := newTestProducer(t, f, Config{Linger: 20 * time.Millisecond, StrictOrdering: strict})
		for len(p.table.Load().shards) == 0 {
			time.Sleep(time.Millisecond)
		}
		recs := makeRecords(400, 40, 30)
		r := newResults(t)
		putAll(t, p, recs, r)
		r.wait(10 * time.Second)
		closeProducer(t, p)
		for i := range recs {
			if res, _ := r.get(&recs[i]); res.Err != nil {
				t.Fatalf("strict %v: record %d: %v", strict, i, res.Err)
			}
		}
		checkStream(t, f.read(t), recs, 0)
	}
}

// TestReshardKeepsKeyOrder holds the first request in flight while its shard is split and
// the producer learns the new map, and puts more records of the same keys meanwhile. The
// request then either lands on a child shard (misrouted, so a KCL reader drops its
// aggregates) or fails; either way its records must reach the children before the records
// put after them, with and without StrictOrdering.
func TestReshardKeepsKeyOrder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		strict bool
		fail   bool
	}{
		{"misrouted", false, false}, {"misrouted/strict", true, false},
		{"failed", false, true}, {"failed/strict", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, 1)
			release := make(chan struct{})
			f.callHook = func(call int, _ *kinesis.PutRecordsInput) error {
				if call != 1 {
					return nil
				}
				f.split(0)
				<-release
				if tc.fail {
					return &types.InternalFailureException{Message: aws.String("lost")}
				}
				return nil
			}
			p := newTestProducer(t, f, Config{Linger: 5 * time.Millisecond, RetryBaseDelay: time.Millisecond, StrictOrdering: tc.strict})
			for len(p.table.Load().shards) == 0 {
				time.Sleep(time.Millisecond)
			}
			recs := makeRecords(600, 30, 30)
			r := newResults(t)
			putAll(t, p, recs[:300], r)
			for f.callCount() == 0 {
				time.Sleep(time.Millisecond)
			}
			p.requestRefresh()
			for len(p.table.Load().shards) != 2 {
				time.Sleep(time.Millisecond)
			}
			putAll(t, p, recs[300:], r)
			time.Sleep(50 * time.Millisecond) // time for the later records to be sent, if allowed
			close(release)
			r.wait(10 * time.Second)
			closeProducer(t, p)
			for i := range recs {
				if res, _ := r.get(&recs[i]); res.Err != nil {
					t.Fatalf("record %d: %v", i, res.Err)
				}
			}
			checkStream(t, f.read(t), recs, 0)
		})
	}
}
