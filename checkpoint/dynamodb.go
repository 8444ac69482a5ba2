package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/shardline/shardline/metrics"
)

// DynamoDBAPI is the part of the DynamoDB client the store uses; *dynamodb.Client satisfies it,
// and tests can substitute their own.
type DynamoDBAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// DynamoDBIndexAPI is the part of the DynamoDB client the store needs for the lease owner index
// (LeaseOwnerIndexName); *dynamodb.Client satisfies it. A DynamoDBAPI without these methods
// still works: the store then lists a worker's leases with a Scan.
type DynamoDBIndexAPI interface {
	UpdateTable(ctx context.Context, in *dynamodb.UpdateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

var _ DynamoDBIndexAPI = (*dynamodb.Client)(nil)

// LeaseOwnerIndexName is the global secondary index of the lease table that the KCL 3.x
// creates (DynamoDBLeaseRefresher.LEASE_OWNER_TO_LEASE_KEY_INDEX_NAME): hash key leaseOwner,
// range key leaseKey, both S, projecting the keys only. A worker queries it for the leases it
// owns instead of scanning the table.
const LeaseOwnerIndexName = "LeaseOwnerToLeaseKeyIndex"

// ownerIndexRecheck is how often, at most, ListLeaseKeysForOwner asks DescribeTable whether an
// index that was not ACTIVE has become so: the KCL polls its index's status every 10 s while it
// waits (DynamicMigrationComponentsInitializer.createGsi).
const ownerIndexRecheck = 10 * time.Second

// Defaults of DynamoDBConfig.
const (
	DefaultTableActiveTimeout = 2 * time.Minute
	DefaultTablePollInterval  = time.Second
	DefaultCapacityUnits      = 10
)

// DynamoDBConfig configures a DynamoDBStore. Only TableName is required.
type DynamoDBConfig struct {
	// TableName is the lease table. The consumer uses its application name, as the KCL does,
	// so a fleet moving from the KCL keeps the same table and its checkpoints.
	TableName string
	// BillingMode for a table EnsureTable creates. Default: types.BillingModePayPerRequest
	// (on-demand), which needs no capacity planning and costs nothing while idle.
	BillingMode types.BillingMode
	// ReadCapacityUnits and WriteCapacityUnits apply only with types.BillingModeProvisioned.
	// Default: DefaultCapacityUnits each.
	ReadCapacityUnits  int64
	WriteCapacityUnits int64 // see ReadCapacityUnits
	// TableActiveTimeout bounds how long EnsureTable waits for the table to become ACTIVE.
	// Default: DefaultTableActiveTimeout.
	TableActiveTimeout time.Duration
	// TablePollInterval is the pause between DescribeTable calls while waiting. Default:
	// DefaultTablePollInterval.
	TablePollInterval time.Duration
	// ConsistentReads makes GetLease and ListLeases strongly consistent, at twice the read
	// capacity. Default false, like the KCL: conditional writes are always checked against
	// the latest state, so a slightly stale list only delays a take by one cycle. Reads the
	// store makes to explain a refused write are always consistent.
	ConsistentReads bool
	// ScanPageSize limits the items per Scan page of ListLeases; 0 lets DynamoDB fill 1 MB
	// pages.
	ScanPageSize int32
	// DisableOwnerIndex stops EnsureTable from adding LeaseOwnerIndexName to a table that
	// lacks it (for credentials without dynamodb:UpdateTable, or to leave a table as it is).
	// An index that exists is used either way. Default false: the index is created, as the
	// KCL 3.x creates it.
	DisableOwnerIndex bool
	// Logger receives table creation, recovered retries and skipped rows. Default:
	// slog.Default().
	Logger *slog.Logger
	// Metrics, when not nil, receives DynamoDBRequests, DynamoDBReadCapacity and
	// DynamoDBWriteCapacity for every request, with the store operation and table name as
	// dimensions. Stats reports the same figures either way. Default: nil (no metrics).
	Metrics *metrics.Registry
}

// DynamoDBStore keeps leases in a DynamoDB table whose items have the Java KCL's lease schema
// (see the package documentation), so Shardline and KCL workers can read each other's
// checkpoints. Safe for concurrent use; several stores, in one process or many, may share a
// table, which is how a fleet coordinates.
type DynamoDBStore struct {
	client DynamoDBAPI
	cfg    DynamoDBConfig
	log    *slog.Logger
	stats  *statsRecorder

	// indexActive is set once DescribeTable showed LeaseOwnerIndexName ACTIVE; until then
	// ListLeaseKeysForOwner scans, and rechecks at most every ownerIndexRecheck.
	indexActive  atomic.Bool
	indexChecked atomic.Int64 // unix nanoseconds of the last status check
}

var _ Store = (*DynamoDBStore)(nil)

// NewDynamoDBStore returns a store for cfg.TableName using client. It makes no request;
// call EnsureTable before first use.
func NewDynamoDBStore(client DynamoDBAPI, cfg DynamoDBConfig) (*DynamoDBStore, error) {
	if client == nil {
		return nil, errors.New("checkpoint: nil DynamoDB client")
	}
	if cfg.TableName == "" {
		return nil, errors.New("checkpoint: empty lease table name")
	}
	if cfg.BillingMode == "" {
		cfg.BillingMode = types.BillingModePayPerRequest
	}
	if cfg.ReadCapacityUnits <= 0 {
		cfg.ReadCapacityUnits = DefaultCapacityUnits
	}
	if cfg.WriteCapacityUnits <= 0 {
		cfg.WriteCapacityUnits = DefaultCapacityUnits
	}
	if cfg.TableActiveTimeout <= 0 {
		cfg.TableActiveTimeout = DefaultTableActiveTimeout
	}
	if cfg.TablePollInterval <= 0 {
		cfg.TablePollInterval = DefaultTablePollInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &DynamoDBStore{client: client, cfg: cfg, log: log.With("table", cfg.TableName), stats: newStatsRecorder()}
	if cfg.Metrics != nil {
		s.stats.sink = newMetricsSink(cfg.Metrics, cfg.TableName)
	}
	return s, nil
}

// TableName returns the lease table's name.
func (s *DynamoDBStore) TableName() string { return s.cfg.TableName }

// Stats returns the requests made and the capacity consumed so far.
func (s *DynamoDBStore) Stats() DynamoDBStats { return s.stats.snapshot() }

func (s *DynamoDBStore) wrap(op, key string, err error) error {
	var rnf *types.ResourceNotFoundException
	if errors.As(err, &rnf) {
		return fmt.Errorf("checkpoint: %s %q: %w: table %s does not exist (call EnsureTable): %w", op, key, ErrTableNotFound, s.cfg.TableName, err)
	}
	return fmt.Errorf("checkpoint: %s %q on table %s: %w", op, key, s.cfg.TableName, err)
}

// EnsureTable creates the lease table if it is missing (key leaseKey of type S, the configured
// billing mode) and waits until it is ACTIVE. An existing table whose key differs fails with
// ErrTableSchema rather than being used.
func (s *DynamoDBStore) EnsureTable(ctx context.Context) error {
	s.stats.call(OpEnsureTable)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.TableActiveTimeout)
	defer cancel()
	desc, err := s.describe(ctx)
	if err != nil {
		return err
	}
	if desc == nil {
		if err := s.createTable(ctx); err != nil {
			return err
		}
	}
	for {
		if desc != nil {
			if err := checkKeySchema(desc); err != nil {
				return fmt.Errorf("checkpoint: table %s: %w", s.cfg.TableName, err)
			}
			// UPDATING tables serve reads and writes; the KCL treats them as usable too.
			if desc.TableStatus == types.TableStatusActive || desc.TableStatus == types.TableStatusUpdating {
				s.ensureOwnerIndex(ctx, desc)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("checkpoint: table %s not active after %s: %w", s.cfg.TableName, s.cfg.TableActiveTimeout, ctx.Err())
		case <-time.After(s.cfg.TablePollInterval):
		}
		if desc, err = s.describe(ctx); err != nil {
			return err
		}
	}
}

// describe returns the table description, nil when the table does not exist.
func (s *DynamoDBStore) describe(ctx context.Context) (*types.TableDescription, error) {
	var att attempts
	out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.cfg.TableName)}, att.option)
	s.stats.request(OpEnsureTable, "DescribeTable", controlRequest, att.count(), nil, nil, false)
	var rnf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &rnf):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("checkpoint: describe table %s: %w", s.cfg.TableName, err)
	}
	return out.Table, nil
}

func (s *DynamoDBStore) createTable(ctx context.Context) error {
	in := &dynamodb.CreateTableInput{
		TableName:            aws.String(s.cfg.TableName),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(AttrLeaseKey), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(AttrLeaseKey), KeyType: types.KeyTypeHash}},
		BillingMode:          s.cfg.BillingMode,
	}
	if s.cfg.BillingMode == types.BillingModeProvisioned {
		in.ProvisionedThroughput = &types.ProvisionedThroughput{
			ReadCapacityUnits:  aws.Int64(s.cfg.ReadCapacityUnits),
			WriteCapacityUnits: aws.Int64(s.cfg.WriteCapacityUnits),
		}
	}
	if _, ok := s.client.(DynamoDBIndexAPI); ok && !s.cfg.DisableOwnerIndex {
		// A new table gets the lease owner index at once, with the definition the KCL 3.x
		// adds by UpdateTable (see ensureOwnerIndex), so no worker ever scans it for its own
		// leases. Emulators that cannot add an index to an existing table (dynalite) take it
		// here too.
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(AttrLeaseOwner), AttributeType: types.ScalarAttributeTypeS})
		gsi := ownerIndexCreate()
		in.GlobalSecondaryIndexes = []types.GlobalSecondaryIndex{{
			IndexName: gsi.IndexName, KeySchema: gsi.KeySchema, Projection: gsi.Projection, ProvisionedThroughput: in.ProvisionedThroughput,
		}}
	}
	var att attempts
	_, err := s.client.CreateTable(ctx, in, att.option)
	s.stats.request(OpEnsureTable, "CreateTable", controlRequest, att.count(), nil, nil, false)
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
		// Another worker of the fleet created it first; wait for it like for our own.
		s.log.Debug("checkpoint: lease table created concurrently")
		return nil
	case err != nil:
		return fmt.Errorf("checkpoint: create table %s: %w", s.cfg.TableName, err)
	}
	s.log.Info("checkpoint: created lease table", "billing_mode", string(s.cfg.BillingMode))
	return nil
}

// ownerIndexStatus returns the status of LeaseOwnerIndexName in desc, "" when it has none.
func ownerIndexStatus(desc *types.TableDescription) types.IndexStatus {
	for _, gsi := range desc.GlobalSecondaryIndexes {
		if aws.ToString(gsi.IndexName) == LeaseOwnerIndexName {
			return gsi.IndexStatus
		}
	}
	return ""
}

// ensureOwnerIndex notes whether the table's lease owner index is ACTIVE and, when the table
// has none, creates it as the KCL 3.x does (DynamoDBLeaseRefresher.
// createLeaseOwnerToLeaseKeyIndexIfNotExists): one UpdateTable adding the attribute
// definitions leaseOwner and leaseKey (S) and the index (leaseOwner HASH, leaseKey RANGE,
// KEYS_ONLY), with the table's own read and write capacity on a provisioned table and none on
// an on-demand one. It does not wait for the index: DynamoDB builds it in the background,
// and until it is ACTIVE ListLeaseKeysForOwner scans instead. (The KCL 3.x blocks a new
// application's start, polling every 10 s for up to an hour, and does not wait when it
// upgrades a 2.x table.) A failure, say a credential without dynamodb:UpdateTable, is logged
// and leaves the table without the index, which costs scans, not correctness.
func (s *DynamoDBStore) ensureOwnerIndex(ctx context.Context, desc *types.TableDescription) {
	s.indexChecked.Store(time.Now().UnixNano())
	switch ownerIndexStatus(desc) {
	case types.IndexStatusActive:
		s.indexActive.Store(true)
		return
	case "":
	default:
		return // being built (or deleted): checked again later
	}
	api, ok := s.client.(DynamoDBIndexAPI)
	if !ok || s.cfg.DisableOwnerIndex {
		return
	}
	create := ownerIndexCreate()
	if bm := desc.BillingModeSummary; (bm == nil || bm.BillingMode != types.BillingModePayPerRequest) && desc.ProvisionedThroughput != nil {
		create.ProvisionedThroughput = &types.ProvisionedThroughput{
			ReadCapacityUnits:  desc.ProvisionedThroughput.ReadCapacityUnits,
			WriteCapacityUnits: desc.ProvisionedThroughput.WriteCapacityUnits,
		}
	}
	update := func() error {
		var att attempts
		_, err := api.UpdateTable(ctx, &dynamodb.UpdateTableInput{
			TableName: aws.String(s.cfg.TableName),
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String(AttrLeaseOwner), AttributeType: types.ScalarAttributeTypeS},
				{AttributeName: aws.String(AttrLeaseKey), AttributeType: types.ScalarAttributeTypeS},
			},
			GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: create}},
		}, att.option)
		s.stats.request(OpEnsureTable, "UpdateTable", controlRequest, att.count(), nil, nil, false)
		return err
	}
	err := update()
	var invalid smithy.APIError
	if err != nil && create.ProvisionedThroughput == nil && errors.As(err, &invalid) && invalid.ErrorCode() == "ValidationException" && strings.Contains(invalid.ErrorMessage(), "rovisionedThroughput") {
		// An endpoint older than on-demand billing (dynalite) wants capacity on every index;
		// DynamoDB itself refuses capacity on an on-demand table's index, so this is tried
		// only after DynamoDB's way failed.
		create.ProvisionedThroughput = &types.ProvisionedThroughput{
			ReadCapacityUnits:  aws.Int64(s.cfg.ReadCapacityUnits),
			WriteCapacityUnits: aws.Int64(s.cfg.WriteCapacityUnits),
		}
		err = update()
	}
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
		// Another worker is creating it, or the table is busy with another update.
		s.log.Debug("checkpoint: lease owner index not created now", "error", err)
	case err != nil:
		s.log.Warn("checkpoint: could not create the lease owner index; listing a worker's leases scans the table", "index", LeaseOwnerIndexName, "error", err)
	default:
		s.log.Info("checkpoint: creating the lease owner index", "index", LeaseOwnerIndexName)
	}
}

// ownerIndexCreate is the KCL 3.x's definition of the lease owner index
// (DynamoDBLeaseSerializer.getWorkerIdToLeaseKeyIndexKeySchema, KEYS_ONLY projection).
func ownerIndexCreate() *types.CreateGlobalSecondaryIndexAction {
	return &types.CreateGlobalSecondaryIndexAction{
		IndexName: aws.String(LeaseOwnerIndexName),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(AttrLeaseOwner), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(AttrLeaseKey), KeyType: types.KeyTypeRange},
		},
		Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
	}
}

// OwnerIndexActive reports whether the store lists a worker's leases with the lease owner
// index (LeaseOwnerIndexName), as of the last check.
func (s *DynamoDBStore) OwnerIndexActive() bool { return s.indexActive.Load() }

// ListLeaseKeysForOwner returns the keys of the leases whose leaseOwner is owner, as the KCL
// 3.x's DynamoDBLeaseRefresher.listLeaseKeysForWorker does: a Query on LeaseOwnerIndexName,
// one request per page of keys, however large the table. The index is eventually consistent,
// so a key may be a little late to appear or to go; read the lease before acting on it. Until
// the index exists and is ACTIVE it scans the table instead.
func (s *DynamoDBStore) ListLeaseKeysForOwner(ctx context.Context, owner string) ([]string, error) {
	s.stats.call(OpListLeaseKeysForOwner)
	if owner == "" {
		return nil, invalid(OpListLeaseKeysForOwner, "", "empty owner")
	}
	api, ok := s.client.(DynamoDBIndexAPI)
	if ok && !s.indexActive.Load() && time.Since(time.Unix(0, s.indexChecked.Load())) >= ownerIndexRecheck {
		if desc, err := s.describe(ctx); err == nil && desc != nil {
			s.ensureOwnerIndex(ctx, desc)
		}
	}
	if !ok || !s.indexActive.Load() {
		leases, err := s.ListLeases(ctx)
		if err != nil {
			return nil, err
		}
		var keys []string
		for _, l := range leases {
			if l.Owner == owner {
				keys = append(keys, l.Key)
			}
		}
		return keys, nil
	}
	var (
		keys  []string
		start map[string]types.AttributeValue
	)
	e := newExpr()
	cond := e.n(AttrLeaseOwner) + " = " + e.v(attrS(owner))
	for {
		var att attempts
		out, err := api.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(s.cfg.TableName),
			IndexName:                 aws.String(LeaseOwnerIndexName),
			KeyConditionExpression:    aws.String(cond),
			ExpressionAttributeNames:  e.names,
			ExpressionAttributeValues: e.values,
			ExclusiveStartKey:         start,
			ReturnConsumedCapacity:    types.ReturnConsumedCapacityTotal,
		}, att.option)
		if err != nil {
			s.stats.request(OpListLeaseKeysForOwner, "Query", readRequest, att.count(), nil, nil, false)
			return nil, s.wrap(OpListLeaseKeysForOwner, owner, err)
		}
		s.stats.request(OpListLeaseKeysForOwner, "Query", readRequest, att.count(), out.ConsumedCapacity, func() float64 {
			size := 0
			for _, it := range out.Items {
				size += itemSize(it)
			}
			return readUnits(size, false)
		}, false)
		for _, it := range out.Items {
			if k, ok := it[AttrLeaseKey].(*types.AttributeValueMemberS); ok {
				keys = append(keys, k.Value)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return keys, nil
		}
		start = out.LastEvaluatedKey
	}
}

func checkKeySchema(desc *types.TableDescription) error {
	if len(desc.KeySchema) != 1 || aws.ToString(desc.KeySchema[0].AttributeName) != AttrLeaseKey || desc.KeySchema[0].KeyType != types.KeyTypeHash {
		return fmt.Errorf("%w: key schema must be the single hash key %s", ErrTableSchema, AttrLeaseKey)
	}
	for _, d := range desc.AttributeDefinitions {
		if aws.ToString(d.AttributeName) == AttrLeaseKey && d.AttributeType != types.ScalarAttributeTypeS {
			return fmt.Errorf("%w: %s has type %s, want S", ErrTableSchema, AttrLeaseKey, d.AttributeType)
		}
	}
	return nil
}

// ListLeases scans the whole table, one request per page. Rows that newer KCL versions keep in
// the lease table for other purposes (an entityType other than LEASE) are skipped, and so are
// rows that cannot be read as leases, with a warning: one corrupt row must not stop the fleet.
func (s *DynamoDBStore) ListLeases(ctx context.Context) ([]Lease, error) {
	s.stats.call(OpListLeases)
	var (
		leases []Lease
		start  map[string]types.AttributeValue
	)
	for {
		in := &dynamodb.ScanInput{
			TableName:              aws.String(s.cfg.TableName),
			ConsistentRead:         aws.Bool(s.cfg.ConsistentReads),
			ExclusiveStartKey:      start,
			ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
		}
		if s.cfg.ScanPageSize > 0 {
			in.Limit = aws.Int32(s.cfg.ScanPageSize)
		}
		var att attempts
		out, err := s.client.Scan(ctx, in, att.option)
		if err != nil {
			s.stats.request(OpListLeases, "Scan", readRequest, att.count(), nil, nil, false)
			return nil, s.wrap(OpListLeases, "", err)
		}
		s.stats.request(OpListLeases, "Scan", readRequest, att.count(), out.ConsumedCapacity, func() float64 {
			size := 0
			for _, it := range out.Items {
				size += itemSize(it)
			}
			return readUnits(size, s.cfg.ConsistentReads)
		}, false)
		for _, item := range out.Items {
			if !isLeaseItem(item) {
				continue
			}
			l, err := decodeLease(item)
			if err != nil {
				s.log.Warn("checkpoint: skipping unreadable lease row", "error", err)
				continue
			}
			leases = append(leases, l)
		}
		if len(out.LastEvaluatedKey) == 0 {
			return leases, nil
		}
		start = out.LastEvaluatedKey
	}
}

// GetLease reads one lease (one GetItem).
func (s *DynamoDBStore) GetLease(ctx context.Context, key string) (Lease, error) {
	s.stats.call(OpGetLease)
	if key == "" {
		return Lease{}, invalid(OpGetLease, key, "empty lease key")
	}
	item, err := s.getItem(ctx, OpGetLease, key, s.cfg.ConsistentReads)
	if err != nil {
		return Lease{}, err
	}
	if item == nil || !isLeaseItem(item) {
		return Lease{}, notFound(OpGetLease, key)
	}
	l, err := decodeLease(item)
	if err != nil {
		return Lease{}, fmt.Errorf("checkpoint: %s %q: %w", OpGetLease, key, err)
	}
	return l, nil
}

// getItem returns the item, nil when absent.
func (s *DynamoDBStore) getItem(ctx context.Context, op, key string, consistent bool) (map[string]types.AttributeValue, error) {
	var att attempts
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:              aws.String(s.cfg.TableName),
		Key:                    leaseKeyOf(key),
		ConsistentRead:         aws.Bool(consistent),
		ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
	}, att.option)
	if err != nil {
		s.stats.request(op, "GetItem", readRequest, att.count(), nil, nil, false)
		return nil, s.wrap(op, key, err)
	}
	s.stats.request(op, "GetItem", readRequest, att.count(), out.ConsumedCapacity, func() float64 {
		return readUnits(itemSize(out.Item), consistent)
	}, false)
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

// CreateLeaseIfNotExists writes the lease with one conditional PutItem.
func (s *DynamoDBStore) CreateLeaseIfNotExists(ctx context.Context, lease Lease) (Lease, error) {
	s.stats.call(OpCreateLease)
	if err := validateNewLease(lease); err != nil {
		return Lease{}, err
	}
	item := leaseItem(lease)
	e := newExpr()
	e.cond("attribute_not_exists(" + e.n(AttrLeaseKey) + ")")
	var att attempts
	out, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           aws.String(s.cfg.TableName),
		Item:                                item,
		ConditionExpression:                 e.condition(),
		ExpressionAttributeNames:            e.names,
		ReturnConsumedCapacity:              types.ReturnConsumedCapacityTotal,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}, att.option)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		size := itemSize(ccf.Item)
		s.stats.request(OpCreateLease, "PutItem", writeRequest, att.count(), nil, func() float64 { return writeUnits(size) }, true)
		le := &LeaseError{Op: OpCreateLease, Key: lease.Key, Err: ErrLeaseExists, Cause: err}
		if cur, derr := decodeLease(ccf.Item); len(ccf.Item) > 0 && derr == nil {
			le.Current = &cur
		}
		return Lease{}, le
	case err != nil:
		s.stats.request(OpCreateLease, "PutItem", writeRequest, att.count(), nil, nil, false)
		return Lease{}, s.wrap(OpCreateLease, lease.Key, err)
	}
	s.stats.request(OpCreateLease, "PutItem", writeRequest, att.count(), out.ConsumedCapacity, func() float64 { return writeUnits(itemSize(item)) }, false)
	// Decode what was written rather than return the argument, so sets come back normalized
	// exactly as a later read would return them.
	return decodeLease(item)
}

// TakeLease is one conditional UpdateItem; a refusal adds one GetItem when DynamoDB did not
// return the current item with the error.
func (s *DynamoDBStore) TakeLease(ctx context.Context, seen Lease, newOwner string) (Lease, error) {
	s.stats.call(OpTakeLease)
	if err := validateTake(seen, newOwner); err != nil {
		return Lease{}, err
	}
	e := newExpr()
	e.cond("attribute_exists(" + e.n(AttrLeaseKey) + ")")
	e.cond(e.counterIs(seen.Counter))
	e.cond(e.eqOrAbsent(AttrLeaseOwner, seen.Owner))
	e.cond(e.eqOrAbsent(AttrCheckpointOwner, seen.CheckpointOwner))
	e.set(AttrLeaseOwner, attrS(newOwner))
	e.set(AttrLeaseCounter, attrN(seen.Counter+1))
	e.remove(AttrCheckpointOwner)
	if prev := seen.ActualOwner(); prev != "" && prev != newOwner {
		e.add(AttrOwnerSwitchesSinceCheckpoint, attrN(1))
	}
	// No recovery from a spurious refusal here: two takers with the same worker ID (say two
	// goroutines) would both believe they won, and a take that did apply merely looks like a
	// lease this worker owns but does not renew, which expires and is taken again.
	return s.update(ctx, OpTakeLease, seen.Key, e, nil)
}

// RenewLease is one conditional UpdateItem. When the SDK retried the request and the retry was
// refused because the earlier attempt had applied (owner unchanged, counter one higher), the
// renewal counts as done, as in the KCL; otherwise a refusal is ErrLeaseLost.
func (s *DynamoDBStore) RenewLease(ctx context.Context, held Lease) (Lease, error) {
	s.stats.call(OpRenewLease)
	if err := validateHeld(OpRenewLease, held); err != nil {
		return Lease{}, err
	}
	e := newExpr()
	e.cond(e.counterIs(held.Counter))
	e.cond(e.actualOwnerIs(held.ActualOwner()))
	e.set(AttrLeaseCounter, attrN(held.Counter+1))
	if held.ThroughputKBps != nil {
		e.set(AttrThroughputKBps, attrF(*held.ThroughputKBps))
	}
	return s.update(ctx, OpRenewLease, held.Key, e, func(cur Lease) bool {
		return cur.Counter == held.Counter+1 && cur.ActualOwner() == held.ActualOwner()
	}, renewalRetries)
}

// RenewalMaxRetryDelay bounds the client's wait between the attempts of one RenewLease. The
// SDK waits up to 1 s, then 2 s, then 4 s between the attempts of a throttled request
// (aws/retry, ExponentialJitterBackoff with its 1 s throttle base), while a renewal is
// useful only until its holder gives the lease up: 3 s after it falls due at the consumer's
// defaults (renewed every 4 s, given up at 7 s of a 10 s failover time). Waits that long let a
// table throttled half the time cost leases that a prompt second attempt would have kept; the
// attempts and the SDK's retry quota stay as the client has them, only their spacing shrinks.
const RenewalMaxRetryDelay = 250 * time.Millisecond

// renewalRetries caps the client's retry delay for one call at RenewalMaxRetryDelay, with
// full jitter below it so that workers throttled together do not retry together.
func renewalRetries(o *dynamodb.Options) {
	if r, ok := o.Retryer.(aws.RetryerV2); ok {
		o.Retryer = cappedRetryDelay{RetryerV2: r, max: RenewalMaxRetryDelay}
	}
}

type cappedRetryDelay struct {
	aws.RetryerV2
	max time.Duration
}

func (c cappedRetryDelay) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := c.RetryerV2.RetryDelay(attempt, err)
	if derr != nil || d <= c.max {
		return d, derr
	}
	return time.Duration(rand.Int64N(int64(c.max)) + 1), nil
}

// EvictLease is one conditional UpdateItem.
func (s *DynamoDBStore) EvictLease(ctx context.Context, held Lease) (Lease, error) {
	s.stats.call(OpEvictLease)
	if err := validateHeld(OpEvictLease, held); err != nil {
		return Lease{}, err
	}
	e := newExpr()
	e.cond(e.counterIs(held.Counter))
	e.cond(e.actualOwnerIs(held.ActualOwner()))
	// Removing the attribute, not writing an empty or placeholder owner, is how the KCL
	// marks a lease unassigned; a KCL worker reads anything else as an owner name.
	if held.CheckpointOwner == "" {
		e.remove(AttrLeaseOwner)
	}
	e.remove(AttrCheckpointOwner)
	e.set(AttrLeaseCounter, attrN(held.Counter+1))
	return s.update(ctx, OpEvictLease, held.Key, e, nil)
}

// UpdateCheckpoint is one conditional UpdateItem, recovering from a retried request like
// RenewLease.
func (s *DynamoDBStore) UpdateCheckpoint(ctx context.Context, held Lease, cp ExtendedSequenceNumber) (Lease, error) {
	s.stats.call(OpUpdateCheckpoint)
	if err := validateHeld(OpUpdateCheckpoint, held); err != nil {
		return Lease{}, err
	}
	if err := cp.Validate(); err != nil {
		return Lease{}, &LeaseError{Op: OpUpdateCheckpoint, Key: held.Key, Err: ErrInvalidLease, Detail: "checkpoint", Cause: err}
	}
	e := newExpr()
	e.cond(e.counterIs(held.Counter))
	e.cond(e.actualOwnerIs(held.ActualOwner()))
	e.set(AttrCheckpoint, attrS(cp.SequenceNumber))
	e.set(AttrCheckpointSubSequenceNumber, attrN(cp.SubSequenceNumber))
	e.set(AttrOwnerSwitchesSinceCheckpoint, attrN(0))
	e.set(AttrLeaseCounter, attrN(held.Counter+1))
	e.remove(AttrPendingCheckpoint)
	e.remove(AttrPendingCheckpointSubSequenceNumber)
	e.remove(AttrPendingCheckpointState)
	if held.ThroughputKBps != nil {
		e.set(AttrThroughputKBps, attrF(*held.ThroughputKBps))
	}
	return s.update(ctx, OpUpdateCheckpoint, held.Key, e, func(cur Lease) bool {
		return cur.Counter == held.Counter+1 && cur.ActualOwner() == held.ActualOwner() &&
			cur.Checkpoint == cp && cur.PendingCheckpoint == nil
	})
}

// InitiateHandoff is one conditional UpdateItem.
func (s *DynamoDBStore) InitiateHandoff(ctx context.Context, lease Lease, nextOwner string) (Lease, error) {
	s.stats.call(OpInitiateHandoff)
	if err := validateHandoff(lease, nextOwner); err != nil {
		return Lease{}, err
	}
	e := newExpr()
	e.cond("attribute_exists(" + e.n(AttrLeaseKey) + ")")
	e.cond(e.eqOrAbsent(AttrLeaseOwner, lease.Owner))
	e.cond(e.eqOrAbsent(AttrCheckpointOwner, ""))
	e.set(AttrLeaseOwner, attrS(nextOwner))
	e.set(AttrCheckpointOwner, attrS(lease.Owner))
	return s.update(ctx, OpInitiateHandoff, lease.Key, e, nil)
}

// CancelHandoff is one conditional UpdateItem that leaves the counter alone.
func (s *DynamoDBStore) CancelHandoff(ctx context.Context, lease Lease) (Lease, error) {
	s.stats.call(OpCancelHandoff)
	if err := validateCancelHandoff(lease); err != nil {
		return Lease{}, err
	}
	e := newExpr()
	e.cond("attribute_exists(" + e.n(AttrLeaseKey) + ")")
	e.cond(e.eqOrAbsent(AttrLeaseOwner, lease.Owner))
	e.cond(e.eqOrAbsent(AttrCheckpointOwner, lease.CheckpointOwner))
	e.set(AttrLeaseOwner, attrS(lease.CheckpointOwner))
	e.remove(AttrCheckpointOwner)
	return s.update(ctx, OpCancelHandoff, lease.Key, e, nil)
}

// UpdateChildShards is one UpdateItem conditional only on the lease existing.
func (s *DynamoDBStore) UpdateChildShards(ctx context.Context, key string, childShardIDs []string) (Lease, error) {
	s.stats.call(OpUpdateChildShards)
	if err := validateChildShards(key, childShardIDs); err != nil {
		return Lease{}, err
	}
	e := newExpr()
	e.cond("attribute_exists(" + e.n(AttrLeaseKey) + ")")
	e.set(AttrChildShardIDs, attrSS(shardSet(childShardIDs)))
	return s.update(ctx, OpUpdateChildShards, key, e, nil)
}

// UpdateHashKeyRange is one UpdateItem conditional only on the lease existing.
func (s *DynamoDBStore) UpdateHashKeyRange(ctx context.Context, key string, r HashKeyRange) (Lease, error) {
	s.stats.call(OpUpdateHashKeyRange)
	if key == "" {
		return Lease{}, invalid(OpUpdateHashKeyRange, key, "empty lease key")
	}
	if err := validateRange(OpUpdateHashKeyRange, key, &r); err != nil {
		return Lease{}, err
	}
	e := newExpr()
	e.cond("attribute_exists(" + e.n(AttrLeaseKey) + ")")
	e.set(AttrStartingHashKey, attrS(r.StartingHashKey))
	e.set(AttrEndingHashKey, attrS(r.EndingHashKey))
	return s.update(ctx, OpUpdateHashKeyRange, key, e, nil)
}

// DeleteLease is one conditional DeleteItem.
func (s *DynamoDBStore) DeleteLease(ctx context.Context, lease Lease) error {
	s.stats.call(OpDeleteLease)
	if lease.Key == "" {
		return invalid(OpDeleteLease, lease.Key, "empty lease key")
	}
	e := newExpr()
	e.cond("attribute_exists(" + e.n(AttrLeaseKey) + ")")
	e.cond(e.counterIs(lease.Counter))
	var att attempts
	out, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                           aws.String(s.cfg.TableName),
		Key:                                 leaseKeyOf(lease.Key),
		ConditionExpression:                 e.condition(),
		ExpressionAttributeNames:            e.names,
		ExpressionAttributeValues:           e.values,
		ReturnValues:                        types.ReturnValueAllOld,
		ReturnConsumedCapacity:              types.ReturnConsumedCapacityTotal,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}, att.option)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		_, err := s.refused(ctx, OpDeleteLease, "DeleteItem", lease.Key, att.count(), ccf, nil)
		return err
	case err != nil:
		s.stats.request(OpDeleteLease, "DeleteItem", writeRequest, att.count(), nil, nil, false)
		return s.wrap(OpDeleteLease, lease.Key, err)
	}
	s.stats.request(OpDeleteLease, "DeleteItem", writeRequest, att.count(), out.ConsumedCapacity, func() float64 { return writeUnits(itemSize(out.Attributes)) }, false)
	return nil
}

// update sends one conditional UpdateItem that returns the new item. recovered, when not nil,
// recognizes a current lease that this very update produced on an earlier attempt; it is
// consulted only when the SDK made more than one attempt.
func (s *DynamoDBStore) update(ctx context.Context, op, key string, e *expr, recovered func(Lease) bool, optFns ...func(*dynamodb.Options)) (Lease, error) {
	in := &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.cfg.TableName),
		Key:                                 leaseKeyOf(key),
		ConditionExpression:                 e.condition(),
		UpdateExpression:                    e.updateExpression(),
		ExpressionAttributeNames:            e.names,
		ExpressionAttributeValues:           e.values,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnConsumedCapacity:              types.ReturnConsumedCapacityTotal,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	var att attempts
	out, err := s.client.UpdateItem(ctx, in, append(optFns, att.option)...)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		if att.count() < 2 {
			recovered = nil
		}
		return s.refused(ctx, op, "UpdateItem", key, att.count(), ccf, recovered)
	case err != nil:
		s.stats.request(op, "UpdateItem", writeRequest, att.count(), nil, nil, false)
		return Lease{}, s.wrap(op, key, err)
	}
	s.stats.request(op, "UpdateItem", writeRequest, att.count(), out.ConsumedCapacity, func() float64 { return writeUnits(itemSize(out.Attributes)) }, false)
	l, err := decodeLease(out.Attributes)
	if err != nil {
		return Lease{}, fmt.Errorf("checkpoint: %s %q: %w", op, key, err)
	}
	return l, nil
}

// refused turns a refused conditional write into the error that says why, with the lease as it
// is now. DynamoDB returns the current item with the error when asked to; where it does not (an
// absent item, or an emulator without the feature) one consistent GetItem fetches it.
func (s *DynamoDBStore) refused(ctx context.Context, op, api, key string, tries int, ccf *types.ConditionalCheckFailedException, recovered func(Lease) bool) (Lease, error) {
	item := ccf.Item
	var getErr error
	if len(item) == 0 {
		item, getErr = s.getItem(ctx, op, key, true)
	}
	// A refused write is charged for the size of the item it was checked against.
	size := itemSize(item)
	s.stats.request(op, api, writeRequest, tries, nil, func() float64 { return writeUnits(size) }, true)
	if getErr != nil {
		return Lease{}, &LeaseError{Op: op, Key: key, Err: ErrLeaseLost, Detail: "conditional write refused; current state unknown", Cause: errors.Join(ccf, getErr)}
	}
	if item == nil || !isLeaseItem(item) {
		return Lease{}, &LeaseError{Op: op, Key: key, Err: ErrLeaseNotFound, Cause: ccf}
	}
	cur, err := decodeLease(item)
	if err != nil {
		return Lease{}, &LeaseError{Op: op, Key: key, Err: ErrLeaseLost, Detail: "conditional write refused; current lease unreadable", Cause: errors.Join(ccf, err)}
	}
	if recovered != nil && recovered(cur) {
		s.log.Debug("checkpoint: conditional write refused because an earlier attempt of it applied; treating as success", "op", op, "lease", key, "counter", cur.Counter)
		return cur, nil
	}
	detail := detailNotHeld
	if op == OpTakeLease || op == OpDeleteLease {
		detail = detailChanged
	}
	return Lease{}, &LeaseError{Op: op, Key: key, Err: ErrLeaseLost, Detail: detail, Current: &cur, Cause: ccf}
}

// attempts counts the HTTP attempts the SDK makes for one call. A refused conditional write is
// only worth a second look when an earlier attempt of the same call may have applied it.
type attempts struct{ n atomic.Int32 }

const attemptCounterID = "shardlineCheckpointAttempts"

// option installs the counter just after the SDK's retry middleware, which runs once per
// attempt. Without a retry middleware (a client that never retries) it counts nothing, and a
// refusal is taken at face value.
// count returns the attempts made, at least one: a client without the SDK's retry middleware
// makes exactly one.
func (a *attempts) count() int { return max(1, int(a.n.Load())) }

func (a *attempts) option(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		if _, ok := stack.Finalize.Get("Retry"); !ok {
			return nil
		}
		return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc(attemptCounterID,
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				a.n.Add(1)
				return next.HandleFinalize(ctx, in)
			}), "Retry", middleware.After)
	})
}

// expr builds condition and update expressions. Every attribute goes through a name
// placeholder, so no attribute can collide with DynamoDB's reserved words.
type expr struct {
	names                map[string]string
	values               map[string]types.AttributeValue
	conds, sets, removes []string
	adds                 []string
}

func newExpr() *expr {
	return &expr{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

func (e *expr) n(attr string) string {
	p := "#" + attr
	e.names[p] = attr
	return p
}

func (e *expr) v(av types.AttributeValue) string {
	p := fmt.Sprintf(":v%d", len(e.values))
	e.values[p] = av
	return p
}

func (e *expr) cond(c string) { e.conds = append(e.conds, c) }
func (e *expr) set(attr string, av types.AttributeValue) {
	e.sets = append(e.sets, e.n(attr)+" = "+e.v(av))
}
func (e *expr) remove(attr string) { e.removes = append(e.removes, e.n(attr)) }
func (e *expr) add(attr string, av types.AttributeValue) {
	e.adds = append(e.adds, e.n(attr)+" "+e.v(av))
}
func (e *expr) condition() *string { return aws.String(strings.Join(e.conds, " AND ")) }
func (e *expr) eqOrAbsent(attr, value string) string {
	if value == "" {
		return "attribute_not_exists(" + e.n(attr) + ")"
	}
	return e.n(attr) + " = " + e.v(attrS(value))
}

// counterIs tolerates a missing counter where the caller saw 0, so a row written without one
// (by hand, or by software other than the KCL) can still be taken.
func (e *expr) counterIs(c int64) string {
	if c == 0 {
		return "(attribute_not_exists(" + e.n(AttrLeaseCounter) + ") OR " + e.n(AttrLeaseCounter) + " = " + e.v(attrN(0)) + ")"
	}
	return e.n(AttrLeaseCounter) + " = " + e.v(attrN(c))
}

// actualOwnerIs holds when owner is the checkpoint owner, or the owner while no handoff is
// under way: the worker processing the shard may keep renewing and checkpointing during a
// handoff it has not noticed yet.
func (e *expr) actualOwnerIs(owner string) string {
	v := e.v(attrS(owner))
	co, o := e.n(AttrCheckpointOwner), e.n(AttrLeaseOwner)
	return "((attribute_not_exists(" + co + ") AND " + o + " = " + v + ") OR " + co + " = " + v + ")"
}

func (e *expr) updateExpression() *string {
	var parts []string
	if len(e.sets) > 0 {
		parts = append(parts, "SET "+strings.Join(e.sets, ", "))
	}
	if len(e.removes) > 0 {
		parts = append(parts, "REMOVE "+strings.Join(e.removes, ", "))
	}
	if len(e.adds) > 0 {
		parts = append(parts, "ADD "+strings.Join(e.adds, ", "))
	}
	return aws.String(strings.Join(parts, " "))
}
