package producer

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// closedAddr returns a loopback address where nothing listens: a connection to it is refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestClassifyConnectionRefused files a refused connection under its own code, apart from a
// connection reset: both are retried, but a refused one says nothing listens at the
// endpoint. The error is a real dial's, through the SDK client, so the wrapping is the SDK's.
func TestClassifyConnectionRefused(t *testing.T) {
	addr := closedAddr(t)
	kc := kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://" + addr),
		Credentials:      aws.AnonymousCredentials{},
		RetryMaxAttempts: 1,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{
		StreamName: aws.String("s"),
		Records:    []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("d")}},
	})
	if err == nil {
		t.Fatal("PutRecords to a closed port succeeded")
	}
	if cls, code := classifyError(err); cls != classRetry || code != "ConnectionRefused" {
		t.Fatalf("refused connection classified %v %q (%v)", cls, code, err)
	}
	// A reset stays a reset.
	reset := fmt.Errorf("send: %w", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)})
	if cls, code := classifyError(reset); cls != classRetry || code != "ConnectionReset" {
		t.Fatalf("reset connection classified %v %q", cls, code)
	}
}
