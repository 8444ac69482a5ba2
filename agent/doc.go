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
// A tailer reads one open file from its resume point. It cuts lines (a last line without a
// newline waits for one, or for partialLineTimeoutMillis), gathers multi-line records, skips
// header lines, and notices truncation (the file is shorter than the position read, or its
// start no longer matches the fingerprint), the file leaving the pattern (deleted or renamed
// away: it is read to its end first), and inactivity (the file is closed, and opened again
// when it changes).
//
// The processor applies the flow's dataProcessingOptions (SINGLELINE, CSVTOJSON, LOGTOJSON,
// ADDMETADATA), cuts records longer than the record size, marking the cut with the truncated
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
// The checkpointer saves every file's acknowledged position at an interval and when the agent
// stops: to a temporary file that is synced and renamed over the checkpoint file, with the
// directory synced after, so a crash leaves either the old file or the new one. The default
// place, DefaultStateDirectory, survives reboots.
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
// # Invalid UTF-8
//
// Records are bytes: lines that are not valid UTF-8 are sent as they are. JSON output
// (CSVTOJSON, LOGTOJSON, ADDMETADATA) must be valid JSON, so each byte of an invalid sequence
// is written as the escape \udcXX, the "surrogateescape" convention: Python's json module with
// .encode("utf-8", "surrogateescape") gives back the exact bytes, and other decoders read U+FFFD.
//
// # Configuration
//
// LoadConfig reads agent.json. The Amazon Kinesis Agent's settings that apply keep their
// meaning; those that do not (Firehose flows, credentials, thread pools) are listed once in
// Config.Warnings, which New logs. Shardline adds stateDirectory, checkpointIntervalMillis,
// maxInFlightBytes, maxInFlightRecords, and per flow partitionKeyField, maxRecordSizeBytes,
// rescanIntervalMillis, partialLineTimeoutMillis, ignoreFilesOlderThanMillis,
// closeInactiveMillis, and the log format RFC5424SYSLOG.
package agent
