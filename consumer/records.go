package consumer

import (
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/compression"
)

// recordDecoder turns a batch of Kinesis records into the user records a processor sees:
// decompressed, deaggregated, filtered to the shard's hash key range and, right after a resume
// in the middle of an aggregate, without the user records processed before. One decoder
// serves one shard and reuses its buffers from batch to batch, so the steady state allocates
// nothing per record.
type recordDecoder struct {
	// rng is the shard's hash key range; checkRange is false when the shard covers the whole
	// key space or its range is unknown, and nothing can be outside it.
	rng        aggregation.ShardRange
	checkRange bool

	// skipSeq and skipSub drop, from the Kinesis record with sequence number skipSeq, the user
	// records up to subsequence skipSub: those a checkpoint inside the aggregate covers.
	skipSeq string
	skipSub int64

	users []aggregation.UserRecord
	out   []Record

	// Per batch: each Kinesis record's data once decompressed, and where its user records
	// end in users.
	datas [][]byte
	ends  []int
	// deagg checks the checksums of a batch's aggregates together.
	deagg aggregation.Deaggregator
	// keys tells whether the user records' hash keys lie in rng; inside[i] is its answer for
	// users[i].
	keys   keyRanges
	inside []bool

	stats decodeStats
}

// decodeStats counts what one call of decode found.
type decodeStats struct {
	corruptFrames     int   // compression frames that failed to decode, delivered raw
	corruptAggregates int   // KPL aggregates that failed to parse, delivered raw
	outsideRange      int   // user records dropped: hash outside the shard's range
	skipped           int   // user records dropped: covered by the checkpoint
	bytes             int64 // Kinesis record data bytes
	userBytes         int64 // data bytes of the user records delivered
	// last is the position covering every Kinesis record of the batch, whatever was
	// dropped from it: the last record's sequence number and its last subsequence number.
	last checkpoint.ExtendedSequenceNumber
}

// newRecordDecoder returns a decoder for a shard whose hash key range is r (nil when
// unknown), resuming after cp.
func newRecordDecoder(r *checkpoint.HashKeyRange, resume checkpoint.ExtendedSequenceNumber) *recordDecoder {
	d := &recordDecoder{}
	if r != nil {
		start, err1 := aggregation.ParseHashKey(r.StartingHashKey)
		end, err2 := aggregation.ParseHashKey(r.EndingHashKey)
		if err1 == nil && err2 == nil {
			d.rng = aggregation.ShardRange{Start: start, End: end}
			d.checkRange = start != (aggregation.HashKey{}) || end != aggregation.MaxHashKey
		}
	}
	if !resume.IsSentinel() && resume.SequenceNumber != "" {
		d.skipSeq, d.skipSub = resume.SequenceNumber, resume.SubSequenceNumber
	}
	return d
}

// decode converts recs. The returned slice is valid until the next call.
func (d *recordDecoder) decode(recs []types.Record) []Record {
	oldOut, oldUsers := len(d.out), len(d.users)
	d.out = d.out[:0]
	d.stats = decodeStats{}
	d.datas = d.datas[:0]
	for i := range recs {
		kr := &recs[i]
		d.stats.bytes += int64(len(kr.Data))
		data, err := compression.Decode(kr.Data)
		if err != nil {
			// Delivered as it came, like a corrupt aggregate: dropping it would lose data the
			// application may still be able to use or report.
			d.stats.corruptFrames++
			data = kr.Data
		}
		d.datas = append(d.datas, data)
	}
	d.deagg.Prepare(d.datas)
	d.users, d.ends = d.users[:0], d.ends[:0]
	for i := range recs {
		var derr error
		d.users, derr = d.deagg.Deaggregate(d.users, d.datas[i], deref(recs[i].PartitionKey), "")
		if derr != nil && isCorrupt(derr) {
			d.stats.corruptAggregates++
		}
		d.ends = append(d.ends, len(d.users))
	}
	clear(d.datas) // keep no answer alive through this slice
	if d.checkRange {
		d.inside = d.keys.check(d.rng, d.users, d.inside)
	}

	from := 0
	for i := range recs {
		kr := &recs[i]
		seq := deref(kr.SequenceNumber)
		var arrival time.Time
		if kr.ApproximateArrivalTimestamp != nil {
			arrival = *kr.ApproximateArrivalTimestamp
		}
		skipping := d.skipSeq != "" && seq == d.skipSeq
		if d.skipSeq != "" && seq != d.skipSeq {
			// Only the first record after a resume can be the checkpointed one.
			d.skipSeq = ""
		}
		users := d.users[from:d.ends[i]]
		lastSub := int64(0)
		for j := range users {
			u := &users[j]
			sub := u.SubSequenceNumber
			lastSub = sub
			if skipping && sub <= d.skipSub {
				d.stats.skipped++
				continue
			}
			if u.Aggregated && d.checkRange && !d.inside[from+j] {
				// Written under an older shard map: the producer sent it again to the shard
				// that owns its key now, as the KCL assumes when it drops it.
				d.stats.outsideRange++
				continue
			}
			d.out = append(d.out, Record{
				Data:                        u.Data,
				PartitionKey:                u.PartitionKey,
				ExplicitHashKey:             u.ExplicitHashKey,
				SequenceNumber:              seq,
				SubSequenceNumber:           sub,
				ApproximateArrivalTimestamp: arrival,
				Aggregated:                  u.Aggregated,
			})
			d.stats.userBytes += int64(len(u.Data))
		}
		if skipping {
			d.skipSeq = ""
		}
		from = d.ends[i]
		d.stats.last = checkpoint.ExtendedSequenceNumber{SequenceNumber: seq, SubSequenceNumber: lastSub}
	}
	// Entries past this batch's end must not keep an earlier answer alive.
	if n := len(d.out); n < oldOut {
		clear(d.out[n:oldOut])
	}
	if n := len(d.users); n < oldUsers {
		clear(d.users[n:oldUsers])
	}
	return d.out
}

// isCorrupt reports a *aggregation.CorruptError; apart from decode's loop, so that the error
// variable does not escape to the heap on every record.
func isCorrupt(err error) bool {
	var ce *aggregation.CorruptError
	return errors.As(err, &ce)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// compareSeq compares two decimal sequence numbers as integers, without allocating.
func compareSeq(a, b string) int { return checkpoint.CompareDecimal(a, b) }
