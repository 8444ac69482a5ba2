package kinesistest

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/eventstream"
)

// Enhanced fan-out limits.
const (
	// A provisioned or On-demand Standard stream takes up to 20 registered consumers.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_RegisterStreamConsumer.html
	maxConsumersPerStream = 20
	// A subscription lasts five minutes; a second subscription of the same consumer and
	// shard within five seconds of a successful one is a ResourceInUseException, a later
	// one takes over. Each consumer-shard pair gets up to 2 MiB/s.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_SubscribeToShard.html
	subscriptionLifetime = 5 * time.Minute
	subscriptionTakeover = 5 * time.Second
	fanOutBytesPerSecond = 2 << 20
)

const (
	consumerCreating = "CREATING"
	consumerDeleting = "DELETING"
	consumerActive   = "ACTIVE"
)

type consumer struct {
	name    string
	arn     string
	created time.Time
	status  string
	readyAt time.Time
}

func (c *consumer) statusAt(now time.Time) string {
	if c.status != consumerActive && !now.Before(c.readyAt) {
		if c.status == consumerDeleting {
			return ""
		}
		return consumerActive
	}
	return c.status
}

// subscription is one open SubscribeToShard subscription.
type subscription struct {
	started  time.Time
	takeover chan struct{} // closed when a later subscription replaces this one
}

type subKey struct{ consumerARN, shardID string }

// findConsumer resolves a consumer by ARN, or by stream and name. Callers hold s.mu.
func (s *Server) findConsumer(arn, streamARN, name *string, now time.Time) (*stream, *consumer, *apiError) {
	if arn != nil {
		streamPart, _, ok := strings.Cut(*arn, "/consumer/")
		if !ok {
			return nil, nil, invalidArg("ConsumerARN %q is not a consumer ARN", *arn)
		}
		st, aerr := s.lookup(streamRef{StreamARN: &streamPart}, now)
		if aerr != nil {
			return nil, nil, aerr
		}
		for _, c := range st.consumers {
			if c.arn == *arn && c.statusAt(now) != "" {
				return st, c, nil
			}
		}
		return nil, nil, errorf(CodeResourceNotFound, "Consumer %s under account %s not found.", *arn, s.account)
	}
	if streamARN == nil || name == nil {
		return nil, nil, invalidArg("ConsumerARN, or StreamARN and ConsumerName, are required")
	}
	st, aerr := s.lookup(streamRef{StreamARN: streamARN}, now)
	if aerr != nil {
		return nil, nil, aerr
	}
	c := st.consumers[*name]
	if c == nil || c.statusAt(now) == "" {
		return nil, nil, errorf(CodeResourceNotFound, "Consumer %s of stream %s under account %s not found.", *name, st.name, s.account)
	}
	return st, c, nil
}

type consumerOut struct {
	ConsumerName              string
	ConsumerARN               string
	ConsumerStatus            string
	ConsumerCreationTimestamp epochSeconds
	StreamARN                 string `json:",omitempty"`
}

func describeConsumer(st *stream, c *consumer, now time.Time, withStream bool) consumerOut {
	out := consumerOut{c.name, c.arn, c.statusAt(now), epochSeconds(c.created), ""}
	if withStream {
		out.StreamARN = st.arn
	}
	return out
}

type registerConsumerInput struct {
	StreamARN    *string
	ConsumerName *string
}

func (s *Server) registerStreamConsumer(body []byte, now time.Time) (any, *apiError) {
	var in registerConsumerInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.StreamARN == nil || in.ConsumerName == nil || !streamNamePattern.MatchString(*in.ConsumerName) {
		return nil, errorf(CodeValidation, "StreamARN and ConsumerName (1 to 128 characters of [a-zA-Z0-9_.-]) are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.lookup(streamRef{StreamARN: in.StreamARN}, now)
	if aerr != nil {
		return nil, aerr
	}
	if c := st.consumers[*in.ConsumerName]; c != nil && c.statusAt(now) != "" {
		return nil, errorf(CodeResourceInUse, "Consumer %s under stream %s already exists for account %s.", c.name, st.name, s.account)
	}
	live, creating := 0, 0
	for name, c := range st.consumers {
		switch c.statusAt(now) {
		case "":
			delete(st.consumers, name)
		case consumerCreating:
			creating++
			live++
		default:
			live++
		}
	}
	if live >= maxConsumersPerStream {
		return nil, errorf(CodeLimitExceeded, "Stream %s already has %d registered consumers, the most allowed", st.name, live)
	}
	// Only five consumers may be CREATING at once (RegisterStreamConsumer page).
	if creating >= 5 {
		return nil, errorf(CodeLimitExceeded, "Five consumers of stream %s are already being created", st.name)
	}
	c := &consumer{
		name: *in.ConsumerName, created: now,
		arn:    st.arn + "/consumer/" + *in.ConsumerName + ":" + strconv.FormatInt(now.Unix(), 10),
		status: consumerCreating, readyAt: now.Add(s.durations.RegisterStreamConsumer),
	}
	st.consumers[c.name] = c
	return struct{ Consumer consumerOut }{describeConsumer(st, c, now, false)}, nil
}

type consumerRefInput struct {
	StreamARN    *string
	ConsumerName *string
	ConsumerARN  *string
}

func (s *Server) describeStreamConsumer(body []byte, now time.Time) (any, *apiError) {
	var in consumerRefInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, c, aerr := s.findConsumer(in.ConsumerARN, in.StreamARN, in.ConsumerName, now)
	if aerr != nil {
		return nil, aerr
	}
	return struct{ ConsumerDescription consumerOut }{describeConsumer(st, c, now, true)}, nil
}

func (s *Server) deregisterStreamConsumer(body []byte, now time.Time) (any, *apiError) {
	var in consumerRefInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, c, aerr := s.findConsumer(in.ConsumerARN, in.StreamARN, in.ConsumerName, now)
	if aerr != nil {
		return nil, aerr
	}
	c.status = consumerDeleting
	c.readyAt = now.Add(s.durations.DeregisterStreamConsumer)
	if s.durations.DeregisterStreamConsumer <= 0 {
		delete(st.consumers, c.name)
	}
	s.subsMu.Lock()
	for k, sub := range s.subs {
		if k.consumerARN == c.arn {
			close(sub.takeover)
			delete(s.subs, k)
		}
	}
	s.subsMu.Unlock()
	return struct{}{}, nil
}

type listConsumersInput struct {
	StreamARN  *string
	MaxResults *int32
	NextToken  *string
}

func (s *Server) listStreamConsumers(body []byte, now time.Time) (any, *apiError) {
	var in listConsumersInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	// MaxResults is 1 to 10,000, default 100.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListStreamConsumers.html
	limit, aerr := pageLimit("MaxResults", in.MaxResults, 100, 10000)
	if aerr != nil {
		return nil, aerr
	}
	after := ""
	if in.NextToken != nil {
		tok, aerr := s.openToken(*in.NextToken, "ListStreamConsumers", now)
		if aerr != nil {
			return nil, aerr
		}
		after = tok
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, aerr := s.lookup(streamRef{StreamARN: in.StreamARN}, now)
	if aerr != nil {
		return nil, aerr
	}
	names := []string{}
	for name, c := range st.consumers {
		if name > after && c.statusAt(now) != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
	out := struct {
		Consumers []consumerOut
		NextToken string `json:",omitempty"`
	}{Consumers: []consumerOut{}}
	for _, n := range names {
		out.Consumers = append(out.Consumers, describeConsumer(st, st.consumers[n], now, false))
	}
	if more {
		out.NextToken = s.sealToken("ListStreamConsumers", names[len(names)-1], now)
	}
	return out, nil
}

type subscribeInput struct {
	ConsumerARN      *string
	ShardId          *string
	StartingPosition *struct {
		Type           string
		SequenceNumber *string
		Timestamp      *float64
	}
}

// subscribeToShard answers with an event stream: an initial-response event, then
// SubscribeToShardEvent events carrying records, the continuation sequence number and
// MillisBehindLatest, until the subscription's five minutes (on the server's clock) are up, the
// shard's end is reached (a last event with ChildShards and no continuation), a later
// subscription takes over, the client goes away or the server closes.
// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_SubscribeToShard.html
func (s *Server) subscribeToShard(w http.ResponseWriter, r *http.Request, body []byte, now time.Time, cb bool) *apiError {
	var in subscribeInput
	if err := decode(body, &in); err != nil {
		return err
	}
	if in.ConsumerARN == nil || in.ShardId == nil || in.StartingPosition == nil {
		return errorf(CodeValidation, "ConsumerARN, ShardId and StartingPosition are required")
	}
	s.mu.RLock()
	st, c, aerr := s.findConsumer(in.ConsumerARN, nil, nil, now)
	if aerr == nil && c.statusAt(now) != consumerActive {
		aerr = errorf(CodeResourceInUse, "Consumer %s is %s, not ACTIVE", c.arn, c.statusAt(now))
	}
	var sh *shard
	if aerr == nil {
		sh = st.shardByID(*in.ShardId)
		if sh == nil || !st.visible(sh, now) {
			aerr = errorf(CodeResourceNotFound, "Shard %s in stream %s under account %s does not exist", *in.ShardId, st.name, s.account)
		}
	}
	var pos uint64
	if aerr == nil {
		sp := in.StartingPosition
		var seq *string
		switch sp.Type {
		case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
			seq = sp.SequenceNumber
		}
		pos, aerr = s.startPosition(st, sh, sp.Type, seq, sp.Timestamp, now)
	}
	s.mu.RUnlock()
	if aerr != nil {
		return aerr
	}

	key := subKey{c.arn, sh.id}
	sub := &subscription{started: now, takeover: make(chan struct{})}
	s.subsMu.Lock()
	if old := s.subs[key]; old != nil {
		if now.Sub(old.started) < subscriptionTakeover {
			s.subsMu.Unlock()
			return errorf(CodeResourceInUse, "Another active subscription exists for consumer %s on shard %s.", c.arn, sh.id)
		}
		close(old.takeover)
	}
	s.subs[key] = sub
	s.subsMu.Unlock()
	defer func() {
		s.subsMu.Lock()
		if s.subs[key] == sub {
			delete(s.subs, key)
		}
		s.subsMu.Unlock()
	}()

	if cb {
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	}
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.Header().Set("X-Amzn-Requestid", requestID())
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := eventstream.NewEncoder()
	send := func(msg eventstream.Message) bool {
		if err := enc.Encode(w, msg); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	// Event payloads are in the request's protocol: JSON, or CBOR for RPC v2 CBOR.
	contentType := "application/json"
	if cb {
		contentType = "application/cbor"
	}
	encodePayload := func(p []byte) []byte {
		if cb {
			c, _ := jsonToCBOR(p)
			return c
		}
		return p
	}
	event := func(typ string, payload []byte) eventstream.Message {
		var m eventstream.Message
		m.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(eventstream.EventMessageType))
		m.Headers.Set(eventstream.EventTypeHeader, eventstream.StringValue(typ))
		m.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue(contentType))
		m.Payload = encodePayload(payload)
		return m
	}
	if !send(event("initial-response", []byte("{}"))) {
		return nil
	}

	var bucket *tokenBucket
	if !s.limits.Unthrottled {
		bucket = newBucket(fanOutBytesPerSecond, fanOutBytesPerSecond, now)
	}
	poll := time.NewTicker(s.fanOutPoll)
	defer poll.Stop()
	lastEvent := now
	for {
		now := s.clock.Now()
		if now.Sub(sub.started) >= subscriptionLifetime {
			return nil
		}
		payload, newPos, ended, n := s.fanOutEvent(st, sh, pos, bucket, now)
		if n > 0 || ended || now.Sub(lastEvent) >= time.Second {
			if !send(event("SubscribeToShardEvent", payload)) {
				return nil
			}
			lastEvent = now
			pos = newPos
			if ended {
				return nil
			}
		}
		select {
		case <-poll.C:
		case <-sub.takeover:
			var m eventstream.Message
			m.Headers.Set(eventstream.MessageTypeHeader, eventstream.StringValue(eventstream.ExceptionMessageType))
			m.Headers.Set(eventstream.ExceptionTypeHeader, eventstream.StringValue(CodeResourceInUse))
			m.Headers.Set(eventstream.ContentTypeHeader, eventstream.StringValue(contentType))
			msg, _ := json.Marshal(map[string]string{"message": "Another subscription took over consumer " + c.arn + " on shard " + sh.id})
			m.Payload = encodePayload(msg)
			send(m)
			return nil
		case <-r.Context().Done():
			return nil
		case <-s.done:
			return nil
		}
	}
}

// fanOutEvent reads the records from pos that the subscription's bucket allows and encodes
// a SubscribeToShardEvent. n is the number of records in it.
func (s *Server) fanOutEvent(st *stream, sh *shard, pos uint64, bucket *tokenBucket, now time.Time) (payload []byte, newPos uint64, ended bool, n int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sh.mu.Lock()
	sh.trim(now.Add(-st.retention()).UnixNano())
	pos = max(pos, sh.base)
	next := sh.next()
	var batch []record
	if bucket.positive(now) && pos < next {
		from := int(pos - sh.base)
		to, bytes := from, 0
		for to < len(sh.recs) && to-from < s.limits.MaxGetRecordsRecords {
			sz := len(sh.recs[to].data) + len(sh.recs[to].key)
			if to > from && bytes+sz > fanOutBytesPerSecond {
				break
			}
			bytes += sz
			to++
		}
		batch = append(make([]record, 0, to-from), sh.recs[from:to]...)
		bucket.charge(float64(bytes))
	}
	startIdx := pos
	pos += uint64(len(batch))
	behind := int64(0)
	if pos < next {
		behind = (now.UnixNano() - sh.recs[pos-sh.base].arrival) / 1e6
	}
	ended = sh.closed && pos >= next
	sh.mu.Unlock()

	b := getOut()
	b = append(b, `{"Records":`...)
	b = appendRecords(b, st, sh, startIdx, batch)
	b = append(b, `,"MillisBehindLatest":`...)
	b = strconv.AppendInt(b, behind, 10)
	if ended {
		// At the shard's end the event names the children and has no continuation, which
		// is how consumers (the KCL's FanOutRecordsPublisher) recognise the end.
		cj, _ := json.Marshal(childShards(st, sh))
		b = append(b, `,"ChildShards":`...)
		b = append(b, cj...)
	} else {
		b = append(b, `,"ContinuationSequenceNumber":"`...)
		b = appendSeq(b, st.id, sh.num, pos-1)
		b = append(b, '"')
	}
	return append(b, '}'), pos, ended, len(batch)
}
