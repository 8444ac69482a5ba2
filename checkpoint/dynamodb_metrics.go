package checkpoint

import (
	"sync"

	"github.com/shardline/shardline/metrics"
)

// metricHandles are the series of one store operation.
type metricHandles struct {
	requests    *metrics.Counter
	read, write *metrics.Distribution
}

// newMetricsSink records every lease-table request in reg: a DynamoDBRequests count and, per
// request, the capacity units it used in DynamoDBReadCapacity or DynamoDBWriteCapacity, as the
// metrics package defines them. The Operation dimension is the store operation (TakeLease,
// RenewLease, ...), which says more than the DynamoDB API name since most of them are
// UpdateItem. Handles are resolved once per operation, because a registry lookup takes a lock.
func newMetricsSink(reg *metrics.Registry, table string) func(op string, kind requestKind, tries int, units float64) {
	var (
		mu      sync.Mutex
		handles = map[string]metricHandles{}
	)
	get := func(op string) metricHandles {
		mu.Lock()
		defer mu.Unlock()
		h, ok := handles[op]
		if !ok {
			dims := []metrics.Dimension{metrics.Dim(metrics.DimOperation, op), metrics.Dim(metrics.DimTableName, table)}
			req := definition(metrics.DynamoDBRequests)
			rd := definition(metrics.DynamoDBReadCapacity)
			wr := definition(metrics.DynamoDBWriteCapacity)
			h = metricHandles{
				requests: reg.Counter(req.Name, req.Unit, req.Level, dims...),
				read:     reg.Distribution(rd.Name, rd.Unit, rd.Level, dims...),
				write:    reg.Distribution(wr.Name, wr.Unit, wr.Level, dims...),
			}
			handles[op] = h
		}
		return h
	}
	return func(op string, kind requestKind, tries int, units float64) {
		h := get(op)
		h.requests.Add(int64(tries))
		switch kind {
		case readRequest:
			h.read.Observe(units)
		case writeRequest:
			h.write.Observe(units)
		}
	}
}

// definition returns the metrics package's definition of name, falling back to a detailed
// count should the table ever lose it.
func definition(name string) metrics.Definition {
	if d, ok := metrics.LookupDefinition(name); ok {
		return d
	}
	return metrics.Definition{Name: name, Unit: metrics.UnitCount, Level: metrics.LevelDetailed}
}
