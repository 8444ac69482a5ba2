// Command shardline-agent tails log files into Amazon Kinesis data streams. It reads the
// Amazon Kinesis Agent's agent.json (settings that do not apply are logged once as warnings)
// and sends each flow's lines through the Shardline producer, one producer per stream, with
// aggregation on.
//
// Usage:
//
//	shardline-agent [-config /etc/shardline-agent/agent.json] [-state-dir DIR]
//	                [-log-level info] [-stats-interval 60s] [-version]
//
// AWS credentials come from the configuration's awsAccessKeyId and awsSecretAccessKey, else
// the standard places: environment variables, the shared config and credentials files, and
// the instance or container role; with assumeRoleARN that role is assumed on top of them
// through STS (sts.endpoint), as the Amazon Kinesis Agent does. The region is the
// configuration's kinesis.region, else AWS_REGION or the profile's, else the one named in
// kinesis.endpoint, else the EC2 instance's. The Kinesis endpoint is kinesis.endpoint, else
// AWS_ENDPOINT_URL_KINESIS (or AWS_ENDPOINT_URL), else the region's.
//
// Signals: SIGTERM and SIGINT stop reading, send what is in flight and save the checkpoints
// within shutdownTimeoutMillis; a second one exits at once. SIGHUP reloads the configuration
// without losing any file's position; kinesis.*, firehose.*, cloudwatch.* and credential
// settings change only with a restart.
//
// Logs go to standard error, one line each, with a progress line every -stats-interval.
//
// Exit codes: 0 after a clean stop; 1 on a runtime failure (including records still in flight
// at the shutdown timeout, which are sent again after a restart); 2 on a bad command line;
// 78 (EX_CONFIG) when the configuration cannot be used, which the systemd unit does not
// restart on, since restarting cannot fix it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shardline/shardline/agent"
	"github.com/shardline/shardline/internal/version"
)

// Exit codes, described in the package comment.
const (
	exitOK     = 0
	exitFail   = 1
	exitUsage  = 2
	exitConfig = 78
)

// DefaultConfigPath is where the configuration is read from without -config.
const DefaultConfigPath = "/etc/shardline-agent/agent.json"

// options are the command line's settings.
type options struct {
	configPath    string
	stateDir      string
	logLevel      string
	statsInterval time.Duration
	version       bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("shardline-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", DefaultConfigPath, "configuration file (the Amazon Kinesis Agent's agent.json format)")
	fs.StringVar(&o.stateDir, "state-dir", "", "directory for the checkpoint file, overriding the configuration's stateDirectory (default "+agent.DefaultStateDirectory+")")
	fs.StringVar(&o.logLevel, "log-level", "info", "least severe level logged: debug, info, warn or error")
	fs.DurationVar(&o.statsInterval, "stats-interval", time.Minute, "how often a progress line is logged; 0 turns it off")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: shardline-agent [flags]\n\nTails log files into Amazon Kinesis data streams, as configured in agent.json.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shardline-agent: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	if o.version {
		fmt.Fprintln(stdout, version.Line("shardline-agent"))
		return exitOK
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "shardline-agent: -log-level: %v\n", err)
		return exitUsage
	}
	if o.stateDir != "" {
		abs, err := filepath.Abs(o.stateDir)
		if err != nil {
			fmt.Fprintf(stderr, "shardline-agent: -state-dir: %v\n", err)
			return exitUsage
		}
		o.stateDir = abs
	}
	if o.statsInterval < 0 {
		fmt.Fprintln(stderr, "shardline-agent: -stats-interval must not be negative")
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	// Signals are caught before anything slow (credentials, the region from IMDS) so that a
	// stop during start-up is not lost; they are acted on once the agent runs.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	d, err := start(context.Background(), o, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		var ce *configError
		if errors.As(err, &ce) {
			return exitConfig
		}
		return exitFail
	}
	return d.serve(sigs)
}

// configError marks a start-up failure that only a change of the configuration can fix.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// loadConfig reads the configuration and applies the command line's overrides.
func loadConfig(o options, log *slog.Logger) (*agent.Config, error) {
	cfg, err := agent.LoadConfig(o.configPath)
	if err != nil {
		return nil, &configError{err}
	}
	if o.stateDir != "" {
		// LoadConfig has already placed the checkpoint file in the configured state directory;
		// a checkpointFile set explicitly stays where it is, as the configuration asks.
		if cfg.CheckpointFile == filepath.Join(cfg.StateDirectory, agent.CheckpointFileName) {
			cfg.CheckpointFile = filepath.Join(o.stateDir, agent.CheckpointFileName)
		} else {
			log.Warn("-state-dir does not move the checkpointFile that the configuration sets", "checkpointFile", cfg.CheckpointFile)
		}
		cfg.StateDirectory = o.stateDir
	}
	cfg.Logger = log
	return cfg, nil
}

// restartOnly lists the settings that changed between two configurations but apply only
// after a restart: the clients are built once.
func restartOnly(old, cur *agent.Config) []string {
	var out []string
	check := func(name string, changed bool) {
		if changed {
			out = append(out, name)
		}
	}
	check("kinesis.endpoint", old.KinesisEndpoint != cur.KinesisEndpoint)
	check("kinesis.region", old.KinesisRegion != cur.KinesisRegion)
	check("cloudwatch.emitMetrics", old.CloudWatchEmitMetrics != cur.CloudWatchEmitMetrics)
	check("cloudwatch.endpoint", old.CloudWatchEndpoint != cur.CloudWatchEndpoint)
	check("cloudwatch.namespace", old.CloudWatchNamespace != cur.CloudWatchNamespace)
	check("cloudwatch.kinesisAgentMetrics", old.KinesisAgentMetrics != cur.KinesisAgentMetrics)
	check("firehose.endpoint", old.FirehoseEndpoint != cur.FirehoseEndpoint)
	check("awsAccessKeyId", old.AWSAccessKeyID != cur.AWSAccessKeyID || old.AWSSecretAccessKey != cur.AWSSecretAccessKey)
	check("assumeRoleARN", old.AssumeRoleARN != cur.AssumeRoleARN || old.AssumeRoleExternalID != cur.AssumeRoleExternalID ||
		old.AssumeRoleDuration != cur.AssumeRoleDuration)
	check("sts.endpoint", old.STSEndpoint != cur.STSEndpoint)
	return out
}

// joinNonEmpty is strings.Join that says "none" for nothing, for log lines.
func joinNonEmpty(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
