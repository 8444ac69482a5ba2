package kinesistest

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stream statuses and modes as the API spells them.
const (
	statusCreating = "CREATING"
	statusDeleting = "DELETING"
	statusActive   = "ACTIVE"
	statusUpdating = "UPDATING"

	modeProvisioned = "PROVISIONED"
	modeOnDemand    = "ON_DEMAND"
)

// record is one stored data record. Its sequence number is not stored: it follows from the
// shard and the record's index, which keeps a record's overhead to three words and a time.
type record struct {
	data    []byte
	key     string
	arrival int64 // server clock, Unix nanoseconds
}

// shard holds one shard's records and token buckets. Its topology fields (range, parents,
// closing) change only under the server's write lock; records and buckets under mu.
type shard struct {
	id       string
	num      int
	parent   string
	adjacent string
	start    hashKey
	end      hashKey
	created  time.Time
	closed   bool
	closedAt time.Time

	mu   sync.Mutex
	recs []record
	base uint64 // index of recs[0]; indexes count every record the shard ever took

	writeBytes   *tokenBucket
	writeRecords *tokenBucket
	readBytes    *tokenBucket
	readCalls    *tokenBucket
	iterCalls    *tokenBucket
}

// next is the index the shard's next record gets. Callers hold mu.
func (sh *shard) next() uint64 { return sh.base + uint64(len(sh.recs)) }

// trim drops records that arrived before cutoff. Callers hold mu. The dropped slots are
// cleared so the backing array no longer keeps their data alive, and the array is copied
// once most of it is dead, so memory follows the retained records.
func (sh *shard) trim(cutoff int64) {
	n := sort.Search(len(sh.recs), func(i int) bool { return sh.recs[i].arrival >= cutoff })
	if n == 0 {
		return
	}
	clear(sh.recs[:n])
	sh.base += uint64(n)
	rest := sh.recs[n:]
	if len(rest) < cap(rest)/4 {
		rest = slices.Clone(rest)
	}
	sh.recs = rest
}

// stream is one data stream. Its fields change only under the server's write lock.
type stream struct {
	name    string
	arn     string
	id      uint64 // distinguishes a stream from an earlier one of the same name
	created time.Time
	mode    string

	// status is the stored status; a transitional status becomes ACTIVE (or, for
	// DELETING, the stream disappears) once the clock reaches readyAt. Deriving it on read
	// needs no timers and follows a test's manual clock.
	status  string
	readyAt time.Time

	retentionHours int32
	maxRecordKiB   int32
	shards         []*shard // every shard still retained, by number
	open           []*shard // open shards by starting hash key
	nextShardNum   int
	tags           map[string]string
	scaleTimes     []time.Time
	modeTimes      []time.Time
	consumers      map[string]*consumer
	keyID          string       // the KMS key when server-side encryption is on
	listShards     *tokenBucket // ListShards is limited per stream
	listShardsMu   sync.Mutex
}

func (st *stream) statusAt(now time.Time) string {
	if st.status != statusActive && !now.Before(st.readyAt) {
		if st.status == statusDeleting {
			return ""
		}
		return statusActive
	}
	return st.status
}

func (st *stream) liveConsumers(now time.Time) int {
	n := 0
	for _, c := range st.consumers {
		if c.statusAt(now) != "" {
			n++
		}
	}
	return n
}

func (st *stream) encryptionType() string {
	if st.keyID != "" {
		return "KMS"
	}
	return "NONE"
}

func (st *stream) retention() time.Duration {
	return time.Duration(st.retentionHours) * time.Hour
}

// visible reports whether a shard is still listed: a closed shard disappears once all its
// records are past the retention period.
func (st *stream) visible(sh *shard, now time.Time) bool {
	return !sh.closed || now.Before(sh.closedAt.Add(st.retention()))
}

func (st *stream) shardByID(id string) *shard {
	num, ok := shardNum(id)
	if !ok {
		return nil
	}
	for _, sh := range st.shards {
		if sh.num == num {
			return sh
		}
	}
	return nil
}

// route finds the open shard whose range holds h.
func (st *stream) route(h hashKey) *shard {
	i := sort.Search(len(st.open), func(i int) bool { return h.less(st.open[i].start) })
	if i == 0 {
		return nil
	}
	sh := st.open[i-1]
	if sh.end.less(h) {
		return nil
	}
	return sh
}

func (st *stream) reindexOpen() {
	st.open = st.open[:0]
	for _, sh := range st.shards {
		if !sh.closed {
			st.open = append(st.open, sh)
		}
	}
	sort.Slice(st.open, func(i, j int) bool { return st.open[i].start.less(st.open[j].start) })
}

func shardID(num int) string { return fmt.Sprintf("shardId-%012d", num) }

func shardNum(id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, "shardId-")
	if !ok || rest == "" {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0
}

// addShard creates a shard with the given range and parents. Callers hold the server's
// write lock.
func (s *Server) addShard(st *stream, start, end hashKey, parent, adjacent string, now time.Time) *shard {
	sh := &shard{
		id: shardID(st.nextShardNum), num: st.nextShardNum,
		parent: parent, adjacent: adjacent,
		start: start, end: end, created: now,
		// Index 0 is the shard's StartingSequenceNumber, before every record, so that
		// AFTER_SEQUENCE_NUMBER of it (or of a fan-out continuation that saw nothing yet)
		// starts at the first record.
		base: 1,
	}
	st.nextShardNum++
	s.initBuckets(st, sh, now)
	st.shards = append(st.shards, sh)
	return sh
}

// initBuckets gives a shard its full token buckets.
func (s *Server) initBuckets(st *stream, sh *shard, now time.Time) {
	if !s.limits.Unthrottled {
		wb := float64(s.limits.ShardWriteBytesPerSecond)
		sh.writeBytes = newBucket(wb, max(wb, float64(st.maxRecordKiB)*1024), now)
		wr := float64(s.limits.ShardWriteRecordsPerSecond)
		sh.writeRecords = newBucket(wr, wr, now)
		rb := float64(s.limits.ShardReadBytesPerSecond)
		sh.readBytes = newBucket(rb, rb, now)
		rc := float64(s.limits.ShardReadCallsPerSecond)
		sh.readCalls = newBucket(rc, rc, now)
		if r := s.limits.ControlPlaneRates["GetShardIterator"]; r > 0 {
			sh.iterCalls = newBucket(r, r, now)
		}
	}
}

// closeShard closes sh at now. Callers hold the server's write lock.
func closeShard(sh *shard, now time.Time) {
	sh.mu.Lock()
	sh.closed = true
	sh.closedAt = now
	sh.mu.Unlock()
}

var streamNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

// streamRef names a stream in a request: by name, by ARN, or both.
type streamRef struct {
	StreamName *string `json:"StreamName"`
	StreamARN  *string `json:"StreamARN"`
}

// lookup finds the stream a request names. Callers hold the server's lock (either mode).
// An ARN must be this server's region and account, as the service scopes streams by both.
func (s *Server) lookup(ref streamRef, now time.Time) (*stream, *apiError) {
	name := ""
	if ref.StreamName != nil {
		name = *ref.StreamName
		if !streamNamePattern.MatchString(name) {
			return nil, errorf(CodeValidation, "1 validation error detected: Value '%s' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and 128", name)
		}
	}
	if ref.StreamARN != nil {
		arnName, ok := s.parseStreamARN(*ref.StreamARN)
		if !ok {
			return nil, invalidArg("StreamARN %q is not a stream ARN of account %s in %s", *ref.StreamARN, s.account, s.region)
		}
		if name != "" && name != arnName {
			return nil, invalidArg("StreamARN %q and StreamName %q name different streams", *ref.StreamARN, name)
		}
		name = arnName
	}
	if name == "" {
		return nil, invalidArg("StreamName or StreamARN is required")
	}
	st := s.streams[name]
	if st == nil || st.statusAt(now) == "" {
		return nil, streamNotFound(name)
	}
	return st, nil
}

func (s *Server) streamARN(name string) string {
	return "arn:aws:kinesis:" + s.region + ":" + s.account + ":stream/" + name
}

func (s *Server) parseStreamARN(arn string) (string, bool) {
	name, ok := strings.CutPrefix(arn, "arn:aws:kinesis:"+s.region+":"+s.account+":stream/")
	if !ok || !streamNamePattern.MatchString(name) {
		return "", false
	}
	return name, true
}

// purge removes deleted streams whose DELETING time has passed. Callers hold the write lock.
func (s *Server) purge(now time.Time) {
	for name, st := range s.streams {
		if st.statusAt(now) == "" {
			delete(s.streams, name)
		}
	}
}

func (s *Server) openShardTotal(now time.Time) int {
	n := 0
	for _, st := range s.streams {
		if st.statusAt(now) != "" {
			n += len(st.open)
		}
	}
	return n
}

// ---- control plane ----

type createStreamInput struct {
	StreamName         *string
	ShardCount         *int32
	StreamModeDetails  *struct{ StreamMode string }
	Tags               map[string]string
	MaxRecordSizeInKiB *int32
}

func (s *Server) createStream(body []byte, now time.Time) (any, *apiError) {
	var in createStreamInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.StreamName == nil || !streamNamePattern.MatchString(*in.StreamName) {
		return nil, errorf(CodeValidation, "StreamName must be 1 to 128 characters of [a-zA-Z0-9_.-]")
	}
	mode := modeProvisioned
	if in.StreamModeDetails != nil && in.StreamModeDetails.StreamMode != "" {
		mode = in.StreamModeDetails.StreamMode
		if mode != modeProvisioned && mode != modeOnDemand {
			return nil, errorf(CodeValidation, "StreamModeDetails.StreamMode must be PROVISIONED or ON_DEMAND, not %q", mode)
		}
	}
	var count int
	switch {
	case mode == modeOnDemand && in.ShardCount != nil:
		return nil, invalidArg("ShardCount must not be given for an ON_DEMAND stream")
	case mode == modeOnDemand:
		count = s.limits.OnDemandShardCount
	case in.ShardCount == nil:
		return nil, invalidArg("ShardCount is required for a PROVISIONED stream")
	case *in.ShardCount < 1:
		return nil, errorf(CodeValidation, "ShardCount %d must be at least 1", *in.ShardCount)
	default:
		count = int(*in.ShardCount)
	}
	maxKiB := int32(DefaultMaxRecordSizeKiB)
	if in.MaxRecordSizeInKiB != nil {
		maxKiB = *in.MaxRecordSizeInKiB
		if maxKiB < DefaultMaxRecordSizeKiB || int(maxKiB) > s.limits.MaxRecordSizeCeilingKiB {
			return nil, errorf(CodeValidation, "MaxRecordSizeInKiB %d must be between %d and %d", maxKiB, DefaultMaxRecordSizeKiB, s.limits.MaxRecordSizeCeilingKiB)
		}
	}
	if len(in.Tags) > maxTagsPerStream {
		return nil, invalidArg("Tags has %d tags; a stream has at most %d", len(in.Tags), maxTagsPerStream)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now)
	if _, ok := s.streams[*in.StreamName]; ok {
		return nil, errorf(CodeResourceInUse, "Stream %s under account %s already exists.", *in.StreamName, s.account)
	}
	if mode == modeOnDemand {
		if aerr := s.checkOnDemandQuota(now); aerr != nil {
			return nil, aerr
		}
	}
	if total := s.openShardTotal(now); total+count > s.limits.ShardLimit {
		return nil, errorf(CodeLimitExceeded, "This request would exceed the shard limit for the account %s in %s. Current shard count for the account: %d. Limit: %d. Number of additional shards that would have resulted from this request: %d.", s.account, s.region, total, s.limits.ShardLimit, count)
	}
	s.serial++
	st := &stream{
		name: *in.StreamName, arn: s.streamARN(*in.StreamName),
		id:      uint64(now.UnixMilli())*1_000_000 + s.serial%1_000_000,
		created: now, mode: mode,
		status: statusCreating, readyAt: now.Add(s.durations.CreateStream),
		retentionHours: DefaultRetentionHours, maxRecordKiB: maxKiB,
		tags: map[string]string{}, consumers: map[string]*consumer{},
	}
	for k, v := range in.Tags {
		st.tags[k] = v
	}
	if r := s.limits.ControlPlaneRates["ListShards"]; r > 0 && !s.limits.Unthrottled {
		st.listShards = newBucket(r, r, now)
	}
	for _, rg := range splitEvenly(count) {
		s.addShard(st, rg[0], rg[1], "", "", now)
	}
	st.reindexOpen()
	s.streams[st.name] = st
	return struct{}{}, nil
}

type deleteStreamInput struct {
	streamRef
	EnforceConsumerDeletion *bool
}

func (s *Server) deleteStream(body []byte, now time.Time) (any, *apiError) {
	var in deleteStreamInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.lookup(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	if st.status == statusDeleting {
		return nil, errorf(CodeResourceInUse, "Stream %s under account %s is already being deleted.", st.name, s.account)
	}
	st.status = statusDeleting
	st.readyAt = now.Add(s.durations.DeleteStream)
	if s.durations.DeleteStream <= 0 {
		delete(s.streams, st.name)
	}
	return struct{}{}, nil
}

// ---- shapes of answers ----

type hashKeyRangeOut struct {
	StartingHashKey string
	EndingHashKey   string
}

type seqRangeOut struct {
	StartingSequenceNumber string
	EndingSequenceNumber   string `json:",omitempty"`
}

type shardOut struct {
	ShardId               string
	ParentShardId         string `json:",omitempty"`
	AdjacentParentShardId string `json:",omitempty"`
	HashKeyRange          hashKeyRangeOut
	SequenceNumberRange   seqRangeOut
}

type modeOut struct{ StreamMode string }

type metricsOut struct{ ShardLevelMetrics []string }

func (s *Server) describeShard(st *stream, sh *shard) shardOut {
	out := shardOut{
		ShardId: sh.id, ParentShardId: sh.parent, AdjacentParentShardId: sh.adjacent,
		HashKeyRange: hashKeyRangeOut{sh.start.String(), sh.end.String()},
	}
	sh.mu.Lock()
	next := sh.next()
	closed := sh.closed
	sh.mu.Unlock()
	out.SequenceNumberRange.StartingSequenceNumber = string(appendSeq(nil, st.id, sh.num, 0))
	if closed {
		last := next
		if last > 0 {
			last--
		}
		out.SequenceNumberRange.EndingSequenceNumber = string(appendSeq(nil, st.id, sh.num, last))
	}
	return out
}

type describeStreamInput struct {
	streamRef
	Limit                 *int32
	ExclusiveStartShardId *string
}

func (s *Server) describeStream(body []byte, now time.Time) (any, *apiError) {
	var in describeStreamInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	limit, aerr := pageLimit("Limit", in.Limit, 100, 10000)
	if aerr != nil {
		return nil, aerr
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, aerr := s.lookup(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	after := -1
	if in.ExclusiveStartShardId != nil {
		n, ok := shardNum(*in.ExclusiveStartShardId)
		if !ok {
			return nil, invalidArg("ExclusiveStartShardId %q is not a shard ID", *in.ExclusiveStartShardId)
		}
		after = n
	}
	shards := []shardOut{}
	more := false
	for _, sh := range st.shards {
		if sh.num <= after || !st.visible(sh, now) {
			continue
		}
		if len(shards) == limit {
			more = true
			break
		}
		shards = append(shards, s.describeShard(st, sh))
	}
	type desc struct {
		StreamName              string
		StreamARN               string
		StreamStatus            string
		StreamModeDetails       modeOut
		Shards                  []shardOut
		HasMoreShards           bool
		RetentionPeriodHours    int32
		StreamCreationTimestamp epochSeconds
		EnhancedMonitoring      []metricsOut
		EncryptionType          string
		KeyId                   string `json:",omitempty"`
	}
	return struct{ StreamDescription desc }{desc{
		StreamName: st.name, StreamARN: st.arn, StreamStatus: st.statusAt(now),
		StreamModeDetails: modeOut{st.mode}, Shards: shards, HasMoreShards: more,
		RetentionPeriodHours: st.retentionHours, StreamCreationTimestamp: epochSeconds(st.created),
		EnhancedMonitoring: []metricsOut{{ShardLevelMetrics: []string{}}}, EncryptionType: st.encryptionType(), KeyId: st.keyID,
	}}, nil
}

func (s *Server) describeStreamSummary(body []byte, now time.Time) (any, *apiError) {
	var in streamRef
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, aerr := s.lookup(in, now)
	if aerr != nil {
		return nil, aerr
	}
	type summary struct {
		StreamName              string
		StreamARN               string
		StreamStatus            string
		StreamModeDetails       modeOut
		RetentionPeriodHours    int32
		StreamCreationTimestamp epochSeconds
		EnhancedMonitoring      []metricsOut
		EncryptionType          string
		KeyId                   string `json:",omitempty"`
		OpenShardCount          int
		ConsumerCount           int
		MaxRecordSizeInKiB      int32
	}
	return struct{ StreamDescriptionSummary summary }{summary{
		StreamName: st.name, StreamARN: st.arn, StreamStatus: st.statusAt(now),
		StreamModeDetails: modeOut{st.mode}, RetentionPeriodHours: st.retentionHours,
		StreamCreationTimestamp: epochSeconds(st.created),
		EnhancedMonitoring:      []metricsOut{{ShardLevelMetrics: []string{}}}, EncryptionType: st.encryptionType(), KeyId: st.keyID,
		OpenShardCount: len(st.open), MaxRecordSizeInKiB: st.maxRecordKiB, ConsumerCount: st.liveConsumers(now),
	}}, nil
}

type listStreamsInput struct {
	Limit                    *int32
	ExclusiveStartStreamName *string
	NextToken                *string
}

func (s *Server) listStreams(body []byte, now time.Time) (any, *apiError) {
	var in listStreamsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	// ListStreams returns 100 names by default, at most 10,000.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListStreams.html
	limit, aerr := pageLimit("Limit", in.Limit, 100, 10000)
	if aerr != nil {
		return nil, aerr
	}
	after := ""
	if in.ExclusiveStartStreamName != nil {
		after = *in.ExclusiveStartStreamName
	}
	if in.NextToken != nil {
		tok, aerr := s.openToken(*in.NextToken, "ListStreams", now)
		if aerr != nil {
			return nil, aerr
		}
		after = tok
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.streams))
	for name, st := range s.streams {
		if name > after && st.statusAt(now) != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
	type summary struct {
		StreamName              string
		StreamARN               string
		StreamStatus            string
		StreamModeDetails       modeOut
		StreamCreationTimestamp epochSeconds
	}
	sums := make([]summary, len(names))
	for i, name := range names {
		st := s.streams[name]
		sums[i] = summary{st.name, st.arn, st.statusAt(now), modeOut{st.mode}, epochSeconds(st.created)}
	}
	out := struct {
		StreamNames     []string
		StreamSummaries []summary
		HasMoreStreams  bool
		NextToken       string `json:",omitempty"`
	}{StreamNames: names, StreamSummaries: sums, HasMoreStreams: more}
	if more {
		out.NextToken = s.sealToken("ListStreams", names[len(names)-1], now)
	}
	return out, nil
}

type shardFilter struct {
	Type      string
	ShardId   *string
	Timestamp *float64
}

type listShardsInput struct {
	streamRef
	NextToken               *string
	ExclusiveStartShardId   *string
	MaxResults              *int32
	StreamCreationTimestamp *float64
	ShardFilter             *shardFilter
}

// listShardsToken is what a ListShards NextToken carries.
type listShardsToken struct {
	Stream string
	ID     uint64
	After  int
	Filter *shardFilter
}

func (s *Server) listShards(body []byte, now time.Time) (any, *apiError) {
	var in listShardsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	// MaxResults is 1 to 10,000 (default 1,000); a NextToken excludes StreamName and
	// ExclusiveStartShardId; tokens expire after 300 seconds.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ListShards.html
	limit, aerr := pageLimit("MaxResults", in.MaxResults, 1000, 10000)
	if aerr != nil {
		return nil, aerr
	}
	after := -1
	filter := in.ShardFilter
	ref := in.streamRef
	var wantID uint64
	if in.NextToken != nil {
		if in.StreamName != nil || in.ExclusiveStartShardId != nil || in.StreamCreationTimestamp != nil {
			return nil, invalidArg("NextToken cannot be combined with StreamName, ExclusiveStartShardId or StreamCreationTimestamp")
		}
		var tok listShardsToken
		if aerr := s.openTokenJSON(*in.NextToken, "ListShards", now, &tok); aerr != nil {
			return nil, aerr
		}
		ref = streamRef{StreamName: &tok.Stream}
		after, filter, wantID = tok.After, tok.Filter, tok.ID
	} else if in.ExclusiveStartShardId != nil {
		n, ok := shardNum(*in.ExclusiveStartShardId)
		if !ok {
			return nil, invalidArg("ExclusiveStartShardId %q is not a shard ID", *in.ExclusiveStartShardId)
		}
		after = n
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, aerr := s.lookup(ref, now)
	if aerr != nil {
		return nil, aerr
	}
	if wantID != 0 && st.id != wantID {
		return nil, errorf(CodeExpiredNextToken, "NextToken belongs to an earlier stream named %s", st.name)
	}
	if st.listShards != nil {
		st.listShardsMu.Lock()
		ok := st.listShards.take(1, now)
		st.listShardsMu.Unlock()
		if !ok {
			return nil, errorf(CodeLimitExceeded, "Rate exceeded for ListShards on stream %s under account %s.", st.name, s.account)
		}
	}
	keep, aerr := shardFilterFunc(st, filter, now)
	if aerr != nil {
		return nil, aerr
	}
	shards := []shardOut{}
	last := after
	more := false
	for _, sh := range st.shards {
		if sh.num <= after || !st.visible(sh, now) || !keep(sh) {
			continue
		}
		if len(shards) == limit {
			more = true
			break
		}
		shards = append(shards, s.describeShard(st, sh))
		last = sh.num
	}
	out := struct {
		Shards    []shardOut
		NextToken string `json:",omitempty"`
	}{Shards: shards}
	if more {
		out.NextToken = s.sealTokenJSON("ListShards", listShardsToken{st.name, st.id, last, filter}, now)
	}
	return out, nil
}

// shardFilterFunc turns a ListShards ShardFilter into a predicate, with the meanings the
// ShardFilter page gives each type.
// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_ShardFilter.html
func shardFilterFunc(st *stream, f *shardFilter, now time.Time) (func(*shard) bool, *apiError) {
	all := func(*shard) bool { return true }
	if f == nil {
		return all, nil
	}
	openAt := func(t time.Time) func(*shard) bool {
		if t.Before(st.created) {
			t = st.created
		}
		return func(sh *shard) bool {
			return !sh.created.After(t) && (!sh.closed || sh.closedAt.After(t))
		}
	}
	needTS := func() (time.Time, *apiError) {
		if f.Timestamp == nil {
			return time.Time{}, invalidArg("ShardFilter type %s requires Timestamp", f.Type)
		}
		return fromEpochSeconds(*f.Timestamp), nil
	}
	switch f.Type {
	case "AFTER_SHARD_ID":
		if f.ShardId == nil {
			return nil, invalidArg("ShardFilter type AFTER_SHARD_ID requires ShardId")
		}
		n, ok := shardNum(*f.ShardId)
		if !ok {
			return nil, invalidArg("ShardFilter.ShardId %q is not a shard ID", *f.ShardId)
		}
		return func(sh *shard) bool { return sh.num > n }, nil
	case "AT_TRIM_HORIZON":
		return openAt(now.Add(-st.retention())), nil
	case "FROM_TRIM_HORIZON":
		return all, nil
	case "AT_LATEST":
		return func(sh *shard) bool { return !sh.closed }, nil
	case "AT_TIMESTAMP":
		t, aerr := needTS()
		if aerr != nil {
			return nil, aerr
		}
		return openAt(t), nil
	case "FROM_TIMESTAMP":
		t, aerr := needTS()
		if aerr != nil {
			return nil, aerr
		}
		return func(sh *shard) bool { return !sh.closed || sh.closedAt.After(t) }, nil
	}
	return nil, errorf(CodeValidation, "ShardFilter.Type %q is not a shard filter type", f.Type)
}

type splitShardInput struct {
	streamRef
	ShardToSplit       *string
	NewStartingHashKey *string
}

// checkUpdatable is the state rule SplitShard, MergeShards and UpdateShardCount share: the
// stream must be ACTIVE. https://docs.aws.amazon.com/kinesis/latest/APIReference/API_SplitShard.html
func (s *Server) checkUpdatable(st *stream, now time.Time) *apiError {
	if status := st.statusAt(now); status != statusActive {
		return errorf(CodeResourceInUse, "Stream %s under account %s not ACTIVE, instead in state %s", st.name, s.account, status)
	}
	return nil
}

func (s *Server) beginUpdate(st *stream, d time.Duration, now time.Time) {
	st.status = statusUpdating
	st.readyAt = now.Add(d)
	st.reindexOpen()
}

func (s *Server) splitShard(body []byte, now time.Time) (any, *apiError) {
	var in splitShardInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.ShardToSplit == nil || in.NewStartingHashKey == nil {
		return nil, errorf(CodeValidation, "ShardToSplit and NewStartingHashKey are required")
	}
	key, ok := parseHashKey(*in.NewStartingHashKey)
	if !ok {
		return nil, invalidArg("NewStartingHashKey %q is not a decimal in [0, 2^128)", *in.NewStartingHashKey)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.lookup(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	if st.mode == modeOnDemand {
		return nil, errorf(CodeValidation, "SplitShard is not supported for stream %s in ON_DEMAND mode", st.name)
	}
	if aerr := s.checkUpdatable(st, now); aerr != nil {
		return nil, aerr
	}
	sh := st.shardByID(*in.ShardToSplit)
	if sh == nil {
		return nil, errorf(CodeResourceNotFound, "Could not find shard %s in stream %s under account %s.", *in.ShardToSplit, st.name, s.account)
	}
	if sh.closed {
		return nil, errorf(CodeResourceInUse, "Shard %s in stream %s under account %s has already been merged or split, and thus is not eligible for merging or splitting.", sh.id, st.name, s.account)
	}
	if !sh.start.less(key) || sh.end.less(key) {
		return nil, invalidArg("NewStartingHashKey %s used in SplitShard() on shard %s in stream %s under account %s is not both greater than one plus the shard's StartingHashKey %s and less than the shard's EndingHashKey %s.", key, sh.id, st.name, s.account, sh.start, sh.end)
	}
	if s.openShardTotal(now)+1 > s.limits.ShardLimit {
		return nil, errorf(CodeLimitExceeded, "SplitShard would exceed the account's shard limit of %d", s.limits.ShardLimit)
	}
	closeShard(sh, now)
	s.addShard(st, sh.start, key.sub1(), sh.id, "", now)
	s.addShard(st, key, sh.end, sh.id, "", now)
	s.beginUpdate(st, s.durations.SplitShard, now)
	return struct{}{}, nil
}

type mergeShardsInput struct {
	streamRef
	ShardToMerge         *string
	AdjacentShardToMerge *string
}

func (s *Server) mergeShards(body []byte, now time.Time) (any, *apiError) {
	var in mergeShardsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.ShardToMerge == nil || in.AdjacentShardToMerge == nil {
		return nil, errorf(CodeValidation, "ShardToMerge and AdjacentShardToMerge are required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.lookup(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	if st.mode == modeOnDemand {
		return nil, errorf(CodeValidation, "MergeShards is not supported for stream %s in ON_DEMAND mode", st.name)
	}
	if aerr := s.checkUpdatable(st, now); aerr != nil {
		return nil, aerr
	}
	a, b := st.shardByID(*in.ShardToMerge), st.shardByID(*in.AdjacentShardToMerge)
	for i, sh := range []*shard{a, b} {
		id := []string{*in.ShardToMerge, *in.AdjacentShardToMerge}[i]
		if sh == nil {
			return nil, errorf(CodeResourceNotFound, "Could not find shard %s in stream %s under account %s.", id, st.name, s.account)
		}
		if sh.closed {
			return nil, errorf(CodeResourceInUse, "Shard %s in stream %s under account %s has already been merged or split, and thus is not eligible for merging or splitting.", sh.id, st.name, s.account)
		}
	}
	lo, hi := a, b
	if b.start.less(a.start) {
		lo, hi = b, a
	}
	if lo.end.add1() != hi.start {
		return nil, invalidArg("Shards %s and %s in stream %s under account %s are not an adjacent pair of shards eligible for merging", a.id, b.id, st.name, s.account)
	}
	closeShard(a, now)
	closeShard(b, now)
	s.addShard(st, lo.start, hi.end, a.id, b.id, now)
	s.beginUpdate(st, s.durations.MergeShards, now)
	return struct{}{}, nil
}

type updateShardCountInput struct {
	streamRef
	TargetShardCount *int32
	ScalingType      *string
}

func (s *Server) updateShardCount(body []byte, now time.Time) (any, *apiError) {
	var in updateShardCountInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.TargetShardCount == nil || *in.TargetShardCount < 1 {
		return nil, errorf(CodeValidation, "TargetShardCount must be at least 1")
	}
	if in.ScalingType == nil || *in.ScalingType != "UNIFORM_SCALING" {
		return nil, errorf(CodeValidation, "ScalingType must be UNIFORM_SCALING")
	}
	target := int(*in.TargetShardCount)
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.lookup(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	if st.mode == modeOnDemand {
		return nil, errorf(CodeValidation, "UpdateShardCount is not supported for stream %s in ON_DEMAND mode", st.name)
	}
	if aerr := s.checkUpdatable(st, now); aerr != nil {
		return nil, aerr
	}
	// The scaling rules of https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html
	cur := len(st.open)
	switch {
	case target > 2*cur:
		return nil, errorf(CodeLimitExceeded, "UpdateShardCount cannot scale stream %s above double its current %d shards (asked for %d)", st.name, cur, target)
	case 2*target < cur:
		return nil, errorf(CodeLimitExceeded, "UpdateShardCount cannot scale stream %s below half its current %d shards (asked for %d)", st.name, cur, target)
	case target > 10000:
		return nil, errorf(CodeLimitExceeded, "UpdateShardCount cannot scale stream %s above 10000 shards", st.name)
	case s.openShardTotal(now)-cur+target > s.limits.ShardLimit:
		return nil, errorf(CodeLimitExceeded, "UpdateShardCount would exceed the account's shard limit of %d", s.limits.ShardLimit)
	}
	day := now.Add(-24 * time.Hour)
	recent := st.scaleTimes[:0]
	for _, t := range st.scaleTimes {
		if t.After(day) {
			recent = append(recent, t)
		}
	}
	st.scaleTimes = recent
	if len(recent) >= s.limits.UpdateShardCountPerDay {
		return nil, errorf(CodeLimitExceeded, "UpdateShardCount has been called %d times on stream %s in the last 24 hours; the limit is %d", len(recent), st.name, s.limits.UpdateShardCountPerDay)
	}
	st.scaleTimes = append(st.scaleTimes, now)
	if target != cur {
		// The service reaches the target through splits and merges; the result is shards
		// of equal width whose parents are the old shards holding their two ends.
		old := slices.Clone(st.open)
		for _, sh := range old {
			closeShard(sh, now)
		}
		find := func(h hashKey) *shard {
			i := sort.Search(len(old), func(i int) bool { return h.less(old[i].start) })
			return old[i-1]
		}
		for _, rg := range splitEvenly(target) {
			p, q := find(rg[0]), find(rg[1])
			adj := ""
			if q != p {
				adj = q.id
			}
			s.addShard(st, rg[0], rg[1], p.id, adj, now)
		}
	}
	s.beginUpdate(st, s.durations.UpdateShardCount, now)
	return struct {
		CurrentShardCount int
		TargetShardCount  int
		StreamName        string
		StreamARN         string
	}{cur, target, st.name, st.arn}, nil
}

type retentionInput struct {
	streamRef
	RetentionPeriodHours *int32
}

func (s *Server) changeRetention(body []byte, now time.Time, increase bool) (any, *apiError) {
	var in retentionInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.RetentionPeriodHours == nil {
		return nil, errorf(CodeValidation, "RetentionPeriodHours is required")
	}
	h := *in.RetentionPeriodHours
	// Retention is 24 to 8,760 hours; an increase must raise it and a decrease lower it.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_IncreaseStreamRetentionPeriod.html
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DecreaseStreamRetentionPeriod.html
	if h < DefaultRetentionHours || h > MaxRetentionHours {
		return nil, invalidArg("RetentionPeriodHours %d must be between %d and %d", h, DefaultRetentionHours, MaxRetentionHours)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.lookup(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	if increase && h < st.retentionHours {
		return nil, invalidArg("Requested retention period (%d hours) for stream %s can not be shorter than existing retention period (%d hours). Use DecreaseRetentionPeriod API.", h, st.name, st.retentionHours)
	}
	if !increase && h > st.retentionHours {
		return nil, invalidArg("Requested retention period (%d hours) for stream %s can not be longer than existing retention period (%d hours). Use IncreaseRetentionPeriod API.", h, st.name, st.retentionHours)
	}
	// Records already past the old period stay gone after an increase, so trim at the old
	// period before changing it.
	cutoff := now.Add(-st.retention()).UnixNano()
	for _, sh := range st.shards {
		sh.mu.Lock()
		sh.trim(cutoff)
		sh.mu.Unlock()
	}
	st.retentionHours = h
	return struct{}{}, nil
}

type updateMaxRecordSizeInput struct {
	streamRef
	MaxRecordSizeInKiB *int32
}

func (s *Server) updateMaxRecordSize(body []byte, now time.Time) (any, *apiError) {
	var in updateMaxRecordSizeInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.MaxRecordSizeInKiB == nil || *in.MaxRecordSizeInKiB < DefaultMaxRecordSizeKiB || int(*in.MaxRecordSizeInKiB) > s.limits.MaxRecordSizeCeilingKiB {
		return nil, errorf(CodeValidation, "MaxRecordSizeInKiB must be between %d and %d", DefaultMaxRecordSizeKiB, s.limits.MaxRecordSizeCeilingKiB)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.lookup(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := s.checkUpdatable(st, now); aerr != nil {
		return nil, aerr
	}
	st.maxRecordKiB = *in.MaxRecordSizeInKiB
	for _, sh := range st.open {
		sh.mu.Lock()
		if sh.writeBytes != nil {
			sh.writeBytes.capacity = max(float64(s.limits.ShardWriteBytesPerSecond), float64(st.maxRecordKiB)*1024)
		}
		sh.mu.Unlock()
	}
	return struct{}{}, nil
}

// Tags: at most 50 per stream and 10 per AddTagsToStream call.
// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_AddTagsToStream.html
const (
	maxTagsPerStream = 50
	maxTagsPerCall   = 10
)

type addTagsInput struct {
	streamRef
	Tags map[string]string
}

func (s *Server) addTags(body []byte, now time.Time) (any, *apiError) {
	var in addTagsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Tags) == 0 || len(in.Tags) > maxTagsPerCall {
		return nil, invalidArg("Tags has %d entries; AddTagsToStream takes 1 to %d", len(in.Tags), maxTagsPerCall)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.lookup(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	n := len(st.tags)
	for k := range in.Tags {
		if _, ok := st.tags[k]; !ok {
			n++
		}
	}
	if n > maxTagsPerStream {
		return nil, errorf(CodeLimitExceeded, "stream %s would have %d tags; the limit is %d", st.name, n, maxTagsPerStream)
	}
	for k, v := range in.Tags {
		st.tags[k] = v
	}
	return struct{}{}, nil
}

type removeTagsInput struct {
	streamRef
	TagKeys []string
}

func (s *Server) removeTags(body []byte, now time.Time) (any, *apiError) {
	var in removeTagsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.lookup(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	for _, k := range in.TagKeys {
		delete(st.tags, k)
	}
	return struct{}{}, nil
}

type listTagsInput struct {
	streamRef
	ExclusiveStartTagKey *string
	Limit                *int32
}

func (s *Server) listTags(body []byte, now time.Time) (any, *apiError) {
	var in listTagsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	limit, aerr := pageLimit("Limit", in.Limit, maxTagsPerStream, 50)
	if aerr != nil {
		return nil, aerr
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, aerr := s.lookup(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	keys := make([]string, 0, len(st.tags))
	for k := range st.tags {
		if in.ExclusiveStartTagKey == nil || k > *in.ExclusiveStartTagKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	type tag struct{ Key, Value string }
	tags := make([]tag, len(keys))
	for i, k := range keys {
		tags[i] = tag{k, st.tags[k]}
	}
	return struct {
		Tags        []tag
		HasMoreTags bool
	}{tags, more}, nil
}

type updateStreamModeInput struct {
	StreamARN         *string
	StreamModeDetails *struct{ StreamMode string }
}

// updateStreamMode switches between provisioned and on-demand capacity. The shards stay as
// they are; the stream is UPDATING meanwhile, and a stream may switch twice per rolling 24
// hours. https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateStreamMode.html
// https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html
func (s *Server) updateStreamMode(body []byte, now time.Time) (any, *apiError) {
	var in updateStreamModeInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.StreamARN == nil {
		return nil, errorf(CodeValidation, "StreamARN is required")
	}
	if in.StreamModeDetails == nil || (in.StreamModeDetails.StreamMode != modeProvisioned && in.StreamModeDetails.StreamMode != modeOnDemand) {
		return nil, errorf(CodeValidation, "StreamModeDetails.StreamMode must be PROVISIONED or ON_DEMAND")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.lookup(streamRef{StreamARN: in.StreamARN}, now)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := s.checkUpdatable(st, now); aerr != nil {
		return nil, aerr
	}
	if st.mode == in.StreamModeDetails.StreamMode {
		return nil, errorf(CodeResourceInUse, "Stream %s under account %s is already in %s mode", st.name, s.account, st.mode)
	}
	day := now.Add(-24 * time.Hour)
	recent := st.modeTimes[:0]
	for _, t := range st.modeTimes {
		if t.After(day) {
			recent = append(recent, t)
		}
	}
	st.modeTimes = recent
	if len(recent) >= 2 {
		return nil, errorf(CodeLimitExceeded, "Stream %s has switched capacity mode twice in the last 24 hours", st.name)
	}
	if in.StreamModeDetails.StreamMode == modeOnDemand {
		if aerr := s.checkOnDemandQuota(now); aerr != nil {
			return nil, aerr
		}
	}
	st.modeTimes = append(st.modeTimes, now)
	st.mode = in.StreamModeDetails.StreamMode
	s.beginUpdate(st, s.durations.UpdateStreamMode, now)
	return struct{}{}, nil
}

type encryptionInput struct {
	streamRef
	EncryptionType *string
	KeyId          *string
}

// changeEncryption starts or stops server-side encryption. Records stored from then on,
// and the stream's descriptions, carry the new EncryptionType; the stream is UPDATING
// meanwhile. https://docs.aws.amazon.com/kinesis/latest/APIReference/API_StartStreamEncryption.html
func (s *Server) changeEncryption(body []byte, now time.Time, start bool) (any, *apiError) {
	var in encryptionInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.EncryptionType == nil || *in.EncryptionType != "KMS" {
		return nil, errorf(CodeValidation, "EncryptionType must be KMS")
	}
	if in.KeyId == nil || *in.KeyId == "" {
		return nil, errorf(CodeValidation, "KeyId is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, aerr := s.lookup(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := s.checkUpdatable(st, now); aerr != nil {
		return nil, aerr
	}
	if start {
		st.keyID = *in.KeyId
	} else {
		if st.keyID == "" {
			return nil, invalidArg("Stream %s under account %s is not encrypted", st.name, s.account)
		}
		st.keyID = ""
	}
	s.beginUpdate(st, s.durations.StreamEncryption, now)
	return struct{}{}, nil
}

// onDemandStreams counts the account's on-demand streams. Callers hold the server's lock.
func (s *Server) onDemandStreams(now time.Time) int {
	n := 0
	for _, st := range s.streams {
		if st.mode == modeOnDemand && st.statusAt(now) != "" {
			n++
		}
	}
	return n
}

// checkOnDemandQuota refuses one more on-demand stream beyond the account's quota. Callers
// hold the server's write lock.
func (s *Server) checkOnDemandQuota(now time.Time) *apiError {
	if n := s.onDemandStreams(now); n >= s.limits.OnDemandStreamLimit {
		return errorf(CodeLimitExceeded, "This request would exceed the on-demand stream limit for the account %s in %s. Current on-demand stream count: %d. Limit: %d.", s.account, s.region, n, s.limits.OnDemandStreamLimit)
	}
	return nil
}

// describeLimits reports the account's shard quota and open shards, and its on-demand
// stream quota and count, the four fields of the DescribeLimits answer.
// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_DescribeLimits.html
func (s *Server) describeLimits(body []byte, now time.Time) (any, *apiError) {
	var in struct{}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	clamp := func(n int) int { return min(n, 1_000_000) } // the fields' documented range
	return struct {
		ShardLimit               int
		OpenShardCount           int
		OnDemandStreamCount      int
		OnDemandStreamCountLimit int
	}{clamp(s.limits.ShardLimit), s.openShardTotal(now), s.onDemandStreams(now), clamp(s.limits.OnDemandStreamLimit)}, nil
}
