// Command shardline-demo runs Shardline end to end against the local emulators, the way a
// small production setup uses it, and checks that nothing is lost on the way:
//
//	access.log ──▶ shardline-agent ──▶ Kinesis stream ──▶ two consumer workers ──▶ counts
//	(a web server,   (its own process,    (4 shards in       (one process, leases
//	 rotating)        LOGTOJSON + KPL      shardline          and checkpoints in a
//	                  aggregation)         emulator, split    dynalite table)
//	                                       to 5)
//
// While the log is written it is rotated three times (rename-and-create twice, copytruncate
// once), one shard is split and one worker is stopped. At the end the demo compares the
// request ids written with those processed and prints lines written, records delivered,
// records processed, lost and duplicates, with the counts per status code and per minute.
// It exits 1 if any line was lost.
//
// The stream lives in `shardline emulator`, which the demo builds, starts and stops: unlike
// kinesis-mock it enforces the service's per-shard write and read rates, so the producer's
// rate limit and the consumers' read backoff meet real throttling. -kinesis kinesis-mock runs
// the same timeline on the kinesis-mock that SHARDLINE_KINESIS_ENDPOINT names instead.
//
// Run it with make demo, which starts the other emulators, sets SHARDLINE_DYNAMODB_ENDPOINT
// (and SHARDLINE_KINESIS_ENDPOINT, for kinesis-mock), runs this program and stops the
// emulators again.
//
// The main timeline is in this file; logs.go writes and rotates the access log, agent.go runs
// the agent, counting.go is the consumers' record processor, kinesis.go the direct AWS calls
// and report.go what is printed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardline/shardline/consumer"
	"github.com/shardline/shardline/internal/version"
)

// options are the command line's settings. The defaults keep make demo well under two minutes
// on a two-core machine while writing enough to exercise every step.
type options struct {
	duration time.Duration // how long the access log is written
	rate     float64       // average lines per second
	window   time.Duration // log time the run covers
	stop     string        // how the second worker is stopped: kill or graceful
	agentBin string        // a prebuilt shardline-agent, instead of building one
	stall    time.Duration // after writing, give up when nothing new was processed for this long
	keep     bool          // keep the working directory (logs, agent.json, the agent's log)
	kinesis  string        // the Kinesis backend: kinesisEmulator or kinesisKinesisMock
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "how long the access log is written")
	flag.Float64Var(&o.rate, "rate", 2000, "average access log lines written per second")
	flag.DurationVar(&o.window, "log-window", 5*time.Minute, "the span of log time the lines cover (log time runs faster than the clock)")
	flag.StringVar(&o.stop, "stop", "kill", "how one worker is stopped halfway: kill (as a crash: its leases expire and move) or graceful (it checkpoints and releases them)")
	flag.StringVar(&o.agentBin, "agent", "", "shardline-agent binary to run (default: build cmd/shardline-agent)")
	flag.DurationVar(&o.stall, "stall-timeout", 20*time.Second, "after writing, give up (and report what was lost) when nothing new was processed for this long")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory: the logs, agent.json and the agent's and workers' logs")
	flag.StringVar(&o.kinesis, "kinesis", kinesisEmulator, "the Kinesis endpoint: emulator (shardline emulator, with the service's limits, started by the demo) or kinesis-mock (SHARDLINE_KINESIS_ENDPOINT)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.Line("shardline-demo"))
		return
	}
	if o.stop != "kill" && o.stop != "graceful" {
		fmt.Fprintln(os.Stderr, "shardline-demo: -stop must be kill or graceful")
		os.Exit(2)
	}
	if o.duration < 5*time.Second || o.rate <= 0 {
		fmt.Fprintln(os.Stderr, "shardline-demo: -duration must be at least 5s and -rate positive")
		os.Exit(2)
	}
	if o.kinesis != kinesisEmulator && o.kinesis != kinesisKinesisMock {
		fmt.Fprintln(os.Stderr, "shardline-demo: -kinesis must be emulator or kinesis-mock")
		os.Exit(2)
	}
	var kinesisEndpoint string
	if o.kinesis == kinesisKinesisMock {
		kinesisEndpoint = os.Getenv("SHARDLINE_KINESIS_ENDPOINT")
	}
	dynamoEndpoint := os.Getenv("SHARDLINE_DYNAMODB_ENDPOINT")
	if dynamoEndpoint == "" || (o.kinesis == kinesisKinesisMock && kinesisEndpoint == "") {
		fmt.Fprintln(os.Stderr, "shardline-demo: SHARDLINE_DYNAMODB_ENDPOINT (and, with -kinesis kinesis-mock, SHARDLINE_KINESIS_ENDPOINT) is not set.\n"+
			"Run make demo: it starts the local emulators, sets both, and runs this program.")
		os.Exit(2)
	}

	// Ctrl-C stops the demo cleanly: the agent, the workers, the stream and the table.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	d := &demo{opts: o, out: newConsole(os.Stdout), ddb: dynamoClient(dynamoEndpoint), kinesisEndpoint: kinesisEndpoint, counter: newCounter()}
	code := d.run(ctx)
	os.Exit(code)
}

// demo is one run: what it created, so that it can be removed at the end.
type demo struct {
	opts            options
	out             *console
	kc              *kinesis.Client
	ddb             *dynamodb.Client
	kinesisEndpoint string

	dir     string // working directory: logs/, the agent's state and configuration, logs of the run
	stream  string
	app     string // the consumer application, and its lease table
	counter *counter
	agent   *agentProcess
	workers []*worker
	stopped string // the worker stopped halfway, and how
}

// worker is one consumer worker running in this process.
type worker struct {
	w    *consumer.Worker
	stop context.CancelFunc
	done chan error
}

// run runs the demo and returns the exit code. Everything it starts is stopped and everything
// it creates is removed before it returns, whatever happened.
func (d *demo) run(ctx context.Context) int {
	start := time.Now()
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	fail := func(err error) int {
		d.out.done()
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "shardline-demo: interrupted; cleaning up")
			return 130
		}
		fmt.Fprintf(os.Stderr, "shardline-demo: %v\n", err)
		d.printLogTails()
		return 1
	}

	var err error
	d.dir, err = os.MkdirTemp("", "shardline-demo-")
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, func() {
		if d.opts.keep {
			fmt.Printf("kept the working directory %s\n", d.dir)
			return
		}
		_ = os.RemoveAll(d.dir)
	})
	logDir := filepath.Join(d.dir, "logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		return fail(err)
	}

	// Build the agent (and the emulator's command) while the stream and the workers start: on
	// a cold build cache this is the slowest step. The emulator is needed first, so with it
	// the build is waited for at once.
	built := make(chan buildResult, 1)
	go func() { built <- d.build(ctx) }()
	waitBuilt := sync.OnceValue(func() buildResult { return <-built })
	backend := "kinesis-mock"
	if d.opts.kinesis == kinesisEmulator {
		b := waitBuilt()
		if b.err != nil {
			return fail(b.err)
		}
		em, err := startEmulator(b.shardline, filepath.Join(d.dir, "emulator.log"), agentEnv(d.dir))
		if err != nil {
			return fail(err)
		}
		cleanups = append(cleanups, func() {
			if err := em.stop(15 * time.Second); err != nil {
				fmt.Fprintf(os.Stderr, "shardline-demo: %v\n", err)
			}
		})
		d.kinesisEndpoint = em.url
		backend = "shardline emulator"
		d.out.event("started shardline emulator (pid %d) at %s, with the service's per-shard limits", em.cmd.Process.Pid, em.url)
	}
	d.kc = kinesisClient(d.kinesisEndpoint)

	suffix := randomHex(4)
	d.stream = "shardline-demo-" + suffix
	d.app = "shardline-demo-" + suffix
	if err := createStream(ctx, d.kc, d.stream, 4); err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, func() {
		if err := deleteStream(d.kc, d.stream); err != nil {
			fmt.Fprintf(os.Stderr, "shardline-demo: deleting stream %s: %v\n", d.stream, err)
		}
	})
	d.out.event("created stream %s with 4 shards in %s", d.stream, backend)

	cleanups = append(cleanups, func() {
		if err := deleteTable(d.ddb, d.app); err != nil {
			fmt.Fprintf(os.Stderr, "shardline-demo: deleting lease table %s: %v\n", d.app, err)
		}
	})
	workerLog, err := os.Create(filepath.Join(d.dir, "workers.log"))
	if err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, func() { workerLog.Close() })
	logger := slog.New(slog.NewTextHandler(workerLog, nil))
	for _, id := range []string{"worker-1", "worker-2"} {
		if err := d.startWorker(id, logger); err != nil {
			return fail(err)
		}
	}
	cleanups = append(cleanups, d.stopWorkers)
	d.out.event("started worker-1 and worker-2 (application %s, leases in dynalite table %s)", d.app, d.app)

	b := waitBuilt()
	if b.err != nil {
		return fail(b.err)
	}
	writer, err := newLogWriter(logPlan{
		dir:      logDir,
		duration: d.opts.duration,
		rate:     d.opts.rate,
		window:   d.opts.window,
		start:    time.Now().UTC().Truncate(time.Minute).Add(-d.opts.window),
		rotations: []rotation{
			{at: 0.25},
			{at: 0.5, copy: true},
			{at: 0.75},
		},
		seed: mathrand.Uint64(),
	}, func(s string) { d.out.event("%s", s) })
	if err != nil {
		return fail(err)
	}
	if err := d.startAgent(b.agent, logDir); err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, func() {
		if !d.agent.stopping.Load() { // stopped here only when the run failed
			_ = d.agent.stop(15 * time.Second)
		}
	})

	// The run proper: write the log while the monitor loop reshapes the system underneath.
	writeCtx, stopWriting := context.WithCancel(ctx)
	writeDone := make(chan error, 1)
	writerExited := make(chan struct{})
	go func() {
		defer close(writerExited)
		writeDone <- writer.run(writeCtx)
	}()
	cleanups = append(cleanups, func() { stopWriting(); <-writerExited })
	d.out.event("writing access.log: %.0f lines/s on average for %v, log time covering %v", d.opts.rate, d.opts.duration, d.opts.window)

	if err := d.monitor(ctx, writer, writeDone); err != nil {
		return fail(err)
	}

	// Everything written was processed, or the deadline passed: stop the agent (it logs its
	// final counts) and the workers (they checkpoint and release their leases).
	d.out.done()
	agentErr := d.agent.stop(15 * time.Second)
	final, isFinal := d.agent.stats()
	d.stopWorkers()

	r := result{
		took:        time.Since(start),
		written:     writer.out,
		delivered:   final.acked,
		kinesisRecs: final.kinesisRecords,
		agentFinal:  isFinal,
		parseErrors: final.parseErrors,
		counts:      d.counter.snapshot(),
		stopped:     d.stopped,
		tables:      d.counter.counts,
	}
	r.lost, r.lostIDs, r.unknown = d.counter.check(writer.out.lines)
	for _, w := range d.workers {
		r.byWorker = append(r.byWorker, workerCount{w.w.WorkerID(), w.w.Stats().RecordsProcessed})
	}
	ok := printReport(os.Stdout, r)
	if agentErr != nil {
		fmt.Fprintf(os.Stderr, "shardline-demo: %v\n", agentErr)
		ok = false
	}
	if !ok {
		d.printLogTails()
		return 1
	}
	return 0
}

// buildResult is what the demo runs: the agent's binary and, with -kinesis emulator, the
// shardline command's.
type buildResult struct {
	agent     string
	shardline string
	err       error
}

// build builds the binaries the run needs that were not given on the command line.
func (d *demo) build(ctx context.Context) buildResult {
	r := buildResult{agent: d.opts.agentBin}
	var pkgs []string
	if r.agent == "" {
		pkgs = append(pkgs, agentPackage)
	}
	if d.opts.kinesis == kinesisEmulator {
		pkgs = append(pkgs, shardlinePackage)
	}
	bins, err := buildCommands(ctx, d.dir, pkgs...)
	if err != nil {
		r.err = err
		return r
	}
	for i, pkg := range pkgs {
		switch pkg {
		case agentPackage:
			r.agent = bins[i]
		case shardlinePackage:
			r.shardline = bins[i]
		}
	}
	return r
}

// startWorker starts one consumer worker. The settings that differ from the defaults make
// the demo quick; a production fleet keeps the defaults (a 10 s failover time, reads every
// second when a shard is idle).
func (d *demo) startWorker(id string, logger *slog.Logger) error {
	w, err := consumer.New(consumer.Config{
		StreamName:      d.stream,
		ApplicationName: d.app, // also the lease table's name, as in the KCL
		WorkerID:        id,
		Processor:       d.counter.processor(),
		Kinesis:         d.kc,
		DynamoDB:        d.ddb,
		// The stream is new: read it from its first record.
		InitialPosition: consumer.TrimHorizon,
		// A stopped worker's leases move after 3 s instead of 10.
		FailoverTime: 3 * time.Second,
		// An idle shard is polled four times a second, so records show up quickly.
		IdleTimeBetweenReads: 250 * time.Millisecond,
		HandoffTimeout:       5 * time.Second,
		ShutdownTimeout:      15 * time.Second,
		Logger:               logger,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	wk := &worker{w: w, stop: cancel, done: make(chan error, 1)}
	go func() { wk.done <- w.Run(ctx) }()
	d.workers = append(d.workers, wk)
	return nil
}

// stopWorkers shuts the workers down gracefully (each processor checkpoints, leases are
// released) and waits for them. Workers already stopped return at once.
func (d *demo) stopWorkers() {
	for _, w := range d.workers {
		w.stop()
	}
	for _, w := range d.workers {
		select {
		case err := <-w.done:
			if err != nil && !errors.Is(err, consumer.ErrKilled) {
				fmt.Fprintf(os.Stderr, "shardline-demo: %s: %v\n", w.w.WorkerID(), err)
			}
			w.done <- err // for a later call
		case <-time.After(20 * time.Second):
			fmt.Fprintf(os.Stderr, "shardline-demo: %s did not stop within 20 s\n", w.w.WorkerID())
		}
	}
}

// startAgent writes agent.json and starts the agent on it.
func (d *demo) startAgent(bin, logDir string) error {
	conf, err := agentConfig(d.kinesisEndpoint, region, filepath.Join(d.dir, "agent-state"), logDir, d.stream)
	if err != nil {
		return err
	}
	confPath := filepath.Join(d.dir, "agent.json")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return err
	}
	d.agent, err = startAgent(bin, confPath, filepath.Join(d.dir, "agent.log"), agentEnv(d.dir))
	if err != nil {
		return fmt.Errorf("starting the agent: %w", err)
	}
	d.out.event("started shardline-agent (pid %d): LOGTOJSON COMBINEDAPACHELOG, tailing logs/access.log*", d.agent.cmd.Process.Pid)
	return nil
}

// monitor runs until every line written was processed: it shows progress, splits a shard and
// stops a worker on schedule, and reports lease moves. After writing it waits as long as
// lines keep being processed, and gives up when none were for the stall timeout, or after
// maxDrain in all: the report then says what was lost. It returns an error when something
// stopped that should not have.
func (d *demo) monitor(ctx context.Context, writer *logWriter, writeDone <-chan error) error {
	const (
		splitAt  = 0.35 // fractions of the writing time
		stopAt   = 0.55
		maxDrain = 2 * time.Minute
	)
	writeStart := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	split, stopped, writing := false, false, true
	var drainStart, lastGain time.Time
	var lastUnique int64
	lastLeases := ""
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-writeDone:
			if err != nil {
				return fmt.Errorf("writing the log: %w", err)
			}
			writing = false
			drainStart, lastGain = time.Now(), time.Now()
			d.out.event("finished writing: %s lines in %d files; waiting until every line is processed",
				num(int64(writer.out.lines)), len(writer.out.files))
		case <-tick.C:
		}
		x := float64(time.Since(writeStart)) / float64(d.opts.duration)
		if !split && x >= splitAt {
			split = true
			parent, children, err := splitShard(ctx, d.kc, d.stream)
			if err != nil {
				return err
			}
			d.out.event("split %s at the middle of its hash key range into %s (the consumers finish the parent before its children)",
				parent, strings.Join(children, " and "))
		}
		if !stopped && x >= stopAt {
			stopped = true
			d.stopWorker(d.workers[1])
		}
		if d.agent.exited() {
			return fmt.Errorf("the agent exited unexpectedly: %v", d.agent.err)
		}
		if l := d.leases(); l != lastLeases {
			lastLeases = l
			d.out.event("leases: %s", l)
		}

		written := writer.count.Load()
		ap, _ := d.agent.stats()
		s := d.counter.snapshot()
		phase := "writing"
		if !writing {
			phase = "draining"
		}
		d.out.progress(progressText(phase, written, ap.acked, s))
		if !writing {
			if uint64(s.unique) >= writer.out.lines {
				d.out.event("every line written was processed")
				return nil
			}
			if s.unique > lastUnique {
				lastUnique, lastGain = s.unique, time.Now()
			}
			if time.Since(lastGain) > d.opts.stall || time.Since(drainStart) > maxDrain {
				d.out.event("gave up waiting: nothing new processed for %v", time.Since(lastGain).Round(time.Second))
				return nil // the report says what was lost
			}
		}
	}
}

// stopWorker stops a worker in the middle of the run. Kill is a crash: nothing is
// checkpointed or released, so the other worker takes the leases once they expire
// (FailoverTime) and processes again what came after their last checkpoint. A graceful stop
// checkpoints and releases, and the other worker takes over at once.
func (d *demo) stopWorker(w *worker) {
	id := w.w.WorkerID()
	if d.opts.stop == "graceful" {
		w.stop()
		d.stopped = id + " was stopped"
		d.out.event("stopping %s gracefully: its processors checkpoint and it releases its leases", id)
		return
	}
	w.w.Kill()
	d.stopped = id + " was killed"
	d.out.event("killed %s, as a crash would: its leases expire after 3 s and worker-1 takes them, from their last checkpoints", id)
}

// leases describes who holds which shard, e.g. "worker-1 [0 2]  worker-2 [1 3]".
func (d *demo) leases() string {
	var parts []string
	for _, w := range d.workers {
		select {
		case err := <-w.done:
			w.done <- err
			parts = append(parts, w.w.WorkerID()+" stopped")
			continue
		default:
		}
		ids := "none"
		if shards := w.w.Stats().Shards; len(shards) > 0 {
			var short []string
			for _, s := range shards {
				short = append(short, shortShard(s.ShardID))
			}
			ids = strings.Join(short, " ")
		}
		parts = append(parts, fmt.Sprintf("%s [%s]", w.w.WorkerID(), ids))
	}
	return strings.Join(parts, "  ")
}

// printLogTails shows the end of the agent's and the workers' logs after a failure.
func (d *demo) printLogTails() {
	if d.dir == "" {
		return
	}
	for _, name := range []string{"agent.log", "workers.log", "emulator.log"} {
		if t := tail(filepath.Join(d.dir, name), 15); t != "" {
			fmt.Fprintf(os.Stderr, "--- last lines of %s ---\n%s\n", name, t)
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
