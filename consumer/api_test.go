package consumer

import (
	"reflect"
	"testing"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/checkpoint"
	"github.com/shardline/shardline/producer"
)

// TestSubSequenceNumbersShareOneType checks that every package gives a user record's position
// in its aggregate the same type, so a producer's result, a deaggregated record, a consumed
// record and a checkpoint compare without conversions.
func TestSubSequenceNumbersShareOneType(t *testing.T) {
	want := reflect.TypeFor[int64]()
	for name, typ := range map[string]reflect.Type{
		"aggregation.UserRecord":            reflect.TypeFor[aggregation.UserRecord](),
		"producer.Result":                   reflect.TypeFor[producer.Result](),
		"consumer.Record":                   reflect.TypeFor[Record](),
		"checkpoint.ExtendedSequenceNumber": reflect.TypeFor[checkpoint.ExtendedSequenceNumber](),
	} {
		f, ok := typ.FieldByName("SubSequenceNumber")
		if !ok {
			t.Errorf("%s has no SubSequenceNumber", name)
			continue
		}
		if f.Type != want {
			t.Errorf("%s.SubSequenceNumber is %s, want %s", name, f.Type, want)
		}
	}
}
