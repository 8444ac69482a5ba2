package consumer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/kinesistest"
)

// TestKinesistestReadThrottling runs three applications, one worker each, that poll one shard
// far faster than its read limits: 5 GetRecords calls/s and 2 MiB/s per shard, shared by every
// application reading the stream
// (https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html), which
// kinesistest enforces and kinesis-mock does not. Every application must process every record
// exactly once and in order, count the throttled calls in Stats.ReadsThrottled, and back off
// after a throttle instead of calling again at its polling rate: the share of refused calls
// stays below a few per served call, where polling on regardless is refused about ten times
// per served call.
func TestKinesistestReadThrottling(t *testing.T) {
	checkNoLeak(t)
	env := newKTEnv(t, 1, kinesistest.Options{Limits: kinesistest.Limits{
		// Writes fast, so the backlog is there at once; reads at the service's limits.
		ShardWriteBytesPerSecond: 256 << 20, ShardWriteRecordsPerSecond: 1 << 20,
	}})
	keys := testKeys(20)
	prod := newTestProducer(t, env.client(nil), env.stream)
	prod.padding = strings.Repeat("x", 2000) // about 40 KiB per aggregate of 20 user records
	n, err := prod.produce(t.Context(), keys, 60, 0)
	if err != nil {
		t.Fatal(err)
	}

	const apps = 3
	type app struct {
		c     *collector
		calls *callCounter
		rw    *runningWorker
	}
	var as []app
	for i := range apps {
		a := app{c: newCollector(), calls: newCallCounter()}
		name := fmt.Sprintf("app%d", i+1)
		cfg := env.config(t, env.client(a.calls), checkpoint.NewMemoryStore(), name, name+"-w1", processorFor(a.c, name+"-w1", nil))
		// Twelve aggregates (about 480 KiB) per call: the 60 aggregates take five calls per
		// application and 2.4 MiB; together the applications need about three seconds of
		// the shard's call allowance and three and a half of its byte allowance.
		cfg.MaxRecords = 12
		cfg.MinTimeBetweenReads = 5 * time.Millisecond
		cfg.IdleTimeBetweenReads = 20 * time.Millisecond
		w, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		a.rw = runWorker(t, w)
		as = append(as, a)
	}
	for _, a := range as {
		a.c.waitDistinct(t, n, 60*time.Second)
	}
	var served, throttled int
	for i, a := range as {
		if err := a.rw.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		checkOrder(t, a.c.snapshot())
		checkExactlyOnce(t, a.c)
		st := a.rw.w.Stats()
		calls := a.calls.get("GetRecords")
		refused := a.calls.errs("GetRecords", "ProvisionedThroughputExceededException")
		t.Logf("app%d: %d GetRecords calls, %d throttled, Stats.ReadsThrottled %d", i+1, calls, refused, st.ReadsThrottled)
		if st.ReadsThrottled != int64(refused) {
			t.Errorf("app%d: Stats.ReadsThrottled = %d, the server refused %d calls", i+1, st.ReadsThrottled, refused)
		}
		served += calls - refused
		throttled += refused
	}
	if throttled == 0 {
		t.Fatalf("no GetRecords call was throttled: the test does not reach the shard's read limits")
	}
	// Served calls are bounded by the shard's allowance, so refused/served measures how hard
	// the fleet pushed against the limit. The backoff (100 ms, growing by half each time)
	// keeps it well below one; polling every 5 ms regardless makes it about ten.
	if throttled > 3*served {
		t.Errorf("%d GetRecords calls throttled against %d served: the workers hammer the shard instead of backing off", throttled, served)
	}
}
