package consumer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/checkpoint"
)

func TestStreamARNConfig(t *testing.T) {
	base := Config{ApplicationName: "app", Processor: RecordFunc(nil), Kinesis: newFakeKinesis("s", 1), LeaseStore: checkpoint.NewMemoryStore()}
	const arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders"
	c := base
	c.StreamARN = arn
	got, err := c.withDefaults()
	if err != nil || got.StreamName != "orders" || got.StreamARN != arn {
		t.Fatalf("StreamARN alone: %+v, %v; want the name taken from the ARN", got.StreamName, err)
	}
	c.StreamName = "orders"
	if _, err := c.withDefaults(); err != nil {
		t.Errorf("matching StreamName and StreamARN: %v", err)
	}
	c.StreamName = "payments"
	if _, err := c.withDefaults(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "StreamName") {
		t.Errorf("StreamName differing from the ARN: %v, want ErrInvalidConfig naming StreamName", err)
	}
	for _, bad := range []string{
		"orders",
		"arn:aws:kinesis:eu-west-1:123456789012:orders",
		"arn:aws:sqs:eu-west-1:123456789012:stream/orders",
		"arn:aws:kinesis:eu-west-1:12345:stream/orders",
		"arn:aws:kinesis:eu-west-1:123456789012:stream/",
		"arn:aws:kinesis:eu-west-1:123456789012:stream/a b",
		"arn:aws:kinesis::123456789012:stream/orders",
		"arn:aws:kinesis:eu-west-1:123456789012:stream/" + strings.Repeat("x", 129),
	} {
		c := base
		c.StreamARN = bad
		if _, err := c.withDefaults(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "StreamARN") {
			t.Errorf("StreamARN %q: %v, want ErrInvalidConfig naming StreamARN", bad, err)
		}
	}
	if _, err := base.withDefaults(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("neither StreamName nor StreamARN: %v", err)
	}
}

// FuzzStreamNameFromARN checks that the ARN parser never panics and accepts only ARNs it can
// rebuild from the name it returns.
func FuzzStreamNameFromARN(f *testing.F) {
	for _, s := range []string{
		"arn:aws:kinesis:eu-west-1:123456789012:stream/orders",
		"arn:aws-cn:kinesis:cn-north-1:123456789012:stream/a.b-c_d",
		"arn:aws:kinesis:eu-west-1:123456789012:stream/orders:extra",
		"arn:aws:kinesis:eu-west-1:123456789012:stream/orders/consumer/c:1",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arn string) {
		name, err := streamNameFromARN(arn)
		if err != nil {
			return
		}
		if name == "" || !strings.HasSuffix(arn, ":stream/"+name) || strings.Count(arn, ":") != 5 {
			t.Fatalf("accepted %q as stream %q", arn, name)
		}
	})
}

// streamRecorder passes Kinesis calls through and keeps how they named the stream.
type streamRecorder struct {
	KinesisAPI
	mu    sync.Mutex
	named []string // "ListShards name=... arn=..."
}

func (r *streamRecorder) note(op string, name, arn *string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.named = append(r.named, op+" name="+aws.ToString(name)+" arn="+aws.ToString(arn))
}

func (r *streamRecorder) ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	if in.NextToken == nil {
		r.note("ListShards", in.StreamName, in.StreamARN)
	}
	return r.KinesisAPI.ListShards(ctx, in, optFns...)
}

func (r *streamRecorder) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	r.note("GetShardIterator", in.StreamName, in.StreamARN)
	return r.KinesisAPI.GetShardIterator(ctx, in, optFns...)
}

func (r *streamRecorder) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	r.note("GetRecords", nil, in.StreamARN)
	return r.KinesisAPI.GetRecords(ctx, in, optFns...)
}

// TestWorkerByStreamARN runs a worker configured with the stream's ARN only: it must process
// every record and name the stream by ARN in every request, as reading a stream of another
// account requires.
func TestWorkerByStreamARN(t *testing.T) {
	checkNoLeak(t)
	env := newEmuEnv(t, 2, nil, nil)
	sum, err := env.kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(env.stream)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(sum.StreamDescriptionSummary.StreamARN)
	c := newCollector()
	prod := newTestProducer(t, env.kc, env.stream)
	n, err := prod.produce(context.Background(), testKeys(40), 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec := &streamRecorder{KinesisAPI: env.kc}
	cfg := env.config(t, "w1", processorFor(c, "w1", nil))
	cfg.StreamName, cfg.StreamARN, cfg.Kinesis = "", arn, rec
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rw := runWorker(t, w)
	c.waitDistinct(t, n, 30*time.Second)
	if err := rw.stop(); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range rec.named {
		op, _, _ := strings.Cut(r, " ")
		seen[op] = true
		if !strings.HasSuffix(r, " name= arn="+arn) {
			t.Errorf("%s: want the stream named by ARN only", r)
		}
	}
	for _, op := range []string{"ListShards", "GetShardIterator", "GetRecords"} {
		if !seen[op] {
			t.Errorf("no %s request seen", op)
		}
	}
}
