package iam

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shardline/shardline/consumer"
	"github.com/shardline/shardline/internal/testenv"
	"github.com/shardline/shardline/metrics"
	"github.com/shardline/shardline/producer"
)

// quiet keeps the roles' logs out of the test output.
var quiet = slog.New(slog.DiscardHandler)

// recorder is an http.RoundTripper that notes the API action of every request, in IAM's
// service:Action form, before passing it on. Kinesis and DynamoDB name the action in the
// X-Amz-Target header (AWS JSON protocol); CloudWatch over awsQuery in the form body's Action.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen map[string]bool
}

var jsonPrefixes = map[string]string{"Kinesis_20131202.": "kinesis:", "DynamoDB_20120810.": "dynamodb:", "GraniteServiceVersion20100801.": "cloudwatch:"}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	action := ""
	if target := req.Header.Get("X-Amz-Target"); target != "" {
		for prefix, service := range jsonPrefixes {
			if name, ok := strings.CutPrefix(target, prefix); ok {
				action = service + name
			}
		}
	} else if req.Body != nil && strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
		if req.Header.Get("Content-Encoding") == "gzip" {
			// The SDK compresses large PutMetricData bodies (its request compression feature).
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			if body, err = io.ReadAll(zr); err != nil {
				return nil, err
			}
		}
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("Action") != "" {
			action = "cloudwatch:" + form.Get("Action")
		}
	}
	if action == "" {
		action = "unknown:" + req.URL.Path
	}
	r.mu.Lock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.seen[action] = true
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

func (r *recorder) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for a := range r.seen {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// granted returns the actions a role's policy in policies.json allows, from every statement or
// from the statements whose actions include one of only.
func granted(t *testing.T, role string) []string {
	t.Helper()
	b, err := os.ReadFile("policies.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Roles map[string]struct {
			Statement []struct {
				Action json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, st := range file.Roles[role].Statement {
		var one string
		var many []string
		if json.Unmarshal(st.Action, &one) == nil {
			many = []string{one}
		} else if err := json.Unmarshal(st.Action, &many); err != nil {
			t.Fatalf("%s: Action %s: %v", role, st.Action, err)
		}
		out = append(out, many...)
	}
	slices.Sort(out)
	return out
}

// TestProducerRoleCalls runs the producer with a CloudWatch publisher for its metrics, as the
// README's producer policy assumes, and checks that the policy grants exactly the actions
// called.
func TestProducerRoleCalls(t *testing.T) {
	rec := &recorder{next: http.DefaultTransport}
	hc := testenv.HTTPClient(rec)
	name := testenv.CreateStream(t, testenv.Kinesis(t, nil), 2)
	reg := metrics.NewRegistry()
	pub, err := metrics.NewCloudWatchPublisher(testenv.CloudWatch(t, hc), reg, metrics.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pub.Start()
	p, err := producer.New(testenv.Kinesis(t, hc), producer.Config{StreamName: name, Metrics: reg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 50 {
		if _, err := p.Put(ctx, producer.Record{PartitionKey: fmt.Sprint(i), Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.actions(), granted(t, "producer"); !slices.Equal(got, want) {
		t.Errorf("the producer called %v; its policy grants %v", got, want)
	}
}

// TestConsumerRoleCalls runs a consumer worker with polling and with enhanced fan-out, each
// until it has processed what was written, and checks that every action called is granted by
// the README's consumer policy. A short run does not reach every path (deleting the lease of a
// finished shard, deregistering), so the check is that nothing called would be denied.
func TestConsumerRoleCalls(t *testing.T) {
	for _, mode := range []consumer.Retrieval{consumer.Polling, consumer.FanOut} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			rec := &recorder{next: http.DefaultTransport}
			var base http.RoundTripper = rec
			if mode == consumer.FanOut {
				base = consumer.EmulatorTransport(rec)
			}
			hc := testenv.HTTPClient(base)
			admin := testenv.Kinesis(t, nil)
			name := testenv.CreateStream(t, admin, 1)
			p, err := producer.New(admin, producer.Config{StreamName: name, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			for i := range 20 {
				if _, err := p.Put(ctx, producer.Record{PartitionKey: fmt.Sprint(i), Data: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			ddb := testenv.DynamoDB(t, hc)
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			var processed atomic.Int64
			w, err := consumer.New(consumer.Config{
				StreamName:      name,
				ApplicationName: testenv.TableName(t, testenv.DynamoDB(t, nil)),
				Kinesis:         testenv.Kinesis(t, hc),
				DynamoDB:        ddb,
				Retrieval:       mode,
				InitialPosition: consumer.TrimHorizon,
				Metrics:         metrics.NewRegistry(),
				Logger:          quiet,
				Processor: consumer.RecordFunc(func(context.Context, consumer.Record) error {
					if processed.Add(1) == 20 {
						stop()
					}
					return nil
				}),
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Run(runCtx); err != nil && runCtx.Err() == nil {
				t.Fatalf("Run: %v", err)
			}
			if processed.Load() < 20 {
				t.Fatalf("processed %d of 20 records", processed.Load())
			}
			allowed := granted(t, "consumer")
			for _, a := range rec.actions() {
				if !slices.Contains(allowed, a) {
					t.Errorf("the %v consumer called %s, which its policy does not grant (%v)", mode, a, allowed)
				}
			}
			t.Logf("%v consumer called %v", mode, rec.actions())
		})
	}
}
