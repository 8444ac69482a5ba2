// Package kinesistest runs an Amazon Kinesis Data Streams endpoint inside a test process,
// the way net/http/httptest runs an HTTP server: NewServer starts it on the loopback
// interface, Client hands out a ready *kinesis.Client, and Close stops it.
package kinesistest
