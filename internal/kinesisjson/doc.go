// Package kinesisjson decodes Kinesis GetRecords answers without the AWS SDK's generic JSON
// decoder, which for a batch of records spends most of a consumer's CPU per record: it
// unquotes every string into a new one, decodes each record's base64 Data into a fresh
// buffer and allocates a pointer per member.
//
// A GetRecordsDecoder stands in for the kinesis client's protocol on the calls made with its
// Option, the way the producer stands in for PutRecords: requests, error answers and every
// other operation go to the client's protocol untouched; a successful GetRecords answer is
// read by a Scanner and decoded into memory the decoder reuses from one answer to the next
// (or, with FreshData, Data into a new buffer per answer, as the consumer's polling reads it),
// Data through a vectorized base64 decoder (github.com/segmentio/asm/base64, whose output is
// the standard library's). What the caller may keep, and for how long, is set out on
// GetRecordsDecoder.
//
// The output is the SDK's for the same bytes, member by member: the same records, strings,
// nil or empty slices, null members left unset, a null list element as a zero value,
// unknown members skipped, and the arrival timestamp converted from epoch seconds exactly as
// smithy-go converts it (truncated to the millisecond). A body the SDK rejects is rejected
// too. Like the SDK's, the decoder reads the answer's object and ignores whatever follows it.
// One difference: an ApproximateArrivalTimestamp of "NaN" makes the SDK panic (big.NewFloat
// of a NaN); the decoder returns an error instead. The tests compare the two on generated
// answers, on fuzzed bodies and on kinesis-mock's.
//
// Scanner is a general reader of JSON with the SDK's grammar (strings with escapes, numbers,
// literals, null, skipping any value), meant to serve other hand-written decoders as well.
package kinesisjson
