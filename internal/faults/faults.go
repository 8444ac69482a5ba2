package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kind is a kind of fault.
type Kind int

const (
	// Throttle answers HTTP 400 with the service's throttling error: for Kinesis
	// ProvisionedThroughputExceededException, for DynamoDB
	// ProvisionedThroughputExceededException, for CloudWatch (awsQuery) Throttling.
	Throttle Kind = iota + 1
	// InternalError answers HTTP 500 with InternalFailure.
	InternalError
	// ServiceUnavailable answers HTTP 503 with ServiceUnavailable.
	ServiceUnavailable
	// Timeout holds the request until its context ends or Rule.Delay passes, then fails it
	// with a timeout error, as a server that never answers does.
	Timeout
	// ConnectionReset fails the request with ECONNRESET before it reaches the server.
	ConnectionReset
	// ResetAfterForward forwards the request, discards the answer and fails with ECONNRESET:
	// the server acted, the client cannot know.
	ResetAfterForward
	// Delay forwards the request after Rule.Delay: a slow server.
	Delay
	// ThrottleEntries fails selected entries of a Kinesis PutRecords with
	// ProvisionedThroughputExceededException without sending them.
	ThrottleEntries
	// FailEntries fails selected entries of a Kinesis PutRecords with InternalFailure without
	// sending them.
	FailEntries
)

func (k Kind) String() string {
	switch k {
	case Throttle:
		return "Throttle"
	case InternalError:
		return "InternalError"
	case ServiceUnavailable:
		return "ServiceUnavailable"
	case Timeout:
		return "Timeout"
	case ConnectionReset:
		return "ConnectionReset"
	case ResetAfterForward:
		return "ResetAfterForward"
	case Delay:
		return "Delay"
	case ThrottleEntries:
		return "ThrottleEntries"
	case FailEntries:
		return "FailEntries"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Entry is the part of a PutRecords entry a per-entry rule can select on.
type Entry struct {
	PartitionKey    string
	ExplicitHashKey string
}

// Rule says which requests fail, how, how often and for how long.
type Rule struct {
	// Operation is the API operation, such as "PutRecords" or "GetRecords"; empty means
	// every operation.
	Operation string
	// Kind is the fault.
	Kind Kind
	// Probability is the chance that a matching request (or, for per-entry kinds, a matching
	// entry) fails; zero means always.
	Probability float64
	// Entries selects the PutRecords entries a per-entry rule may fail; nil selects all.
	Entries func(Entry) bool
	// Duration bounds how long after Add the rule is active; zero means until removed.
	Duration time.Duration
	// Times bounds how many requests the rule fails; zero means no bound.
	Times int
	// Delay is the wait for Delay and the longest hold for Timeout (zero: 30 s).
	Delay time.Duration
}

type activeRule struct {
	Rule
	id      int
	expires time.Time
	fired   int
}

// Injector is an http.RoundTripper that applies rules to requests before passing them to
// Base. It is safe for concurrent use.
type Injector struct {
	// Base carries the requests that are forwarded; nil means http.DefaultTransport.
	Base http.RoundTripper

	mu     sync.Mutex
	rules  []*activeRule
	nextID int
	rng    *rand.Rand
	counts map[string]int
}

// New returns an Injector forwarding to base (nil: http.DefaultTransport) with a random
// source seeded by seed, so a failing test can be replayed.
func New(base http.RoundTripper, seed uint64) *Injector {
	return &Injector{Base: base, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Add activates a rule and returns a function that removes it.
func (in *Injector) Add(r Rule) (remove func()) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.nextID++
	ar := &activeRule{Rule: r, id: in.nextID}
	if r.Duration > 0 {
		ar.expires = time.Now().Add(r.Duration)
	}
	in.rules = append(in.rules, ar)
	id := ar.id
	return func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		for i, x := range in.rules {
			if x.id == id {
				in.rules = append(in.rules[:i], in.rules[i+1:]...)
				return
			}
		}
	}
}

// Clear removes every rule.
func (in *Injector) Clear() {
	in.mu.Lock()
	in.rules = nil
	in.mu.Unlock()
}

// Count returns how many times a fault of kind k was injected into operation op ("" sums
// over operations). For per-entry kinds it counts failed entries.
func (in *Injector) Count(op string, k Kind) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	if op != "" {
		return in.counts[op+"/"+k.String()]
	}
	n := 0
	suffix := "/" + k.String()
	for key, v := range in.counts {
		if strings.HasSuffix(key, suffix) {
			n += v
		}
	}
	return n
}

func (in *Injector) countLocked(op string, k Kind, n int) {
	if in.counts == nil {
		in.counts = map[string]int{}
	}
	in.counts[op+"/"+k.String()] += n
}

func (in *Injector) base() http.RoundTripper {
	if in.Base != nil {
		return in.Base
	}
	return http.DefaultTransport
}

func (in *Injector) chance(p float64) bool {
	return p <= 0 || p >= 1 || in.rng.Float64() < p
}

// RoundTrip applies the first active whole-request rule that fires, or forwards the request,
// applying per-entry rules to PutRecords.
func (in *Injector) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	op := operation(req, body)

	in.mu.Lock()
	now := time.Now()
	var whole *activeRule
	var entryRules []*activeRule
	kept := in.rules[:0]
	for _, r := range in.rules {
		if !r.expires.IsZero() && now.After(r.expires) || r.Times > 0 && r.fired >= r.Times {
			continue // expired or used up: drop it
		}
		kept = append(kept, r)
		if r.Operation != "" && r.Operation != op {
			continue
		}
		switch r.Kind {
		case ThrottleEntries, FailEntries:
			entryRules = append(entryRules, r)
		default:
			if whole == nil && in.chance(r.Probability) {
				whole = r
				r.fired++
				in.countLocked(op, r.Kind, 1)
			}
		}
	}
	in.rules = kept
	in.mu.Unlock()

	service := serviceOf(req)
	if whole != nil {
		switch whole.Kind {
		case Throttle:
			return errorResponse(req, service, http.StatusBadRequest, throttleCode(service), "Rate exceeded (injected)"), nil
		case InternalError:
			return errorResponse(req, service, http.StatusInternalServerError, "InternalFailure", "injected internal failure"), nil
		case ServiceUnavailable:
			return errorResponse(req, service, http.StatusServiceUnavailable, "ServiceUnavailable", "injected unavailability"), nil
		case ConnectionReset:
			return nil, &resetError{op: op}
		case Timeout:
			hold := whole.Delay
			if hold <= 0 {
				hold = 30 * time.Second
			}
			t := time.NewTimer(hold)
			defer t.Stop()
			select {
			case <-req.Context().Done():
				return nil, req.Context().Err()
			case <-t.C:
				return nil, &timeoutError{op: op}
			}
		case Delay:
			t := time.NewTimer(whole.Delay)
			defer t.Stop()
			select {
			case <-req.Context().Done():
				return nil, req.Context().Err()
			case <-t.C:
			}
		case ResetAfterForward:
			resp, err := in.base().RoundTrip(withBody(req, body))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			return nil, &resetError{op: op}
		}
	}
	if op == "PutRecords" && len(entryRules) > 0 && service == "kinesis" && isJSON(req) {
		return in.putRecordsWithEntryFaults(req, body, entryRules)
	}
	return in.base().RoundTrip(withBody(req, body))
}

// putRecordsWithEntryFaults removes the entries that the rules fail from the request,
// forwards the rest, and merges the answers so each failed entry reports its error in place.
func (in *Injector) putRecordsWithEntryFaults(req *http.Request, body []byte, rules []*activeRule) (*http.Response, error) {
	var input map[string]json.RawMessage
	if err := json.Unmarshal(body, &input); err != nil {
		return in.base().RoundTrip(withBody(req, body))
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(input["Records"], &entries); err != nil {
		return in.base().RoundTrip(withBody(req, body))
	}
	failed := make([]*activeRule, len(entries))
	in.mu.Lock()
	nFailed := 0
	for i, raw := range entries {
		var e struct{ PartitionKey, ExplicitHashKey string }
		_ = json.Unmarshal(raw, &e)
		for _, r := range rules {
			if r.Entries != nil && !r.Entries(Entry{e.PartitionKey, e.ExplicitHashKey}) {
				continue
			}
			if in.chance(r.Probability) {
				failed[i] = r
				in.countLocked("PutRecords", r.Kind, 1)
				nFailed++
				break
			}
		}
	}
	for _, r := range rules {
		for _, f := range failed {
			if f == r {
				r.fired++
				break
			}
		}
	}
	in.mu.Unlock()
	if nFailed == 0 {
		return in.base().RoundTrip(withBody(req, body))
	}

	results := make([]json.RawMessage, len(entries))
	for i, r := range failed {
		if r == nil {
			continue
		}
		code, msg := "ProvisionedThroughputExceededException", "Rate exceeded for shard (injected)"
		if r.Kind == FailEntries {
			code, msg = "InternalFailure", "Internal service failure (injected)"
		}
		results[i], _ = json.Marshal(map[string]string{"ErrorCode": code, "ErrorMessage": msg})
	}
	var header http.Header
	status := http.StatusOK
	forwardedFailed := 0
	if nFailed < len(entries) {
		keep := make([]json.RawMessage, 0, len(entries)-nFailed)
		for i, raw := range entries {
			if failed[i] == nil {
				keep = append(keep, raw)
			}
		}
		input["Records"], _ = json.Marshal(keep)
		newBody, _ := json.Marshal(input)
		resp, err := in.base().RoundTrip(withBody(req, newBody))
		if err != nil {
			return nil, err
		}
		respBody, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			// The forwarded part failed as a whole: the whole request fails with its answer.
			resp.Body = io.NopCloser(bytes.NewReader(respBody))
			resp.ContentLength = int64(len(respBody))
			return resp, nil
		}
		var out struct {
			FailedRecordCount int
			Records           []json.RawMessage
			EncryptionType    string `json:",omitempty"`
		}
		if err := json.Unmarshal(respBody, &out); err != nil || len(out.Records) != len(keep) {
			return nil, fmt.Errorf("faults: unexpected PutRecords answer from the server: %.200s", respBody)
		}
		j := 0
		for i := range results {
			if results[i] == nil {
				results[i] = out.Records[j]
				j++
			}
		}
		forwardedFailed = out.FailedRecordCount
		header = resp.Header.Clone()
		status = resp.StatusCode
	} else {
		header = http.Header{"Content-Type": []string{"application/x-amz-json-1.1"}}
	}
	merged, _ := json.Marshal(struct {
		FailedRecordCount int
		Records           []json.RawMessage
	}{forwardedFailed + nFailed, results})
	header.Del("Content-Length")
	header.Del("X-Amz-Crc32") // the checksum was of the server's body, not of ours
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(bytes.NewReader(merged)),
		ContentLength: int64(len(merged)),
		Request:       req,
	}, nil
}

func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	return io.ReadAll(req.Body)
}

func withBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return r
}

func isJSON(req *http.Request) bool {
	return strings.Contains(req.Header.Get("Content-Type"), "json")
}

// operation names the API operation of a request in any of the SDK's protocols: AWS JSON
// (X-Amz-Target), RPC v2 CBOR (the URL path), or awsQuery (the Action form field).
func operation(req *http.Request, body []byte) string {
	if t := req.Header.Get("X-Amz-Target"); t != "" {
		if i := strings.LastIndexByte(t, '.'); i >= 0 {
			return t[i+1:]
		}
		return t
	}
	if i := strings.Index(req.URL.Path, "/operation/"); i >= 0 {
		return req.URL.Path[i+len("/operation/"):]
	}
	if strings.Contains(req.Header.Get("Content-Type"), "x-www-form-urlencoded") {
		if v, err := url.ParseQuery(string(body)); err == nil {
			return v.Get("Action")
		}
	}
	return ""
}

// serviceOf reads the signing name from the Authorization header's credential scope.
func serviceOf(req *http.Request) string {
	auth := req.Header.Get("Authorization")
	i := strings.Index(auth, "Credential=")
	if i < 0 {
		return ""
	}
	parts := strings.Split(strings.SplitN(auth[i+len("Credential="):], ",", 2)[0], "/")
	if len(parts) >= 4 {
		return parts[3]
	}
	return ""
}

func throttleCode(service string) string {
	switch service {
	case "monitoring":
		return "Throttling"
	case "dynamodb":
		return "ProvisionedThroughputExceededException"
	}
	return "ProvisionedThroughputExceededException"
}

// errorResponse builds the service's error answer in the request's protocol.
func errorResponse(req *http.Request, service string, status int, code, msg string) *http.Response {
	var body []byte
	h := http.Header{}
	if service == "monitoring" && !isJSON(req) && !strings.Contains(req.Header.Get("Content-Type"), "cbor") {
		h.Set("Content-Type", "text/xml")
		body = []byte(fmt.Sprintf(`<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>injected</RequestId></ErrorResponse>`, code, msg))
	} else {
		ct := req.Header.Get("Content-Type")
		if ct == "" || strings.Contains(ct, "cbor") {
			// RPC v2 CBOR errors are CBOR maps; the SDK also reads the type from this header.
			ct = "application/x-amz-json-1.1"
		}
		h.Set("Content-Type", ct)
		h.Set("X-Amzn-ErrorType", code)
		body, _ = json.Marshal(map[string]string{"__type": code, "message": msg})
	}
	h.Set("X-Amzn-RequestId", "injected")
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

type resetError struct{ op string }

func (e *resetError) Error() string {
	return "faults: connection reset by peer (injected into " + e.op + ")"
}
func (e *resetError) Unwrap() error { return syscall.ECONNRESET }

type timeoutError struct{ op string }

func (e *timeoutError) Error() string   { return "faults: i/o timeout (injected into " + e.op + ")" }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
