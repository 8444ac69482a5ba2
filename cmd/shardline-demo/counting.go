package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/shardline/shardline/consumer"
)

// This file is the application at the end of the pipeline: the record processor that both
// consumer workers run. It parses each record (the agent's JSON of one access log line) and
// counts requests per status code and per minute of log time, as a dashboard would.
//
// To prove the pipeline it also remembers every request id it saw. Delivery is at least once,
// so a request may be processed twice (after a worker dies, say); the tables count each
// request once, and the duplicates are counted on their own.

// tally is requests per status code and per minute.
type tally struct {
	byStatus map[int]int64
	byMinute map[time.Time]*[statusClasses]int64 // per minute, per status class (2xx to 5xx)
}

// statusClasses are the columns of the per-minute table: 2xx, 3xx, 4xx and 5xx.
const statusClasses = 4

func newTally() *tally {
	return &tally{byStatus: map[int]int64{}, byMinute: map[time.Time]*[statusClasses]int64{}}
}

func (t *tally) add(status int, at time.Time) {
	t.byStatus[status]++
	m := at.UTC().Truncate(time.Minute)
	row := t.byMinute[m]
	if row == nil {
		row = new([statusClasses]int64)
		t.byMinute[m] = row
	}
	if c := status/100 - 2; c >= 0 && c < statusClasses {
		row[c]++
	}
}

// statuses returns the status codes counted, in order.
func (t *tally) statuses() []int {
	var out []int
	for s := range t.byStatus {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// minutes returns the minutes counted, in order.
func (t *tally) minutes() []time.Time {
	var out []time.Time
	for m := range t.byMinute {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// equal reports whether two tallies have the same counts.
func (t *tally) equal(o *tally) bool {
	if len(t.byStatus) != len(o.byStatus) || len(t.byMinute) != len(o.byMinute) {
		return false
	}
	for s, n := range t.byStatus {
		if o.byStatus[s] != n {
			return false
		}
	}
	for m, row := range t.byMinute {
		if orow := o.byMinute[m]; orow == nil || *orow != *row {
			return false
		}
	}
	return true
}

// accessRecord is the part of the agent's LOGTOJSON output the counter reads. The agent writes
// every field as a JSON string, or null for Apache's "-".
type accessRecord struct {
	Datetime string `json:"datetime"`
	Request  string `json:"request"`
	Response string `json:"response"`
}

// request is what the counter takes from one record.
type request struct {
	id     uint64
	status int
	at     time.Time
}

var errMalformed = errors.New("not an access log record of the demo")

// parseRecord reads one record as the agent wrote it: the JSON object of one log line.
func parseRecord(data []byte) (request, error) {
	var rec accessRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return request{}, err
	}
	at, err := time.Parse(apacheTime, rec.Datetime)
	if err != nil {
		return request{}, err
	}
	status, err := strconv.Atoi(rec.Response)
	if err != nil {
		return request{}, errMalformed
	}
	id, ok := requestID(rec.Request)
	if !ok {
		return request{}, errMalformed
	}
	return request{id: id, status: status, at: at}, nil
}

// requestID finds the rid query parameter in a request line such as
// "GET /search?q=tent&rid=4711 HTTP/1.1".
func requestID(line string) (uint64, bool) {
	b := []byte(line)
	i := bytes.Index(b, []byte("rid="))
	if i < 1 || (b[i-1] != '?' && b[i-1] != '&') {
		return 0, false
	}
	b = b[i+len("rid="):]
	end := bytes.IndexAny(b, "& ")
	if end < 0 {
		end = len(b)
	}
	id, err := strconv.ParseUint(string(b[:end]), 10, 64)
	return id, err == nil && id > 0
}

// counter counts what the processors saw. Processors of every shard and both workers call it
// at once, so it locks; at a few thousand records a second that costs nothing.
type counter struct {
	mu        sync.Mutex
	seen      map[uint64]uint32 // request id -> times processed
	processed int64             // records processed, duplicates included
	malformed int64             // records that are not access log records of this run
	counts    *tally            // each request once
}

func newCounter() *counter {
	return &counter{seen: map[uint64]uint32{}, counts: newTally()}
}

// add counts one record.
func (c *counter) add(data []byte) {
	req, err := parseRecord(data)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.processed++
	if err != nil {
		c.malformed++
		return
	}
	c.seen[req.id]++
	if c.seen[req.id] == 1 {
		c.counts.add(req.status, req.at)
	}
}

// processor returns the workers' record processor. RecordFunc calls the function for each
// record of a batch and checkpoints after the batch, at the end of a shard and when the
// worker shuts down, so a shard that changes hands resumes after the last batch processed.
// A record that cannot be parsed is counted and skipped (returning an error would deliver it
// again and again).
func (c *counter) processor() consumer.ProcessorFactory {
	return consumer.RecordFunc(func(_ context.Context, r consumer.Record) error {
		c.add(r.Data)
		return nil
	})
}

// snapshot is the counter's state at one moment.
type snapshot struct {
	processed  int64 // records processed, duplicates included
	unique     int64 // distinct requests processed
	duplicates int64 // processed - unique - malformed: records processed more than once
	malformed  int64
}

func (c *counter) snapshot() snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := snapshot{processed: c.processed, unique: int64(len(c.seen)), malformed: c.malformed}
	s.duplicates = s.processed - s.unique - s.malformed
	return s
}

// check compares what was processed with what was written (ids 1..lines): the requests never
// processed, a few of their ids for the report, and ids processed that were never written.
func (c *counter) check(lines uint64) (lost int64, examples []uint64, unknown int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := uint64(1); id <= lines; id++ {
		if c.seen[id] == 0 {
			lost++
			if len(examples) < 5 {
				examples = append(examples, id)
			}
		}
	}
	for id := range c.seen {
		if id > lines {
			unknown++
		}
	}
	return lost, examples, unknown
}
