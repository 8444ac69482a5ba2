package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
)

// fakeFirehose stands in for PutRecordBatch as the Firehose API documents it: up to 500
// records and 4 MiB per call (a bigger call is refused whole), each record at most 1,000 KiB,
// and a response entry per record, in order, with ErrorCode set for the records that failed
// (FailedPutCount counts them) while the others are accepted.
type fakeFirehose struct {
	mu       sync.Mutex
	failEach int // every failEach-th record of a call fails once with ServiceUnavailableException
	failed   map[string]bool
	got      map[string][]string
	calls    int
	maxSeen  int
	tooBig   int
}

func (f *fakeFirehose) PutRecordBatch(ctx context.Context, in *firehose.PutRecordBatchInput, _ ...func(*firehose.Options)) (*firehose.PutRecordBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	size := 0
	for _, r := range in.Records {
		size += len(r.Data)
	}
	if len(in.Records) > MaxFirehoseBatchRecords || size > MaxFirehoseBatchBytes {
		f.tooBig++
		return nil, fmt.Errorf("InvalidArgumentException: %d records, %d bytes", len(in.Records), size)
	}
	f.maxSeen = max(f.maxSeen, len(in.Records))
	out := &firehose.PutRecordBatchOutput{}
	var failed int32
	for i, r := range in.Records {
		key := string(r.Data)
		if f.failEach > 0 && i%f.failEach == 0 && !f.failed[key] {
			f.failed[key] = true
			failed++
			out.RequestResponses = append(out.RequestResponses, fhtypes.PutRecordBatchResponseEntry{
				ErrorCode: aws.String("ServiceUnavailableException"), ErrorMessage: aws.String("slow down")})
			continue
		}
		name := aws.ToString(in.DeliveryStreamName)
		f.got[name] = append(f.got[name], key)
		out.RequestResponses = append(out.RequestResponses, fhtypes.PutRecordBatchResponseEntry{RecordId: aws.String(fmt.Sprint(i))})
	}
	out.FailedPutCount = aws.Int32(failed)
	return out, nil
}

// TestFirehoseFlowDeliversWithAckedCheckpoints: a deliveryStream flow's lines go through
// PutRecordBatch calls of at most 500 records; records that Firehose fails within a call are
// sent again, and every line arrives exactly once; the checkpoint ends at the file's end.
func TestFirehoseFlowDeliversWithAckedCheckpoints(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	var b strings.Builder
	const lines = 3000
	for i := 0; i < lines; i++ {
		fmt.Fprintf(&b, "firehose line %05d\n", i)
	}
	appendFile(t, p, b.String())
	cfg := testConfig(t, p)
	cfg.Flows[0].KinesisStream = ""
	cfg.Flows[0].DeliveryStream = "fh-one"
	cfg.Flows[0].MaxBufferAge = time.Second
	fake := &fakeFirehose{failEach: 7, failed: map[string]bool{}, got: map[string][]string{}}
	fs, err := NewFirehoseSink(fake, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	a, stop := running(t, cfg, Destinations{Firehose: fs})
	eventually(t, 20*time.Second, "every line acknowledged", func() bool { return a.Stats().RecordsAcked == lines })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := fs.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	seen := map[string]int{}
	for _, r := range fake.got["fh-one"] {
		seen[r]++
	}
	for i := 0; i < lines; i++ {
		if n := seen[fmt.Sprintf("firehose line %05d\n", i)]; n != 1 {
			t.Errorf("line %d delivered %d times", i, n)
		}
	}
	if fake.tooBig > 0 || fake.maxSeen > MaxFirehoseBatchRecords {
		t.Errorf("%d calls over the limits, largest %d records", fake.tooBig, fake.maxSeen)
	}
	if len(fake.failed) == 0 || a.Stats().RecordsRetried < int64(len(fake.failed)) {
		t.Errorf("%d records failed, %d re-sent", len(fake.failed), a.Stats().RecordsRetried)
	}
	cd, err := loadCheckpoints(cfg.CheckpointFile)
	if err != nil || len(cd.Files) != 1 || cd.Files[0].Offset != int64(b.Len()) || !strings.HasPrefix(cd.Files[0].Flow, "firehose/fh-one|") {
		t.Errorf("checkpoints %+v, %v; want the file's end %d", cd, err, b.Len())
	}
	t.Logf("%d calls, largest %d records, %d record failures re-sent", fake.calls, fake.maxSeen, len(fake.failed))
}

// TestFirehoseBatchBytesLimit: records that would take a call over 4 MiB go in the next call.
func TestFirehoseBatchBytesLimit(t *testing.T) {
	cfg := testConfig(t, "/var/log/none")
	cfg.Flows[0].KinesisStream, cfg.Flows[0].DeliveryStream = "", "fh"
	fake := &fakeFirehose{failed: map[string]bool{}, got: map[string][]string{}}
	fs, err := NewFirehoseSink(fake, cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 900<<10)
	for i := 0; i < 10; i++ {
		rec := Record{DeliveryStream: "fh", Data: []byte(fmt.Sprintf("%02d%s\n", i, big))}
		if err := fs.Send(context.Background(), rec, Ack{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	fs.Close(context.Background())
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.tooBig > 0 || len(fake.got["fh"]) != 10 || fake.calls < 3 {
		t.Errorf("%d calls, %d over 4 MiB, %d records delivered", fake.calls, fake.tooBig, len(fake.got["fh"]))
	}
}
