package kinesistest

import (
	"encoding/base64"
	"encoding/binary"
	"sort"
	"time"
)

// iterator is what a shard iterator carries. The server keeps no state per iterator: the
// position and the time it was issued travel in the token, authenticated by an HMAC, so
// abandoned iterators cost nothing and expiry needs only the clock.
type iterator struct {
	stream   string
	streamID uint64
	shard    int
	pos      uint64
	issued   int64 // Unix nanoseconds
}

const iteratorVersion = 1

func (s *Server) appendIterator(b []byte, it iterator) []byte {
	raw := make([]byte, 0, 1+8+4+8+8+len(it.stream)+8)
	raw = append(raw, iteratorVersion)
	raw = binary.BigEndian.AppendUint64(raw, it.streamID)
	raw = binary.BigEndian.AppendUint32(raw, uint32(it.shard))
	raw = binary.BigEndian.AppendUint64(raw, it.pos)
	raw = binary.BigEndian.AppendUint64(raw, uint64(it.issued))
	raw = append(raw, it.stream...)
	raw = binary.BigEndian.AppendUint64(raw, s.macIterator(raw))
	return base64.StdEncoding.AppendEncode(b, raw)
}

// openIterator checks and unpacks an iterator. A token this server did not issue is an
// InvalidArgumentException; one older than the iterator lifetime an ExpiredIteratorException.
// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetRecords.html
func (s *Server) openIterator(tok string, now time.Time) (iterator, *apiError) {
	bad := invalidArg("Invalid ShardIterator: %.64q is not an iterator this server issued", tok)
	if len(tok) < 1 || len(tok) > 512 {
		return iterator{}, errorf(CodeValidation, "1 validation error detected: Value at 'shardIterator' failed to satisfy constraint: Member must have length between 1 and 512")
	}
	raw, err := base64.StdEncoding.DecodeString(tok)
	if err != nil || len(raw) < 1+8+4+8+8+1+8 || raw[0] != iteratorVersion {
		return iterator{}, bad
	}
	body, sum := raw[:len(raw)-8], raw[len(raw)-8:]
	if binary.BigEndian.Uint64(sum) != s.macIterator(body) {
		return iterator{}, bad
	}
	it := iterator{
		streamID: binary.BigEndian.Uint64(body[1:]),
		shard:    int(binary.BigEndian.Uint32(body[9:])),
		pos:      binary.BigEndian.Uint64(body[13:]),
		issued:   int64(binary.BigEndian.Uint64(body[21:])),
		stream:   string(body[29:]),
	}
	issued := time.Unix(0, it.issued)
	if now.Sub(issued) > s.limits.IteratorLifetime {
		return iterator{}, errorf(CodeExpiredIterator, "Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.", issued.UTC().Format(time.RFC1123), now.UTC().Format(time.RFC1123), s.limits.IteratorLifetime.Milliseconds())
	}
	return it, nil
}

type getShardIteratorInput struct {
	streamRef
	ShardId                *string
	ShardIteratorType      *string
	StartingSequenceNumber *string
	Timestamp              *float64
}

func (s *Server) getShardIterator(body []byte, now time.Time) (any, *apiError) {
	var in getShardIteratorInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.ShardId == nil || in.ShardIteratorType == nil {
		return nil, errorf(CodeValidation, "ShardId and ShardIteratorType are required")
	}
	typ := *in.ShardIteratorType
	switch typ {
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		if in.StartingSequenceNumber == nil {
			return nil, invalidArg("StartingSequenceNumber is required for ShardIteratorType %s", typ)
		}
	case "AT_TIMESTAMP":
		if in.Timestamp == nil {
			return nil, invalidArg("Timestamp is required for ShardIteratorType AT_TIMESTAMP")
		}
	case "TRIM_HORIZON", "LATEST":
	default:
		return nil, errorf(CodeValidation, "1 validation error detected: Value '%s' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]", typ)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, aerr := s.writableStream(in.streamRef, now)
	if aerr != nil {
		return nil, aerr
	}
	sh := st.shardByID(*in.ShardId)
	if sh == nil || !st.visible(sh, now) {
		return nil, errorf(CodeResourceNotFound, "Shard %s in stream %s under account %s does not exist", *in.ShardId, st.name, s.account)
	}
	// GetShardIterator is limited per open shard; the service answers an excess with
	// ProvisionedThroughputExceededException.
	// https://docs.aws.amazon.com/kinesis/latest/APIReference/API_GetShardIterator.html
	sh.mu.Lock()
	ok := sh.iterCalls.take(1, now)
	sh.mu.Unlock()
	if !ok {
		return nil, errorf(CodeProvisionedThroughputExceeded, "Rate exceeded for GetShardIterator on shard %s in stream %s under account %s.", sh.id, st.name, s.account)
	}
	pos, aerr := s.startPosition(st, sh, typ, in.StartingSequenceNumber, in.Timestamp, now)
	if aerr != nil {
		return nil, aerr
	}
	b := getOut()
	b = append(b, `{"ShardIterator":"`...)
	b = s.appendIterator(b, iterator{stream: st.name, streamID: st.id, shard: sh.num, pos: pos, issued: now.UnixNano()})
	b = append(b, `"}`...)
	return b, nil
}

// startPosition is the index a reader starting at typ begins with. GetShardIterator and
// SubscribeToShard share it. Callers hold the server's lock.
func (s *Server) startPosition(st *stream, sh *shard, typ string, seq *string, ts *float64, now time.Time) (uint64, *apiError) {
	var seqIdx uint64
	switch typ {
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		if seq == nil {
			return 0, invalidArg("StartingSequenceNumber is required for type %s", typ)
		}
		id, num, idx, ok := parseSeq(*seq)
		if !ok || id != st.id || num != sh.num {
			return 0, invalidArg("Invalid StartingSequenceNumber %s for shard %s in stream %s under account %s", *seq, sh.id, st.name, s.account)
		}
		seqIdx = idx
	case "AT_TIMESTAMP":
		if ts == nil {
			return 0, invalidArg("Timestamp is required for type AT_TIMESTAMP")
		}
	case "TRIM_HORIZON", "LATEST":
	default:
		return 0, errorf(CodeValidation, "1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]", typ)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.trim(now.Add(-st.retention()).UnixNano())
	switch typ {
	case "TRIM_HORIZON":
		return sh.base, nil
	case "LATEST":
		return sh.next(), nil
	case "AT_SEQUENCE_NUMBER":
		return seqIdx, nil
	case "AFTER_SEQUENCE_NUMBER":
		return seqIdx + 1, nil
	}
	t := fromEpochSeconds(*ts).UnixNano()
	i := sort.Search(len(sh.recs), func(i int) bool { return sh.recs[i].arrival >= t })
	return sh.base + uint64(i), nil
}
