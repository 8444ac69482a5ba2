package producer

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// TestNilDataIsEmpty puts a record with nil Data among others, unaggregated (where it would
// be sent as is) and aggregated: it is written as an empty record, as the KPL writes it, and
// its neighbours are not held up.
func TestNilDataIsEmpty(t *testing.T) {
	for _, disable := range []bool{true, false} {
		f := newFake(t, 1)
		p := newTestProducer(t, f, Config{DisableAggregation: disable, RecordTTL: 2 * time.Second})
		recs := makeRecords(20, 3, 20)
		recs = append(recs, Record{PartitionKey: "nil-data"})
		r := newResults(t)
		putAll(t, p, recs, r)
		r.wait(10 * time.Second)
		closeProducer(t, p)
		for i := range recs {
			if res, _ := r.get(&recs[i]); res.Err != nil {
				t.Fatalf("aggregation off %v: record %d: %v", disable, i, res.Err)
			}
		}
		found := false
		for _, u := range f.read(t) {
			if u.pk == "nil-data" && u.data == "" {
				found = true
			}
		}
		if !found {
			t.Fatalf("aggregation off %v: the nil-Data record is not in the stream", disable)
		}
	}
}

// TestWholeRequestRefusalNarrowed makes the service refuse a whole request with a 400 while
// it holds one bad entry: only that record may fail (with the service's code), the others
// are sent again without it and succeed.
func TestWholeRequestRefusalNarrowed(t *testing.T) {
	for _, disable := range []bool{true, false} {
		f := newFake(t, 2)
		f.callHook = func(_ int, in *kinesis.PutRecordsInput) error {
			for _, e := range in.Records {
				if bytes.Contains(e.Data, []byte("poison")) {
					return &types.InvalidArgumentException{Message: aws.String("bad entry")}
				}
			}
			return nil
		}
		p := newTestProducer(t, f, Config{DisableAggregation: disable, AggregationMaxSize: 300})
		recs := makeRecords(60, 7, 40)
		bad := 17
		recs[bad].Data = append([]byte(nil), recs[bad].Data...)
		copy(recs[bad].Data[len(recs[bad].Data)-6:], "poison")
		r := newResults(t)
		putAll(t, p, recs, r)
		r.wait(10 * time.Second)
		closeProducer(t, p)
		failed := 0
		for i := range recs {
			res, _ := r.get(&recs[i])
			if res.Err == nil {
				continue
			}
			failed++
			var pe *PutError
			if !errors.As(res.Err, &pe) || pe.Code != "InvalidArgumentException" {
				t.Fatalf("record %d: %v", i, res.Err)
			}
		}
		if failed != 1 {
			t.Fatalf("aggregation off %v: %d of %d records failed", disable, failed, len(recs))
		}
	}
}

// TestSDKValidationErrorIsFatal classes the SDK's client-side refusal as fatal and narrowable:
// sending the same request again cannot help, but the records not at fault can go without
// the one that is.
func TestSDKValidationErrorIsFatal(t *testing.T) {
	err := sdkValidation(&kinesis.PutRecordsInput{Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k")}}})
	cls, code := classifyError(err)
	if cls != classFatal || !narrowable(code) {
		t.Fatalf("classified %v %q", cls, code)
	}
}
