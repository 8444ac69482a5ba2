package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/spf13/cobra"

	"github.com/shardline/shardline/aggregation"
	"github.com/shardline/shardline/compression"
	"github.com/shardline/shardline/producer"
)

// maxFailuresShown bounds the failed records put names one by one; the summary counts all.
const maxFailuresShown = 10

// putRefresh is how often the progress line of put is redrawn.
const putRefresh = 250 * time.Millisecond

// Input is read much faster than a stream takes it. The producer's buffer bounds, meant for
// services that smooth their own load, would let a large file queue more records than a small
// stream drains within the records' TTL, and those would expire unsent. put therefore keeps the
// records waiting in the producer to what it has been draining in a fraction of the TTL, and
// reading waits for room.
const (
	flowTTLShare   = 4 // waiting records are drained in at most a quarter of the TTL
	flowMinRecords = 1_000
	flowMaxRecords = 100_000
	flowMinBytes   = 1 << 20
	flowMaxBytes   = 64 << 20
	flowSample     = 250 * time.Millisecond
)

func (a *app) putCommand() *cobra.Command {
	var (
		aggregate   bool
		codecName   string
		keySpec     string
		b64         bool
		ttl         time.Duration
		closeWithin time.Duration
	)
	cmd := &cobra.Command{
		Use:   "put STREAM [FILE...]",
		Short: "Write lines from stdin or files to a stream, one record per line",
		Long: `Write each line of the files (or of stdin, also named -) to the stream as one record,
without its newline, through the Shardline producer: records are aggregated (KPL format)
and batched, throttled requests are retried per shard, and with --compression every
Kinesis record is compressed in Shardline's framing, which shardline cat undoes.

--partition-key chooses each record's partition key, and so its shard:
  random       a random key per record: records spread evenly over the shards (default)
  hash         the MD5 of the line in hex: equal lines go to the same shard
  fixed:KEY    KEY for every record: all records go to one shard, in order
  json:FIELD   the value of FIELD in the line, a JSON object; a dotted path such as
               json:user.id reaches into nested objects. Strings are used as they are,
               numbers and booleans as written.

On a terminal a progress line on stderr shows records and bytes written, the rate, retries
and failures; a summary follows at the end. A line that cannot be written (too large, no
such JSON field, rejected by Kinesis, not written within --record-ttl) is reported with its
file and line number, and put exits with status 1.`,
		Example: `  shardline put orders < orders.log
  shardline put orders a.log b.log --partition-key hash
  shardline put orders events.jsonl --partition-key json:customer.id --compression zstd
  shardline put orders --partition-key fixed:replay --aggregate=false < lines.txt
  shardline cat source --base64 | shardline put copy --base64`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usageErrorf("%s expects a stream name and optional files", cmd.CommandPath())
			}
			return nil
		},
		RunE: a.runE(func(cmd *cobra.Command, args []string) error {
			name, files := args[0], args[1:]
			codec, err := compression.ParseCodec(codecName)
			if err != nil {
				return usageErrorf("--compression %q: want none, gzip, zstd or snappy", codecName)
			}
			keyOf, err := parseKeySpec(keySpec)
			if err != nil {
				return err
			}
			if ttl <= 0 {
				return usageErrorf("--record-ttl must be positive, got %s", ttl)
			}
			if len(files) == 0 {
				files = []string{"-"}
			}
			for _, f := range files {
				if f == "-" {
					continue
				}
				if _, err := os.Stat(f); err != nil {
					return fmt.Errorf("input %s: %w", f, errors.Unwrap(err))
				}
			}
			kc, err := a.kinesis(cmd.Context())
			if err != nil {
				return err
			}
			// The producer would wait out the records' TTL for a shard map of a stream that does
			// not exist; checking first gives the answer at once.
			sum, err := kc.DescribeStreamSummary(cmd.Context(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
			if err != nil {
				return apiError(name, "describing stream "+name, err)
			}
			p := &putRun{
				app:       a,
				stream:    name,
				keyOf:     keyOf,
				b64:       b64,
				start:     time.Now(),
				maxRecord: producer.MaxRecordSizeOf(sum),
			}
			return p.run(cmd.Context(), kc, files, producer.Config{
				StreamName:         name,
				DisableAggregation: !aggregate,
				Compression:        codec,
				RecordTTL:          ttl,
			}, closeWithin)
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&aggregate, "aggregate", true, "pack records bound for the same shard into KPL aggregates")
	f.StringVar(&codecName, "compression", "none", "compress each Kinesis record: none, gzip, zstd or snappy")
	f.StringVarP(&keySpec, "partition-key", "k", "random", "partition key of each record: random, hash, fixed:KEY or json:FIELD")
	f.BoolVar(&b64, "base64", false, "each line is base64 and the record is its decoded bytes (binary-safe, as cat --base64 writes)")
	f.DurationVar(&ttl, "record-ttl", 30*time.Second, "give up on a record not written within this long")
	f.DurationVar(&closeWithin, "close-timeout", 30*time.Second, "after an interrupt, how long to keep sending what was read")
	return cmd
}

// keyFunc gives a line's partition key.
type keyFunc func(line []byte) (string, error)

func parseKeySpec(spec string) (keyFunc, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch {
	case spec == "random":
		return func([]byte) (string, error) {
			return fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64()), nil
		}, nil
	case spec == "hash":
		return func(line []byte) (string, error) {
			sum := md5.Sum(line)
			return hex.EncodeToString(sum[:]), nil
		}, nil
	case kind == "fixed":
		if err := aggregation.ValidatePartitionKey(arg); err != nil {
			// Kinesis counts a key's length in UTF-16 code units (see ValidatePartitionKey), so a
			// character outside the Basic Multilingual Plane counts twice.
			return nil, usageErrorf("--partition-key %q: the key must be 1 to %d UTF-16 code units long", spec, aggregation.MaxPartitionKeyLength)
		}
		return func([]byte) (string, error) { return arg, nil }, nil
	case kind == "json":
		if arg == "" || strings.HasPrefix(arg, ".") || strings.HasSuffix(arg, ".") || strings.Contains(arg, "..") {
			return nil, usageErrorf("--partition-key %q: want json:FIELD, with FIELD a name or a dotted path such as user.id", spec)
		}
		return jsonKey(strings.Split(arg, ".")), nil
	}
	return nil, usageErrorf("--partition-key %q: want random, hash, fixed:KEY or json:FIELD", spec)
}

// jsonKey returns a keyFunc reading the field at path from a line holding a JSON object.
func jsonKey(path []string) keyFunc {
	field := strings.Join(path, ".")
	return func(line []byte) (string, error) {
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return "", fmt.Errorf("not a JSON object, so no partition key field %s", field)
		}
		for i, name := range path {
			obj, ok := v.(map[string]any)
			if !ok {
				if i == 0 {
					return "", fmt.Errorf("not a JSON object, so no partition key field %s", field)
				}
				return "", fmt.Errorf("partition key field %s: %s is not an object", field, strings.Join(path[:i], "."))
			}
			if v, ok = obj[name]; !ok {
				return "", fmt.Errorf("no partition key field %s", field)
			}
		}
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return x.String(), nil
		case bool:
			return fmt.Sprint(x), nil
		case nil:
			return "", fmt.Errorf("partition key field %s is null", field)
		}
		return "", fmt.Errorf("partition key field %s is an object or array, not a string or number", field)
	}
}

// putRun is one run of put: its counters, its failures and its progress display.
type putRun struct {
	app    *app
	stream string
	keyOf  keyFunc
	b64    bool
	start  time.Time
	// maxRecord is the stream's maximum record size (data plus partition key), from
	// DescribeStreamSummary: 1 MiB unless the stream's was raised, up to 10 MiB.
	maxRecord int

	// Every line read ends up counted in one of sent, failed and abandoned.
	read      atomic.Int64 // lines read
	sent      atomic.Int64 // lines written to the stream
	failed    atomic.Int64 // lines that could not be written: too large, rejected, expired
	abandoned atomic.Int64 // lines read but not sent because put was told to stop
	readBytes atomic.Int64

	// prod and flow are set before the progress line starts and not changed after.
	prod *producer.Producer
	flow *flow
	// samples is used by render only, which the live line serialises.
	samples []rateSample

	// mu guards shown, live and closing, and orders the lines printed on stderr. It is taken
	// before the live line's own lock and never inside render, which runs under that lock, so
	// the two cannot deadlock.
	mu    sync.Mutex
	shown int
	live  *liveLine
	// closing silences the producer's log while it shuts down, when calls it cancels itself
	// are reported as failures that mean nothing to the user.
	closing bool
}

type rateSample struct {
	at time.Time
	n  int64
}

// lineRef locates a record's line for messages about it.
type lineRef struct {
	source string
	line   int64
	size   int64 // data plus partition key, once handed to the producer
}

func (r lineRef) String() string {
	if r.source == "-" {
		return fmt.Sprintf("line %d of stdin", r.line)
	}
	return fmt.Sprintf("line %d of %s", r.line, r.source)
}

func (p *putRun) run(ctx context.Context, kc *kinesis.Client, files []string, cfg producer.Config, closeWithin time.Duration) error {
	a := p.app
	cfg.Logger = slog.New(slog.NewTextHandler(writerFunc(p.printLog), &slog.HandlerOptions{Level: slog.LevelWarn}))
	prod, err := producer.New(kc, cfg)
	if err != nil {
		return fmt.Errorf("starting the producer: %w", err)
	}
	p.prod = prod
	p.flow = newFlow(cfg.RecordTTL)
	stopFlow := p.flow.start()
	defer stopFlow()
	if a.terminal {
		p.mu.Lock()
		p.live = startLiveLine(a.stderr, putRefresh, p.render)
		p.mu.Unlock()
	}

	// Reading stops on an interrupt, or when the endpoint is found unreachable: then nothing
	// read can be sent, and what waits is abandoned at once.
	readCtx, stopReading := context.WithCancelCause(ctx)
	defer stopReading(nil)
	unreachable := make(chan struct{})
	var unreachableErr error
	if a.conn != nil {
		a.conn.watchDown(func(err error) {
			unreachableErr = err
			close(unreachable)
			stopReading(err)
		})
		defer a.conn.watchDown(nil)
	}

	readErr := p.readAll(readCtx, prod, files)

	// Close sends what was accepted, for up to the records' TTL. After an interrupt, before or
	// during Close, it gets --close-timeout more, since the lines are read already; a second
	// interrupt, or an unreachable endpoint, abandons what is left at once.
	closeCtx, cancelClose := context.WithCancel(context.WithoutCancel(ctx))
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		limit := time.NewTimer(cfg.RecordTTL + 5*time.Second)
		defer limit.Stop()
		interrupted := ctx.Done()
		var insisted <-chan struct{}
		if a.hard != nil {
			insisted = a.hard.Done()
		}
		for {
			select {
			case <-closeCtx.Done():
				return
			case <-interrupted:
				interrupted = nil
				limit.Reset(closeWithin)
				p.mu.Lock()
				p.printLocked(fmt.Sprintf("interrupted: sending the %s already read for at most %s; interrupt again to quit at once",
					plural(prod.Stats().UserRecordsPending, "record"), closeWithin))
				p.mu.Unlock()
			case <-limit.C:
				cancelClose()
			case <-insisted:
				cancelClose()
			case <-unreachable:
				cancelClose()
			}
		}
	}()
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	closeErr := prod.Close(closeCtx)
	cancelClose()
	<-watched

	p.mu.Lock()
	live := p.live
	p.live = nil
	p.mu.Unlock()
	if live != nil {
		live.Stop()
	}
	elapsed := time.Since(p.start)
	read, sent, failed, abandoned := p.read.Load(), p.sent.Load(), p.failed.Load(), p.abandoned.Load()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(sent) / elapsed.Seconds()
	}
	// Every line read is in exactly one of sent, failed and abandoned, whichever way put ends.
	fmt.Fprintf(a.stderr, "put %s of %s (%s) to stream %s in %s (%s records/s): %s, %s failed, %s abandoned\n",
		groupDigits(sent), plural(read, "record"), formatBytes(prod.Stats().UserRecordsDataPut), p.stream,
		roundDuration(elapsed), groupDigits(int64(rate)), pluralForm(prod.Stats().Retries, "retry", "retries"),
		groupDigits(failed), groupDigits(abandoned))

	select {
	case <-unreachable:
		return unreachableErr
	default:
	}
	switch {
	case readErr != nil && ctx.Err() == nil:
		return readErr
	case ctx.Err() != nil:
		return ctx.Err()
	case closeErr != nil:
		return fmt.Errorf("stopping the producer: %w", closeErr)
	case failed > 0:
		return fmt.Errorf("%s of %s failed", groupDigits(failed), plural(read, "record"))
	}
	return nil
}

// readAll puts every line of the files and returns the first reading error.
func (p *putRun) readAll(ctx context.Context, prod *producer.Producer, files []string) error {
	for _, name := range files {
		var r io.Reader
		if name == "-" {
			r = &stoppableReader{ctx: ctx, r: p.app.stdin}
		} else {
			f, err := os.Open(name)
			if err != nil {
				return fmt.Errorf("input %s: %w", name, errors.Unwrap(err))
			}
			r = f
			defer f.Close()
		}
		if err := p.readLines(ctx, prod, name, r); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// readLines puts each line of r. A line longer than a record can hold is skipped without being
// held in memory whole, and counted as failed.
func (p *putRun) readLines(ctx context.Context, prod *producer.Producer, source string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var lineNo int64
	// Base64 input is a third longer than the record it decodes to.
	limit := p.maxRecord
	if p.b64 {
		limit = base64.StdEncoding.EncodedLen(p.maxRecord)
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		line, size, err := readLine(br, limit)
		if err == io.EOF && size == 0 {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading %s: %w", displaySource(source), err)
		}
		lineNo++
		p.read.Add(1)
		p.readBytes.Add(int64(size))
		ref := &lineRef{source: source, line: lineNo}
		if line == nil {
			p.fail(ref, fmt.Errorf("line of %s bytes is longer than a record can hold (%s bytes with its partition key)",
				groupDigits(int64(size)), groupDigits(int64(p.maxRecord))))
		} else if perr := p.put(ctx, prod, ref, line); perr != nil {
			if ctx.Err() != nil {
				p.abandoned.Add(1) // read, but put was stopped before the producer took it
				return ctx.Err()
			}
			p.fail(ref, perr)
		}
		if err == io.EOF {
			return nil
		}
	}
}

func displaySource(s string) string {
	if s == "-" {
		return "stdin"
	}
	return s
}

// readLine reads one line without its newline. When the line exceeds limit bytes it is read
// to its end and discarded: line is nil and size tells how long it was. At the end of the input
// err is io.EOF, with the last line if it had no newline.
func readLine(br *bufio.Reader, limit int) (line []byte, size int, err error) {
	var buf []byte
	over := false
	for {
		chunk, err := br.ReadSlice('\n')
		n := len(chunk)
		if err == nil {
			n-- // the newline
		}
		size += n
		if !over {
			if size > limit {
				over, buf = true, nil
			} else {
				buf = append(buf, chunk[:n]...)
			}
		}
		switch err {
		case bufio.ErrBufferFull:
			continue
		case nil:
			if over {
				return nil, size, nil
			}
			if buf == nil {
				buf = []byte{}
			}
			return buf, size, nil
		case io.EOF:
			if over {
				return nil, size, io.EOF
			}
			if size == 0 {
				return nil, 0, io.EOF
			}
			return buf, size, io.EOF
		default:
			return nil, size, err
		}
	}
}

// put hands one line to the producer; an error means it was not accepted.
func (p *putRun) put(ctx context.Context, prod *producer.Producer, ref *lineRef, line []byte) error {
	data := line
	if p.b64 {
		d, err := base64.StdEncoding.DecodeString(string(line))
		if err != nil {
			return fmt.Errorf("not valid base64: %v", err)
		}
		data = d
	}
	key, err := p.keyOf(data)
	if err != nil {
		return err
	}
	size := int64(len(key) + len(data))
	if err := p.flow.wait(ctx, size); err != nil {
		return err
	}
	ref.size = size
	if err := prod.PutAsync(ctx, &producer.Record{PartitionKey: key, Data: data, Meta: ref}, p.done); err != nil {
		p.flow.refused(size)
		return err
	}
	return nil
}

// done receives each accepted record's result on a producer goroutine.
func (p *putRun) done(rec *producer.Record, res producer.Result) {
	ref := rec.Meta.(*lineRef)
	p.flow.finished(ref.size)
	switch {
	case res.Err == nil:
		p.sent.Add(1)
	case errors.Is(res.Err, producer.ErrClosed):
		// Close gave up on it: a second interrupt or an unreachable endpoint, both reported
		// once for all such records.
		p.abandoned.Add(1)
	default:
		p.fail(ref, res.Err)
	}
}

// fail counts a failed line and names the first few on stderr.
func (p *putRun) fail(ref *lineRef, err error) {
	p.failed.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.shown++
	var msg string
	switch {
	case p.shown <= maxFailuresShown:
		msg = fmt.Sprintf("%s: %s", ref, cleanError(err))
	case p.shown == maxFailuresShown+1:
		msg = "further failures are counted but not shown"
	default:
		return
	}
	p.printLocked(msg)
}

func (p *putRun) printLocked(msg string) {
	if p.live != nil {
		p.live.Println(msg)
		return
	}
	fmt.Fprintln(p.app.stderr, msg)
}

// printLog passes the producer's warnings (such as a failing shard map refresh) to stderr
// without breaking the progress line.
func (p *putRun) printLog(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return len(b), nil
	}
	p.printLocked(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// cleanError drops the package prefixes of the producer's errors, which mean nothing to a
// reader of the command's output.
func cleanError(err error) string {
	s := err.Error()
	for _, prefix := range []string{"producer: ", "aggregation: "} {
		s = strings.TrimPrefix(s, prefix)
	}
	return s
}

// render draws the progress line: what was written so far, the recent rate, retries and
// failures.
func (p *putRun) render(time.Duration) string {
	st := p.prod.Stats()
	now := time.Now()
	// The rate is taken over the last two seconds so that it follows changes quickly without
	// jumping at every redraw.
	p.samples = append(p.samples, rateSample{at: now, n: st.UserRecordsPut})
	for len(p.samples) > 2 && now.Sub(p.samples[1].at) >= 2*time.Second {
		p.samples = p.samples[1:]
	}
	rate := 0.0
	if first := p.samples[0]; now.Sub(first.at) > 0 {
		rate = float64(st.UserRecordsPut-first.n) / now.Sub(first.at).Seconds()
	}
	return fmt.Sprintf("%s records  %s  %s records/s  %s  %s failed  %s pending",
		groupDigits(st.UserRecordsPut), formatBytes(st.UserRecordsDataPut), groupDigits(int64(rate)),
		pluralForm(st.Retries, "retry", "retries"), groupDigits(p.failed.Load()), groupDigits(st.UserRecordsPending))
}

// writerFunc adapts a function to io.Writer.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// flow holds reading back while the producer has more records waiting than it drains in
// 1/flowTTLShare of the record TTL at the rate it has been draining them.
type flow struct {
	ttl time.Duration

	pending      atomic.Int64 // records handed to the producer and without a result
	pendingBytes atomic.Int64
	drained      atomic.Int64 // records with a result
	drainedBytes atomic.Int64
	maxRecords   atomic.Int64
	maxBytes     atomic.Int64

	room chan struct{} // signalled when a record finishes
}

func newFlow(ttl time.Duration) *flow {
	f := &flow{ttl: ttl, room: make(chan struct{}, 1)}
	f.maxRecords.Store(flowMinRecords)
	f.maxBytes.Store(flowMinBytes)
	return f
}

// start measures the drain rate until the returned function is called.
func (f *flow) start() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(flowSample)
		defer t.Stop()
		var rate, byteRate float64
		last, lastBytes, lastAt := int64(0), int64(0), time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				n, b := f.drained.Load(), f.drainedBytes.Load()
				dt := now.Sub(lastAt).Seconds()
				// A moving average: quick to follow the stream, steady across one slow sample.
				rate = 0.7*rate + 0.3*float64(n-last)/dt
				byteRate = 0.7*byteRate + 0.3*float64(b-lastBytes)/dt
				last, lastBytes, lastAt = n, b, now
				window := f.ttl.Seconds() / flowTTLShare
				f.maxRecords.Store(clamp(int64(rate*window), flowMinRecords, flowMaxRecords))
				f.maxBytes.Store(clamp(int64(byteRate*window), flowMinBytes, flowMaxBytes))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func clamp(v, lo, hi int64) int64 {
	return max(lo, min(v, hi))
}

// wait blocks until a record of size bytes may join the producer, and counts it as pending.
func (f *flow) wait(ctx context.Context, size int64) error {
	for f.pending.Load() >= f.maxRecords.Load() || (f.pendingBytes.Load() > 0 && f.pendingBytes.Load()+size > f.maxBytes.Load()) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.room:
		case <-time.After(flowSample):
			// The limits may have grown without a record finishing.
		}
	}
	f.pending.Add(1)
	f.pendingBytes.Add(size)
	return nil
}

// finished records that a pending record has its result.
func (f *flow) finished(size int64) {
	f.drained.Add(1)
	f.drainedBytes.Add(size)
	f.refused(size)
}

// refused takes back a record counted as pending that the producer did not accept.
func (f *flow) refused(size int64) {
	f.pending.Add(-1)
	f.pendingBytes.Add(-size)
	select {
	case f.room <- struct{}{}:
	default:
	}
}

// stoppableReader reads r until ctx ends, even while a read is blocked: a terminal or a pipe
// from a quiet source can leave stdin without input indefinitely, and an interrupt must still
// stop put. A read blocked at that moment is left to finish on its own; its bytes are dropped,
// since reading has stopped.
type stoppableReader struct {
	ctx     context.Context
	r       io.Reader
	results chan readResult
	buf     []byte
}

type readResult struct {
	n   int
	err error
}

func (s *stoppableReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	if s.results == nil {
		s.results = make(chan readResult, 1)
	}
	// The read fills a buffer of its own, so that one left running after ctx ends never
	// writes into the caller's.
	if cap(s.buf) < len(p) {
		s.buf = make([]byte, len(p))
	}
	buf := s.buf[:len(p)]
	go func() {
		n, err := s.r.Read(buf)
		s.results <- readResult{n, err}
	}()
	select {
	case res := <-s.results:
		return copy(p, buf[:res.n]), res.err
	case <-s.ctx.Done():
		s.buf = nil // still being written to
		return 0, s.ctx.Err()
	}
}
