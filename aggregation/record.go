package aggregation

// UserRecord is one logical record: what a producer hands to the Aggregator and
// what Deaggregate returns.
type UserRecord struct {
	// PartitionKey decides the shard unless ExplicitHashKey is set.
	PartitionKey string

	// ExplicitHashKey overrides the hash of PartitionKey when routing the
	// record: a decimal integer in [0, 2^128). Empty means absent.
	ExplicitHashKey string

	// Data is the payload. The Aggregator copies it; Deaggregate returns a
	// sub-slice of the Kinesis record it was given.
	Data []byte

	// Tags are carried by the format but set by neither the KPL nor the KCL.
	// They are kept so that records from producers that do set them survive
	// a round trip. A tag whose value is empty is encoded without a value.
	Tags []Tag

	// SubSequenceNumber is the position of the record inside its aggregate,
	// counted from zero. Set by Deaggregate; ignored by the Aggregator. It is an int64, as
	// in the consumer and checkpoint packages and as the KCL keeps it (a Java long, stored
	// in the lease table's checkpointSubSequenceNumber).
	SubSequenceNumber int64

	// Aggregated reports whether Deaggregate found the record inside an
	// aggregate. It is false for a plain Kinesis record and for a corrupt
	// aggregate passed through whole. Ignored by the Aggregator.
	Aggregated bool
}

// Tag is a key/value pair attached to a user record in the format's schema.
type Tag struct {
	Key   string
	Value string
}

// KinesisRecord is one record to put to Kinesis with PutRecord or PutRecords,
// as emitted by the Aggregator.
type KinesisRecord struct {
	// PartitionKey is the key to put the record under: the partition key of
	// the first user record it holds.
	PartitionKey string

	// ExplicitHashKey is the explicit hash key to put the record under: that
	// of the first user record, or empty when that record had none. Together
	// with PartitionKey it routes the whole record to the shard of its first
	// user record.
	ExplicitHashKey string

	// Data is the encoded aggregate, or the payload of the single user record
	// when it was emitted unwrapped.
	Data []byte

	// Records is the number of user records carried.
	Records int

	// Aggregated is false when Data is the plain payload of one user record.
	Aggregated bool

	buffer []byte // what Data was encoded into; see Buffer
}

// Buffer returns the buffer the Aggregator encoded Data into, emptied, at its
// full capacity. Data is a window into it that may start past its beginning,
// so once the record has been put, Buffer rather than Data is the spare to
// give back to FlushInto: a buffer that comes back whole never has to grow.
// It is nil for a record that no Aggregator made.
func (r KinesisRecord) Buffer() []byte {
	return r.buffer
}

// Size is what Kinesis counts against MaxRecordSize for this record: data
// bytes plus partition key bytes.
func (r KinesisRecord) Size() int {
	return len(r.Data) + len(r.PartitionKey)
}
