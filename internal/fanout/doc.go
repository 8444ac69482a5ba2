// Package fanout reads Kinesis shards through enhanced fan-out (SubscribeToShard), the
// retrieval that the consumer package plugs in next to polling with GetRecords.
//
// # The model
//
// An application registers one stream consumer under a name (EnsureConsumer); every worker
// of the application uses the same consumer ARN, and each gets a dedicated 2 MiB/s per shard it
// subscribes to. A subscription is an HTTP/2 event stream that Kinesis pushes records into and
// ends after 5 minutes; a reader subscribes again from where it stopped. Kinesis refuses a second
// subscription for the same consumer and shard within 5 seconds of the last successful one
// (ResourceInUseException) and allows one call per second per consumer and shard
// (LimitExceededException).
//
// A Subscriber owns that cycle for one shard. Its Next returns the events of the stream as
// Batches, in order. Reading is pulled: the event stream is read only while the bounded buffer
// in front of Next has room, so a slow caller slows the stream down instead of filling memory.
//
// # Where a new subscription starts
//
// Every event carries a ContinuationSequenceNumber. Kinesis documents it as the SequenceNumber
// for the next SubscribeToShard with AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER; it is the
// sequence number of the last record the event delivered (or, before any record, the position
// the subscription started from), so the subscriber resumes AFTER_SEQUENCE_NUMBER with it, as
// the Kinesis Client Library does on reconnection: AT_SEQUENCE_NUMBER would deliver the last
// record a second time. The position moves only when a batch has been handed to the buffer, so
// a subscription that breaks (connection reset, server error, silence longer than
// IdleTimeout) resumes exactly after the last batch that Next can return: no record is lost and
// none is repeated.
//
// # The end of a shard
//
// After a split or a merge the parent shard is closed. Kinesis delivers its remaining records
// and then an event whose ContinuationSequenceNumber is null and which lists the ChildShards;
// the subscriber turns that event into the last Batch, with ShardEnded set.
//
// Emulators may never send that event: kinesis-mock keeps a subscription to a closed shard
// open with empty events, never a null ContinuationSequenceNumber nor ChildShards. So the
// subscriber also asks ListShards, at most once per ShardCheckInterval, when an event brings no
// records or a subscription is refused. A shard with an EndingSequenceNumber is closed; the
// ending sequence number itself cannot tell whether everything was delivered (kinesis-mock sets
// it to 2^63-1), so once the shard has been seen closed for a whole interval without the
// subscription reporting the end, or as soon as a subscription to it is refused, the subscriber
// stops subscribing and reads the rest of the shard with GetShardIterator and GetRecords from the
// position after its last batch, until GetRecords returns no next iterator: then every record
// of the shard has been delivered, and the last Batch carries ShardEnded and the children that
// GetRecords or ListShards name. A shard no longer listed at all has expired; it ends at once.
//
// # What the client needs
//
// The HTTP client must not set a total timeout (http.Client.Timeout): a subscription is one
// response that lasts minutes. IdleTimeout notices dead connections instead. Besides
// SubscribeToShard, the subscriber calls ListShards and, for closed shards only,
// GetShardIterator and GetRecords, which the credentials must allow. Each subscription uses a
// protocol instance of its own, because the SDK's shares its event stream decoding state
// between all the streams of a client (aws/smithy-go#714).
//
// # Emulators and the initial-response
//
// Kinesis opens each SubscribeToShard event stream with an initial-response event, and the SDK
// requires it. kinesis-mock omits it; EmulatorTransport supplies it, and changes nothing in a
// stream that has one.
package fanout
