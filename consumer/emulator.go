package consumer

import (
	"net/http"

	"github.com/shardline/shardline/internal/fanout"
)

// EmulatorTransport wraps base (nil: http.DefaultTransport) so that enhanced fan-out works
// against kinesis-mock. That emulator starts a SubscribeToShard event stream without the
// initial-response event AWS sends first, and the Go SDK refuses such a stream; the transport
// inserts an empty initial-response where it is missing and passes everything else through
// untouched, so it changes nothing against AWS. Use it in the HTTP client of the Kinesis
// client given to Config.Kinesis when Retrieval is FanOut and the endpoint is an emulator:
//
//	hc := &http.Client{Transport: consumer.EmulatorTransport(nil)}
//	kc := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) { o.HTTPClient = hc })
//
// Do not set http.Client.Timeout on that client: a subscription is a long-lived response.
func EmulatorTransport(base http.RoundTripper) http.RoundTripper {
	return fanout.EmulatorTransport(base)
}
