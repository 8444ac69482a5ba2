package checkpoint

import (
	"maps"
	"math"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoDBStats is a snapshot of the requests a DynamoDBStore made and the capacity they
// consumed since it was created.
//
// Capacity comes from the ConsumedCapacity DynamoDB returns (every request asks for TOTAL).
// Where a response carries none, which is always the case for a failed conditional write since
// DynamoDB reports it as an error, the store estimates the units from item sizes by DynamoDB's
// rules: a write costs one unit per started KiB of the larger of the old and new item (a
// refused conditional write is charged for the existing item), a read one unit per started
// 4 KiB, half that when eventually consistent, and a Scan page is charged for the total size
// of the items it read. EstimatedResponses counts those.
type DynamoDBStats struct {
	// Requests counts requests by DynamoDB API ("GetItem", "UpdateItem", "Scan", ...). A call
	// the SDK retried counts once per attempt; its capacity is that of the final response.
	Requests map[string]int64
	// Operations breaks requests and capacity down by store operation ("TakeLease", ...).
	Operations map[string]OperationStats
	// ReadCapacityUnits and WriteCapacityUnits are the totals over all operations.
	ReadCapacityUnits  float64
	WriteCapacityUnits float64 // see ReadCapacityUnits
	// ReportedResponses counts responses whose capacity DynamoDB reported; EstimatedResponses
	// those whose capacity the store computed from item sizes.
	ReportedResponses  int64
	EstimatedResponses int64 // see ReportedResponses
}

// OperationStats is the share of one store operation in DynamoDBStats.
type OperationStats struct {
	// Calls counts calls of the operation, Requests the DynamoDB requests they made (a
	// refused conditional write may add a GetItem to learn the lease's current state; a
	// ListLeases makes one Scan per page).
	Calls    int64
	Requests int64 // see Calls
	// ConditionalFailures counts conditional writes DynamoDB refused.
	ConditionalFailures int64
	ReadCapacityUnits   float64 // read capacity consumed by the operation's requests
	WriteCapacityUnits  float64 // write capacity consumed by the operation's requests
}

// requestKind says which capacity a request consumes.
type requestKind uint8

const (
	readRequest    requestKind = iota // GetItem, Scan: read capacity
	writeRequest                      // PutItem, UpdateItem, DeleteItem: write capacity
	controlRequest                    // DescribeTable, CreateTable: no item capacity
)

// statsRecorder accumulates DynamoDBStats and forwards each request to an optional sink
// (a metrics registry).
type statsRecorder struct {
	mu sync.Mutex
	s  DynamoDBStats
	// sink, when set, receives every request as it is recorded: the store operation, the
	// kind of request and the capacity units it consumed.
	sink func(op string, kind requestKind, tries int, units float64)
}

func newStatsRecorder() *statsRecorder {
	return &statsRecorder{s: DynamoDBStats{Requests: map[string]int64{}, Operations: map[string]OperationStats{}}}
}

func (r *statsRecorder) call(op string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.s.Operations[op]
	o.Calls++
	r.s.Operations[op] = o
}

// request records one DynamoDB request made for op. reported is the ConsumedCapacity from the
// response, nil when there was none, in which case estimate supplies the units.
// tries is the number of HTTP attempts the SDK made; each one reached DynamoDB (or was meant
// to), so each counts as a request.
func (r *statsRecorder) request(op, api string, kind requestKind, tries int, reported *types.ConsumedCapacity, estimate func() float64, condFailed bool) {
	var units float64
	estimated := false
	switch {
	case reported != nil && reported.CapacityUnits != nil:
		units = *reported.CapacityUnits
	case estimate != nil:
		units = estimate()
		estimated = true
	}
	var rcu, wcu float64
	switch kind {
	case writeRequest:
		wcu = units
	case readRequest:
		rcu = units
	}
	r.mu.Lock()
	r.s.Requests[api] += int64(tries)
	o := r.s.Operations[op]
	o.Requests += int64(tries)
	o.ReadCapacityUnits += rcu
	o.WriteCapacityUnits += wcu
	if condFailed {
		o.ConditionalFailures++
	}
	r.s.Operations[op] = o
	r.s.ReadCapacityUnits += rcu
	r.s.WriteCapacityUnits += wcu
	if estimated {
		r.s.EstimatedResponses++
	} else if estimate != nil || reported != nil {
		r.s.ReportedResponses++
	}
	sink := r.sink
	r.mu.Unlock()
	if sink != nil {
		sink(op, kind, tries, units)
	}
}

func (r *statsRecorder) snapshot() DynamoDBStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.s
	s.Requests = maps.Clone(r.s.Requests)
	s.Operations = maps.Clone(r.s.Operations)
	return s
}

// writeUnits is the write capacity of writing an item of the given size: one unit per
// started KiB, at least one.
func writeUnits(size int) float64 {
	return math.Max(1, math.Ceil(float64(size)/1024))
}

// readUnits is the read capacity of reading size bytes: one unit per started 4 KiB (at least
// one), halved for an eventually consistent read.
func readUnits(size int, consistent bool) float64 {
	u := math.Max(1, math.Ceil(float64(size)/4096))
	if !consistent {
		u /= 2
	}
	return u
}

// itemSize approximates DynamoDB's item size: attribute names plus values, where a number takes
// one byte per two significant digits plus one, and lists and maps add three bytes plus one per
// element.
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		return numberSize(v.Value)
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += numberSize(s)
		}
		return n
	case *types.AttributeValueMemberBS:
		n := 0
		for _, b := range v.Value {
			n += len(b)
		}
		return n
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + valueSize(e)
		}
		return n
	}
	return 0
}

func numberSize(s string) int {
	s = strings.TrimLeft(s, "+-")
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		s = s[:i]
	}
	s = strings.Replace(s, ".", "", 1)
	s = strings.Trim(s, "0")
	if s == "" {
		return 1
	}
	return (len(s)+1)/2 + 1
}
