package agent

import "context"

// Record is what the agent hands to a Sink: one line, or one multi-line record, after the
// flow's processing.
type Record struct {
	// Stream is the flow's kinesisStream; empty for a Firehose flow.
	Stream string
	// DeliveryStream is the flow's Firehose deliveryStream; empty for a Kinesis flow.
	DeliveryStream string
	// PartitionKey is chosen by the flow's partitionKeyOption.
	PartitionKey string
	// Data is the record's bytes, ending in a newline as the Amazon Kinesis Agent's records
	// do. The sink owns it: the agent never writes to it after Send.
	Data []byte
	// Path, File and Offset say where the record was read: the path the file had then, its
	// identity and the offset of its first byte. Sinks may use them in logs.
	Path   string
	File   FileID
	Offset int64
}

// Sink accepts records for delivery. Send may block while the sink is full; that blocking is
// the agent's backpressure, and reading pauses while it lasts. Send returns an error only when
// it did not accept the record (its context was cancelled, or the sink is closed); the ack is
// then never called.
//
// For every accepted record the sink calls ack.Done exactly once, from any goroutine and in
// any order: with nil once the record is delivered, or with the error that made delivery fail
// for good. The agent re-sends a failed record itself (after a backoff), and a file's
// checkpoint never passes a record that was not delivered.
type Sink interface {
	Send(ctx context.Context, rec Record, ack Ack) error
}

// DataReleaser is implemented by sinks that never use a Record's Data after calling its
// ack.Done, nor after a Send that returned an error. The agent then reads into buffers it
// reuses once every record in them is acknowledged, so reading allocates nothing in steady
// state. A sink that does not implement it owns each record's Data, as Record says.
// ProducerSink implements it.
type DataReleaser interface {
	// ReleasesData is a marker; it is never called.
	ReleasesData()
}

// Flusher is implemented by sinks that hold records back to batch them, as ProducerSink does
// for up to maxBufferAgeMillis. While Run stops it calls Flush over and over until the records
// in flight are acknowledged or the shutdown timeout passes, so that they are sent at once
// instead of waiting out their buffer age, which may be longer than the timeout.
type Flusher interface {
	Flush(ctx context.Context) error
}

// SinkFunc adapts a function to the Sink interface.
type SinkFunc func(ctx context.Context, rec Record, ack Ack) error

// Send calls f.
func (f SinkFunc) Send(ctx context.Context, rec Record, ack Ack) error { return f(ctx, rec, ack) }

// Ack reports the outcome of one record to the agent. It is a small value, so a sink may keep
// it with the record at no cost; the zero Ack does nothing.
type Ack struct {
	st      *fileState
	seq     uint64
	attempt uint32
}

// Done reports the record delivered (err == nil) or failed. Calls after the first for the same
// send are ignored.
func (a Ack) Done(err error) {
	if a.st != nil {
		a.st.ack(a.seq, a.attempt, err)
	}
}
