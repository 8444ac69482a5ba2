package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/shardline/shardline/kinesistest"
)

// emulatorFlags are the settings of shardline emulator. Zero limits take kinesistest's
// defaults, which are the service's.
type emulatorFlags struct {
	listen   string
	account  string
	state    string
	envFile  string
	verbose  bool
	limits   kinesistest.Limits
	legacy   bool
	creating time.Duration
	updating time.Duration
	deleting time.Duration
	// accessKey and secretKey turn on signature verification.
	accessKey string
	secretKey string
}

func (a *app) emulatorCommand() *cobra.Command {
	var f emulatorFlags
	cmd := &cobra.Command{
		Use:   "emulator",
		Short: "Run a local Kinesis endpoint that enforces the service's limits",
		Long: `emulator serves the Kinesis Data Streams API on a local address, with the service's
documented limits: per-shard write and read rates, record and request sizes, control-plane
call rates and the shard quota. It is the server of the Go package kinesistest, for tests
and services that are not written in Go.

The endpoint URL is the first line on stdout once the server listens, and --env-file writes
it as AWS_ENDPOINT_URL_KINESIS (with AWS_REGION) for a shell to source. The server takes
any access key unless --access-key-id and --secret-access-key are given: then it verifies
each request's SigV4 signature against them. Give it made-up test credentials, never real
ones: a command line is visible to every user of the machine.

With --state FILE the streams and their records are loaded from FILE if it exists and saved
to it when the emulator stops on SIGINT or SIGTERM, so they survive a restart. Shard
iterators do not: ask for new ones after a restart. The emulator exits 0 after a clean stop.

The server's region is --region, else AWS_REGION or AWS_DEFAULT_REGION, else us-east-1:
clients must sign for the same region.`,
		Example: `  shardline emulator --listen 127.0.0.1:4567 --state kinesis.state
  shardline emulator --env-file kinesis.env &   # then: . kinesis.env
  shardline emulator --shard-write-records 100 --updating 2s`,
		Args: exactArgs(0, "no arguments"),
		RunE: a.runE(func(cmd *cobra.Command, _ []string) error { return a.runEmulator(cmd, &f) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:0", "address to listen on, host:port (port 0: a free port)")
	fl.StringVar(&f.account, "account-id", "000000000000", "account ID in stream ARNs")
	fl.StringVar(&f.state, "state", "", "snapshot file: loaded at start if present, written on exit")
	fl.StringVar(&f.envFile, "env-file", "", "write shell exports of AWS_ENDPOINT_URL_KINESIS and AWS_REGION to this file")
	fl.BoolVar(&f.verbose, "verbose", false, "log each refused call on stderr")
	fl.IntVar(&f.limits.ShardWriteBytesPerSecond, "shard-write-bytes", kinesistest.DefaultShardWriteBytesPerSecond, "write bytes per second per shard")
	fl.IntVar(&f.limits.ShardWriteRecordsPerSecond, "shard-write-records", kinesistest.DefaultShardWriteRecordsPerSecond, "written records per second per shard")
	fl.IntVar(&f.limits.ShardReadBytesPerSecond, "shard-read-bytes", kinesistest.DefaultShardReadBytesPerSecond, "read bytes per second per shard")
	fl.IntVar(&f.limits.ShardReadCallsPerSecond, "shard-read-calls", kinesistest.DefaultShardReadCallsPerSecond, "GetRecords calls per second per shard")
	fl.IntVar(&f.limits.MaxRecordSizeCeilingKiB, "max-record-size", kinesistest.MaxRecordSizeCeilingKiB, "largest maximum record size a stream may be given, in KiB (1024: the service before large records)")
	fl.BoolVar(&f.legacy, "legacy-request-size", false, "limit PutRecords to 5 MiB per request, as the service did before 2025 (default 10 MiB)")
	fl.IntVar(&f.limits.ShardLimit, "shard-limit", kinesistest.DefaultShardLimit, "the account's shard quota")
	fl.BoolVar(&f.limits.Unthrottled, "unthrottled", false, "turn off every rate limit (sizes are still checked)")
	fl.DurationVar(&f.creating, "creating", 0, "how long a new stream or consumer stays CREATING")
	fl.DurationVar(&f.updating, "updating", 0, "how long a resharded, re-moded or re-encrypted stream stays UPDATING")
	fl.DurationVar(&f.deleting, "deleting", 0, "how long a deleted stream or consumer stays DELETING")
	fl.StringVar(&f.accessKey, "access-key-id", "", "with --secret-access-key: verify each request's SigV4 signature against these credentials")
	fl.StringVar(&f.secretKey, "secret-access-key", "", "the secret key for --access-key-id")
	return cmd
}

// check refuses limits the server would read as "off" or as "the default": a negative or
// zero rate on the command line is a mistake, not a wish for no limit (--unthrottled is).
func (f *emulatorFlags) check() error {
	for _, l := range []struct {
		name string
		v    int
	}{
		{"--shard-write-bytes", f.limits.ShardWriteBytesPerSecond},
		{"--shard-write-records", f.limits.ShardWriteRecordsPerSecond},
		{"--shard-read-bytes", f.limits.ShardReadBytesPerSecond},
		{"--shard-read-calls", f.limits.ShardReadCallsPerSecond},
		{"--shard-limit", f.limits.ShardLimit},
	} {
		if l.v < 1 {
			return usageErrorf("%s %d: must be at least 1", l.name, l.v)
		}
	}
	if c := f.limits.MaxRecordSizeCeilingKiB; c < kinesistest.DefaultMaxRecordSizeKiB || c > kinesistest.MaxRecordSizeCeilingKiB {
		return usageErrorf("--max-record-size %d: must be between %d and %d KiB", c, kinesistest.DefaultMaxRecordSizeKiB, kinesistest.MaxRecordSizeCeilingKiB)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--creating", f.creating}, {"--updating", f.updating}, {"--deleting", f.deleting}} {
		if d.v < 0 {
			return usageErrorf("%s %v: must not be negative", d.name, d.v)
		}
	}
	if (f.accessKey == "") != (f.secretKey == "") {
		return usageErrorf("--access-key-id and --secret-access-key go together")
	}
	return nil
}

func (a *app) runEmulator(cmd *cobra.Command, f *emulatorFlags) error {
	if err := f.check(); err != nil {
		return err
	}
	// The server's region must be the one clients sign for, so it follows the same settings
	// a client reads.
	region := cmp.Or(a.region, os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"), "us-east-1")
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	if f.legacy {
		f.limits.MaxPutRecordsBytes = kinesistest.LegacyMaxPutRecordsBytes
	}
	opts := kinesistest.Options{
		Addr: f.listen, Region: region, AccountID: f.account, Limits: f.limits, Logger: logger,
		Durations: kinesistest.Durations{
			CreateStream: f.creating, RegisterStreamConsumer: f.creating,
			DeleteStream: f.deleting, DeregisterStreamConsumer: f.deleting,
			SplitShard: f.updating, MergeShards: f.updating, UpdateShardCount: f.updating,
			UpdateStreamMode: f.updating, StreamEncryption: f.updating,
		},
	}
	if f.accessKey != "" {
		opts.Credentials = kinesistest.Credentials{AccessKeyID: f.accessKey, SecretAccessKey: f.secretKey}
		opts.VerifySignatures = true
	}
	if f.state != "" {
		file, err := os.Open(f.state)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			logger.Info("no state file yet; starting empty", "state", f.state)
		case err != nil:
			return fmt.Errorf("--state: %w", err)
		default:
			defer file.Close()
			opts.Restore = file
		}
	}
	if f.state != "" {
		// Find out now, not at exit, that the state cannot be saved.
		probe, err := os.CreateTemp(filepath.Dir(f.state), filepath.Base(f.state)+".*.tmp")
		if err != nil {
			return fmt.Errorf("--state %s: cannot write beside it: %w", f.state, err)
		}
		probe.Close()
		os.Remove(probe.Name())
	}
	srv, err := kinesistest.Start(opts)
	if err != nil {
		if errors.Is(err, kinesistest.ErrSnapshot) {
			return fmt.Errorf("loading --state %s: %w", f.state, err)
		}
		return err
	}
	// Whatever happens next, the server stops and the state is saved.
	saved := false
	defer func() {
		if !saved {
			srv.Close()
		}
	}()
	if f.envFile != "" {
		env := "export AWS_ENDPOINT_URL_KINESIS=" + srv.URL + "\nexport AWS_REGION=" + region + "\n"
		if err := writeFileAtomic(f.envFile, []byte(env)); err != nil {
			return fmt.Errorf("--env-file: %w", err)
		}
	}
	fmt.Fprintln(a.stdout, srv.URL)
	logger.Info("kinesis emulator listening", "endpoint", srv.URL, "region", region)

	<-cmd.Context().Done()
	srv.Close()
	saved = true
	if f.state == "" {
		return nil
	}
	if err := writeSnapshot(srv, f.state); err != nil {
		return err
	}
	logger.Info("state saved", "state", f.state)
	return nil
}

// writeSnapshot saves the server's state to path through a temporary file renamed over it,
// so that a crash while writing leaves the previous state whole.
func writeSnapshot(srv *kinesistest.Server, path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("saving --state %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := srv.Snapshot(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("saving --state %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving --state %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving --state %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving --state %s: %w", path, err)
	}
	return nil
}

// writeFileAtomic writes data to path so that a reader waiting for the file never sees it
// half written.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
