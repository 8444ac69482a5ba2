package kinesisjson_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/internal/kinesisjson"
)

// A shard reader keeps one decoder and passes its option to every GetRecords call. The
// records' Data is valid until its next call; the strings may be kept.
func ExampleGetRecordsDecoder() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"Records":[{"SequenceNumber":"49590338271490256608559692538361571095921575989136588898",` +
			`"ApproximateArrivalTimestamp":1.607466963419E9,"Data":"aGVsbG8=","PartitionKey":"user-1"}],` +
			`"NextShardIterator":"next","MillisBehindLatest":0}`))
	}))
	defer srv.Close()
	client := kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("id", "secret", ""),
	})

	var dec kinesisjson.GetRecordsDecoder
	out, err := client.GetRecords(context.Background(), &kinesis.GetRecordsInput{ShardIterator: aws.String("it")}, dec.Option())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range out.Records {
		fmt.Printf("%s %s %s %s\n", *r.PartitionKey, r.Data, r.ApproximateArrivalTimestamp.Format("2006-01-02T15:04:05.000Z"), *r.SequenceNumber)
	}
	fmt.Println(*out.NextShardIterator, *out.MillisBehindLatest)
	// Output:
	// user-1 hello 2020-12-08T22:36:03.419Z 49590338271490256608559692538361571095921575989136588898
	// next 0
}
