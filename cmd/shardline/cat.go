package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/spf13/cobra"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/compression"
)

// minCallSpacing keeps GetRecords calls on one shard at most five a second, the Kinesis limit
// per shard.
const minCallSpacing = 200 * time.Millisecond

// errLimitReached ends cat once --max-records records are written.
var errLimitReached = errors.New("record limit reached")

func (a *app) catCommand() *cobra.Command {
	var (
		follow       bool
		from         string
		keys         []string
		asJSON       bool
		b64          bool
		maxRecords   int64
		pollInterval time.Duration
		delimiter    string
	)
	cmd := &cobra.Command{
		Use:   "cat STREAM",
		Short: "Write the records of a stream to stdout",
		Long: `Read every shard of the stream with GetRecords and write its records to stdout, one per
line, after undoing Shardline compression and KPL aggregation: each user record is a line.
Records of one shard keep their order, and a shard's parents are read to their end before
it; records of different shards interleave.

Without -f cat stops once every shard is read to its current end. With -f it keeps
polling for new records, and after a reshard goes on with the new shards, until
interrupted (which ends it with status 0) or --max-records is reached.

--from sets where reading starts: trim-horizon (the oldest record kept, the default),
latest (only records written from now on, mostly useful with -f), a time, or a duration
such as 15m for that long ago. A time is RFC 3339 (2025-01-02T15:04:05Z), a date and time
without a zone (2025-01-02T15:04:05 or "2025-01-02 15:04:05") or a plain date (2025-01-02,
midnight), both taken as UTC, or Unix epoch seconds (1735830245, fractions allowed;
13 digits or more are read as milliseconds, as kcat writes them).

Each record is followed by a newline, except a record that already ends in one (as the
Kinesis Agent's and shardline-agent's records do), so lines are never doubled.
--delimiter sets what follows every record instead, always and as given, with the
escapes \n, \r, \t, \0 (a NUL byte, for xargs -0), \\ and \xHH; --delimiter '' writes
records back to back. Records that contain newlines or binary data are best read with
--base64 (one base64 line per record) or --json. --json writes one
object per record with its stream, shard, sequence and subsequence numbers, partition key,
approximate arrival time and data: a UTF-8 string when the data is valid UTF-8, else
base64, as the "encoding" field says.

A record whose compression frame or aggregate is corrupt is written as it was received and
counted in a warning on stderr.`,
		Example: `  shardline cat orders
  shardline cat orders -f --from latest
  shardline cat orders --json --key customer-42 | jq .data
  shardline cat orders --from 2025-01-02T15:04:05Z --max-records 100
  shardline cat orders --from 1h --base64 > orders.b64
  shardline cat orders --from 2025-01-02 --delimiter '\0' | xargs -0 -n1 echo`,
		Args: exactArgs(1, "a stream name"),
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			pos, err := parseFrom(from, time.Now())
			if err != nil {
				return err
			}
			delim, explicitDelim := []byte("\n"), cmd.Flags().Changed("delimiter")
			if explicitDelim {
				if asJSON {
					return usageErrorf("--delimiter cannot be used with --json, which writes one JSON object per line")
				}
				if delim, err = parseDelimiter(delimiter); err != nil {
					return usageErrorf("--delimiter %q: %v", delimiter, err)
				}
			}
			if maxRecords < 0 {
				return usageErrorf("--max-records must not be negative, got %d", maxRecords)
			}
			if pollInterval < minCallSpacing {
				return usageErrorf("--poll-interval must be at least %s (Kinesis allows five reads a second per shard), got %s", minCallSpacing, pollInterval)
			}
			kc, err := a.kinesis(cmd.Context())
			if err != nil {
				return err
			}
			c := &catRun{
				app:          a,
				kc:           kc,
				stream:       args[0],
				follow:       follow,
				from:         pos,
				asJSON:       asJSON,
				b64:          b64,
				maxRecords:   maxRecords,
				pollInterval: pollInterval,
				delim:        delim,
				alwaysDelim:  explicitDelim,
				out:          bufio.NewWriterSize(a.stdout, 64<<10),
			}
			if len(keys) > 0 {
				c.keys = map[string]bool{}
				for _, k := range keys {
					c.keys[k] = true
				}
			}
			err = c.run(cmd.Context())
			c.warnCorrupt()
			if errors.Is(err, errLimitReached) {
				return nil
			}
			if follow && err != nil && cmd.Context().Err() != nil {
				// Interrupting is how a follow ends.
				return nil
			}
			return err
		}),
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep reading new records, following reshards, until interrupted")
	f.StringVar(&from, "from", "trim-horizon", "where to start: trim-horizon, latest, a time (RFC 3339, a UTC date, epoch seconds) or a duration ago")
	f.StringArrayVar(&keys, "key", nil, "only records with this partition key (repeat for several)")
	f.BoolVar(&asJSON, "json", false, "write one JSON object per record, with its metadata")
	f.BoolVar(&b64, "base64", false, "write data base64-encoded (binary-safe; with --json, always base64)")
	f.Int64VarP(&maxRecords, "max-records", "n", 0, "stop after writing this many records (0: no limit)")
	f.DurationVar(&pollInterval, "poll-interval", time.Second, "with -f, how long a shard with no new records waits before asking again")
	f.StringVarP(&delimiter, "delimiter", "D", `\n`, `written after every record, with escapes such as \n, \t, \0 and \xHH (default: a newline, unless the record ends in one)`)
	return cmd
}

// startPos is where reading a shard starts.
type startPos struct {
	kind types.ShardIteratorType
	at   time.Time
}

func parseFrom(s string, now time.Time) (startPos, error) {
	switch strings.ReplaceAll(strings.ToLower(s), "_", "-") {
	case "trim-horizon", "oldest":
		return startPos{kind: types.ShardIteratorTypeTrimHorizon}, nil
	case "latest", "now":
		return startPos{kind: types.ShardIteratorTypeLatest}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return startPos{kind: types.ShardIteratorTypeAtTimestamp, at: t}, nil
	}
	// Without a zone a time is UTC, the zone Kinesis reports arrival times in, so the same
	// command means the same on every machine.
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return startPos{kind: types.ShardIteratorTypeAtTimestamp, at: t}, nil
		}
	}
	if t, ok := parseEpoch(s); ok {
		return startPos{kind: types.ShardIteratorTypeAtTimestamp, at: t}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return startPos{kind: types.ShardIteratorTypeAtTimestamp, at: now.Add(-d)}, nil
	}
	return startPos{}, usageErrorf("--from %q: want trim-horizon, latest, an RFC 3339 time such as 2025-01-02T15:04:05Z, a UTC date such as 2025-01-02, epoch seconds such as 1735830245, or a duration such as 15m", s)
}

// maxEpochDigits bounds the integer digits of an epoch time: 13 or more are milliseconds
// (seconds would be past the year 5000), and more than 16 cannot be a time Kinesis keeps.
const maxEpochDigits = 16

// parseEpoch reads Unix epoch seconds, with an optional fraction, or milliseconds when the
// integer part has 13 digits or more.
func parseEpoch(s string) (time.Time, bool) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || len(whole) > maxEpochDigits || (hasFrac && (frac == "" || len(frac) > 9)) {
		return time.Time{}, false
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
		}
	}
	n, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var nanos int64
	if hasFrac {
		f, _ := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
		nanos = f
	}
	if len(whole) >= 13 {
		return time.UnixMilli(n).Add(time.Duration(nanos / 1e3)).UTC(), true // the fraction is of a millisecond
	}
	return time.Unix(n, nanos).UTC(), true
}

// parseDelimiter undoes the escapes of --delimiter: \n, \r, \t, \0, \\ and \xHH.
func parseDelimiter(s string) ([]byte, error) {
	var out []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 == len(s) {
			return nil, errors.New(`ends in a lone \; write \\ for a backslash`)
		}
		i++
		switch s[i] {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case '0':
			out = append(out, 0)
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+2 >= len(s) {
				return nil, errors.New(`\x needs two hex digits, as in \x1e`)
			}
			b, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf(`\x%s: want two hex digits, as in \x1e`, s[i+1:i+3])
			}
			out = append(out, byte(b))
			i += 2
		default:
			return nil, fmt.Errorf(`unknown escape \%c; use \n, \r, \t, \0, \\ or \xHH`, s[i])
		}
	}
	return out, nil
}

// catRun is one run of cat.
type catRun struct {
	app          *app
	kc           *kinesis.Client
	stream       string
	follow       bool
	from         startPos
	keys         map[string]bool
	asJSON       bool
	b64          bool
	maxRecords   int64
	pollInterval time.Duration
	// delim follows every record; without alwaysDelim it is a newline, left out after a
	// record that ends in one.
	delim       []byte
	alwaysDelim bool

	// outMu serialises writing: each shard reader writes its batches whole.
	outMu   sync.Mutex
	out     *bufio.Writer
	written int64

	corruptMu     sync.Mutex
	corruptFrames int64
	corruptAggs   int64
}

// shardState tracks one shard through a run.
type shardState struct {
	shard   types.Shard
	started bool
	// ended is set when the shard was read to its end (it is closed and every record was
	// read) or skipped because reading starts after it; its children may then start.
	ended bool
	// later is set for shards that appeared after the run started, by a reshard.
	later bool
}

// shardDone is what a shard reader reports when it stops.
type shardDone struct {
	id       string
	ended    bool
	children []types.ChildShard
	err      error
}

// run reads the shards, parents before children, until every reader has stopped.
func (c *catRun) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	shards, err := listShards(ctx, c.kc, c.stream)
	if err != nil {
		return err
	}
	state := map[string]*shardState{}
	var order []string // shard IDs in listing order, so readers start in a stable order
	add := func(s types.Shard) {
		id := aws.ToString(s.ShardId)
		if _, ok := state[id]; !ok {
			state[id] = &shardState{shard: s, later: true}
			order = append(order, id)
		}
	}
	for _, s := range shards {
		add(s)
		state[aws.ToString(s.ShardId)].later = false
		if c.from.kind == types.ShardIteratorTypeLatest && !shardOpen(s) {
			// Nothing will be written to a closed shard, so LATEST starts past its end.
			state[aws.ToString(s.ShardId)].ended = true
		}
	}

	done := make(chan shardDone)
	running := 0
	var firstErr error
	startReady := func() {
		for _, id := range order {
			st := state[id]
			if st.started || st.ended || !parentsEnded(st.shard, state) {
				continue
			}
			st.started = true
			running++
			pos := c.from
			if st.later && pos.kind == types.ShardIteratorTypeLatest {
				// A shard created after cat started holds only records newer than the start.
				pos = startPos{kind: types.ShardIteratorTypeTrimHorizon}
			}
			go func(id string, pos startPos) {
				ended, children, err := c.readShard(ctx, id, pos)
				done <- shardDone{id: id, ended: ended, children: children, err: err}
			}(id, pos)
		}
	}

	startReady()
	for running > 0 {
		d := <-done
		running--
		if d.err != nil {
			if firstErr == nil {
				firstErr = d.err
				cancel() // the other readers stop; their reports are drained below
			}
			continue
		}
		if firstErr != nil || !d.ended {
			continue
		}
		state[d.id].ended = true
		// The shard was closed by a reshard: its children are known from GetRecords and, with
		// their parents, from ListShards.
		for _, ch := range d.children {
			add(childShard(ch))
		}
		if len(d.children) > 0 || c.follow {
			if fresh, err := listShards(ctx, c.kc, c.stream); err == nil {
				for _, s := range fresh {
					if st, ok := state[aws.ToString(s.ShardId)]; ok && !st.started {
						st.shard = s // ListShards knows both parents of a merged shard
					}
					add(s)
				}
			} else if ctx.Err() == nil {
				firstErr = err
				cancel()
				continue
			}
		}
		startReady()
	}
	if ferr := c.flush(); firstErr == nil {
		firstErr = ferr
	}
	return firstErr
}

// childShard turns GetRecords' description of a child shard into a shard.
func childShard(ch types.ChildShard) types.Shard {
	s := types.Shard{ShardId: ch.ShardId, HashKeyRange: ch.HashKeyRange}
	if len(ch.ParentShards) > 0 {
		s.ParentShardId = aws.String(ch.ParentShards[0])
	}
	if len(ch.ParentShards) > 1 {
		s.AdjacentParentShardId = aws.String(ch.ParentShards[1])
	}
	return s
}

// parentsEnded reports whether every parent of s that the stream still lists has been read to
// its end. A parent no longer listed has aged out of the retention period with its records.
func parentsEnded(s types.Shard, state map[string]*shardState) bool {
	for _, p := range []*string{s.ParentShardId, s.AdjacentParentShardId} {
		if p == nil || *p == "" {
			continue
		}
		if st, ok := state[*p]; ok && !st.ended {
			return false
		}
	}
	return true
}

// readShard reads one shard until its end, or, without -f, until it is caught up. ended
// tells the shard was closed and read to its end; children are the shards that replaced it.
func (c *catRun) readShard(ctx context.Context, id string, pos startPos) (ended bool, children []types.ChildShard, err error) {
	var lastSeq string
	getIterator := func() (*string, error) {
		in := &kinesis.GetShardIteratorInput{StreamName: aws.String(c.stream), ShardId: aws.String(id)}
		switch {
		case lastSeq != "":
			in.ShardIteratorType = types.ShardIteratorTypeAfterSequenceNumber
			in.StartingSequenceNumber = aws.String(lastSeq)
		case pos.kind == types.ShardIteratorTypeAtTimestamp:
			in.ShardIteratorType = pos.kind
			in.Timestamp = aws.Time(pos.at)
		default:
			in.ShardIteratorType = pos.kind
		}
		for attempt := 0; ; attempt++ {
			out, err := c.kc.GetShardIterator(ctx, in)
			if err == nil {
				return out.ShardIterator, nil
			}
			if !throttled(err) {
				return nil, apiError(c.stream, "getting an iterator for shard "+id+" of stream "+c.stream, err)
			}
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return nil, err
			}
		}
	}
	iter, err := getIterator()
	if err != nil {
		return false, nil, err
	}
	var userRecords []aggregation.UserRecord
	var lines [][]byte
	throttles := 0
	for {
		if iter == nil {
			// A closed shard with nothing at or after the position has no iterator.
			return true, nil, nil
		}
		callStart := time.Now()
		out, err := c.kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			var expired *types.ExpiredIteratorException
			switch {
			case errors.As(err, &expired):
				// Iterators last five minutes; a long pause (a blocked stdout) outlives them.
				if iter, err = getIterator(); err != nil {
					return false, nil, err
				}
				continue
			case throttled(err):
				throttles++
				if err := sleep(ctx, backoff(throttles)); err != nil {
					return false, nil, err
				}
				continue
			}
			return false, nil, apiError(c.stream, "reading shard "+id+" of stream "+c.stream, err)
		}
		throttles = 0
		if len(out.Records) > 0 {
			userRecords, lines = c.format(id, out.Records, userRecords[:0], lines[:0])
			if err := c.emit(lines); err != nil {
				return false, nil, err
			}
			lastSeq = aws.ToString(out.Records[len(out.Records)-1].SequenceNumber)
		}
		if out.NextShardIterator == nil {
			return true, out.ChildShards, nil
		}
		iter = out.NextShardIterator
		atTip := len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0
		if atTip && !c.follow {
			return false, nil, nil
		}
		wait := minCallSpacing
		if atTip {
			wait = c.pollInterval
		}
		if err := sleep(ctx, wait-time.Since(callStart)); err != nil {
			return false, nil, err
		}
	}
}

func throttled(err error) bool {
	var pte *types.ProvisionedThroughputExceededException
	var lee *types.LimitExceededException
	return errors.As(err, &pte) || errors.As(err, &lee)
}

// backoff grows from 200 ms to 5 s.
func backoff(attempt int) time.Duration {
	d := minCallSpacing << min(attempt, 5)
	return min(d, 5*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// catRecord is the --json form of a user record.
type catRecord struct {
	Stream          string     `json:"stream"`
	Shard           string     `json:"shard"`
	Sequence        string     `json:"sequence"`
	Subsequence     int64      `json:"subsequence"`
	Aggregated      bool       `json:"aggregated"`
	Compression     string     `json:"compression,omitempty"`
	PartitionKey    string     `json:"partitionKey"`
	ExplicitHashKey string     `json:"explicitHashKey,omitempty"`
	ArrivalTime     *time.Time `json:"approximateArrivalTimestamp,omitempty"`
	Data            string     `json:"data"`
	Encoding        string     `json:"encoding"`
}

// format decodes and deaggregates a batch of Kinesis records and formats the user records
// that pass the key filter, one line each. It reuses the slices it is given.
func (c *catRun) format(shard string, records []types.Record, urs []aggregation.UserRecord, lines [][]byte) ([]aggregation.UserRecord, [][]byte) {
	var frames, aggs int64
	for _, r := range records {
		data := r.Data
		codec := ""
		if compression.IsFramed(data) {
			codec = compression.Codec(data[4]).String()
			decoded, err := compression.Decode(data)
			if err != nil {
				frames++
				codec = ""
			} else {
				data = decoded
			}
		}
		pk, ehk := aws.ToString(r.PartitionKey), ""
		var err error
		urs, err = aggregation.Deaggregate(urs[:0], data, pk, ehk)
		if err != nil {
			aggs++
		}
		for i := range urs {
			u := &urs[i]
			if c.keys != nil && !c.keys[u.PartitionKey] {
				continue
			}
			lines = append(lines, c.formatOne(shard, &r, codec, u))
		}
	}
	if frames > 0 || aggs > 0 {
		c.corruptMu.Lock()
		c.corruptFrames += frames
		c.corruptAggs += aggs
		c.corruptMu.Unlock()
	}
	return urs, lines
}

func (c *catRun) formatOne(shard string, r *types.Record, codec string, u *aggregation.UserRecord) []byte {
	if !c.asJSON {
		var line []byte
		if c.b64 {
			line = make([]byte, base64.StdEncoding.EncodedLen(len(u.Data)), base64.StdEncoding.EncodedLen(len(u.Data))+len(c.delim))
			base64.StdEncoding.Encode(line, u.Data)
		} else {
			line = make([]byte, len(u.Data), len(u.Data)+len(c.delim))
			copy(line, u.Data)
		}
		if c.alwaysDelim || !bytes.HasSuffix(line, []byte("\n")) {
			line = append(line, c.delim...)
		}
		return line
	}
	rec := catRecord{
		Stream:          c.stream,
		Shard:           shard,
		Sequence:        aws.ToString(r.SequenceNumber),
		Subsequence:     u.SubSequenceNumber,
		Aggregated:      u.Aggregated,
		Compression:     codec,
		PartitionKey:    u.PartitionKey,
		ExplicitHashKey: u.ExplicitHashKey,
		Encoding:        "utf-8",
	}
	if r.ApproximateArrivalTimestamp != nil {
		t := r.ApproximateArrivalTimestamp.UTC()
		rec.ArrivalTime = &t
	}
	if c.b64 || !utf8.Valid(u.Data) {
		rec.Data = base64.StdEncoding.EncodeToString(u.Data)
		rec.Encoding = "base64"
	} else {
		rec.Data = string(u.Data)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // data is shown as written, not made safe for embedding in HTML
	_ = enc.Encode(&rec)     // cannot fail: strings, numbers and a time
	return buf.Bytes()
}

// emit writes one shard's lines, whole, and flushes so that a follower sees them at once.
func (c *catRun) emit(lines [][]byte) error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	for _, line := range lines {
		if c.maxRecords > 0 && c.written >= c.maxRecords {
			break
		}
		if _, err := c.out.Write(line); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
		c.written++
	}
	if err := c.out.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	if c.maxRecords > 0 && c.written >= c.maxRecords {
		return errLimitReached
	}
	return nil
}

func (c *catRun) flush() error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if err := c.out.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}

// warnCorrupt tells on stderr how many records could not be decoded and were written raw.
func (c *catRun) warnCorrupt() {
	c.corruptMu.Lock()
	defer c.corruptMu.Unlock()
	var parts []string
	if c.corruptFrames > 0 {
		parts = append(parts, plural(c.corruptFrames, "record")+" with a corrupt compression frame")
	}
	if c.corruptAggs > 0 {
		parts = append(parts, plural(c.corruptAggs, "record")+" with a corrupt KPL aggregate")
	}
	if len(parts) > 0 {
		fmt.Fprintf(c.app.stderr, "warning: %s, written as received\n", strings.Join(parts, " and "))
	}
}
