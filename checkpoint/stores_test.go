package checkpoint

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/shardline/shardline/internal/testenv"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newMemory(t *testing.T) Store { return NewMemoryStore() }

func newFile(t *testing.T) Store {
	t.Helper()
	s, err := OpenFileStore(FileConfig{Path: filepath.Join(t.TempDir(), "leases.json"), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// dynamoTable returns a client for the emulator and a fresh table name, deleted at test end.
func dynamoTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	client := testenv.DynamoDB(t, nil)
	return client, testenv.TableName(t, client)
}

func newDynamoStore(t *testing.T, client DynamoDBAPI, table string) *DynamoDBStore {
	t.Helper()
	s, err := NewDynamoDBStore(client, DynamoDBConfig{
		TableName:         table,
		TablePollInterval: 20 * time.Millisecond,
		// Small pages make every ListLeases with more than a few leases exercise paging.
		ScanPageSize: 7,
		Logger:       quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newDynamo(t *testing.T) Store {
	t.Helper()
	client, table := dynamoTable(t)
	return newDynamoStore(t, client, table)
}

func TestConformanceMemory(t *testing.T) { runConformance(t, newMemory) }
func TestConformanceFile(t *testing.T)   { runConformance(t, newFile) }
func TestConformanceDynamoDB(t *testing.T) {
	testenv.DynamoDBEndpoint(t)
	runConformance(t, newDynamo)
}
