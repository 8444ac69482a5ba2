// Package compression frames compressed Kinesis record payloads so that a consumer can
// recognise and undo the compression without being told which records were compressed or
// how.
//
// The producer compresses the blob of each Kinesis record (an aggregate or a single user
// record) when compression is switched on, and the consumer calls Decode on every blob before
// deaggregation. A blob that does not start with the frame's magic passes through Decode
// unchanged, so compressed and uncompressed records, and producers with and without
// compression, can share a stream.
//
// # Framing
//
// A frame is, in order:
//
//	offset  size      field
//	0       4         magic: F8 53 4C 5A
//	4       1         codec: 0 none (stored), 1 gzip, 2 zstd, 3 snappy
//	5       1 to 10   length of the decoded payload, unsigned LEB128 varint
//	5+n     4         CRC-32C (Castagnoli) of the decoded payload, big-endian
//	9+n     rest      the payload as the codec encodes it
//
// The codecs are the standard formats, so any language can decode a frame: gzip is RFC 1952,
// zstd is RFC 8878 (a single frame), snappy is the snappy block format (not the framed stream
// format). Codec 0 stores the payload as is; the producer uses it only to escape a blob that
// would otherwise start with the magic by accident.
//
// The magic is distinct from the KPL aggregate magic (F3 89 9A C2), so a decoder can tell the
// two layers apart: compression wraps aggregation, never the reverse. Its first byte, F8, never
// occurs in UTF-8 text, so text and JSON payloads cannot be mistaken for a frame.
//
// The length in the header lets Decode bound its allocation before decompressing: a frame
// announcing more than MaxDecodedSize bytes, or whose payload decodes to a length other than
// the announced one, is rejected, which defuses decompression bombs. The checksum catches a
// frame that decodes cleanly into the wrong bytes.
//
// Errors about a malformed frame are *FrameError values; errors.Is(err, ErrCorrupt) matches
// all of them.
//
// Compression is off by default in the producer: consumers that do not call Decode (AWS Lambda
// event source mappings, Amazon Data Firehose, the KCL) would see frames instead of records.
package compression
