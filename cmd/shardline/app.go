package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/shardline/shardline/internal/version"
)

// Exit codes, documented in the package comment.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130 // 128 + SIGINT, as shells report a process ended by Ctrl-C
)

// usageError marks an error the user fixes by changing the command line: a bad flag or
// argument, a missing region, an unknown profile. It exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// app holds what every command shares: the standard streams, the global flags and the
// Kinesis client built from them.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	// terminal tells whether stderr is a terminal: progress is then a line redrawn in place,
	// and otherwise plain lines that read well in a log file or CI output.
	terminal bool

	endpoint string
	region   string
	profile  string

	// ran is set when a command's own code starts; an error before that came from cobra's
	// parsing of flags and arguments and is a usage error.
	ran bool

	// hard ends on a second interrupt; see runApp.
	hard context.Context

	// resolvedRegion is the region the client was built for, from the flags or the AWS
	// configuration.
	resolvedRegion string

	// conn watches the client's requests for a run of failed connections.
	conn *connWatch

	client *kinesis.Client
}

// run executes the command line args and returns the process exit code. It is main without
// the process: tests call it in-process with their own streams.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runApp(ctx, context.Background(), args, stdin, stdout, stderr)
}

// runApp is run with a second context, hard, that ends when the user insists on stopping (a
// second interrupt): the grace period after the first, in which put still sends what it read,
// then ends at once.
func runApp(ctx, hard context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, terminal: isTerminal(stderr), hard: hard}
	return a.execute(ctx, args)
}

func (a *app) execute(ctx context.Context, args []string) int {
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if cmd == nil {
		cmd = root
	}
	var ue *usageError
	if !a.ran || errors.As(err, &ue) {
		fmt.Fprintf(a.stderr, "shardline: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return exitUsage
	}
	if ctx.Err() != nil {
		// Whatever the command was doing when interrupted failed for that reason alone.
		fmt.Fprintln(a.stderr, "shardline: interrupted")
		var sc signalCause
		if errors.As(context.Cause(ctx), &sc) {
			return sc.exitCode()
		}
		return exitInterrupted
	}
	fmt.Fprintf(a.stderr, "shardline: %v\n", err)
	return exitFailure
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "shardline",
		Short: "Work with Amazon Kinesis data streams",
		Long: `shardline manages Amazon Kinesis data streams, writes lines to them through the
Shardline producer (aggregation, batching, retries, optional compression) and reads
them back, deaggregated and decompressed.

AWS settings come from the standard places: environment variables (AWS_REGION,
AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL_KINESIS, ...), the shared config and
credentials files, and instance or container roles. The global flags override them.

Exit codes: 0 success, 1 failure (including a stream that does not exist and records
that could not be written), 2 usage error (bad flag or argument), 130 interrupted
(SIGINT), 143 terminated (SIGTERM).`,
		Example: `  shardline stream create orders --shards 4
  shardline put orders --partition-key json:customer_id < orders.jsonl
  shardline cat orders --json --from 2025-01-02T15:04:05Z
  shardline --endpoint http://localhost:4568 --region us-east-1 stream list   # kinesis-mock's plain HTTP port`,
		Version:       version.Version(),
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE:          groupRunE,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.endpoint, "endpoint", "", "Kinesis endpoint URL, e.g. for a local emulator (default: the SDK's, honouring AWS_ENDPOINT_URL_KINESIS)")
	pf.StringVar(&a.region, "region", "", "AWS region (default: AWS_REGION or the profile's region)")
	pf.StringVar(&a.profile, "profile", "", "named profile from the shared AWS config and credentials files (default: AWS_PROFILE or default)")
	// The same line as shardline-agent -version prints, so a bug report names the build exactly.
	root.SetVersionTemplate(version.Line("shardline") + "\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(a.streamCommand(), a.putCommand(), a.catCommand(), a.emulatorCommand())
	a.addCompletions(root)
	return root
}

// groupRunE serves commands that only group others: alone they show their help, and an
// unknown subcommand is a usage error rather than cobra's default of printing help and
// succeeding.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

// runE wraps a command's code so that errors from it are told apart from cobra's parsing
// errors.
func (a *app) runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.ran = true
		return f(cmd, args)
	}
}

// exactArgs is cobra.ExactArgs with a message naming what is expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s expects %s, got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// kinesis returns the client for the global flags and the standard AWS configuration,
// loading it on first use so that --help and usage errors never touch the configuration.
func (a *app) kinesis(ctx context.Context) (*kinesis.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	if a.endpoint != "" {
		u, err := url.Parse(a.endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usageErrorf("--endpoint %q: want an http or https URL such as http://localhost:4568", a.endpoint)
		}
	}
	var opts []func(*config.LoadOptions) error
	if a.region != "" {
		opts = append(opts, config.WithRegion(a.region))
	}
	if a.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(a.profile))
	}
	// The SDK logs its own warnings (an IMDSv1 fallback, an undrained response body) to stderr
	// by default, in a format of its own; what matters to the user reaches them as errors.
	opts = append(opts, config.WithLogger(logging.Nop{}), config.WithClientLogMode(0))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		var missing config.SharedConfigProfileNotExistError
		if errors.As(err, &missing) {
			return nil, usageErrorf("profile %q not found in the shared AWS config or credentials files", missing.Profile)
		}
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, usageErrorf("no AWS region: pass --region, set AWS_REGION, or set a region in the profile")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, credentialsError(err)
	}
	a.resolvedRegion = cfg.Region
	a.conn = &connWatch{next: cfg.HTTPClient}
	cfg.HTTPClient = a.conn
	a.client = kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		if a.endpoint != "" {
			o.BaseEndpoint = aws.String(a.endpoint)
		}
	})
	return a.client, nil
}

// endpointNote names the endpoint in messages when it is not the region's own, since an empty
// answer from an emulator means something else than one from AWS.
func (a *app) endpointNote() string {
	if a.client == nil {
		return ""
	}
	if ep := aws.ToString(a.client.Options().BaseEndpoint); ep != "" {
		return " at " + ep
	}
	return ""
}

// credentialsError explains a failure to find credentials as the AWS CLI does, with what to
// do about it. The SDK's own error lists each provider of its chain it tried, ending with the
// EC2 instance metadata service, which buries the point. When the chain reached that last
// resort nothing supplied credentials; any other failure (an expired SSO session, a failing
// credential_process) is reported as it is.
func credentialsError(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var op *smithy.OperationError
	if errors.As(err, &op) && op.ServiceID == "ec2imds" {
		return &noCredentialsError{err}
	}
	return fmt.Errorf("loading AWS credentials: %w", err)
}

// noCredentialsError is a credential chain that found nothing.
type noCredentialsError struct{ err error }

func (e *noCredentialsError) Error() string {
	return `unable to locate AWS credentials. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, name a
profile with --profile or AWS_PROFILE (run "aws configure" to create one, or "aws sso login"
for an SSO profile), or run where an instance or container role is available`
}

func (e *noCredentialsError) Unwrap() error { return e.err }

// apiError rewrites an error from a Kinesis call about stream into a short message: the SDK's
// own text carries the operation, HTTP status and request ID, which bury the reason. A stream
// that does not exist is named as such.
func apiError(stream, doing string, err error) error {
	if err == nil {
		return nil
	}
	var notFound *types.ResourceNotFoundException
	if errors.As(err, &notFound) {
		// The same error reports a shard that no longer exists (trimmed after a reshard).
		if msg := notFound.ErrorMessage(); strings.Contains(strings.ToLower(msg), "shard") {
			return fmt.Errorf("%s: %s", doing, msg)
		}
		return fmt.Errorf("stream %s not found", stream)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	var ue *url.Error
	if errors.As(err, &ue) && connectionFailure(err) {
		// The SDK's text ("exceeded maximum number of attempts, 3, https response error
		// StatusCode: 0, ... request send failed, Post ...") hides that nothing answered.
		host := ue.URL
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			host = u.Host
		}
		return &wrappedError{msg: fmt.Sprintf("%s: cannot reach the Kinesis endpoint %s: %s", doing, host, connectionLabel(err)), err: err}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		msg := ae.ErrorMessage()
		if msg == "" {
			return fmt.Errorf("%s: %s", doing, ae.ErrorCode())
		}
		return fmt.Errorf("%s: %s: %s", doing, ae.ErrorCode(), msg)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// isTerminal reports whether w is a terminal. TERM=dumb opts out, since such terminals
// cannot redraw a line.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// plural formats n with its noun, adding an s when n is not 1.
func plural(n int64, noun string) string {
	return pluralForm(n, noun, noun+"s")
}

// pluralForm is plural for nouns whose plural is not made with an s.
func pluralForm(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return groupDigits(n) + " " + many
}

// groupDigits formats n with thousands separators, which makes counts readable at a glance.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatBytes formats a byte count in binary units.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
