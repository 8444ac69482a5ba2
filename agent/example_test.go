package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shardline/shardline/agent"
)

// printSink delivers records by printing them; a real program uses the producer.
type printSink struct{ got chan string }

func (s printSink) Send(ctx context.Context, rec agent.Record, ack agent.Ack) error {
	s.got <- fmt.Sprintf("%s <- %s", rec.Stream, strings.TrimSuffix(string(rec.Data), "\n"))
	ack.Done(nil) // delivered; a producer calls this from its own goroutine, later
	return nil
}

// Example loads an agent.json, as the Amazon Kinesis Agent reads it, and runs the agent with a
// sink until two records arrive.
func Example() {
	dir, _ := os.MkdirTemp("", "agent-example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "access.log"), []byte(
		`127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326`+"\n"+
			`10.0.0.7 - - [10/Oct/2000:13:55:37 -0700] "GET /index.html HTTP/1.0" 304 -`+"\n"), 0o644)
	conf := fmt.Sprintf(`{
	  "stateDirectory": %q,
	  "maxSendingThreads": 8,
	  "flows": [{
	    "filePattern": %q,
	    "kinesisStream": "web",
	    "initialPosition": "START_OF_FILE",
	    "dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "COMMONAPACHELOG"}]
	  }]
	}`, filepath.Join(dir, "state"), filepath.Join(dir, "*.log"))
	os.WriteFile(filepath.Join(dir, "agent.json"), []byte(conf), 0o644)

	cfg, err := agent.LoadConfig(filepath.Join(dir, "agent.json"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, w := range cfg.Warnings {
		fmt.Println("warning:", w)
	}
	cfg.Logger = nil // slog.Default()
	sink := printSink{got: make(chan string, 10)}
	a, err := agent.New(cfg, sink)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	fmt.Println(<-sink.got)
	fmt.Println(<-sink.got)
	cancel()
	fmt.Println("stopped:", <-done)
	// Output:
	// warning: maxSendingThreads: ignored: sending concurrency is the producer's
	// web <- {"host":"127.0.0.1","ident":null,"authuser":"frank","datetime":"10/Oct/2000:13:55:36 -0700","request":"GET /apache_pb.gif HTTP/1.0","response":"200","bytes":"2326"}
	// web <- {"host":"10.0.0.7","ident":null,"authuser":null,"datetime":"10/Oct/2000:13:55:37 -0700","request":"GET /index.html HTTP/1.0","response":"304","bytes":null}
	// stopped: <nil>
}
