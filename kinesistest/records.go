package kinesistest

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// Sequence numbers are 56-digit decimals, as long as the service's, built so that one
// shard's numbers grow with every record and a number tells the server which stream and
// shard it came from: "49", the stream's 20-digit id, the 6-digit shard number, and the
// record's 28-digit index in the shard. Children's numbers exceed their parents', as the
// service's do. Clients must compare them as integers, never as strings of unequal length.
const seqLen = 2 + 20 + 6 + 28

func appendPadded(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	d := strconv.AppendUint(tmp[:0], v, 10)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

func appendSeq(b []byte, streamID uint64, shardNum int, idx uint64) []byte {
	b = append(b, '4', '9')
	b = appendPadded(b, streamID, 20)
	b = appendPadded(b, uint64(shardNum), 6)
	return appendPadded(b, idx, 28)
}

// parseSeq splits a sequence number made by appendSeq.
func parseSeq(s string) (streamID uint64, shardNum int, idx uint64, ok bool) {
	if len(s) != seqLen || s[0] != '4' || s[1] != '9' {
		return 0, 0, 0, false
	}
	id, err1 := strconv.ParseUint(s[2:22], 10, 64)
	num, err2 := strconv.ParseUint(s[22:28], 10, 32)
	ix, err3 := strconv.ParseUint(s[28:], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, 0, false
	}
	return id, int(num), ix, true
}

// getOut returns a buffer for an answer. Each answer gets its own; the collector reclaims
// it once written.
func getOut() []byte { return make([]byte, 0, 4<<10) }

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// writableStream finds a stream that takes reads and writes: ACTIVE or UPDATING. The
// service answers ResourceNotFoundException for a stream still CREATING.
func (s *Server) writableStream(ref streamRef, now time.Time) (*stream, *apiError) {
	st, aerr := s.lookup(ref, now)
	if aerr != nil {
		return nil, aerr
	}
	switch st.statusAt(now) {
	case statusActive, statusUpdating:
		return st, nil
	}
	return nil, streamNotFound(st.name)
}

type putEntry struct {
	Data            []byte
	PartitionKey    *string
	ExplicitHashKey *string
}

// checkEntry validates one entry against the API model's constraints, which the service
// reports as ValidationException naming the member.
// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html
func checkEntry(e *putEntry, field string) (hashKey, *apiError) {
	if e.Data == nil {
		return hashKey{}, errorf(CodeValidation, "1 validation error detected: Value null at '%sdata' failed to satisfy constraint: Member must not be null", field)
	}
	if len(e.Data) > MaxRecordSizeCeilingKiB*1024 {
		return hashKey{}, errorf(CodeValidation, "1 validation error detected: Value at '%sdata' failed to satisfy constraint: Member must have length less than or equal to %d", field, MaxRecordSizeCeilingKiB*1024)
	}
	if e.PartitionKey == nil {
		return hashKey{}, errorf(CodeValidation, "1 validation error detected: Value null at '%spartitionKey' failed to satisfy constraint: Member must not be null", field)
	}
	if n := utf8.RuneCountInString(*e.PartitionKey); n < 1 || n > MaxPartitionKeyLength {
		return hashKey{}, errorf(CodeValidation, "1 validation error detected: Value '%s' at '%spartitionKey' failed to satisfy constraint: Member must have length between 1 and %d (has %d)", *e.PartitionKey, field, MaxPartitionKeyLength, n)
	}
	if e.ExplicitHashKey != nil {
		k := *e.ExplicitHashKey
		h, ok := parseHashKey(k)
		if !ok || (len(k) > 1 && k[0] == '0') {
			return hashKey{}, errorf(CodeValidation, "1 validation error detected: Value '%s' at '%sexplicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38}) and be below 2^128", k, field)
		}
		return h, nil
	}
	return partitionHash(*e.PartitionKey), nil
}

// checkRecordSize applies the stream's maximum record size, which counts the data and the
// partition key. A record within the API model's bound but over the stream's setting is an
// InvalidArgumentException, refusing the whole request.
// https://docs.aws.amazon.com/streams/latest/dev/large-records.html
func (s *Server) checkRecordSize(st *stream, e *putEntry, field string) *apiError {
	max := int(st.maxRecordKiB) * 1024
	if n := len(e.Data) + len(*e.PartitionKey); n > max {
		return invalidArg("%sdata: the record (data plus partition key) is %d bytes; stream %s takes records of at most %d bytes", field, n, st.name, max)
	}
	return nil
}

// store appends one record to sh if its write buckets allow, and returns its index.
func (s *Server) store(st *stream, sh *shard, e *putEntry, now time.Time) (uint64, bool) {
	size := float64(len(e.Data) + len(*e.PartitionKey))
	t := now.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.recs) > 0 && sh.recs[0].arrival < t-int64(st.retention()) {
		sh.trim(t - int64(st.retention()))
	}
	if !sh.writeRecords.has(1, now) || !sh.writeBytes.has(size, now) {
		return 0, false
	}
	sh.writeRecords.take(1, now)
	sh.writeBytes.take(size, now)
	idx := sh.next()
	sh.recs = append(sh.recs, record{data: e.Data, key: *e.PartitionKey, arrival: t})
	return idx, true
}

type putRecordInput struct {
	streamRef
	putEntry
	SequenceNumberForOrdering *string
}

func (s *Server) putRecord(body []byte, now time.Time) (any, *apiError) {
	var in putRecordInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	h, aerr := checkEntry(&in.putEntry, "")
	if aerr != nil {
		return nil, aerr
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, aerr := s.writableStream(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := s.checkRecordSize(st, &in.putEntry, ""); aerr != nil {
		return nil, aerr
	}
	sh := st.route(h)
	idx, ok := s.store(st, sh, &in.putEntry, now)
	if !ok {
		return nil, errorf(CodeProvisionedThroughputExceeded, "Rate exceeded for shard %s in stream %s under account %s.", sh.id, st.name, s.account)
	}
	b := getOut()
	b = append(b, `{"ShardId":"`...)
	b = append(b, sh.id...)
	b = append(b, `","SequenceNumber":"`...)
	b = appendSeq(b, st.id, sh.num, idx)
	b = append(b, `","EncryptionType":"`...)
	b = append(b, st.encryptionType()...)
	b = append(b, `"}`...)
	return b, nil
}

type putRecordsInput struct {
	streamRef
	Records []putEntry
}

func (s *Server) putRecords(body []byte, now time.Time) (any, *apiError) {
	return s.putRecordsWith(body, now, nil)
}

// putRecordsWith serves PutRecords; fault, if not nil, fails the entries it selects.
func (s *Server) putRecordsWith(body []byte, now time.Time, fault *FaultRule) (any, *apiError) {
	var in putRecordsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	// The whole request is refused when it breaks a limit: 1 to 500 entries, each entry
	// valid and within the stream's record size, and at most the request size in total.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html
	n := len(in.Records)
	if n < 1 || n > s.limits.MaxPutRecordsEntries {
		return nil, errorf(CodeValidation, "1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length less than or equal to %d and greater than or equal to 1 (has %d)", s.limits.MaxPutRecordsEntries, n)
	}
	hashes := make([]hashKey, n)
	total := 0
	for i := range in.Records {
		h, aerr := checkEntry(&in.Records[i], "records."+strconv.Itoa(i+1)+".member.")
		if aerr != nil {
			return nil, aerr
		}
		hashes[i] = h
		total += len(in.Records[i].Data) + len(*in.Records[i].PartitionKey)
	}
	if total > s.limits.MaxPutRecordsBytes {
		return nil, invalidArg("Records size exceeds %d MB limit (the request has %d bytes of data and partition keys; the limit is %d)", s.limits.MaxPutRecordsBytes>>20, total, s.limits.MaxPutRecordsBytes)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, aerr := s.writableStream(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	for i := range in.Records {
		if aerr := s.checkRecordSize(st, &in.Records[i], "records."+strconv.Itoa(i+1)+".member."); aerr != nil {
			return nil, aerr
		}
	}
	b := getOut()
	b = append(b, `{"FailedRecordCount":`...)
	countAt := len(b)
	b = append(b, `          ,"Records":[`...)
	failed, injected := 0, 0
	for i := range in.Records {
		if i > 0 {
			b = append(b, ',')
		}
		sh := st.route(hashes[i])
		ok := true
		if fault != nil && s.faults.failsEntry(fault, faultEntry(&in.Records[i], sh.id)) {
			ok = false
			injected++
			if code := fault.entryError(); code != CodeProvisionedThroughputExceeded {
				failed++
				b = append(b, `{"ErrorCode":"`...)
				b = append(b, code...)
				b = append(b, `","ErrorMessage":"Internal service failure."}`...)
				continue
			}
		}
		var idx uint64
		if ok {
			idx, ok = s.store(st, sh, &in.Records[i], now)
		}
		if !ok {
			failed++
			b = append(b, `{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"Rate exceeded for shard `...)
			b = append(b, sh.id...)
			b = append(b, ` in stream `...)
			b = append(b, st.name...)
			b = append(b, ` under account `...)
			b = append(b, s.account...)
			b = append(b, `."}`...)
			continue
		}
		b = append(b, `{"SequenceNumber":"`...)
		b = appendSeq(b, st.id, sh.num, idx)
		b = append(b, `","ShardId":"`...)
		b = append(b, sh.id...)
		b = append(b, `"}`...)
	}
	b = append(b, `],"EncryptionType":"`...)
	b = append(b, st.encryptionType()...)
	b = append(b, `"}`...)
	if injected > 0 {
		s.faults.count("PutRecords")
	}
	// The count is written into the room left for it; JSON allows the spaces.
	cnt := strconv.AppendInt(nil, int64(failed), 10)
	copy(b[countAt:], cnt)
	return b, nil
}

type childShardOut struct {
	ShardId      string
	ParentShards []string
	HashKeyRange hashKeyRangeOut
}

type getRecordsInput struct {
	ShardIterator *string
	Limit         *int32
	StreamARN     *string
}

func (s *Server) getRecords(body []byte, now time.Time) (any, *apiError) {
	var in getRecordsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	limit := s.limits.MaxGetRecordsRecords
	if in.Limit != nil {
		if *in.Limit < 1 || int(*in.Limit) > s.limits.MaxGetRecordsRecords {
			return nil, errorf(CodeValidation, "1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and %d", *in.Limit, s.limits.MaxGetRecordsRecords)
		}
		limit = int(*in.Limit)
	}
	if in.ShardIterator == nil {
		return nil, errorf(CodeValidation, "1 validation error detected: Value null at 'shardIterator' failed to satisfy constraint: Member must not be null")
	}
	it, aerr := s.openIterator(*in.ShardIterator, now)
	if aerr != nil {
		return nil, aerr
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, aerr := s.lookup(streamRef{StreamName: &it.stream, StreamARN: in.StreamARN}, now)
	if aerr != nil {
		return nil, aerr
	}
	if st.id != it.streamID {
		return nil, streamNotFound(st.name)
	}
	var sh *shard
	for _, c := range st.shards {
		if c.num == it.shard {
			sh = c
		}
	}
	if sh == nil || !st.visible(sh, now) {
		return nil, errorf(CodeResourceNotFound, "Shard %s in stream %s under account %s does not exist", shardID(it.shard), st.name, s.account)
	}

	sh.mu.Lock()
	if !sh.readCalls.has(1, now) || !sh.readBytes.positive(now) {
		sh.mu.Unlock()
		return nil, errorf(CodeProvisionedThroughputExceeded, "Rate exceeded for Shard - %s in stream %s under account %s.", sh.id, st.name, s.account)
	}
	sh.readCalls.take(1, now)
	sh.trim(now.Add(-st.retention()).UnixNano())
	pos := max(it.pos, sh.base)
	next := sh.next()
	var batch []record
	bytes := 0
	if pos < next {
		from := int(pos - sh.base)
		to := from
		for to < len(sh.recs) && to-from < limit {
			sz := len(sh.recs[to].data) + len(sh.recs[to].key)
			if to > from && bytes+sz > s.limits.MaxGetRecordsBytes {
				break
			}
			bytes += sz
			to++
		}
		batch = append(make([]record, 0, to-from), sh.recs[from:to]...)
		pos += uint64(to - from)
	}
	behind := int64(0)
	if pos < next {
		behind = (now.UnixNano() - sh.recs[pos-sh.base].arrival) / 1e6
	}
	sh.readBytes.charge(float64(bytes))
	ended := sh.closed && pos >= next
	sh.mu.Unlock()

	startIdx := pos - uint64(len(batch))
	b := getOut()
	b = append(b, `{"Records":`...)
	b = appendRecords(b, st, sh, startIdx, batch)
	b = append(b, `,"MillisBehindLatest":`...)
	b = strconv.AppendInt(b, behind, 10)
	if ended {
		// At a closed shard's end the service gives no next iterator and names the
		// children. https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html
		cj, _ := json.Marshal(childShards(st, sh))
		b = append(b, `,"ChildShards":`...)
		b = append(b, cj...)
	} else {
		b = append(b, `,"NextShardIterator":"`...)
		b = s.appendIterator(b, iterator{stream: st.name, streamID: st.id, shard: sh.num, pos: pos, issued: now.UnixNano()})
		b = append(b, '"')
	}
	b = append(b, '}')
	return b, nil
}

// appendRecords appends records as a JSON array; the first has index startIdx in sh.
func appendRecords(b []byte, st *stream, sh *shard, startIdx uint64, batch []record) []byte {
	b = append(b, '[')
	for i := range batch {
		r := &batch[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"SequenceNumber":"`...)
		b = appendSeq(b, st.id, sh.num, startIdx+uint64(i))
		b = append(b, `","ApproximateArrivalTimestamp":`...)
		b = appendEpoch(b, r.arrival/1e6)
		b = append(b, `,"Data":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.data)
		b = append(b, `","PartitionKey":`...)
		b = appendJSONString(b, r.key)
		b = append(b, '}')
	}
	return append(b, ']')
}

// childShards lists the shards sh was split or merged into. Callers hold the server's lock.
func childShards(st *stream, sh *shard) []childShardOut {
	children := []childShardOut{}
	for _, c := range st.shards {
		if c.parent == sh.id || c.adjacent == sh.id {
			parents := []string{c.parent}
			if c.adjacent != "" {
				parents = append(parents, c.adjacent)
			}
			children = append(children, childShardOut{c.id, parents, hashKeyRangeOut{c.start.String(), c.end.String()}})
		}
	}
	return children
}
