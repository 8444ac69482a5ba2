// Command shardline works with Amazon Kinesis data streams from the command line: it manages
// streams, writes lines to them through Shardline's producer, and reads them back.
//
// # Commands
//
//	shardline stream create STREAM [--shards N | --on-demand] [--wait] [--timeout D] [--json]
//	shardline stream describe STREAM [--json]
//	shardline stream list [--json] [--page-size N]
//	shardline stream delete STREAM [--wait] [--timeout D] [--json] [--enforce-consumer-deletion]
//	shardline stream split STREAM --shard SHARD [--at HASH_KEY] [--wait] [--timeout D] [--json]
//	shardline stream merge STREAM --shard SHARD --adjacent SHARD [--wait] [--timeout D] [--json]
//	shardline stream update-shard-count STREAM --shards N [--wait] [--timeout D] [--json]
//	shardline put STREAM [FILE...] [--partition-key random|hash|fixed:KEY|json:FIELD]
//	    [--aggregate] [--compression none|gzip|zstd|snappy] [--base64]
//	    [--record-ttl D] [--close-timeout D]
//	shardline cat STREAM [-f] [--from trim-horizon|latest|TIME|DATE|EPOCH|DURATION] [--key KEY]...
//	    [--json] [--base64] [--delimiter STRING] [-n N] [--poll-interval D]
//	shardline emulator [--listen HOST:PORT] [--state FILE] [--env-file FILE] [--verbose]
//	    [--shard-write-bytes N] [--shard-write-records N] [--shard-read-bytes N]
//	    [--shard-read-calls N] [--max-record-size KIB] [--legacy-request-size]
//	    [--shard-limit N] [--unthrottled] [--creating D] [--updating D] [--deleting D]
//	    [--access-key-id KEY --secret-access-key SECRET]
//
// Every command takes the global flags --endpoint, --region and --profile, which override the
// standard AWS configuration (environment variables such as AWS_REGION, AWS_PROFILE and
// AWS_ENDPOINT_URL_KINESIS, the shared config and credentials files, instance roles), and
// --help, which shows examples. Shards may be named by ID (shardId-000000000003) or number (3).
//
// With --json every command that changes a stream prints one JSON object: the operation, the
// stream's status and, after a split or merge, the shards that replaced the old ones. stream
// list says on stderr when there is no stream, leaving stdout empty.
//
// Commands that change a stream wait until it is ACTIVE again (delete only with --wait),
// because the next command, or the next step of a script, fails on a stream that is still
// UPDATING. While they wait, stderr shows a spinner with the status and the elapsed time
// when it is a terminal, and a line per status change otherwise, so that logs stay readable.
//
// put reads lines and writes each as one record; on a terminal it redraws a progress line
// (records, bytes, rate, retries, failures) four times a second, and it always ends with a
// summary on stderr. Reading waits while the producer holds more than it drains in a quarter
// of the record TTL, so that a large file sent to a small stream is slowed down rather than
// expired.
//
// cat reads every shard with GetRecords, without leases or checkpoints: it is meant for
// looking at a stream, not for running a consumer application. A shard's parents are read to their end
// before the shard, so the records of one partition key come out in order across reshards.
// Each record is decompressed (package compression) and then deaggregated (package
// aggregation), and every user record is written on its own line: a newline follows each
// one that does not already end in one, or --delimiter, with escapes such as \0, after every
// record.
//
// emulator runs package kinesistest's server as a process for tests and services not
// written in Go: it prints its endpoint URL as the first line of stdout (and with --env-file
// writes it as AWS_ENDPOINT_URL_KINESIS), and with --state keeps streams and records in a
// file across restarts, saved when SIGINT or SIGTERM stops it, after which it exits 0.
//
// shardline completion bash|zsh|fish|powershell prints a completion script; completion asks
// the endpoint for stream names and shard IDs, within five seconds.
//
// # Exit codes
//
//	0    success; also cat -f ended by an interrupt or by --max-records
//	1    failure: an AWS error (a stream that does not exist is reported as
//	     "stream NAME not found"), a shard that cannot be resharded, records put could not
//	     write, unreadable input or unwritable output
//	2    usage error: unknown command or flag, bad flag value, missing argument, no region,
//	     unknown profile
//	130  interrupted by SIGINT (Ctrl-C) before the command finished
//	143  terminated by SIGTERM before the command finished
//
// # Interrupts and failures
//
// A first interrupt stops reading: put sends what it has read for up to --close-timeout, and
// a second interrupt abandons what is still unsent. Either way put ends with a summary that
// counts every line read as sent, failed or abandoned. When ten requests in a row fail to
// reach the endpoint (connection refused or reset, a name that does not resolve), put stops
// reading, abandons what is unsent, and exits with status 1 naming the failure, instead of
// retrying each record for its whole TTL.
//
// The SDK's own log lines are discarded; errors reach the user as messages of this command.
// When no credentials are found anywhere the SDK looks, the message says how to provide them,
// as the AWS CLI's does.
package main
