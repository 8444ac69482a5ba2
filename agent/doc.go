// Package agent tails log files into Amazon Kinesis Data Streams records, as the Amazon
// Kinesis Agent does, and reads the same agent.json.
//
// # The model
//
// Data moves through five parts, each with one job:
//
//	scanner ──▶ tailer ──▶ processor ──▶ sink ──▶ acks ──▶ checkpointer
//	(which       (one file:   (lines to      (delivery,   (per-file     (positions
//	 files)       bytes to     records)       backpressure) contiguous   saved to disk)
//	              lines)                                   prefix)
//
// The scanner of each flow matches the flow's filePattern, on file system events (fsnotify)
// and on a periodic rescan, because events are lost on some file systems and under load. It
// recognises every file by its device and inode plus a fingerprint, the first
// FingerprintSize bytes of the file, so a file renamed by rotation keeps its position, a
// re-created file or a reused inode is read as new, and the copy that copytruncate leaves
// behind resumes where reading of the original stopped.
//
// Files whose names end in .gz, .bz2, .zip, .xz or .zst are never tailed, as the Amazon
// Kinesis Agent skips .gz, .bz2 and .zip, and a flow's excludePatterns leave out more.
//
// A tailer reads one open file from its resume point. It cuts lines, gathers multi-line
// records (sent when the next start line comes, or after multiLineTimeoutMillis), skips
// header lines, and notices truncation (the file is shorter than the position read, or its
// start no longer matches the fingerprint), the file leaving the pattern (deleted or renamed
// away: it is read to its end first), and inactivity (the file is closed, and opened again
// when it changes). At most MaxOpenFiles files are open at once: opening one more closes the
// file that grew least recently, which is opened again when it grows, at the position after its
// last record sent. A last line without a newline waits for its newline for as long as the
// file matches the pattern, as in the Amazon Kinesis Agent; it is sent as it is only when the
// file is closed: partialLineTimeoutMillis (one minute) after it left the pattern, or when it
// is closed as inactive. A truncated file is read again from its start at once; the records
// of its old content are still delivered, and the checkpoint moves to the new content when
// they are.
//
// The processor applies the flow's dataProcessingOptions (SINGLELINE with its parseOptions
// NO_TRIM and ESCAPE_NEW_LINE, CSVTOJSON, LOGTOJSON,
// ADDMETADATA, ADDEC2METADATA with the instance identity from IMDSv2, cached for metadataTTL), cuts records longer than the record size, marking the cut with the truncated
// record terminator, and chooses the partition key (RANDOM, DETERMINISTIC, or a parsed field).
//
// The Sink takes the records. It may block, and that is the backpressure: a tailer that
// cannot send stops reading. Independently of the sink, the bytes and records read but not yet
// acknowledged are bounded (maxInFlightBytes, maxInFlightRecords), so memory stays bounded
// whatever the sink does.
//
// Every record's Ack comes back in any order. Each file keeps a window of its records in
// file order and advances its checkpoint over the contiguous prefix that is acknowledged, so
// the checkpoint never passes a record that was not delivered. A failed delivery is re-sent
// by the agent after a backoff (retryInitialBackoffMillis to retryMaxBackoffMillis): the sink
// (the producer) retries on its own first, so a failure that reaches the agent is one the
// producer gave up on, and re-sending the record itself keeps the rest of the file moving.
// Records are first sent in file order; a re-sent record arrives after the records sent after
// it, as with the Kinesis Producer Library's own retries.
//
// The checkpointer saves every tracked file's acknowledged position at an interval and when
// the agent stops; the positions of files no longer tracked (kept for checkpointTimeToLiveDays
// in case they come back) go to an archive file beside it, written only when that set changes,
// so a save costs what the tracked files cost, whatever the history. Each is written to a
// temporary file that is synced and renamed over the old one, with the directory synced
// after, so a crash leaves either the old file or the new one. The default place,
// DefaultStateDirectory, survives reboots.
//
// # Guarantees
//
// Delivery is at least once. After a graceful stop (Run returning after ctx ends) every
// acknowledged record is behind the checkpoint, so nothing is sent twice unless the shutdown
// timeout passed with records in flight. After a crash or kill -9, the records sent after the
// last checkpoint save are sent again: duplicates are limited to what was in flight or
// acknowledged within one checkpoint interval. Rotation by rename-and-create loses nothing as
// long as the rotated file still matches the pattern or is read to its end before the agent
// stops. Rotation by copytruncate can lose what the application writes between the copy and
// the truncation; that is inherent to copytruncate, which no reader can avoid.
//
// # Delivery through the producer
//
// ProducerSink is the Sink that the shardline-agent daemon uses: one producer (package
// producer, with KPL aggregation on) per stream, all sharing one Kinesis client. Each record
// becomes a producer.Record whose Meta points at a pooled holder of the record's Ack, so the
// producer's callback finds the Ack without a map or a closure and a send allocates nothing.
// ProducerSink is a DataReleaser (the producer is done with a record's data when it delivers
// the result), so the agent reads into 64 KiB buffers that it reuses once every record in them
// is acknowledged, and reading allocates nothing in steady state either.
// The producer's result is the Ack: success acknowledges the record; any error (RecordTTL
// passed while the stream throttled or could not be reached, the service refused the record,
// the producer was closed) reports it failed, and the agent sends it again after its backoff.
// A record the producer can never accept (larger with its partition key than the stream's
// maximum record size) is failed the same way rather than refused; NewProducerSink refuses
// flows whose maxRecordSizeBytes would allow one: over 1 MiB, the value is checked against
// the stream's own limit (DescribeStreamSummary's MaxRecordSizeInKiB, up to 10 MiB once
// raised with UpdateMaxRecordSize).
//
// The Amazon Kinesis Agent fills one buffer per flow and sends it as one PutRecords request
// when it holds maxBufferSizeRecords records or maxBufferSizeBytes bytes, or when its oldest
// record is maxBufferAgeMillis old. The producer batches the same way, per stream, so
// ProducerConfig maps the settings of a stream's flows onto its producer.Config:
//
//	agent.json               producer.Config   meaning kept
//	maxBufferAgeMillis       Linger            longest wait of a record for its batch
//	maxBufferSizeRecords     MaxBatchRecords   most entries in one PutRecords request
//	maxBufferSizeBytes       MaxBatchBytes     most bytes in one PutRecords request
//	(maxBufferAgeMillis)     RecordTTL         the base TTL (30 s) counts from the end of Linger
//
// Where flows share a stream, the smallest value of each wins. With aggregation an entry is
// a Kinesis record packing many lines, so a request holds far more lines than
// maxBufferSizeRecords; the defaults (60 s, 500, 5 MiB) are the Amazon Kinesis Agent's, and
// maxBufferAgeMillis is the setting to lower for latency. Other producer settings (rate
// limit, request concurrency, buffer bounds) keep their defaults or come from the base
// configuration given to NewProducerSink. Update, called before Agent.Reload, gives new
// streams their producers and replaces a producer whose mapped settings changed.
//
// Backpressure holds at every step. A reader stops when the records read and not yet
// acknowledged reach maxInFlightRecords or maxInFlightBytes; Send blocks while the stream's
// producer holds MaxBufferedRecords or MaxBufferedBytes; records the producer gave up on stay
// in the agent's window, counted against its bounds, until they are delivered. So while a
// stream throttles or cannot be reached, reading pauses and memory stays bounded. A buffer
// that is full cannot gain more records to batch with, so a reader that has to wait, and a
// Send that finds the producer full, flush the producer briefly rather than let the batch
// wait out maxBufferAgeMillis; when Run stops it keeps flushing until the records in flight
// are delivered or the shutdown timeout passes.
//
// # Metrics
//
// With Config.Metrics each flow records LinesRead, RecordsSent, BytesSent,
// RecordSendAttempts, RecordSendErrors and FilesTailed under its StreamName. With
// KinesisAgentMetrics (cloudwatch.kinesisAgentMetrics) they carry the Amazon Kinesis Agent's
// Destination dimension instead ("KinesisStream:NAME", "DeliveryStream:NAME"), and the
// daemon publishes to its namespace, AWSKinesisAgent, so its dashboards and alarms keep
// working. The four send metrics have the Kinesis Agent's names and meanings, with one
// difference: it counts per PutRecords call, so RecordSendAttempts and RecordSendErrors
// include the records of each retried call, while here the producer retries within a send
// and RecordSendErrors counts the records it gave up on (each re-sent by the agent, counted
// again in RecordSendAttempts). Its ServiceErrors (calls that failed) has no per-flow
// equivalent here; the producer's AllErrors and ErrorsByCode count failed calls per stream.
// LinesRead and FilesTailed are Shardline's.
//
// # Invalid UTF-8
//
// Records are bytes: lines that are not valid UTF-8 are sent as they are. JSON output
// (CSVTOJSON, LOGTOJSON, ADDMETADATA) must be valid JSON, so each byte of an invalid sequence
// is written as the escape \udcXX, the "surrogateescape" convention: Python's json module with
// .encode("utf-8", "surrogateescape") gives back the exact bytes, and other decoders read U+FFFD.
//
// # Configuration
//
// LoadConfig reads agent.json and the flows of the agent.d drop-in directory beside it. The
// Amazon Kinesis Agent's settings that apply keep their meaning (its credential settings are
// carried in Config for the program that builds the clients); those that do not (thread
// pools, HTTP tuning) are listed once in Config.Warnings, which New logs. A flow with
// a deliveryStream goes to Amazon Data Firehose through FirehoseSink (PutRecordBatch), with
// the same acknowledged checkpoints; Destinations routes each record to its kind of sink. New
// refuses a state directory where the checkpoint file cannot be written. Shardline adds stateDirectory, checkpointIntervalMillis,
// maxInFlightBytes, maxInFlightRecords, and per flow partitionKeyField, maxRecordSizeBytes,
// excludePatterns, rescanIntervalMillis, partialLineTimeoutMillis, multiLineTimeoutMillis,
// ignoreFilesOlderThanMillis, closeInactiveMillis, and the log format RFC5424SYSLOG.
package agent
