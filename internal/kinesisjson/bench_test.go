package kinesisjson

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	asmbase64 "github.com/segmentio/asm/base64"
)

const benchRecords = 10_000

// benchAnswer is a GetRecords answer of n records of size bytes each, shaped as Kinesis
// writes them, and the base64 of each record's Data.
func benchAnswer(n, size int) ([]byte, [][]byte) {
	r := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	b := []byte(`{"Records":[`)
	payloads := make([][]byte, 0, n)
	data := make([]byte, size)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		enc := base64.StdEncoding.AppendEncode(nil, data)
		payloads = append(payloads, enc)
		b = append(b, `{"SequenceNumber":"4959033827149025660855969253836157109592157598913658`...)
		b = fmt.Appendf(b, "%04d", i)
		b = append(b, `","ApproximateArrivalTimestamp":`...)
		b = strconv.AppendFloat(b, float64(1733280000000+int64(i))/1000, 'E', -1, 64)
		b = append(b, `,"Data":"`...)
		b = append(b, enc...)
		b = fmt.Appendf(b, `","PartitionKey":"%08x-%04x-4%03x-8%03x-%012x","EncryptionType":"NONE"}`, r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Uint64()&(1<<48-1))
	}
	b = append(b, `],"NextShardIterator":"AAAAAAAAAAGq6fC5wQ2hWCiV1u1ZmkwYOH8XbB9jRW5p0tlxAtu3PRh6mYIyTnzbvJqALcN5xZpUdVtIRY/NgBCpeYTpvYIdkDFzdNxj7BOX8XWKXgYc6TaWN2TYRXRJmVyfB6Nn4JFmMpqp6ODpmUlXHGNPQk5EcEfqQYmiM8w","MillisBehindLatest":0}`...)
	return b, payloads
}

// perRecord reports time and allocations per record of b's loop of n records per op.
func perRecord(b *testing.B, n int, loop func()) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		loop()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	records := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/records, "ns/record")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/records, "allocs/record")
}

// BenchmarkGetRecordsDecode decodes a 10,000-record answer with the SDK's protocol, with
// the decoder's stand-in (both reading the body from a response, as in a call), with the
// decoder on the body in memory, and, as the floor, only base64-decodes the records' Data
// into one buffer with the same vectorized decoder.
func BenchmarkGetRecordsDecode(b *testing.B) {
	for _, size := range []int{100, 1024} {
		body, payloads := benchAnswer(benchRecords, size)
		name := fmt.Sprintf("%dB", size)
		if size == 1024 {
			name = "1KiB"
		}
		ctx := context.Background()
		b.Run(name+"/sdk", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			perRecord(b, benchRecords, func() {
				var out kinesis.GetRecordsOutput
				if err := sdkProtocol.DeserializeResponse(ctx, getRecordsSchema, kinesis.TypeRegistry, okResponse(body), &out); err != nil || len(out.Records) != benchRecords {
					b.Fatal(err)
				}
			})
		})
		b.Run(name+"/decoder", func(b *testing.B) {
			d := &GetRecordsDecoder{}
			o := kinesis.Options{Protocol: sdkProtocol}
			d.Option()(&o)
			b.SetBytes(int64(len(body)))
			perRecord(b, benchRecords, func() {
				var out kinesis.GetRecordsOutput
				if err := o.Protocol.DeserializeResponse(ctx, getRecordsSchema, kinesis.TypeRegistry, okResponse(body), &out); err != nil || len(out.Records) != benchRecords {
					b.Fatal(err)
				}
			})
		})
		// Decode alone, on the body in memory: the stand-in's copy of the body off the
		// response is the rest of the difference.
		b.Run(name+"/decoder-in-memory", func(b *testing.B) {
			d := &GetRecordsDecoder{}
			b.SetBytes(int64(len(body)))
			perRecord(b, benchRecords, func() {
				var out kinesis.GetRecordsOutput
				if err := d.Decode(body, &out); err != nil || len(out.Records) != benchRecords {
					b.Fatal(err)
				}
			})
		})
		b.Run(name+"/floor", func(b *testing.B) {
			buf := make([]byte, len(body))
			b.SetBytes(int64(len(body)))
			perRecord(b, benchRecords, func() {
				off := 0
				for _, p := range payloads {
					n, err := asmbase64.StdEncoding.Decode(buf[off:], p)
					if err != nil {
						b.Fatal(err)
					}
					off += n
				}
			})
		})
	}
}
