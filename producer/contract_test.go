package producer

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// TestNilDataIsEmpty puts a record with nil Data among others, unaggregated (where it would
// be sent as is) and aggregated: it is written as an empty record, as the KPL writes it, and
// its neighbours are not held up.
func TestNilDataIsEmpty(t *testing.T) {
	for _, disable := range []bool{true, false} {
		f := newFake(t, 1)
		p := newTestProducer(t, f, Config{DisableAggregation: disable, RecordTTL: 2 * time.Second})
		recs := makeRecords(20, 3, 20)
		recs = append(recs, Record{PartitionKey: "nil-data"})
		r := newResults(t)
		putAll(t, p, recs, r)
		r.wait(10 * time.Second)
		closeProducer(t, p)
		for i := range recs {
			if res, _ := r.get(&recs[i]); res.Err != nil {
				t.Fatalf("aggregation off %v: record %d: %v", disable, i, res.Err)
			}
		}
		found := false
		for _, u := range f.read(t) {
			if u.pk == "nil-data" && u.data == "" {
				found = true
			}
		}
		if !found {
			t.Fatalf("aggregation off %v: the nil-Data record is not in the stream", disable)
		}
	}
}

// TestWholeRequestRefusalNarrowed makes the service refuse a whole request with a 400 while
// it holds one bad entry: only that record may fail (with the service's code), the others
// are sent again without it and succeed.
func TestWholeRequestRefusalNarrowed(t *testing.T) {
	for _, disable := range []bool{true, false} {
		f := newFake(t, 2)
		f.callHook = func(_ int, in *kinesis.PutRecordsInput) error {
			for _, e := range in.Records {
				if bytes.Contains(e.Data, []byte("poison")) {
					return &types.InvalidArgumentException{Message: aws.String("bad entry")}
				}
			}
			return nil
		}
		p := newTestProducer(t, f, Config{DisableAggregation: disable, AggregationMaxSize: 300})
		recs := makeRecords(60, 7, 40)
		bad := 17
		recs[bad].Data = append([]byte(nil), recs[bad].Data...)
		copy(recs[bad].Data[len(recs[bad].Data)-6:], "poison")
		r := newResults(t)
		putAll(t, p, recs, r)
		r.wait(10 * time.Second)
		closeProducer(t, p)
		failed := 0
		for i := range recs {
			res, _ := r.get(&recs[i])
			if res.Err == nil {
				continue
			}
			failed++
			var pe *PutError
			if !errors.As(res.Err, &pe) || pe.Code != "InvalidArgumentException" {
				t.Fatalf("record %d: %v", i, res.Err)
			}
		}
		if failed != 1 {
			t.Fatalf("aggregation off %v: %d of %d records failed", disable, failed, len(recs))
		}
	}
}

// TestSDKValidationErrorIsFatal classes the SDK's client-side refusal as fatal and narrowable:
// sending the same request again cannot help, but the records not at fault can go without
// the one that is.
func TestSDKValidationErrorIsFatal(t *testing.T) {
	err := sdkValidation(&kinesis.PutRecordsInput{Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k")}}})
	cls, code := classifyError(err)
	if cls != classFatal || !narrowable(code) {
		t.Fatalf("classified %v %q", cls, code)
	}
}

// TestCanceledContextNotWritten puts with a context that is already over: the record is
// not accepted (no callback), Put and PutAsync return the context's error, and nothing is
// written.
func TestCanceledContextNotWritten(t *testing.T) {
	f := newFake(t, 1)
	p := newTestProducer(t, f, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := Record{PartitionKey: "k", Data: []byte("async")}
	called := make(chan Result, 1)
	if err := p.PutAsync(ctx, &rec, func(_ *Record, res Result) { called <- res }); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutAsync = %v", err)
	}
	if _, err := p.Put(ctx, Record{PartitionKey: "k", Data: []byte("sync")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v", err)
	}
	if res := p.PutAll(ctx, []Record{{PartitionKey: "k", Data: []byte("all")}}); !errors.Is(res[0].Err, context.Canceled) {
		t.Fatalf("PutAll = %v", res[0].Err)
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	closeProducer(t, p)
	select {
	case res := <-called:
		t.Fatalf("callback of a record not accepted: %+v", res)
	default:
	}
	if got := f.read(t); len(got) != 0 {
		t.Fatalf("%d records written: %+v", len(got), got)
	}
}

// TestPutCopiesData reuses the buffer of a Put that gave up waiting while the record was
// still buffered (no shard map yet): the stream must hold what was put.
func TestPutCopiesData(t *testing.T) {
	f := newFake(t, 1)
	f.listErr = &types.LimitExceededException{Message: aws.String("slow")}
	p := newTestProducer(t, f, Config{RetryMaxDelay: 20 * time.Millisecond})
	buf := []byte("original")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	_, err := p.Put(ctx, Record{PartitionKey: "k", Data: buf})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put = %v", err)
	}
	copy(buf, "reused!!")
	f.set(func(f *fakeKinesis) { f.listErr = nil })
	closeProducer(t, p)
	got := f.read(t)
	if len(got) != 1 || got[0].data != "original" {
		t.Fatalf("stream holds %+v", got)
	}
}

// TestCloseInFlightOutcomeUnknown gives up closing while calls hang after the service
// stored their records: those records must not be reported plainly closed, as if never
// written, but as of unknown outcome; records never sent are plainly closed.
func TestCloseInFlightOutcomeUnknown(t *testing.T) {
	f := newFake(t, 2)
	f.gate = make(chan struct{}) // never opened: calls hang after storing
	p := newTestProducer(t, f, Config{Linger: -1, MaxConcurrentRequests: 1})
	recs := makeRecords(3000, 20, 20)
	r := newResults(t)
	putAll(t, p, recs, r)
	for f.callCount() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v", err)
	}
	r.wait(time.Second)
	written := map[string]bool{}
	for _, u := range f.read(t) {
		written[u.data] = true
	}
	unknown, closed := 0, 0
	for i := range recs {
		res, _ := r.get(&recs[i])
		switch {
		case errors.Is(res.Err, ErrOutcomeUnknown):
			unknown++
		case written[string(recs[i].Data)]:
			t.Fatalf("record %d was written but reported %v", i, res.Err)
		case errors.Is(res.Err, ErrClosed):
			closed++
		default:
			t.Fatalf("record %d: %v", i, res.Err)
		}
		if !errors.Is(res.Err, ErrClosed) || !errors.Is(res.Err, context.DeadlineExceeded) {
			t.Fatalf("record %d: %v does not match ErrClosed and the context's error", i, res.Err)
		}
	}
	if unknown == 0 || closed == 0 {
		t.Fatalf("%d of unknown outcome, %d closed", unknown, closed)
	}
}

// TestParkedResultsExpire lands a request on a shard the producer does not know while
// ListShards keeps failing: its records must expire by RecordTTL, not wait for a map.
func TestParkedResultsExpire(t *testing.T) {
	f := newFake(t, 1)
	f.callHook = func(call int, _ *kinesis.PutRecordsInput) error {
		if call == 1 {
			f.split(0)
			f.set(func(f *fakeKinesis) { f.listErr = &types.LimitExceededException{Message: aws.String("slow")} })
		}
		return nil
	}
	p := newTestProducer(t, f, Config{RecordTTL: 300 * time.Millisecond, RetryMaxDelay: 50 * time.Millisecond})
	for len(p.table.Load().shards) == 0 {
		time.Sleep(time.Millisecond)
	}
	recs := makeRecords(200, 40, 20)
	r := newResults(t)
	putAll(t, p, recs, r)
	r.wait(10 * time.Second)
	expired := 0
	for i := range recs {
		if res, _ := r.get(&recs[i]); errors.Is(res.Err, ErrRecordExpired) {
			expired++
		}
	}
	if expired == 0 {
		t.Fatal("no record expired")
	}
	f.set(func(f *fakeKinesis) { f.listErr = nil })
	closeProducer(t, p)
}

// TestResultErrorsDocumented: a missing stream fails records with a *PutError.
func TestResultErrorsDocumented(t *testing.T) {
	f := newFake(t, 1)
	f.listErr = &types.ResourceNotFoundException{Message: aws.String("no such stream")}
	p := newTestProducer(t, f, Config{})
	defer closeProducer(t, p)
	_, err := p.Put(context.Background(), Record{PartitionKey: "k", Data: []byte("x")})
	var pe *PutError
	if !errors.As(err, &pe) || !errors.Is(err, ErrPut) || pe.Code != "ResourceNotFoundException" {
		t.Fatalf("Put without a stream: %v", err)
	}
}

// TestSyncPutDoesNotWaitLinger: with a Linger far longer than the context, Put and PutAll
// still get their results, because they send what they wait on at once.
func TestSyncPutDoesNotWaitLinger(t *testing.T) {
	f := newFake(t, 2)
	p := newTestProducer(t, f, Config{Linger: time.Hour})
	defer closeProducer(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.Put(ctx, Record{PartitionKey: "k", Data: []byte("one")}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	recs := makeRecords(300, 10, 30)
	recs[7].PartitionKey = ""
	res := p.PutAll(ctx, recs)
	for i := range res {
		var ve *ValidationError
		switch {
		case i == 7 && !errors.As(res[i].Err, &ve):
			t.Fatalf("record 7: %v, want a *ValidationError", res[i].Err)
		case i != 7 && res[i].Err != nil:
			t.Fatalf("record %d: %v", i, res[i].Err)
		}
	}
	for i := range recs {
		copy(recs[i].Data, "reused") // PutAll copied them
	}
	recs[7].PartitionKey = "key-7"
	want := append(makeRecords(300, 10, 30)[:7], makeRecords(300, 10, 30)[8:]...)
	var got []userRecord
	for _, u := range f.read(t) {
		if u.data != "one" {
			got = append(got, u)
		}
	}
	checkStream(t, got, want, 0)
}

// TestAggregationMaxCount bounds the user records per aggregate, as the KPL's
// AggregationMaxCount does.
func TestAggregationMaxCount(t *testing.T) {
	f := newFake(t, 1)
	p := newTestProducer(t, f, Config{AggregationMaxCount: 7})
	recs := makeRecords(200, 5, 20)
	r := newResults(t)
	putAll(t, p, recs, r)
	closeProducer(t, p)
	most := 0
	for i := range recs {
		res, _ := r.get(&recs[i])
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		most = max(most, int(res.SubSequenceNumber)+1)
	}
	if most != 7 {
		t.Fatalf("largest aggregate held %d records, want 7", most)
	}
	checkStream(t, f.read(t), recs, 0)
	if _, err := New(f, Config{StreamName: "s", AggregationMaxCount: -1}); err == nil {
		t.Fatal("negative AggregationMaxCount accepted")
	}
}

// TestFailIfThrottled fails throttled entries at once with the service's error, as the
// KPL's FailIfThrottled does, instead of retrying them.
func TestFailIfThrottled(t *testing.T) {
	f := newFake(t, 1)
	f.entryHook = func(_ string, e types.PutRecordsRequestEntry) string {
		if bytes.HasPrefix(e.Data, []byte("key-3#")) {
			return "ProvisionedThroughputExceededException"
		}
		return ""
	}
	p := newTestProducer(t, f, Config{FailIfThrottled: true, DisableAggregation: true})
	recs := makeRecords(50, 5, 20)
	r := newResults(t)
	putAll(t, p, recs, r)
	r.wait(5 * time.Second)
	closeProducer(t, p)
	for i := range recs {
		res, _ := r.get(&recs[i])
		var pe *PutError
		throttled := recs[i].PartitionKey == "key-3"
		switch {
		case throttled && (!errors.As(res.Err, &pe) || pe.Code != "ProvisionedThroughputExceededException" || pe.Retryable || res.Attempts != 1):
			t.Fatalf("record %d: %+v", i, res)
		case !throttled && res.Err != nil:
			t.Fatalf("record %d: %v", i, res.Err)
		}
	}
	if s := p.Stats(); s.ThrottledRecords != 10 {
		t.Fatalf("%d throttled records counted", s.ThrottledRecords)
	}
}

// A record over 1 MiB put before the producer has learned the stream's limit is judged by
// the stream's own limit, not the default: PutAsync waits for the answer, then accepts the
// record on a stream raised to 4 MiB and refuses it naming the limit on one left at 1 MiB.
// TryPutAsync, which cannot wait, takes it and fails it alone once the limit is known.
func TestLargeRecordBeforeLimitKnown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kib    int32
		wantOK bool
	}{{"raised to 4 MiB", 4 << 10, true}, {"left at 1 MiB", 0, false}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, 1)
			f.maxRecordKiB = tc.kib
			f.describeGate = make(chan struct{})
			p := newTestProducer(t, f, Config{})
			all := makeRecords(4, 1, 100)
			small, tryBig, big := all[:2], all[2], all[3]
			tryBig.Data = append(tryBig.Data, bytes.Repeat([]byte("t"), 2<<20)...)
			big.Data = append(big.Data, bytes.Repeat([]byte("m"), 2<<20)...)
			r := newResults(t)
			r.expect(len(small) + 1)
			for i := range small {
				if err := p.PutAsync(context.Background(), &small[i], r.done); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.TryPutAsync(&tryBig, r.done); err != nil {
				t.Fatalf("TryPutAsync of 2 MiB before the limit was known: %v", err)
			}
			putErr := make(chan error, 1)
			go func() { putErr <- p.PutAsync(context.Background(), &big, r.done) }()
			select {
			case err := <-putErr:
				t.Fatalf("PutAsync of 2 MiB returned %v before the stream told its limit", err)
			case <-time.After(50 * time.Millisecond):
			}
			close(f.describeGate)
			err := <-putErr
			var ve *ValidationError
			switch {
			case tc.wantOK && err != nil:
				t.Fatalf("2 MiB record on a 4 MiB stream: %v", err)
			case tc.wantOK:
				r.expect(1)
			case !errors.As(err, &ve) || !strings.Contains(ve.Limit, "1048576"):
				t.Fatalf("2 MiB record on a 1 MiB stream: %v, want a ValidationError naming 1048576", err)
			}
			r.wait(10 * time.Second)
			closeProducer(t, p)
			for i := range small {
				if res, _ := r.get(&small[i]); res.Err != nil {
					t.Errorf("record %d beside the large ones: %v", i, res.Err)
				}
			}
			res, _ := r.get(&tryBig)
			if tc.wantOK && res.Err != nil || !tc.wantOK && (!errors.As(res.Err, &ve) || !strings.Contains(ve.Limit, "1048576")) {
				t.Errorf("TryPutAsync's 2 MiB record: %v (stream limit %d KiB)", res.Err, tc.kib)
			}
			want := append([]Record(nil), small...)
			if tc.wantOK {
				want = append(want, tryBig, big)
			}
			checkStream(t, f.read(t), want, 0)
		})
	}
}

// A record larger than its shard's byte bucket (a second of the shard's 1 MiB/s) overdraws
// the bucket whenever it goes, so the records queued behind it are always short of tokens:
// the wait for a fuller request must still end, or Flush and Linger never send the shard
// (seen as an agent's records expiring unsent behind a 2.5 MiB line).
func TestRecordLargerThanTheBucketDoesNotStallItsShard(t *testing.T) {
	f := newFake(t, 1)
	f.maxRecordKiB = 4 << 10
	p := newTestProducer(t, f, Config{Linger: time.Minute, MaxBatchBytes: 5 << 20, MaxBatchRecords: 500})
	for p.maxRecord() != 4<<20 {
		time.Sleep(time.Millisecond)
	}
	recs := makeRecords(2, 1, 10)
	recs[0].Data = append(recs[0].Data, bytes.Repeat([]byte("m"), 5<<19)...)
	r := newResults(t)
	putAll(t, p, recs, r)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush of a 2.5 MiB record and a small one behind it: %v", err)
	}
	r.wait(time.Second)
	for i := range recs {
		if res, _ := r.get(&recs[i]); res.Err != nil {
			t.Errorf("record %d: %v", i, res.Err)
		}
	}
	closeProducer(t, p)
	checkStream(t, f.read(t), recs, 0)
}

// TestLargeRecords writes to a stream whose maximum record size was raised to 8 MiB: records
// over 1 MiB are accepted and sent alone (too large for an aggregate), one larger than the
// default 5 MiB request bound in a request of its own; one over 8 MiB is refused naming the
// stream's limit.
func TestLargeRecords(t *testing.T) {
	f := newFake(t, 1)
	f.maxRecordKiB = 8 << 10
	p := newTestProducer(t, f, Config{})
	for p.maxRecord() != 8<<20 {
		time.Sleep(time.Millisecond)
	}
	recs := makeRecords(6, 2, 100)
	recs[1].Data = append(recs[1].Data, bytes.Repeat([]byte("m"), 2<<20)...)
	recs[4].Data = append(recs[4].Data, bytes.Repeat([]byte("g"), 6<<20)...)
	r := newResults(t)
	putAll(t, p, recs, r)
	tooBig := Record{PartitionKey: "k", Data: make([]byte, 8<<20)}
	var ve *ValidationError
	if err := p.PutAsync(context.Background(), &tooBig, r.done); !errors.As(err, &ve) || ve.Field != "Data" || !strings.Contains(ve.Limit, "8388608") {
		t.Fatalf("8 MiB plus key: %v", err)
	}
	r.wait(10 * time.Second)
	closeProducer(t, p)
	for i := range recs {
		if res, _ := r.get(&recs[i]); res.Err != nil {
			t.Fatalf("record %d: %v", i, res.Err)
		}
	}
	checkStream(t, f.read(t), recs, 0)
}
