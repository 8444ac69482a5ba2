// Package testenv connects tests to the local emulators that scripts/emulators.sh starts:
// kinesis-mock for Kinesis, dynalite for DynamoDB and moto for CloudWatch.
//
// The endpoints come from the environment variables SHARDLINE_KINESIS_ENDPOINT,
// SHARDLINE_DYNAMODB_ENDPOINT and SHARDLINE_CLOUDWATCH_ENDPOINT, or, when those are unset, from
// the file .emulators/env at the module root that the script writes. When an emulator is not
// available a test calls Unavailable: with CI=true the test fails and names the command that
// starts the emulators; elsewhere it is skipped with the same message, so `go test ./...` stays
// usable on a machine without Node.
//
// Every helper hands out fresh resources (a stream or a table with a unique name) and removes
// them when the test ends, so tests can run in parallel against one set of emulators.
package testenv
