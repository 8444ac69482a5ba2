package consumer

import (
	"context"
	"strings"

	"github.com/shardline/shardline/checkpoint"
)

// isOwnLease reports whether a lease-table row belongs to this worker's single stream. The
// KCL's single-stream leases are keyed by the shard ID alone. A KCL multi-stream application
// (MultiStreamLease, written by DynamoDBMultiStreamLeaseSerializer) keys its leases
// "account:streamName:creationEpoch:shardId" and stores the serialized StreamIdentifier in the
// streamName attribute and the shard ID in shardId. Shard IDs never contain a colon, so a key
// with one, or a row carrying either attribute, is another application's lease for some
// stream: taking it would ask Kinesis for the whole key as a shard ID, and ending or
// checkpointing it would corrupt that application's progress.
func isOwnLease(l *checkpoint.Lease) bool {
	return l.StreamIdentifier == "" && l.ShardID == "" && !strings.Contains(l.Key, ":")
}

// listLeases lists the lease table and keeps this stream's leases; the other rows are counted
// in Stats.ForeignLeases and otherwise left alone.
func (w *Worker) listLeases(ctx context.Context) ([]checkpoint.Lease, error) {
	leases, err := w.store.ListLeases(ctx)
	if err != nil {
		return nil, err
	}
	own := leases[:0]
	foreign := 0
	for i := range leases {
		if isOwnLease(&leases[i]) {
			own = append(own, leases[i])
		} else {
			foreign++
		}
	}
	if prev := w.stats.foreignLeases.Swap(int64(foreign)); prev != int64(foreign) && foreign > 0 {
		w.log.Info("consumer: ignoring lease-table rows of other streams (multi-stream leases)", "rows", foreign)
	}
	return own, nil
}
