// Package faults injects failures into AWS SDK traffic for tests. No local emulator ever
// throttles or fails on its own, so every test of retries, backoff and "nothing is lost" sets
// its faults here, deliberately and by rule.
//
// An Injector is an http.RoundTripper placed under an SDK client (testenv.HTTPClient wraps
// it). Each Rule names the operation it applies to, the fault, and how often and for how long
// it fires. Faults are of two kinds:
//
//   - Whole-request faults answer without forwarding the request (throttling, 500, 503,
//     a timeout, a connection reset), or forward it and then lose the answer
//     (ResetAfterForward), which is the case where a write happened but the client cannot
//     know it: the source of duplicates.
//   - Per-entry faults (ThrottleEntries, FailEntries) apply to Kinesis PutRecords in the
//     AWS JSON 1.1 protocol: the selected entries are removed from the request before it is
//     forwarded, and the response is rebuilt with an error in their places, so a failed entry
//     really is absent from the stream, as on AWS.
//
// The Injector counts what it injected per operation and fault, so a test can assert that the
// faults it asked for really happened.
package faults
