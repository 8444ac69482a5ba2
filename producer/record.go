package producer

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/aggregation"
)

// Client is the part of the Kinesis API the producer uses. *kinesis.Client satisfies it, so a
// client built with kinesis.NewFromConfig can be passed as is; tests and benchmarks pass fakes.
// A wrapper must apply the option functions it is given to the calls it makes, and must not
// return from PutRecords while its call still runs: the producer reuses the request's memory
// (records and body) as soon as PutRecords returns.
type Client interface {
	PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error)
	ListShards(ctx context.Context, in *kinesis.ListShardsInput, optFns ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error)
}

// A *kinesis.Client can be passed to New directly.
var _ Client = (*kinesis.Client)(nil)

// StreamSummarizer is the optional part of a Client through which the producer learns the
// stream's maximum record size (DescribeStreamSummary's MaxRecordSizeInKiB; 1 MiB unless
// raised with UpdateMaxRecordSize, up to 10 MiB). *kinesis.Client has it. A Client without
// it, or whose call fails, is taken to have the default 1 MiB limit.
type StreamSummarizer interface {
	DescribeStreamSummary(ctx context.Context, in *kinesis.DescribeStreamSummaryInput, optFns ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error)
}

var _ StreamSummarizer = (*kinesis.Client)(nil)

// MaxRecordSizeOf returns the largest record, data plus partition key, that a stream whose
// DescribeStreamSummary answered sum takes: its MaxRecordSizeInKiB (UpdateMaxRecordSize sets
// it between 1 and 10 MiB), or 1 MiB when the summary does not say, as an endpoint from before
// large records answers. The producer, the agent and the shardline command all read the
// limit through it.
func MaxRecordSizeOf(sum *kinesis.DescribeStreamSummaryOutput) int {
	n := aggregation.MaxRecordSize
	if sum != nil && sum.StreamDescriptionSummary != nil && sum.StreamDescriptionSummary.MaxRecordSizeInKiB != nil {
		n = int(*sum.StreamDescriptionSummary.MaxRecordSizeInKiB) << 10
	}
	return min(max(n, aggregation.MaxRecordSize), MaxStreamRecordSize)
}

// Record is one user record.
//
// Ownership: a *Record passed to PutAsync or TryPutAsync, and the Data slice it refers to,
// belong to the producer from a nil-error return until the record's Callback is called. The
// producer reads Data while aggregating, re-aggregating after a reshard and, without
// aggregation, while sending, so neither may be modified or reused before the callback; after
// it they are the caller's again and may be recycled. Put and PutAll copy the records and
// their data, so the caller's buffers are free again when they return, even when they return
// early because their context ended.
type Record struct {
	// PartitionKey routes the record to a shard (through its MD5) and groups records whose
	// order matters: 1 to 256 characters, counted as Kinesis counts them, in UTF-16 code
	// units (a character outside the Basic Multilingual Plane, such as most emoji, counts
	// twice).
	PartitionKey string

	// ExplicitHashKey, when set, routes the record instead of the partition key's hash: a
	// decimal integer in [0, 2^128) without leading zeros.
	ExplicitHashKey string

	// Data is the payload; nil is sent as empty data. Data plus the partition key may not
	// exceed the stream's maximum record size: 1 MiB (1,048,576 bytes) by default, up to 10
	// MiB on a stream where it was raised, which the producer learns when it starts (see
	// StreamSummarizer; records put before that are held to 1 MiB). With compression on, the
	// limit applies to the compressed Kinesis record.
	Data []byte

	// Meta is carried to the Callback untouched, so a caller can find its own state for the
	// record without a map or a closure per record. Storing a pointer does not allocate.
	Meta any
}

// Result is the outcome of one user record.
type Result struct {
	// ShardID is the shard that holds the record, as PutRecords reported it.
	ShardID string

	// SequenceNumber is the sequence number of the Kinesis record that carries the user
	// record. User records aggregated together share it and differ in SubSequenceNumber.
	// Compare sequence numbers as big integers, not as strings of different lengths.
	SequenceNumber string

	// SubSequenceNumber is the position of the user record in its aggregate, counted from
	// zero; 0 for a record sent on its own. An int64, as consumer.Record and checkpoint
	// positions have it, so a result can be compared with what a consumer reads.
	SubSequenceNumber int64

	// Attempts is how many PutRecords calls carried the record, including the one that
	// succeeded or failed last.
	Attempts int

	// Err is nil on success. Otherwise it is one of: a *PutError (errors.Is(err, ErrPut)) for
	// a failure the service reported and the producer does not retry; an *ExpiredError
	// (errors.Is(err, ErrRecordExpired)) when RecordTTL passed first; ErrClosed, possibly
	// joined with the context error, when Close gave up on the record before sending it;
	// ErrOutcomeUnknown (which matches ErrClosed and the context error too) when Close gave
	// up while a PutRecords call carrying the record was in flight, so it may have been
	// written; or a
	// *ValidationError when the Kinesis record built from it breaks a limit that could only
	// be checked after compression.
	Err error
}

// Callback receives the result of one record put with PutAsync or TryPutAsync. It is called
// exactly once per accepted record, from one of the producer's goroutines, and must return
// quickly: it delays the results of the records after it. It may call TryPutAsync, but not
// PutAsync, Put, Flush or Close, which can wait on the very goroutine that runs it.
type Callback func(rec *Record, res Result)
