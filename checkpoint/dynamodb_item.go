package checkpoint

import (
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Attribute names of the lease table. They are the Java KCL's names (DynamoDBLeaseSerializer
// and DynamoDBMultiStreamLeaseSerializer), with the DynamoDB type each is stored as.
const (
	AttrLeaseKey                           = "leaseKey"                           // S, hash key
	AttrLeaseOwner                         = "leaseOwner"                         // S, absent when unassigned
	AttrLeaseCounter                       = "leaseCounter"                       // N
	AttrCheckpoint                         = "checkpoint"                         // S
	AttrCheckpointSubSequenceNumber        = "checkpointSubSequenceNumber"        // N
	AttrPendingCheckpoint                  = "pendingCheckpoint"                  // S
	AttrPendingCheckpointSubSequenceNumber = "pendingCheckpointSubSequenceNumber" // N
	AttrPendingCheckpointState             = "pendingCheckpointState"             // B
	AttrOwnerSwitchesSinceCheckpoint       = "ownerSwitchesSinceCheckpoint"       // N
	AttrParentShardID                      = "parentShardId"                      // SS (singular name)
	AttrChildShardIDs                      = "childShardIds"                      // SS
	AttrStartingHashKey                    = "startingHashKey"                    // S
	AttrEndingHashKey                      = "endingHashKey"                      // S
	AttrCheckpointOwner                    = "checkpointOwner"                    // S, KCL 3.x handoff
	AttrThroughputKBps                     = "throughputKBps"                     // N, KCL 3.x
	AttrStreamName                         = "streamName"                         // S, multi-stream mode
	AttrShardID                            = "shardId"                            // S, multi-stream mode
	AttrEntityType                         = "entityType"                         // S, newer KCL: "LEASE" or another kind of row
)

// entityTypeLease is the entityType of lease rows. Newer KCL versions keep other kinds of rows
// (leader lock, migration state, worker metrics) in the lease table; a row without the
// attribute is a lease.
const entityTypeLease = "LEASE"

func attrS(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func attrN(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func attrSS(s []string) types.AttributeValue { return &types.AttributeValueMemberSS{Value: s} }
func attrF(f float64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(f, 'f', -1, 64)}
}

func leaseKeyOf(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrLeaseKey: attrS(key)}
}

// leaseItem encodes l the way the KCL's serializer does: optional values are left out rather
// than written empty (DynamoDB rejects empty sets, and the KCL reads a missing owner as
// "unassigned").
func leaseItem(l Lease) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		AttrLeaseKey:                     attrS(l.Key),
		AttrLeaseCounter:                 attrN(l.Counter),
		AttrCheckpoint:                   attrS(l.Checkpoint.SequenceNumber),
		AttrCheckpointSubSequenceNumber:  attrN(l.Checkpoint.SubSequenceNumber),
		AttrOwnerSwitchesSinceCheckpoint: attrN(l.OwnerSwitchesSinceCheckpoint),
	}
	if l.Owner != "" {
		item[AttrLeaseOwner] = attrS(l.Owner)
	}
	if p := l.PendingCheckpoint; p != nil {
		item[AttrPendingCheckpoint] = attrS(p.SequenceNumber)
		item[AttrPendingCheckpointSubSequenceNumber] = attrN(p.SubSequenceNumber)
	}
	if l.PendingCheckpointState != nil {
		item[AttrPendingCheckpointState] = &types.AttributeValueMemberB{Value: l.PendingCheckpointState}
	}
	if ids := shardSet(l.ParentShardIDs); len(ids) > 0 {
		item[AttrParentShardID] = attrSS(ids)
	}
	if ids := shardSet(l.ChildShardIDs); len(ids) > 0 {
		item[AttrChildShardIDs] = attrSS(ids)
	}
	if r := l.HashKeyRange; r != nil {
		item[AttrStartingHashKey] = attrS(r.StartingHashKey)
		item[AttrEndingHashKey] = attrS(r.EndingHashKey)
	}
	if l.CheckpointOwner != "" {
		item[AttrCheckpointOwner] = attrS(l.CheckpointOwner)
	}
	if l.ThroughputKBps != nil {
		item[AttrThroughputKBps] = attrF(*l.ThroughputKBps)
	}
	if l.StreamIdentifier != "" {
		item[AttrStreamName] = attrS(l.StreamIdentifier)
	}
	if l.ShardID != "" {
		item[AttrShardID] = attrS(l.ShardID)
	}
	return item
}

// isLeaseItem reports whether item is a lease row rather than another kind of row that newer
// KCL versions keep in the same table.
func isLeaseItem(item map[string]types.AttributeValue) bool {
	v, ok := item[AttrEntityType].(*types.AttributeValueMemberS)
	return !ok || v.Value == entityTypeLease
}

// decodeLease reads a lease item. Attributes Shardline does not know are ignored here and left
// untouched in the table, because every later write is an UpdateItem that names only the
// attributes it changes.
func decodeLease(item map[string]types.AttributeValue) (Lease, error) {
	var (
		l   Lease
		err error
		d   = decoder{item: item}
	)
	l.Key = d.s(AttrLeaseKey)
	if l.Key == "" && d.err == nil {
		return Lease{}, fmt.Errorf("item has no %s", AttrLeaseKey)
	}
	l.Owner = d.s(AttrLeaseOwner)
	l.Counter = d.n(AttrLeaseCounter)
	l.Checkpoint = ExtendedSequenceNumber{SequenceNumber: d.s(AttrCheckpoint), SubSequenceNumber: d.n(AttrCheckpointSubSequenceNumber)}
	if p := d.s(AttrPendingCheckpoint); p != "" {
		l.PendingCheckpoint = &ExtendedSequenceNumber{SequenceNumber: p, SubSequenceNumber: d.n(AttrPendingCheckpointSubSequenceNumber)}
	}
	// The KCL's create path would write this attribute as a number (its update path writes
	// binary); only the binary form carries state, so another type is ignored rather than
	// failing the whole lease.
	if b, ok := item[AttrPendingCheckpointState].(*types.AttributeValueMemberB); ok {
		l.PendingCheckpointState = b.Value
	}
	l.OwnerSwitchesSinceCheckpoint = d.n(AttrOwnerSwitchesSinceCheckpoint)
	l.ParentShardIDs = shardSet(d.ss(AttrParentShardID))
	l.ChildShardIDs = shardSet(d.ss(AttrChildShardIDs))
	start, end := d.s(AttrStartingHashKey), d.s(AttrEndingHashKey)
	if start != "" && end != "" {
		l.HashKeyRange = &HashKeyRange{StartingHashKey: start, EndingHashKey: end}
	}
	l.CheckpointOwner = d.s(AttrCheckpointOwner)
	if v, ok := item[AttrThroughputKBps]; ok {
		n, isN := v.(*types.AttributeValueMemberN)
		if !isN {
			d.fail(AttrThroughputKBps, "N", v)
		} else {
			f, perr := strconv.ParseFloat(n.Value, 64)
			if perr != nil {
				d.err = fmt.Errorf("attribute %s: %w", AttrThroughputKBps, perr)
			}
			l.ThroughputKBps = &f
		}
	}
	l.StreamIdentifier = d.s(AttrStreamName)
	l.ShardID = d.s(AttrShardID)
	if err = d.err; err != nil {
		return Lease{}, fmt.Errorf("lease %q: %w", l.Key, err)
	}
	return l, nil
}

// decoder reads typed attributes and keeps the first type error, so decodeLease reads
// straight through and checks once.
type decoder struct {
	item map[string]types.AttributeValue
	err  error
}

func (d *decoder) fail(name, want string, v types.AttributeValue) {
	if d.err == nil {
		d.err = fmt.Errorf("attribute %s has type %s, want %s", name, attrType(v), want)
	}
}

func (d *decoder) s(name string) string {
	v, ok := d.item[name]
	if !ok {
		return ""
	}
	s, ok := v.(*types.AttributeValueMemberS)
	if !ok {
		d.fail(name, "S", v)
		return ""
	}
	return s.Value
}

func (d *decoder) n(name string) int64 {
	v, ok := d.item[name]
	if !ok {
		return 0
	}
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		d.fail(name, "N", v)
		return 0
	}
	i, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil && d.err == nil {
		d.err = fmt.Errorf("attribute %s: %w", name, err)
	}
	return i
}

func (d *decoder) ss(name string) []string {
	v, ok := d.item[name]
	if !ok {
		return nil
	}
	ss, ok := v.(*types.AttributeValueMemberSS)
	if !ok {
		d.fail(name, "SS", v)
		return nil
	}
	return ss.Value
}

// attrType names the DynamoDB type of v, for error messages and tests.
func attrType(v types.AttributeValue) string {
	switch v.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberB:
		return "B"
	case *types.AttributeValueMemberSS:
		return "SS"
	case *types.AttributeValueMemberNS:
		return "NS"
	case *types.AttributeValueMemberBS:
		return "BS"
	case *types.AttributeValueMemberBOOL:
		return "BOOL"
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberL:
		return "L"
	case *types.AttributeValueMemberM:
		return "M"
	}
	return fmt.Sprintf("%T", v)
}
