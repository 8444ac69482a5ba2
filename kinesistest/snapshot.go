package kinesistest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrSnapshot is wrapped by every error about state given in Options.Restore that the
// server cannot load: a stream that is not a snapshot, a snapshot of another format
// version, or one whose content is inconsistent. Match it with errors.Is.
var ErrSnapshot = errors.New("kinesistest: unusable snapshot")

// SnapshotVersion is the format version Snapshot writes and Options.Restore reads. A
// snapshot of another version is refused rather than guessed at.
const SnapshotVersion = 1

// snapshotMagic starts every snapshot, followed by the version and a newline; the rest is
// one JSON document. The header line lets a reader refuse another version before decoding.
const snapshotMagic = "kinesistest-snapshot v"

type snapFile struct {
	Region  string
	Account string
	Serial  uint64
	Streams []snapStream
}

type snapStream struct {
	Name           string
	ID             uint64
	Created        time.Time
	Mode           string
	Status         string
	ReadyAt        time.Time
	RetentionHours int32
	MaxRecordKiB   int32
	NextShardNum   int
	Tags           map[string]string `json:",omitempty"`
	ScaleTimes     []time.Time       `json:",omitempty"`
	ModeTimes      []time.Time       `json:",omitempty"`
	KeyID          string            `json:",omitempty"`
	Consumers      []snapConsumer    `json:",omitempty"`
	Shards         []snapShard
}

type snapConsumer struct {
	Name    string
	Created time.Time
	Status  string
	ReadyAt time.Time
}

type snapShard struct {
	Num      int
	Parent   string `json:",omitempty"`
	Adjacent string `json:",omitempty"`
	Start    string
	End      string
	Created  time.Time
	Closed   bool      `json:",omitempty"`
	ClosedAt time.Time `json:",omitzero"`
	Base     uint64
	Records  []snapRecord `json:",omitempty"`
}

type snapRecord struct {
	Data    []byte
	Key     string
	Arrival int64 // the server clock, Unix nanoseconds
}

// Snapshot writes the server's state to w: streams with their shards, records, tags,
// consumers and pending state transitions, in a versioned format that Options.Restore
// reads back, so that a server can stop and start again with the same data (as
// `shardline emulator --state` does). Sequence numbers and stream ARNs stay the same.
//
// What is not kept: token buckets (a restored server starts with full buckets), shard
// iterators and NextTokens (they are sealed with a key of each server, so a client must
// ask for new ones), and open fan-out subscriptions. Take the snapshot after Close to be
// sure no call changes the state while it is written.
func (s *Server) Snapshot(w io.Writer) error {
	f := snapFile{Region: s.region, Account: s.account}
	now := s.clock.Now()
	s.mu.RLock()
	f.Serial = s.serial
	for _, st := range s.streams {
		if st.statusAt(now) == "" {
			continue
		}
		f.Streams = append(f.Streams, snapStreamOf(st))
	}
	s.mu.RUnlock()
	sort.Slice(f.Streams, func(i, j int) bool { return f.Streams[i].Name < f.Streams[j].Name })

	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s%d\n", snapshotMagic, SnapshotVersion)
	if err := json.NewEncoder(bw).Encode(&f); err != nil {
		return fmt.Errorf("kinesistest: writing the snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("kinesistest: writing the snapshot: %w", err)
	}
	return nil
}

// snapStreamOf copies a stream. Callers hold the server's lock.
func snapStreamOf(st *stream) snapStream {
	out := snapStream{
		Name: st.name, ID: st.id, Created: st.created, Mode: st.mode,
		Status: st.status, ReadyAt: st.readyAt,
		RetentionHours: st.retentionHours, MaxRecordKiB: st.maxRecordKiB,
		NextShardNum: st.nextShardNum, KeyID: st.keyID,
		ScaleTimes: st.scaleTimes, ModeTimes: st.modeTimes,
	}
	if len(st.tags) > 0 {
		out.Tags = st.tags
	}
	for _, c := range st.consumers {
		out.Consumers = append(out.Consumers, snapConsumer{Name: c.name, Created: c.created, Status: c.status, ReadyAt: c.readyAt})
	}
	sort.Slice(out.Consumers, func(i, j int) bool { return out.Consumers[i].Name < out.Consumers[j].Name })
	for _, sh := range st.shards {
		sh.mu.Lock()
		ss := snapShard{
			Num: sh.num, Parent: sh.parent, Adjacent: sh.adjacent,
			Start: sh.start.String(), End: sh.end.String(), Created: sh.created,
			Closed: sh.closed, ClosedAt: sh.closedAt, Base: sh.base,
			Records: make([]snapRecord, len(sh.recs)),
		}
		for i, r := range sh.recs {
			ss.Records[i] = snapRecord{Data: r.data, Key: r.key, Arrival: r.arrival}
		}
		sh.mu.Unlock()
		out.Shards = append(out.Shards, ss)
	}
	return out
}

// snapErrorf makes an error that wraps ErrSnapshot.
func snapErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSnapshot, fmt.Sprintf(format, args...))
}

// decodeSnapshot reads and checks a snapshot without building a server from it.
func decodeSnapshot(r io.Reader) (*snapFile, error) {
	br := bufio.NewReader(r)
	line, err := br.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return nil, snapErrorf("empty, not a kinesistest snapshot")
		}
		return nil, fmt.Errorf("%w: reading: %w", ErrSnapshot, err)
	}
	vs, ok := bytes.CutPrefix([]byte(line), []byte(snapshotMagic))
	if !ok {
		return nil, snapErrorf("not a kinesistest snapshot (the first line is not %q followed by a version)", snapshotMagic)
	}
	v, err := strconv.Atoi(string(bytes.TrimSuffix(vs, []byte("\n"))))
	if err != nil {
		return nil, snapErrorf("the header's version %q is not a number", bytes.TrimSpace(vs))
	}
	if v != SnapshotVersion {
		return nil, snapErrorf("format version %d, but this server reads version %d only", v, SnapshotVersion)
	}
	var f snapFile
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: decoding: %w", ErrSnapshot, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, snapErrorf("data after the end of the snapshot")
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	return &f, nil
}

// check verifies what the server relies on: names it can serve, shard numbers that fit
// in a sequence number, records in arrival order, and open shards that cover the hash key
// space exactly once, so that every partition key routes to one shard.
func (f *snapFile) check() error {
	names := map[string]bool{}
	for i := range f.Streams {
		st := &f.Streams[i]
		if !streamNamePattern.MatchString(st.Name) {
			return snapErrorf("stream %d: name %q is not a valid stream name", i, st.Name)
		}
		if names[st.Name] {
			return snapErrorf("stream %s appears twice", st.Name)
		}
		names[st.Name] = true
		if err := st.check(); err != nil {
			return snapErrorf("stream %s: %v", st.Name, err)
		}
	}
	return nil
}

func (st *snapStream) check() error {
	if st.Mode != modeProvisioned && st.Mode != modeOnDemand {
		return fmt.Errorf("Mode %q is not PROVISIONED or ON_DEMAND", st.Mode)
	}
	switch st.Status {
	case statusCreating, statusActive, statusUpdating, statusDeleting:
	default:
		return fmt.Errorf("Status %q is not a stream status", st.Status)
	}
	if st.RetentionHours < DefaultRetentionHours || st.RetentionHours > MaxRetentionHours {
		return fmt.Errorf("RetentionHours %d is outside %d to %d", st.RetentionHours, DefaultRetentionHours, MaxRetentionHours)
	}
	if st.MaxRecordKiB < DefaultMaxRecordSizeKiB || st.MaxRecordKiB > MaxRecordSizeCeilingKiB {
		return fmt.Errorf("MaxRecordKiB %d is outside %d to %d", st.MaxRecordKiB, DefaultMaxRecordSizeKiB, MaxRecordSizeCeilingKiB)
	}
	// Sequence numbers give the shard number six digits.
	if st.NextShardNum < 1 || st.NextShardNum > 999_999 {
		return fmt.Errorf("NextShardNum %d is outside 1 to 999999", st.NextShardNum)
	}
	if len(st.Tags) > maxTagsPerStream {
		return fmt.Errorf("%d tags, more than %d", len(st.Tags), maxTagsPerStream)
	}
	seenC := map[string]bool{}
	for _, c := range st.Consumers {
		if !streamNamePattern.MatchString(c.Name) || seenC[c.Name] {
			return fmt.Errorf("consumer name %q is invalid or repeated", c.Name)
		}
		seenC[c.Name] = true
		switch c.Status {
		case consumerCreating, consumerActive, consumerDeleting:
		default:
			return fmt.Errorf("consumer %s: Status %q is not a consumer status", c.Name, c.Status)
		}
	}
	type span struct{ start, end hashKey }
	var open []span
	seen := map[int]bool{}
	for _, sh := range st.Shards {
		if sh.Num < 0 || sh.Num >= st.NextShardNum || seen[sh.Num] {
			return fmt.Errorf("shard number %d is repeated or not below NextShardNum %d", sh.Num, st.NextShardNum)
		}
		seen[sh.Num] = true
		for _, p := range []string{sh.Parent, sh.Adjacent} {
			if n, ok := shardNum(p); p != "" && (!ok || n >= st.NextShardNum || p != shardID(n)) {
				return fmt.Errorf("shard %d: parent %q is not a shard of the stream", sh.Num, p)
			}
		}
		start, ok1 := parseHashKey(sh.Start)
		end, ok2 := parseHashKey(sh.End)
		if !ok1 || !ok2 || end.less(start) {
			return fmt.Errorf("shard %d: hash key range %q to %q is not a range below 2^128", sh.Num, sh.Start, sh.End)
		}
		if sh.Base < 1 || sh.Base > 1<<62 || uint64(len(sh.Records)) > 1<<62 {
			return fmt.Errorf("shard %d: Base %d is outside 1 to 2^62", sh.Num, sh.Base)
		}
		last := int64(-1 << 63)
		for j, r := range sh.Records {
			if r.Arrival < last {
				return fmt.Errorf("shard %d: record %d arrived before the one ahead of it", sh.Num, j)
			}
			last = r.Arrival
			if n := utf8.RuneCountInString(r.Key); n < 1 || n > MaxPartitionKeyLength {
				return fmt.Errorf("shard %d: record %d has a partition key of %d characters", sh.Num, j, n)
			}
		}
		if !sh.Closed {
			open = append(open, span{start, end})
		}
	}
	if len(open) == 0 {
		return fmt.Errorf("no open shard")
	}
	sort.Slice(open, func(i, j int) bool { return open[i].start.less(open[j].start) })
	if open[0].start != (hashKey{}) || open[len(open)-1].end != maxHashKey {
		return fmt.Errorf("the open shards do not cover the hash key space from 0 to 2^128-1")
	}
	for i := 1; i < len(open); i++ {
		if open[i-1].end == maxHashKey || open[i].start != open[i-1].end.add1() {
			return fmt.Errorf("the open shards overlap or leave a gap in the hash key space")
		}
	}
	return nil
}

// restore loads a decoded snapshot into a new, empty server.
func (s *Server) restore(f *snapFile) error {
	if f.Region != s.region || f.Account != s.account {
		return snapErrorf("taken for account %s in %s, but the server is account %s in %s (set Options.Region and AccountID to match)",
			f.Account, f.Region, s.account, s.region)
	}
	now := s.clock.Now()
	s.serial = f.Serial
	for _, ss := range f.Streams {
		st := &stream{
			name: ss.Name, arn: s.streamARN(ss.Name), id: ss.ID, created: ss.Created, mode: ss.Mode,
			status: ss.Status, readyAt: ss.ReadyAt,
			retentionHours: ss.RetentionHours, maxRecordKiB: ss.MaxRecordKiB,
			nextShardNum: ss.NextShardNum, keyID: ss.KeyID,
			scaleTimes: ss.ScaleTimes, modeTimes: ss.ModeTimes,
			tags: map[string]string{}, consumers: map[string]*consumer{},
		}
		for k, v := range ss.Tags {
			st.tags[k] = v
		}
		for _, c := range ss.Consumers {
			st.consumers[c.Name] = &consumer{
				name: c.Name, created: c.Created, status: c.Status, readyAt: c.ReadyAt,
				arn: st.arn + "/consumer/" + c.Name + ":" + strconv.FormatInt(c.Created.Unix(), 10),
			}
		}
		if r := s.limits.ControlPlaneRates["ListShards"]; r > 0 && !s.limits.Unthrottled {
			st.listShards = newBucket(r, r, now)
		}
		for _, sh := range ss.Shards {
			start, _ := parseHashKey(sh.Start)
			end, _ := parseHashKey(sh.End)
			n := &shard{
				id: shardID(sh.Num), num: sh.Num, parent: sh.Parent, adjacent: sh.Adjacent,
				start: start, end: end, created: sh.Created,
				closed: sh.Closed, closedAt: sh.ClosedAt, base: sh.Base,
				recs: make([]record, len(sh.Records)),
			}
			for i, r := range sh.Records {
				n.recs[i] = record{data: r.Data, key: r.Key, arrival: r.Arrival}
			}
			s.initBuckets(st, n, now)
			st.shards = append(st.shards, n)
		}
		sort.Slice(st.shards, func(i, j int) bool { return st.shards[i].num < st.shards[j].num })
		st.reindexOpen()
		s.streams[st.name] = st
	}
	return nil
}
