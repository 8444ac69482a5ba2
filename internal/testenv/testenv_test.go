package testenv_test

import (
	"context"
	"testing"

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
