package kinesisjson

import (
	"context"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
)

// The kinesis client decodes answers through Options.Protocol, which a per-call option may
// replace. The decoder's option replaces it with a stand-in that embeds the client's own
// protocol and overrides only DeserializeResponse, and there only for successful GetRecords
// answers: requests are serialized, and error answers (any status but 2xx) mapped to the
// service's error types, by the client's protocol as before. Only the AWS JSON 1.1 protocol
// the client uses by default is stood in for; a client configured with another one (RPC v2
// CBOR, which carries blobs raw) is left alone.

var awsJSON11 = smithy.ShapeID{Namespace: "aws.protocols", Name: "awsJson1_1"}

// standIn is the protocol of calls made with a decoder's option.
type standIn struct {
	smithyhttp.ClientProtocol // the client's own protocol, for everything else
	d                         *GetRecordsDecoder
}

// busyFlag marks a decoder in the middle of a decode.
type busyFlag struct{ atomic.Bool }

// standInCache keeps the last stand-in, so that a reader polling one client does not
// allocate one per call.
type standInCache struct{ atomic.Pointer[standIn] }

// Option returns the per-call option that makes a GetRecords call decode its answer with d.
// The same function is returned each time.
func (d *GetRecordsDecoder) Option() func(*kinesis.Options) {
	d.optOnce.Do(func() { d.opt = d.install })
	return d.opt
}

func (d *GetRecordsDecoder) install(o *kinesis.Options) {
	pr, ok := o.Protocol.(*awsjson.Protocol)
	if !ok || pr.ID() != awsJSON11 {
		return
	}
	si := d.standIn.Load()
	if si == nil || si.ClientProtocol != smithyhttp.ClientProtocol(pr) {
		si = &standIn{ClientProtocol: pr, d: d}
		d.standIn.Store(si)
	}
	o.Protocol = si
}

// DeserializeResponse implements smithyhttp.ClientProtocol.
func (p *standIn) DeserializeResponse(ctx context.Context, schema *smithy.OperationSchema, reg *smithy.TypeRegistry, resp *smithyhttp.Response, out smithy.Deserializable) error {
	o, ok := out.(*kinesis.GetRecordsOutput)
	if !ok || schema.ID().Name != "GetRecords" || resp.StatusCode < 200 || resp.StatusCode >= 300 || schema.IsOutputEventStream() || schema.Output == nil {
		return p.ClientProtocol.DeserializeResponse(ctx, schema, reg, resp, out)
	}
	d := p.d
	if !d.busy.CompareAndSwap(false, true) {
		// Another call is decoding into d's memory: let the SDK decode this one.
		return p.ClientProtocol.DeserializeResponse(ctx, schema, reg, resp, out)
	}
	defer d.busy.Store(false)
	body, err := d.readBody(resp.Body, resp.ContentLength)
	if err != nil {
		return &smithy.DeserializationError{Err: err}
	}
	if err := d.Decode(body, o); err != nil {
		return &smithy.DeserializationError{Err: err}
	}
	return nil
}
