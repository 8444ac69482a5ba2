package kinesistest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/transport/http/protocol/rpcv2"
)

// tamper changes one byte of each request body after the SDK signed it.
type tamper struct{ next http.RoundTripper }

func (tp tamper) RoundTrip(r *http.Request) (*http.Response, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	b = bytes.Replace(b, []byte("orders"), []byte("ordert"), 1)
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(b))
	return tp.next.RoundTrip(r2)
}

// With VerifySignatures the server takes requests signed with its secret only.
func TestVerifySignatures(t *testing.T) {
	ctx := context.Background()
	creds := Credentials{AccessKeyID: "AKIDSTRICT", SecretAccessKey: "right-secret"}
	srv := NewServer(Options{VerifySignatures: true, Credentials: creds})
	t.Cleanup(srv.Close)
	create := func(c *kinesis.Client, name string) error {
		_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)})
		return err
	}
	code := func(err error) string {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return ae.ErrorCode()
		}
		return ""
	}
	if err := create(srv.Client(), "orders"); err != nil {
		t.Fatalf("the right secret: %v", err)
	}
	cbor := srv.Client(func(o *kinesis.Options) { o.Protocol = rpcv2.NewCBOR(schemas.Kinesis_20131202) })
	if err := create(cbor, "orders-cbor"); err != nil {
		t.Fatalf("the right secret over CBOR: %v", err)
	}
	withSession := srv.Client(func(o *kinesis.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, "session-token")
	})
	if err := create(withSession, "orders-session"); err != nil {
		t.Fatalf("the right secret with a session token: %v", err)
	}

	wrongSecret := srv.Client(func(o *kinesis.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(creds.AccessKeyID, "wrong-secret", "")
	})
	if err := create(wrongSecret, "x1"); code(err) != CodeInvalidSignature {
		t.Errorf("a wrong secret: want %s, got %v", CodeInvalidSignature, err)
	}
	wrongKey := srv.Client(func(o *kinesis.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIDOTHER", creds.SecretAccessKey, "")
	})
	if err := create(wrongKey, "x2"); code(err) != CodeUnrecognizedClient {
		t.Errorf("another access key: want %s, got %v", CodeUnrecognizedClient, err)
	}
	tampered := srv.Client(func(o *kinesis.Options) {
		o.HTTPClient = &http.Client{Transport: tamper{http.DefaultTransport}}
	})
	if err := create(tampered, "orders"); code(err) != CodeInvalidSignature {
		t.Errorf("a body changed after signing: want %s, got %v", CodeInvalidSignature, err)
	}

	// Without VerifySignatures any secret is taken.
	lax := NewServer(Options{})
	t.Cleanup(lax.Close)
	laxWrong := lax.Client(func(o *kinesis.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIDANY", "any-secret", "")
	})
	if err := create(laxWrong, "orders"); err != nil {
		t.Errorf("without verification: %v", err)
	}
}
