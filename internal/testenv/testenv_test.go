package testenv_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/shardline/shardline/internal/testenv"
)

func TestEmulatorsAnswer(t *testing.T) {
	ctx := context.Background()
	kc := testenv.Kinesis(t, nil)
	name := testenv.CreateStream(t, kc, 2)
	out, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: &name})
	if err != nil || len(out.Shards) != 2 {
		t.Fatalf("ListShards on %s: %v shards, err %v", name, len(out.Shards), err)
	}
	if _, err := testenv.DynamoDB(t, nil).ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("dynalite ListTables: %v", err)
	}
	if _, err := testenv.CloudWatch(t, nil).ListMetrics(ctx, &cloudwatch.ListMetricsInput{}); err != nil {
		t.Fatalf("moto ListMetrics: %v", err)
	}
}

// TestDynamoDBSurvivesADroppedRequest drops a connection halfway through a request body, as
// a client does when its context ends mid-send, and checks that the DynamoDB emulator still
// answers. dynalite rethrows the request stream's error (its httpHandler's
// req.on('error', ...) throws), which ends the process and with it every later test that
// uses a lease table; scripts/emulators.sh starts it through scripts/dynalite.js, which
// keeps it serving.
func TestDynamoDBSurvivesADroppedRequest(t *testing.T) {
	endpoint := testenv.DynamoDBEndpoint(t)
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-amz-json-1.0\r\n"+
			"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 1000\r\n\r\n{\"Lim", u.Host)
		// Let the server read the headers and the start of the body, then reset the
		// connection rather than closing it politely.
		time.Sleep(100 * time.Millisecond)
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := testenv.DynamoDB(t, nil).ListTables(context.Background(), &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("dynalite stopped answering after a client dropped a request: %v", err)
	}
}
