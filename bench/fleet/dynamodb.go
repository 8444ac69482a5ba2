// Package fleet is a harness that runs many real consumer.Workers in one process against a
// lease table with DynamoDB's semantics and costs and a simulated Kinesis stream, to measure
// how lease coordination grows with the fleet and the stream. See README.md for the model,
// the scenarios and the measured figures.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/shardline/shardline/checkpoint"
)

// scanPageLimit is the most data one Scan request reads: "A single Scan operation reads up to
// the maximum number of items set (if using the Limit parameter) or a maximum of 1 MB of data"
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html).
const scanPageLimit = 1 << 20

// Table is an in-process DynamoDB lease table behind checkpoint.DynamoDBAPI: one table, hash
// key leaseKey, conditional writes, Scan pages of at most 1 MB, eventually consistent reads
// that may return an item's previous version, capacity charged per request by DynamoDB's
// rules, an added latency and a throttling switch. It counts every request it answers, so
// what a fleet costs is read off the table, not off the stores' own accounting.
type Table struct {
	// Latency is added to every request, as the round trip to DynamoDB.
	Latency time.Duration
	// StaleFor is how long after a write an eventually consistent read may still return the
	// previous version of the item. DynamoDB documents no bound ("usually within one second",
	// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html).
	StaleFor time.Duration
	// StaleChance is the probability that an eventually consistent read within StaleFor of a
	// write returns the previous version.
	StaleChance float64

	mu       sync.Mutex
	name     string
	items    map[string]*item
	throttle float64 // share of requests refused with ProvisionedThroughputExceededException
	rng      *rand.Rand
	c        Counts
	errs     []error
	onChange func(key, from, to string, handoff bool)
}

type item struct {
	cur, prev map[string]types.AttributeValue
	written   time.Time
}

// Counts are the requests a Table answered and the capacity they consumed.
type Counts struct {
	Requests  map[string]int64 // by API, throttled ones included
	Throttled int64
	RCU, WCU  float64
	CondFail  int64
	ScanPages int64
}

func (c Counts) clone() Counts {
	out := c
	out.Requests = maps.Clone(c.Requests)
	return out
}

// Total is the number of data-plane requests.
func (c Counts) Total() int64 {
	var n int64
	for k, v := range c.Requests {
		if k != "DescribeTable" && k != "CreateTable" {
			n += v
		}
	}
	return n
}

// Sub returns c minus b.
func (c Counts) Sub(b Counts) Counts {
	out := c.clone()
	for k, v := range b.Requests {
		out.Requests[k] -= v
	}
	out.Throttled -= b.Throttled
	out.RCU -= b.RCU
	out.WCU -= b.WCU
	out.CondFail -= b.CondFail
	out.ScanPages -= b.ScanPages
	return out
}

// NewTable returns an empty table endpoint; the store creates the table.
func NewTable() *Table {
	return &Table{items: map[string]*item{}, rng: rand.New(rand.NewPCG(1, 2)), c: Counts{Requests: map[string]int64{}}}
}

var _ checkpoint.DynamoDBAPI = (*Table)(nil)

// Counts returns the counts so far.
func (t *Table) Counts() Counts {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.c.clone()
}

// Errors returns the requests the table could not interpret.
func (t *Table) Errors() []error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.errs)
}

// SetThrottle makes the given share of requests (0 to 1) fail with
// ProvisionedThroughputExceededException.
func (t *Table) SetThrottle(share float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.throttle = share
}

// OnOwnerChange sets a function called, under the table's lock, whenever a write changes the
// worker processing a lease: the checkpoint owner during a handoff, the lease owner otherwise
// (checkpoint.Lease.ActualOwner). handoff says the change completes a handoff: the lease
// named to as its next owner before.
func (t *Table) OnOwnerChange(f func(key, from, to string, handoff bool)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.onChange = f
}

// Snapshot returns every item's current value, without charge.
func (t *Table) Snapshot() map[string]map[string]types.AttributeValue {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]map[string]types.AttributeValue, len(t.items))
	for k, it := range t.items {
		out[k] = it.cur
	}
	return out
}

// begin waits out the latency and counts the request; a throttled request returns its error.
func (t *Table) begin(ctx context.Context, api string) error {
	if t.Latency > 0 {
		tm := time.NewTimer(t.Latency)
		select {
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		case <-tm.C:
		}
	}
	t.mu.Lock()
	t.c.Requests[api]++
	throttled := t.throttle > 0 && t.rng.Float64() < t.throttle
	if throttled {
		t.c.Throttled++
	}
	t.mu.Unlock()
	if throttled {
		return &types.ProvisionedThroughputExceededException{Message: aws.String("fleet: table throttled")}
	}
	return nil
}

func (t *Table) fail(err error) error {
	t.mu.Lock()
	t.errs = append(t.errs, err)
	t.mu.Unlock()
	return err
}

func (t *Table) checkTable(name *string) error {
	if t.name == "" || aws.ToString(name) != t.name {
		return &types.ResourceNotFoundException{Message: aws.String("Requested resource not found")}
	}
	return nil
}

// DescribeTable answers ACTIVE for the table once created.
func (t *Table) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	if err := t.begin(ctx, "DescribeTable"); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkTable(in.TableName); err != nil {
		return nil, err
	}
	return &dynamodb.DescribeTableOutput{Table: &types.TableDescription{
		TableName:            aws.String(t.name),
		TableStatus:          types.TableStatusActive,
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(checkpoint.AttrLeaseKey), KeyType: types.KeyTypeHash}},
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(checkpoint.AttrLeaseKey), AttributeType: types.ScalarAttributeTypeS}},
		BillingModeSummary:   &types.BillingModeSummary{BillingMode: types.BillingModePayPerRequest},
	}}, nil
}

// CreateTable creates the one table; a second name is refused.
func (t *Table) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	if err := t.begin(ctx, "CreateTable"); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.name == aws.ToString(in.TableName):
		return nil, &types.ResourceInUseException{Message: aws.String("Table already exists")}
	case t.name != "":
		return nil, t.failLocked(fmt.Errorf("fleet: a second table %q", aws.ToString(in.TableName)))
	}
	t.name = aws.ToString(in.TableName)
	return &dynamodb.CreateTableOutput{}, nil
}

func (t *Table) failLocked(err error) error {
	t.errs = append(t.errs, err)
	return err
}

// keyOf returns the leaseKey of a request's Key.
func keyOf(key map[string]types.AttributeValue) (string, error) {
	s, ok := key[checkpoint.AttrLeaseKey].(*types.AttributeValueMemberS)
	if !ok || len(key) != 1 {
		return "", fmt.Errorf("fleet: key %v is not the single S attribute %s", key, checkpoint.AttrLeaseKey)
	}
	return s.Value, nil
}

// read returns the version of it a read sees: an eventually consistent read shortly after a
// write may see the one before.
func (t *Table) read(it *item, consistent bool, now time.Time) map[string]types.AttributeValue {
	if it == nil {
		return nil
	}
	if !consistent && t.StaleFor > 0 && now.Sub(it.written) < t.StaleFor && t.rng.Float64() < t.StaleChance {
		return it.prev
	}
	return it.cur
}

// GetItem reads one item: one read unit per started 4 KB, half for an eventually consistent
// read (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/provisioned-capacity-mode.html,
// "Read capacity units").
func (t *Table) GetItem(ctx context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if err := t.begin(ctx, "GetItem"); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkTable(in.TableName); err != nil {
		return nil, err
	}
	key, err := keyOf(in.Key)
	if err != nil {
		return nil, t.failLocked(err)
	}
	consistent := aws.ToBool(in.ConsistentRead)
	got := t.read(t.items[key], consistent, time.Now())
	u := readUnits(ItemSize(got), consistent)
	t.c.RCU += u
	return &dynamodb.GetItemOutput{Item: got, ConsumedCapacity: capacity(t.name, u)}, nil
}

// conditional runs one conditional write: it waits out the latency, counts the request,
// finds the item and checks the condition, then calls apply with the item's key and current
// value, all under the table's lock.
func (t *Table) conditional(ctx context.Context, api string, table *string, k map[string]types.AttributeValue,
	cond *string, names map[string]string, values map[string]types.AttributeValue, rv types.ReturnValuesOnConditionCheckFailure,
	apply func(key string, old map[string]types.AttributeValue) error) error {
	if err := t.begin(ctx, api); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkTable(table); err != nil {
		return err
	}
	key, err := keyOf(k)
	if err != nil {
		return t.failLocked(err)
	}
	old := t.cur(key)
	if err := t.check(cond, names, values, old, rv); err != nil {
		return err
	}
	return apply(key, old)
}

// PutItem writes a whole item, conditionally: one write unit per started 1 KB of the larger
// of the old and the new item, charged for a refused conditional write too
// (provisioned-capacity-mode.html, "Write capacity units"; a failed conditional write
// "consumes" the write capacity of the item checked).
func (t *Table) PutItem(ctx context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	var out *dynamodb.PutItemOutput
	err := t.conditional(ctx, "PutItem", in.TableName, map[string]types.AttributeValue{checkpoint.AttrLeaseKey: in.Item[checkpoint.AttrLeaseKey]},
		in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues, in.ReturnValuesOnConditionCheckFailure,
		func(key string, old map[string]types.AttributeValue) error {
			out = &dynamodb.PutItemOutput{ConsumedCapacity: capacity(t.name, t.write(key, old, maps.Clone(in.Item)))}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateItem applies an update expression, conditionally; an absent item that passes the
// condition is created, as DynamoDB does.
func (t *Table) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	var out *dynamodb.UpdateItemOutput
	err := t.conditional(ctx, "UpdateItem", in.TableName, in.Key,
		in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues, in.ReturnValuesOnConditionCheckFailure,
		func(key string, old map[string]types.AttributeValue) error {
			base := old
			if base == nil {
				base = map[string]types.AttributeValue{checkpoint.AttrLeaseKey: in.Key[checkpoint.AttrLeaseKey]}
			}
			next, err := applyUpdate(base, aws.ToString(in.UpdateExpression), in.ExpressionAttributeNames, in.ExpressionAttributeValues)
			if err != nil {
				return t.failLocked(err)
			}
			out = &dynamodb.UpdateItemOutput{}
			switch in.ReturnValues {
			case types.ReturnValueAllNew:
				out.Attributes = next
			case types.ReturnValueAllOld:
				out.Attributes = old
			case types.ReturnValueNone, "":
			default:
				return t.failLocked(fmt.Errorf("fleet: UpdateItem ReturnValues %s not supported", in.ReturnValues))
			}
			out.ConsumedCapacity = capacity(t.name, t.write(key, old, next))
			return nil
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteItem removes an item, conditionally.
func (t *Table) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	var out *dynamodb.DeleteItemOutput
	err := t.conditional(ctx, "DeleteItem", in.TableName, in.Key,
		in.ConditionExpression, in.ExpressionAttributeNames, in.ExpressionAttributeValues, in.ReturnValuesOnConditionCheckFailure,
		func(key string, old map[string]types.AttributeValue) error {
			out = &dynamodb.DeleteItemOutput{ConsumedCapacity: capacity(t.name, t.write(key, old, nil))}
			if in.ReturnValues == types.ReturnValueAllOld {
				out.Attributes = old
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Scan returns items in key order from ExclusiveStartKey, up to Limit items or 1 MB, charged
// for the total size of the items read rounded up to 4 KB, half for an eventually consistent
// scan (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html,
// "Scan": "the total size of all items ... rounded up to the next 4 KB").
func (t *Table) Scan(ctx context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	if err := t.begin(ctx, "Scan"); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.checkTable(in.TableName); err != nil {
		return nil, err
	}
	if in.FilterExpression != nil || in.ProjectionExpression != nil || in.Segment != nil {
		return nil, t.failLocked(errors.New("fleet: Scan with a filter, projection or segment is not supported"))
	}
	keys := make([]string, 0, len(t.items))
	for k := range t.items {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	i := 0
	if in.ExclusiveStartKey != nil {
		start, err := keyOf(in.ExclusiveStartKey)
		if err != nil {
			return nil, t.failLocked(err)
		}
		i, _ = slices.BinarySearch(keys, start)
		if i < len(keys) && keys[i] == start {
			i++
		}
	}
	consistent := aws.ToBool(in.ConsistentRead)
	limit := int(aws.ToInt32(in.Limit))
	now := time.Now()
	out := &dynamodb.ScanOutput{}
	size := 0
	for ; i < len(keys); i++ {
		it := t.read(t.items[keys[i]], consistent, now)
		if it == nil {
			continue
		}
		s := ItemSize(it)
		if len(out.Items) > 0 && size+s > scanPageLimit {
			break
		}
		size += s
		out.Items = append(out.Items, it)
		if limit > 0 && len(out.Items) >= limit {
			i++
			break
		}
	}
	if i < len(keys) && len(out.Items) > 0 {
		out.LastEvaluatedKey = map[string]types.AttributeValue{checkpoint.AttrLeaseKey: &types.AttributeValueMemberS{Value: keys[i-1]}}
	}
	out.Count, out.ScannedCount = int32(len(out.Items)), int32(len(out.Items))
	u := readUnits(size, consistent)
	t.c.RCU += u
	t.c.ScanPages++
	out.ConsumedCapacity = capacity(t.name, u)
	return out, nil
}

func (t *Table) cur(key string) map[string]types.AttributeValue {
	if it := t.items[key]; it != nil {
		return it.cur
	}
	return nil
}

// check evaluates a condition against the current item; a refusal is charged and answered
// with the item when asked for.
func (t *Table) check(cond *string, names map[string]string, values map[string]types.AttributeValue, cur map[string]types.AttributeValue, rv types.ReturnValuesOnConditionCheckFailure) error {
	if cond == nil {
		return nil
	}
	n, err := parseCondition(*cond, names, values)
	if err != nil {
		return t.failLocked(fmt.Errorf("fleet: %w", err))
	}
	if n.eval(cur) {
		return nil
	}
	t.c.CondFail++
	t.c.WCU += writeUnits(ItemSize(cur))
	e := &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")}
	if rv == types.ReturnValuesOnConditionCheckFailureAllOld {
		e.Item = cur
	}
	return e
}

// write stores next (nil deletes), charges it and reports a change of the lease's processor.
func (t *Table) write(key string, old, next map[string]types.AttributeValue) float64 {
	u := writeUnits(max(ItemSize(old), ItemSize(next)))
	t.c.WCU += u
	if next == nil {
		delete(t.items, key)
	} else {
		t.items[key] = &item{cur: next, prev: old, written: time.Now()}
	}
	if from, to := actualOwner(old), actualOwner(next); from != to && next != nil && t.onChange != nil {
		handoff := old != nil && attrString(old, checkpoint.AttrCheckpointOwner) != "" && attrString(old, checkpoint.AttrLeaseOwner) == to
		t.onChange(key, from, to, handoff)
	}
	return u
}

// actualOwner is checkpoint.Lease.ActualOwner on an item.
func actualOwner(it map[string]types.AttributeValue) string {
	if co := attrString(it, checkpoint.AttrCheckpointOwner); co != "" {
		return co
	}
	return attrString(it, checkpoint.AttrLeaseOwner)
}

func attrString(it map[string]types.AttributeValue, name string) string {
	if s, ok := it[name].(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func capacity(table string, u float64) *types.ConsumedCapacity {
	return &types.ConsumedCapacity{TableName: aws.String(table), CapacityUnits: aws.Float64(u)}
}

func writeUnits(size int) float64 { return math.Max(1, math.Ceil(float64(size)/1024)) }

func readUnits(size int, consistent bool) float64 {
	u := math.Max(1, math.Ceil(float64(size)/4096))
	if !consistent {
		u /= 2
	}
	return u
}

// ItemSize is DynamoDB's item size: the UTF-8 bytes of each attribute name plus its value, a
// number taking one byte per two significant digits plus one, a set the sum of its elements
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html).
func ItemSize(it map[string]types.AttributeValue) int {
	n := 0
	for name, v := range it {
		n += len(name)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberN:
			n += numberSize(v.Value)
		case *types.AttributeValueMemberB:
			n += len(v.Value)
		case *types.AttributeValueMemberSS:
			for _, s := range v.Value {
				n += len(s)
			}
		case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
			n++
		default:
			n += 3
		}
	}
	return n
}

func numberSize(s string) int {
	d := strings.TrimLeft(strings.TrimPrefix(s, "-"), "0.")
	d = strings.ReplaceAll(d, ".", "")
	return (len(d)+1)/2 + 1
}
