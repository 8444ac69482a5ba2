package fleet

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// A throttled request is tried four times, as the DynamoDB client does, and then fails with
// the table's error; one that succeeds is sent once.
func TestSDKRetryAttempts(t *testing.T) {
	table := NewTable()
	ctx := context.Background()
	if _, err := table.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("t")}); err != nil {
		t.Fatal(err)
	}
	c := newSDKRetry(table, 1000)
	get := &dynamodb.GetItemInput{TableName: aws.String("t"), Key: map[string]types.AttributeValue{"leaseKey": &types.AttributeValueMemberS{Value: "k"}}}
	if _, err := c.GetItem(ctx, get); err != nil {
		t.Fatal(err)
	}
	if n := table.Counts().Requests["GetItem"]; n != 1 {
		t.Errorf("%d requests for a call that succeeded, want 1", n)
	}
	table.SetThrottle(1)
	_, err := c.GetItem(ctx, get)
	var pte *types.ProvisionedThroughputExceededException
	if !errors.As(err, &pte) {
		t.Fatalf("error %v, want the table's ProvisionedThroughputExceededException", err)
	}
	if n := table.Counts().Requests["GetItem"]; n != 5 {
		t.Errorf("%d requests after a throttled call, want 1 + 4 attempts", n-1)
	}
}
