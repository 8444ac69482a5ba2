package checkpoint

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// waitIndexActive waits until ListLeaseKeysForOwner would use the index, checking DescribeTable.
func waitIndexActive(t *testing.T, client *dynamodb.Client, table string) *types.GlobalSecondaryIndexDescription {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := client.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range out.Table.GlobalSecondaryIndexes {
			if aws.ToString(g.IndexName) == LeaseOwnerIndexName && g.IndexStatus == types.IndexStatusActive {
				return &out.Table.GlobalSecondaryIndexes[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("index %s not ACTIVE after 30 s: %+v", LeaseOwnerIndexName, out.Table.GlobalSecondaryIndexes)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recordingIndexClient records the UpdateTable requests it passes on.
type recordingIndexClient struct {
	*dynamodb.Client
	updates []*dynamodb.UpdateTableInput
}

func (c *recordingIndexClient) UpdateTable(ctx context.Context, in *dynamodb.UpdateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error) {
	c.updates = append(c.updates, in)
	return c.Client.UpdateTable(ctx, in, optFns...)
}

func indexKeys(ks []types.KeySchemaElement) []string {
	var keys []string
	for _, k := range ks {
		keys = append(keys, aws.ToString(k.AttributeName)+":"+string(k.KeyType))
	}
	return keys
}

var wantIndexKeys = []string{"leaseOwner:HASH", "leaseKey:RANGE"}

// TestDynamoDBOwnerIndexNewTable checks that a table EnsureTable creates has the KCL 3.x's
// lease owner index as DynamoDBLeaseRefresher.createLeaseOwnerToLeaseKeyIndexIfNotExists
// defines it, and that ListLeaseKeysForOwner answers from it with one Query, not a Scan.
func TestDynamoDBOwnerIndexNewTable(t *testing.T) {
	ctx := context.Background()
	client, table := dynamoTable(t)
	s := newDynamoStore(t, client, table)
	if err := s.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	gsi := waitIndexActive(t, client, table)
	if got := indexKeys(gsi.KeySchema); !slices.Equal(got, wantIndexKeys) {
		t.Errorf("index key schema %v, want %v", got, wantIndexKeys)
	}
	if gsi.Projection == nil || gsi.Projection.ProjectionType != types.ProjectionTypeKeysOnly {
		t.Errorf("index projection %+v, want KEYS_ONLY", gsi.Projection)
	}
	for i, owner := range []string{"a", "b", "a", "", "a"} {
		l, err := s.CreateLeaseIfNotExists(ctx, Lease{Key: "shardId-" + string(rune('0'+i)), Checkpoint: TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if _, err := s.TakeLease(ctx, l, owner); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A second store (another worker) learns at EnsureTable that the index is ACTIVE.
	s2 := newDynamoStore(t, client, table)
	if err := s2.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	before := s2.Stats()
	got, err := s2.ListLeaseKeysForOwner(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"shardId-0", "shardId-2", "shardId-4"}; !slices.Equal(got, want) {
		t.Errorf("ListLeaseKeysForOwner(a) = %v, want %v", got, want)
	}
	if d, reqs := statsDelta(before, s2.Stats(), OpListLeaseKeysForOwner); reqs["Query"] != 1 || reqs["Scan"] != 0 || d.Requests != 1 {
		t.Errorf("requests %v, want one Query and no Scan", reqs)
	}
	if !s2.OwnerIndexActive() {
		t.Error("OwnerIndexActive false with an ACTIVE index")
	}
}

// TestDynamoDBOwnerIndexExistingTable checks that EnsureTable on a table created without the
// index (as the KCL 2.x creates it) asks for the index the way the KCL 3.x does, one
// UpdateTable with the attribute definitions, KEYS_ONLY and the table's provisioned capacity,
// and that until the index is ACTIVE ListLeaseKeysForOwner scans. (dynalite accepts the
// UpdateTable but builds no index, so here the table stays without one.)
func TestDynamoDBOwnerIndexExistingTable(t *testing.T) {
	ctx := context.Background()
	raw, table := dynamoTable(t)
	_, err := raw.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:             aws.String(table),
		AttributeDefinitions:  []types.AttributeDefinition{{AttributeName: aws.String(AttrLeaseKey), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:             []types.KeySchemaElement{{AttributeName: aws.String(AttrLeaseKey), KeyType: types.KeyTypeHash}},
		BillingMode:           types.BillingModeProvisioned,
		ProvisionedThroughput: &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(7), WriteCapacityUnits: aws.Int64(9)},
	})
	if err != nil {
		t.Fatal(err)
	}
	client := &recordingIndexClient{Client: raw}
	s := newDynamoStore(t, client, table)
	if err := s.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	if len(client.updates) != 1 {
		t.Fatalf("%d UpdateTable requests, want 1", len(client.updates))
	}
	u := client.updates[0]
	var defs []string
	for _, d := range u.AttributeDefinitions {
		defs = append(defs, aws.ToString(d.AttributeName)+":"+string(d.AttributeType))
	}
	if want := []string{"leaseOwner:S", "leaseKey:S"}; !slices.Equal(defs, want) {
		t.Errorf("attribute definitions %v, want %v", defs, want)
	}
	if len(u.GlobalSecondaryIndexUpdates) != 1 || u.GlobalSecondaryIndexUpdates[0].Create == nil {
		t.Fatalf("index updates %+v, want one Create", u.GlobalSecondaryIndexUpdates)
	}
	c := u.GlobalSecondaryIndexUpdates[0].Create
	if aws.ToString(c.IndexName) != LeaseOwnerIndexName || !slices.Equal(indexKeys(c.KeySchema), wantIndexKeys) || c.Projection.ProjectionType != types.ProjectionTypeKeysOnly {
		t.Errorf("index %s %v %+v, want %s %v KEYS_ONLY", aws.ToString(c.IndexName), indexKeys(c.KeySchema), c.Projection, LeaseOwnerIndexName, wantIndexKeys)
	}
	if c.ProvisionedThroughput == nil || aws.ToInt64(c.ProvisionedThroughput.ReadCapacityUnits) != 7 || aws.ToInt64(c.ProvisionedThroughput.WriteCapacityUnits) != 9 {
		t.Errorf("index throughput %+v, want the table's 7 read and 9 write units", c.ProvisionedThroughput)
	}
	l, err := s.CreateLeaseIfNotExists(ctx, Lease{Key: "shardId-0", Checkpoint: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeLease(ctx, l, "a"); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	got, err := s.ListLeaseKeysForOwner(ctx, "a")
	if err != nil || !slices.Equal(got, []string{"shardId-0"}) {
		t.Fatalf("ListLeaseKeysForOwner = %v, %v; want [shardId-0]", got, err)
	}
	if _, reqs := statsDelta(before, s.Stats(), OpListLeaseKeysForOwner); reqs["Scan"] != 1 || reqs["Query"] != 0 {
		t.Errorf("requests %v, want one Scan (no ACTIVE index)", reqs)
	}
}

// TestDynamoDBOwnerIndexDisabled checks that DisableOwnerIndex leaves the table without the
// index and that ListLeaseKeysForOwner then scans, with the same answer.
func TestDynamoDBOwnerIndexDisabled(t *testing.T) {
	ctx := context.Background()
	client, table := dynamoTable(t)
	s, err := NewDynamoDBStore(client, DynamoDBConfig{TableName: table, TablePollInterval: 20 * time.Millisecond, DisableOwnerIndex: true, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Table.GlobalSecondaryIndexes) != 0 {
		t.Fatalf("indexes %+v, want none with DisableOwnerIndex", out.Table.GlobalSecondaryIndexes)
	}
	l, err := s.CreateLeaseIfNotExists(ctx, Lease{Key: "shardId-0", Checkpoint: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeLease(ctx, l, "a"); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	got, err := s.ListLeaseKeysForOwner(ctx, "a")
	if err != nil || !slices.Equal(got, []string{"shardId-0"}) {
		t.Fatalf("ListLeaseKeysForOwner = %v, %v; want [shardId-0]", got, err)
	}
	if _, reqs := statsDelta(before, s.Stats(), OpListLeaseKeysForOwner); reqs["Scan"] != 1 || reqs["Query"] != 0 {
		t.Errorf("requests %v, want one Scan (no index)", reqs)
	}
	if s.OwnerIndexActive() {
		t.Error("OwnerIndexActive true without an index")
	}
}
