// Package aggregation reads and writes the KPL aggregated record format, the
// way the Kinesis Producer Library packs many small user records into one
// Kinesis record and the Kinesis Client Library unpacks them, byte for byte.
//
// # Format
//
// An aggregated Kinesis record is the 4-byte Magic F3 89 9A C2, then a
// protobuf (proto2) AggregatedRecord message, then the 16-byte MD5 digest of
// the protobuf bytes:
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Tag    { required string key = 1; optional string value = 2; }
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// Records name their keys by zero-based index into the two tables, so a key
// shared by many records is stored once. The encoding is written and parsed
// by hand, without generated code, because the message is small and fixed and
// the encoder and decoder sit on every record's path.
//
// # Model
//
// A UserRecord is what an application produces or consumes. An Aggregator
// collects user records into one aggregate until it reaches MaxSize, keeps
// each distinct key once per table, predicts the exact encoded size of the
// next addition (SizeWith, Fits) and emits a KinesisRecord to put: the blob,
// and the partition key and explicit hash key of its first user record, which
// send it to that record's shard. Callers group records by shard (see
// ShardMap) before aggregating, as the KPL does. An aggregate of one record
// can be emitted as the plain record (UnwrapSingle), as the KPL does. The
// checksum is most of what encoding costs, so a caller with many aggregates
// to send can flush them with FlushWithoutChecksum and have a Checksummer
// compute their checksums together, several times faster.
//
// Deaggregate turns the data of one Kinesis record back into user records,
// appending to a caller's slice so that the slice is reused. Data that lacks
// Magic is a plain record and comes back as is. Data that has Magic but fails
// the checksum or does not parse also comes back whole, as the KCL does, with
// a *CorruptError so that callers can count it.
//
// # Memory
//
// The Data of every user record returned by Deaggregate aliases the input
// slice: it stays valid, and changes, with it. Partition and explicit hash
// key strings are copied into one allocation per aggregate and shared by its
// records, so keys never alias the input. The Aggregator copies what Add is
// given, and Flush hands over the buffer the aggregate was encoded into; the
// Data of an emitted KinesisRecord belongs to the caller.
//
// # Compatibility
//
// Aggregates are byte-identical to the KPL's for the same records, with one
// deliberate difference: when an aggregate mixes records with and without an
// explicit hash key, the explicit hash key table starts with an empty entry
// that no record references. The aws-kinesis-agg decoder for Node.js reads a
// missing explicit_hash_key_index as 0 and would otherwise give such records
// the first table entry as their explicit hash key; the KCL and this package
// ignore the entry.
//
// # Hash keys
//
// Kinesis maps a record to the shard whose hash key range holds its explicit
// hash key or, without one, the MD5 of its partition key read as a 128-bit
// big-endian integer. HashKey, PartitionKeyHash, ParseHashKey, ShardRange and
// ShardMap do that arithmetic without math/big.
package aggregation
