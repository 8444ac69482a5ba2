package consumer

import (
	"errors"

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

	// Cached hash of the last key pair, since the user records of an aggregate often share
	// their keys (the deaggregator hands out one string per distinct key).
	lastPK, lastEHK string
	lastIn          bool

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
	d.out = d.out[:0]
	d.stats = decodeStats{}
	for i := range recs {
		kr := &recs[i]
		seq := deref(kr.SequenceNumber)
		pk := deref(kr.PartitionKey)
		d.stats.bytes += int64(len(kr.Data))
		data, err := compression.Decode(kr.Data)
		if err != nil {
			// Delivered as it came, like a corrupt aggregate: dropping it would lose data the
			// application may still be able to use or report.
			d.stats.corruptFrames++
			data = kr.Data
		}
		var arrival = kr.ApproximateArrivalTimestamp
		users, derr := aggregation.Deaggregate(d.users[:0], data, pk, "")
		d.users = users
		var ce *aggregation.CorruptError
		if errors.As(derr, &ce) {
			d.stats.corruptAggregates++
		}
		skipping := d.skipSeq != "" && seq == d.skipSeq
		if d.skipSeq != "" && seq != d.skipSeq {
			// Only the first record after a resume can be the checkpointed one.
			d.skipSeq = ""
		}
		lastSub := int64(0)
		for j := range users {
			u := &users[j]
			sub := u.SubSequenceNumber
			lastSub = sub
			if skipping && sub <= d.skipSub {
				d.stats.skipped++
				continue
			}
			if u.Aggregated && d.checkRange && !d.inRange(u.PartitionKey, u.ExplicitHashKey) {
				// Written under an older shard map: the producer sent it again to the shard
				// that owns its key now, as the KCL assumes when it drops it.
				d.stats.outsideRange++
				continue
			}
			r := Record{
				Data:              u.Data,
				PartitionKey:      u.PartitionKey,
				ExplicitHashKey:   u.ExplicitHashKey,
				SequenceNumber:    seq,
				SubSequenceNumber: sub,
				Aggregated:        u.Aggregated,
			}
			if arrival != nil {
				r.ApproximateArrivalTimestamp = *arrival
			}
			d.out = append(d.out, r)
			d.stats.userBytes += int64(len(u.Data))
		}
		if skipping {
			d.skipSeq = ""
		}
		d.stats.last = checkpoint.ExtendedSequenceNumber{SequenceNumber: seq, SubSequenceNumber: lastSub}
	}
	return d.out
}

// inRange reports whether the user record's hash key lies in the shard's range. A malformed
// explicit hash key counts as inside: the record cannot be placed, so it is not dropped.
func (d *recordDecoder) inRange(pk, ehk string) bool {
	if pk == d.lastPK && ehk == d.lastEHK && (pk != "" || ehk != "") {
		return d.lastIn
	}
	k, err := aggregation.EffectiveHashKey(pk, ehk)
	in := err != nil || d.rng.Contains(k)
	d.lastPK, d.lastEHK, d.lastIn = pk, ehk, in
	return in
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// compareSeq compares two decimal sequence numbers as integers, without allocating.
func compareSeq(a, b string) int { return checkpoint.CompareDecimal(a, b) }
