package kinesistest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/shardline/shardline/internal/requestbody"
)

// Durations are how long the asynchronous operations keep a stream in CREATING, UPDATING
// or DELETING before it becomes ACTIVE (or disappears). The service takes from seconds to
// minutes; every default here is zero, so a stream is ACTIVE as soon as the call returns.
// Set them to exercise code that waits, and drive them with a ManualClock.
type Durations struct {
	CreateStream     time.Duration
	DeleteStream     time.Duration
	SplitShard       time.Duration
	MergeShards      time.Duration
	UpdateShardCount time.Duration
	UpdateStreamMode time.Duration
	StreamEncryption time.Duration
	// RegisterStreamConsumer and DeregisterStreamConsumer keep a consumer CREATING or
	// DELETING.
	RegisterStreamConsumer   time.Duration
	DeregisterStreamConsumer time.Duration
}

// Options configure a Server. The zero value is a server with the service's documented
// limits, real time, and no faults.
type Options struct {
	// Region names the region in ARNs and must match the region of the SigV4 credential
	// scope. Default "us-east-1".
	Region string
	// AccountID is the account in stream ARNs. Default "000000000000".
	AccountID string
	// Limits are the quotas enforced; zero fields take the service's defaults.
	Limits Limits
	// Clock drives retention, iterator expiry, state transitions and every token bucket.
	// Default: the system clock. Use a *ManualClock to move time in a test.
	Clock Clock
	// Durations of CREATING, UPDATING and DELETING. Default zero for each.
	Durations Durations
	// Faults are rules that delay, fail or throttle calls; see FaultRule. They can be
	// replaced later with SetFaults. Default none.
	Faults []FaultRule
	// Seed seeds the random choices of fault rules with a Rate, so a run repeats. Default
	// zero, which is a fixed seed too.
	Seed uint64
	// Logger receives one debug line per refused call. Default: discard.
	Logger *slog.Logger
	// Credentials are what Client signs with. Default DefaultAccessKeyID and
	// DefaultSecretAccessKey; a zero field takes its default.
	Credentials Credentials
	// VerifySignatures makes the server check each request's SigV4 signature against
	// Credentials: another access key is refused with UnrecognizedClientException, a
	// signature that does not match with InvalidSignatureException. Default false: only
	// the Authorization header's shape and region are checked, and any key is taken.
	VerifySignatures bool
	// Addr is the TCP address to listen on, host:port. Default "127.0.0.1:0", a free port
	// on the loopback interface.
	Addr string
	// Restore is state written by Server.Snapshot to start from. Default nil, an empty
	// server. An unusable snapshot makes Start fail with an error wrapping ErrSnapshot.
	Restore io.Reader
	// FanOutPollInterval is how often (in real time) a SubscribeToShard subscription looks for
	// new records and reads the clock. Default 20ms.
	FanOutPollInterval time.Duration
}

// Server is a Kinesis Data Streams endpoint on the loopback interface, serving AWS JSON 1.1
// over HTTP/1.1 and unencrypted HTTP/2 (h2c). Its methods are safe for concurrent use.
type Server struct {
	// URL is the endpoint, http://127.0.0.1:port, for kinesis.Options.BaseEndpoint.
	URL string

	hs        *httptest.Server
	transport *http.Transport
	region    string
	account   string
	limits    Limits
	durations Durations
	clock     Clock
	log       *slog.Logger
	tokenKey  [32]byte
	creds     Credentials
	verify    bool

	faults faultSet

	mu      sync.RWMutex
	streams map[string]*stream
	serial  uint64

	rateMu sync.Mutex
	rates  map[string]*tokenBucket

	subsMu     sync.Mutex
	subs       map[subKey]*subscription
	done       chan struct{} // closed by Close; ends fan-out subscriptions
	closeOnce  sync.Once
	fanOutPoll time.Duration

	// busy sums the time handlers spend serving calls, so a benchmark can tell the
	// server's share of the process's CPU from the client's.
	busy atomic.Int64
}

// NewServer starts a server. Close it when done (t.Cleanup(srv.Close) in a test). It
// panics where Start returns an error, as httptest.NewServer does when it cannot listen.
func NewServer(opts Options) *Server {
	s, err := Start(opts)
	if err != nil {
		panic(err)
	}
	return s
}

// Start starts a server as NewServer does, but returns an error when it cannot listen on
// Options.Addr or load Options.Restore.
func Start(opts Options) (*Server, error) {
	s := &Server{
		region: opts.Region, account: opts.AccountID,
		limits: opts.Limits.resolved(), durations: opts.Durations,
		clock: opts.Clock, log: opts.Logger,
		streams: map[string]*stream{},
		rates:   map[string]*tokenBucket{},
		subs:    map[subKey]*subscription{},
		done:    make(chan struct{}),

		fanOutPoll: opts.FanOutPollInterval,
		creds:      opts.Credentials, verify: opts.VerifySignatures,
	}
	if s.creds.AccessKeyID == "" {
		s.creds.AccessKeyID = DefaultAccessKeyID
	}
	if s.creds.SecretAccessKey == "" {
		s.creds.SecretAccessKey = DefaultSecretAccessKey
	}
	if s.fanOutPoll <= 0 {
		s.fanOutPoll = 20 * time.Millisecond
	}
	if s.region == "" {
		s.region = "us-east-1"
	}
	if s.account == "" {
		s.account = "000000000000"
	}
	if s.clock == nil {
		s.clock = systemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	_, _ = rand.Read(s.tokenKey[:])
	s.faults.init(opts.Seed, opts.Faults, s.clock.Now())

	if opts.Restore != nil {
		f, err := decodeSnapshot(opts.Restore)
		if err != nil {
			return nil, err
		}
		if err := s.restore(f); err != nil {
			return nil, err
		}
	}

	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("kinesistest: listening on %s: %w", addr, err)
	}
	s.hs = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(s.serveHTTP)}}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	s.hs.Config.Protocols = &protocols
	s.hs.Start()
	s.URL = endpointURL(ln.Addr())
	s.transport = &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	return s, nil
}

// endpointURL is the URL a client on this machine reaches addr at: a server listening on
// every interface (0.0.0.0 or ::) is reached on the loopback address.
func endpointURL(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	ip := ta.IP
	if ip.IsUnspecified() {
		if ip.To4() != nil {
			ip = net.IPv4(127, 0, 0, 1)
		} else {
			ip = net.IPv6loopback
		}
	}
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(ta.Port))
}

// Close shuts the server down: it ends fan-out subscriptions, waits for outstanding calls to
// finish and closes the idle connections of clients made by Client.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.hs.Close()
	s.transport.CloseIdleConnections()
}

// Client returns a Kinesis client for the server: the static Options.Credentials, the server's region
// and endpoint, and one attempt per call (no SDK retries, so a test sees each throttle).
// optFns run after those settings and may change any of them, for example
// o.RetryMaxAttempts = 3.
func (s *Server) Client(optFns ...func(*kinesis.Options)) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:           s.region,
		Credentials:      credentials.NewStaticCredentialsProvider(s.creds.AccessKeyID, s.creds.SecretAccessKey, ""),
		BaseEndpoint:     aws.String(s.URL),
		RetryMaxAttempts: 1,
		// Guard: the SDK closes a request body as soon as the answer's headers arrive,
		// which breaks the connection when a refusal is answered before the body was read
		// (see internal/requestbody); a test would see a network error instead of the code.
		HTTPClient: requestbody.Client(s.transport),
	}, optFns...)
}

const targetPrefix = "Kinesis_20131202."

type handler func(s *Server, body []byte, now time.Time) (any, *apiError)

var handlers = map[string]handler{
	"CreateStream":                  (*Server).createStream,
	"DeleteStream":                  (*Server).deleteStream,
	"DescribeStream":                (*Server).describeStream,
	"DescribeStreamSummary":         (*Server).describeStreamSummary,
	"ListStreams":                   (*Server).listStreams,
	"DescribeLimits":                (*Server).describeLimits,
	"ListShards":                    (*Server).listShards,
	"SplitShard":                    (*Server).splitShard,
	"MergeShards":                   (*Server).mergeShards,
	"UpdateShardCount":              (*Server).updateShardCount,
	"UpdateMaxRecordSize":           (*Server).updateMaxRecordSize,
	"AddTagsToStream":               (*Server).addTags,
	"RemoveTagsFromStream":          (*Server).removeTags,
	"ListTagsForStream":             (*Server).listTags,
	"PutRecord":                     (*Server).putRecord,
	"PutRecords":                    (*Server).putRecords,
	"GetShardIterator":              (*Server).getShardIterator,
	"GetRecords":                    (*Server).getRecords,
	"UpdateStreamMode":              (*Server).updateStreamMode,
	"RegisterStreamConsumer":        (*Server).registerStreamConsumer,
	"DescribeStreamConsumer":        (*Server).describeStreamConsumer,
	"DeregisterStreamConsumer":      (*Server).deregisterStreamConsumer,
	"ListStreamConsumers":           (*Server).listStreamConsumers,
	"SubscribeToShard":              nil, // streams its answer; see serveHTTP
	"StartStreamEncryption":         func(s *Server, b []byte, now time.Time) (any, *apiError) { return s.changeEncryption(b, now, true) },
	"StopStreamEncryption":          func(s *Server, b []byte, now time.Time) (any, *apiError) { return s.changeEncryption(b, now, false) },
	"IncreaseStreamRetentionPeriod": func(s *Server, b []byte, now time.Time) (any, *apiError) { return s.changeRetention(b, now, true) },
	"DecreaseStreamRetentionPeriod": func(s *Server, b []byte, now time.Time) (any, *apiError) { return s.changeRetention(b, now, false) },
}

// authPattern is the shape of a SigV4 Authorization header: algorithm, credential scope
// (key/date/region/service/aws4_request), signed headers and a 64-hex-digit signature.
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-signing-elements.html
var authPattern = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=[^/\s]+/(\d{8})/([a-z0-9-]+)/kinesis/aws4_request, ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}$`)

func (s *Server) checkAuth(r *http.Request) *apiError {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return errorf(CodeMissingAuthenticationToken, "Missing Authentication Token")
	}
	m := authPattern.FindStringSubmatch(auth)
	if m == nil {
		return errorf(CodeIncompleteSignature, "Authorization header is not a SigV4 header with Credential, SignedHeaders and Signature")
	}
	if m[2] != s.region {
		return errorf(CodeIncompleteSignature, "Credential should be scoped to a valid region: %s, not %s", s.region, m[2])
	}
	if r.Header.Get("X-Amz-Date") == "" {
		return errorf(CodeIncompleteSignature, "Authorization header requires an X-Amz-Date header")
	}
	return nil
}

// maxBodyBytes bounds what the server reads of one request: base64 makes data 4/3 larger,
// and the largest requests are PutRecords and a PutRecord of a maximum-size record. The
// bound is loose so that a request just over a limit meets the limit's own error.
func (s *Server) maxBodyBytes() int64 {
	n := max(int64(s.limits.MaxPutRecordsBytes), int64(s.limits.MaxRecordSizeCeilingKiB)*1024)
	if n > math.MaxInt64/4 {
		return math.MaxInt64
	}
	return 2*n + 1<<20
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	op := ""
	cb := isCBOR(r)
	if cb {
		op, _ = strings.CutPrefix(r.URL.Path, cborPathPrefix)
	} else if t := r.Header.Get("X-Amz-Target"); strings.HasPrefix(t, targetPrefix) {
		op = t[len(targetPrefix):]
	}
	if aerr := s.checkAuth(r); aerr != nil {
		s.fail(w, op, cb, aerr)
		return
	}
	h, ok := handlers[op]
	if r.Method != http.MethodPost || !ok {
		s.fail(w, op, cb, errorf(CodeUnknownOperation, "operation %q (X-Amz-Target %q) is not served", op, r.Header.Get("X-Amz-Target")))
		return
	}
	if ct := r.Header.Get("Content-Type"); cb && ct != "" && ct != "application/cbor" ||
		!cb && !strings.HasPrefix(ct, "application/x-amz-json-1.1") && !strings.HasPrefix(ct, "application/x-amz-json-1.0") {
		s.fail(w, op, cb, errorf(CodeSerialization, "Content-Type %q is not served; use application/x-amz-json-1.1", ct))
		return
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	limit := s.maxBodyBytes()
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1)); err != nil {
		s.fail(w, op, cb, errorf(CodeSerialization, "reading the request body: %v", err))
		return
	}
	if int64(buf.Len()) > limit {
		s.fail(w, op, cb, invalidArg("request body is larger than %d bytes", limit))
		return
	}

	reqBody := buf.Bytes()
	if s.verify {
		if aerr := s.verifySignature(r, reqBody); aerr != nil {
			s.fail(w, op, cb, aerr)
			return
		}
	}
	if cb {
		j, err := cborToJSON(reqBody)
		if err != nil {
			s.fail(w, op, cb, errorf(CodeSerialization, "decoding the CBOR body: %v", err))
			return
		}
		reqBody = j
	}

	fault := s.faults.pick(op, s.clock.Now())
	if fault != nil {
		if fault.Latency > 0 || fault.Reset || fault.Error != "" || fault.ResetAfterServe {
			s.faults.count(op)
		}
		if fault.Latency > 0 {
			if !sleepCtx(r.Context(), fault.Latency) {
				return
			}
		}
		if fault.Reset {
			// The server drops the connection without an answer, as a load balancer reset
			// would look to the client.
			panic(http.ErrAbortHandler)
		}
		if fault.Error != "" {
			msg := fault.Message
			if msg == "" {
				msg = "injected fault"
			}
			s.fail(w, op, cb, &apiError{code: fault.Error, message: msg})
			return
		}
	}
	start := time.Now()
	defer func() { s.busy.Add(int64(time.Since(start))) }()
	now := s.clock.Now()
	if aerr := s.checkRate(op, now); aerr != nil {
		s.fail(w, op, cb, aerr)
		return
	}
	if op == "SubscribeToShard" {
		if aerr := s.subscribeToShard(w, r, reqBody, now, cb); aerr != nil {
			s.fail(w, op, cb, aerr)
		}
		return
	}
	var out any
	var aerr *apiError
	if op == "PutRecords" && fault != nil && fault.failsEntries() {
		out, aerr = s.putRecordsWith(reqBody, now, fault)
	} else {
		out, aerr = h(s, reqBody, now)
	}
	if fault != nil && fault.ResetAfterServe {
		// Served, but the answer never reaches the client.
		panic(http.ErrAbortHandler)
	}
	if aerr != nil {
		s.fail(w, op, cb, aerr)
		return
	}
	var body []byte
	switch v := out.(type) {
	case []byte:
		body = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			s.fail(w, op, cb, errorf(CodeInternalFailure, "encoding the answer: %v", err))
			return
		}
		body = b
	}
	ct := "application/x-amz-json-1.1"
	if cb {
		c, err := jsonToCBOR(body)
		if err != nil {
			s.fail(w, op, cb, errorf(CodeInternalFailure, "encoding the CBOR answer: %v", err))
			return
		}
		body, ct = c, "application/cbor"
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Amzn-Requestid", requestID())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Server) fail(w http.ResponseWriter, op string, cb bool, e *apiError) {
	s.log.Debug("kinesistest: refused", "operation", op, "code", e.code, "message", e.message)
	body, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{e.code, e.message})
	if cb {
		body, _ = jsonToCBOR(body)
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		w.Header().Set("Content-Type", "application/cbor")
	} else {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	}
	w.Header().Set("X-Amzn-Requestid", requestID())
	w.WriteHeader(e.status())
	_, _ = w.Write(body)
}

// checkRate applies the account-wide control-plane rates. Per-stream and per-shard rates
// (ListShards, GetShardIterator) are checked where the stream or shard is known.
func (s *Server) checkRate(op string, now time.Time) *apiError {
	if s.limits.Unthrottled || op == "ListShards" || op == "GetShardIterator" {
		return nil
	}
	r, ok := s.limits.ControlPlaneRates[op]
	if !ok || r <= 0 {
		return nil
	}
	s.rateMu.Lock()
	defer s.rateMu.Unlock()
	b := s.rates[op]
	if b == nil {
		b = newBucket(r, r, now)
		s.rates[op] = b
	}
	if !b.take(1, now) {
		return errorf(CodeLimitExceeded, "Rate exceeded for %s under account %s (limit %g per second).", op, s.account, r)
	}
	return nil
}

// decode reads a JSON request body into v.
func decode(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(CodeSerialization, "%v", err)
	}
	return nil
}

// epochSeconds marshals a time as AWS JSON does: seconds since the epoch, as a number with
// millisecond precision.
type epochSeconds time.Time

func (t epochSeconds) MarshalJSON() ([]byte, error) {
	return appendEpoch(nil, time.Time(t).UnixMilli()), nil
}

func appendEpoch(b []byte, ms int64) []byte {
	b = strconv.AppendInt(b, ms/1000, 10)
	frac := ms % 1000
	if frac < 0 {
		frac = -frac
	}
	b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return b
}

func fromEpochSeconds(f float64) time.Time {
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).Round(time.Millisecond)
}

// Tokens (ListStreams and ListShards NextToken) are sealed with an HMAC under a per-server
// key so a client can neither forge one nor carry one to another server.
type sealed struct {
	Kind   string
	Issued int64
	Value  json.RawMessage
}

func (s *Server) sealTokenJSON(kind string, v any, now time.Time) string {
	raw, _ := json.Marshal(v)
	body, _ := json.Marshal(sealed{kind, now.UnixNano(), raw})
	mac := hmac.New(sha256.New, s.tokenKey[:])
	mac.Write(body)
	return base64.RawURLEncoding.EncodeToString(append(body, mac.Sum(nil)[:16]...))
}

func (s *Server) sealToken(kind, v string, now time.Time) string {
	return s.sealTokenJSON(kind, v, now)
}

func (s *Server) openTokenJSON(tok, kind string, now time.Time, v any) *apiError {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) < 17 {
		return invalidArg("NextToken is not a token this server issued")
	}
	body, sum := raw[:len(raw)-16], raw[len(raw)-16:]
	mac := hmac.New(sha256.New, s.tokenKey[:])
	mac.Write(body)
	if !hmac.Equal(sum, mac.Sum(nil)[:16]) {
		return invalidArg("NextToken is not a token this server issued")
	}
	var sl sealed
	if json.Unmarshal(body, &sl) != nil || sl.Kind != kind || json.Unmarshal(sl.Value, v) != nil {
		return invalidArg("NextToken is not a %s token", kind)
	}
	if now.Sub(time.Unix(0, sl.Issued)) > s.limits.IteratorLifetime {
		return errorf(CodeExpiredNextToken, "NextToken has expired")
	}
	return nil
}

func (s *Server) openToken(tok, kind string, now time.Time) (string, *apiError) {
	var v string
	return v, s.openTokenJSON(tok, kind, now, &v)
}

// macIterator authenticates an iterator's bytes.
func (s *Server) macIterator(b []byte) uint64 {
	mac := hmac.New(sha256.New, s.tokenKey[:])
	mac.Write(b)
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(mac.Sum(sum[:0]))
}
