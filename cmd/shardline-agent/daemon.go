package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwschemas "github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/shardline/shardline/agent"
	"github.com/shardline/shardline/internal/version"
	"github.com/shardline/shardline/metrics"
	"github.com/shardline/shardline/producer"
)

// DefaultNamespace is the CloudWatch namespace when cloudwatch.namespace is not set. It is not
// the Amazon Kinesis Agent's AWSKinesisAgent, so that both can run side by side during a
// migration without mixing their metrics. With cloudwatch.kinesisAgentMetrics the default is
// agent.KinesisAgentNamespace, AWSKinesisAgent.
const DefaultNamespace = "ShardlineAgent"

// closeTimeout bounds the closing of the producers and the metrics publisher after the agent
// stopped. The agent has waited for its records already, so this only covers the last
// metrics upload and stragglers.
const closeTimeout = 5 * time.Second

// daemon is a running agent with what it needs: the producers behind its sink, the metrics
// registry and publisher, and the configuration it was last given.
type daemon struct {
	opts  options
	log   *slog.Logger
	cfg   *agent.Config
	reg   *metrics.Registry
	sink  *agent.ProducerSink
	fh    *agent.FirehoseSink
	agent *agent.Agent
	pub   *metrics.CloudWatchPublisher
}

// start loads the configuration, builds the AWS clients, the producers and the agent. Nothing
// is read from the tailed files yet.
func start(ctx context.Context, o options, log *slog.Logger) (*daemon, error) {
	cfg, err := loadConfig(o, log)
	if err != nil {
		return nil, err
	}
	d := &daemon{opts: o, log: log, cfg: cfg, reg: metrics.NewRegistry()}
	cfg.Metrics = d.reg

	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	awsCfg, err := loadAWSConfig(actx, cfg, log)
	if err != nil {
		return nil, err
	}
	// ADDEC2METADATA reads the instance identity through IMDSv2, at the endpoint the AWS
	// configuration names (AWS_EC2_METADATA_SERVICE_ENDPOINT, or the standard one).
	cfg.InstanceIdentity = imds.NewFromConfig(awsCfg)
	kinesisEndpoint, err := endpointURL(cfg.KinesisEndpoint)
	if err != nil {
		return nil, &configError{fmt.Errorf("kinesis.endpoint: %w", err)}
	}
	kc := kinesis.NewFromConfig(awsCfg, func(o *kinesis.Options) {
		if kinesisEndpoint != "" {
			o.BaseEndpoint = aws.String(kinesisEndpoint)
		}
	})
	d.sink, err = agent.NewProducerSink(kc, producer.Config{Logger: log, Metrics: d.reg}, cfg)
	if err != nil {
		return nil, &configError{err}
	}
	firehoseEndpoint, err := endpointURL(cfg.FirehoseEndpoint)
	if err != nil {
		_ = d.sink.Close(context.Background())
		return nil, &configError{fmt.Errorf("firehose.endpoint: %w", err)}
	}
	// Firehose flows get their own client; without firehose.endpoint it is the region's, or
	// AWS_ENDPOINT_URL_FIREHOSE's, as the SDK resolves it.
	fc := firehose.NewFromConfig(awsCfg, func(o *firehose.Options) {
		if firehoseEndpoint != "" {
			o.BaseEndpoint = aws.String(firehoseEndpoint)
		}
	})
	d.fh, err = agent.NewFirehoseSink(fc, cfg, log)
	if err != nil {
		_ = d.sink.Close(context.Background())
		return nil, &configError{err}
	}
	d.agent, err = agent.New(cfg, agent.Destinations{Kinesis: d.sink, Firehose: d.fh})
	if err != nil {
		_ = d.sink.Close(context.Background())
		_ = d.fh.Close(context.Background())
		return nil, &configError{err}
	}
	if cfg.CloudWatchEmitMetrics {
		d.pub, err = newPublisher(awsCfg, cfg, d.reg, log)
		if err != nil {
			_ = d.sink.Close(context.Background())
			return nil, &configError{err}
		}
	}
	var deliveryStreams []string
	for _, f := range cfg.Flows {
		if f.DeliveryStream != "" && !slices.Contains(deliveryStreams, f.DeliveryStream) {
			deliveryStreams = append(deliveryStreams, f.DeliveryStream)
		}
	}
	streams := make([]string, 0)
	for name, pc := range d.sink.ProducerConfigs() {
		streams = append(streams, fmt.Sprintf("%s (linger %v, batch %d records/%d bytes)", name, pc.Linger, pc.MaxBatchRecords, pc.MaxBatchBytes))
	}
	log.Info("starting", "version", version.Version(), "config", o.configPath, "checkpointFile", cfg.CheckpointFile,
		"flows", len(cfg.Flows), "region", awsCfg.Region, "kinesisEndpoint", orDefault(kinesisEndpoint),
		"metrics", cfg.CloudWatchEmitMetrics, "streams", joinNonEmpty(streams),
		"deliveryStreams", joinNonEmpty(deliveryStreams), "firehoseEndpoint", orDefault(firehoseEndpoint))
	return d, nil
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

// loadAWSConfig builds the AWS configuration from the standard sources, with the region
// chosen as the package comment says.
func loadAWSConfig(ctx context.Context, cfg *agent.Config, log *slog.Logger) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if cfg.KinesisRegion != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.KinesisRegion))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return ac, &configError{fmt.Errorf("loading the AWS configuration: %w", err)}
	}
	if ac.Region == "" {
		if r := regionFromEndpoint(cfg.KinesisEndpoint); r != "" {
			ac.Region = r
		} else {
			// On EC2 the instance's own region is the natural default, as for the Amazon
			// Kinesis Agent; elsewhere this look-up fails after a short wait.
			withIMDS, err := awsconfig.LoadDefaultConfig(ctx, append(opts, awsconfig.WithEC2IMDSRegion())...)
			if err == nil && withIMDS.Region != "" {
				log.Info("region from the EC2 instance metadata", "region", withIMDS.Region)
				ac = withIMDS
			}
		}
	}
	if ac.Region == "" {
		return ac, &configError{errors.New("no AWS region: set kinesis.region in the configuration, or AWS_REGION in the environment")}
	}
	if err := applyCredentials(&ac, cfg, log); err != nil {
		return ac, err
	}
	return ac, nil
}

// applyCredentials puts the configuration's credential settings in front of the standard
// sources, as the Amazon Kinesis Agent's AgentAWSCredentialsProviderChain and AgentContext
// do: awsAccessKeyId and awsSecretAccessKey first, then (when assumeRoleARN is set) that
// role, assumed with STS on top of whatever credentials were found. Only the key ID and the
// role are logged, never a secret.
func applyCredentials(ac *aws.Config, cfg *agent.Config, log *slog.Logger) error {
	if cfg.AWSAccessKeyID != "" {
		ac.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(cfg.AWSAccessKeyID, cfg.AWSSecretAccessKey, ""))
		log.Info("credentials from the configuration", "awsAccessKeyId", cfg.AWSAccessKeyID)
	}
	if cfg.AssumeRoleARN == "" {
		return nil
	}
	stsEndpoint, err := endpointURL(cfg.STSEndpoint)
	if err != nil {
		return &configError{fmt.Errorf("sts.endpoint: %w", err)}
	}
	stsClient := sts.NewFromConfig(*ac, func(o *sts.Options) {
		if stsEndpoint != "" {
			o.BaseEndpoint = aws.String(stsEndpoint)
		}
	})
	provider := stscreds.NewAssumeRoleProvider(stsClient, cfg.AssumeRoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = assumeRoleSessionName
		o.Duration = cfg.AssumeRoleDuration
		if cfg.AssumeRoleExternalID != "" {
			o.ExternalID = aws.String(cfg.AssumeRoleExternalID)
		}
	})
	ac.Credentials = aws.NewCredentialsCache(provider)
	log.Info("credentials from an assumed role", "assumeRoleARN", cfg.AssumeRoleARN,
		"externalId", cfg.AssumeRoleExternalID != "", "stsEndpoint", orDefault(stsEndpoint), "duration", cfg.AssumeRoleDuration)
	return nil
}

// assumeRoleSessionName is the Amazon Kinesis Agent's (AgentConfiguration.ASSUME_ROLE_SESSION),
// so CloudTrail shows the same session name after a switch.
const assumeRoleSessionName = "AWSKinesisAgent"

// endpointURL turns an agent.json endpoint into a URL. The Amazon Kinesis Agent's examples
// give bare host names ("kinesis.us-east-1.amazonaws.com"), which mean HTTPS.
func endpointURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a host name or URL", s)
	}
	return s, nil
}

// regionFromEndpoint reads the region out of an AWS host name such as
// kinesis.eu-west-1.amazonaws.com or vpce-0abc.kinesis.eu-west-1.vpce.amazonaws.com, so that a
// configuration written for the Amazon Kinesis Agent, which names only the endpoint, works.
func regionFromEndpoint(endpoint string) string {
	ep, err := endpointURL(endpoint)
	if err != nil || ep == "" {
		return ""
	}
	u, err := url.Parse(ep)
	if err != nil {
		return ""
	}
	host := u.Hostname()
	if !strings.HasSuffix(host, ".amazonaws.com") && !strings.HasSuffix(host, ".amazonaws.com.cn") {
		return ""
	}
	labels := strings.Split(host, ".")
	for i := 0; i+1 < len(labels); i++ {
		if (labels[i] == "kinesis" || labels[i] == "kinesis-fips") && strings.Count(labels[i+1], "-") >= 2 {
			return labels[i+1]
		}
	}
	return ""
}

// newPublisher builds the CloudWatch publisher. A configured cloudwatch.endpoint is spoken to
// in the awsQuery protocol: CloudWatch accepts it as well as the SDK's default, and the
// emulators such an endpoint usually points at (moto) speak only awsQuery.
func newPublisher(awsCfg aws.Config, cfg *agent.Config, reg *metrics.Registry, log *slog.Logger) (*metrics.CloudWatchPublisher, error) {
	ep, err := endpointURL(cfg.CloudWatchEndpoint)
	if err != nil {
		return nil, fmt.Errorf("cloudwatch.endpoint: %w", err)
	}
	client := cloudwatch.NewFromConfig(awsCfg, func(o *cloudwatch.Options) {
		if ep != "" {
			o.BaseEndpoint = aws.String(ep)
			o.Protocol = awsquery.New(cwschemas.GraniteServiceVersion20100801)
		}
	})
	ns := cfg.CloudWatchNamespace
	switch {
	case ns != "":
	case cfg.KinesisAgentMetrics:
		ns = agent.KinesisAgentNamespace
	default:
		ns = DefaultNamespace
	}
	pub, err := metrics.NewCloudWatchPublisher(client, reg, metrics.PublisherConfig{Namespace: ns, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("cloudwatch: %w", err)
	}
	return pub, nil
}

// serve runs the agent until a stop signal or a failure, reloading on SIGHUP, and returns the
// exit code.
func (d *daemon) serve(sigs <-chan os.Signal) int {
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- d.agent.Run(runCtx) }()
	if d.pub != nil {
		d.pub.Start()
	}
	var tick <-chan time.Time
	if d.opts.statsInterval > 0 {
		t := time.NewTicker(d.opts.statsInterval)
		defer t.Stop()
		tick = t.C
	}
	stopping := false
	for {
		select {
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP && !stopping:
				d.reload()
			case sig == syscall.SIGHUP:
			case stopping:
				d.log.Warn("second stop signal: exiting without waiting for the records in flight; they are sent again after a restart", "signal", sig.String())
				return exitFail
			default:
				stopping = true
				d.log.Info("stopping", "signal", sig.String(), "timeout", d.cfg.ShutdownTimeout)
				stop()
			}
		case <-tick:
			d.logProgress("progress")
		case err := <-done:
			return d.shutdown(err, stopping)
		}
	}
}

// shutdown closes what the agent used once Run returned, and returns the exit code.
func (d *daemon) shutdown(runErr error, requested bool) int {
	d.logProgress("final progress")
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := d.sink.Close(ctx); err != nil {
		d.log.Warn("closing the producers", "err", err)
	}
	if err := d.fh.Close(ctx); err != nil {
		d.log.Warn("closing the Firehose sink", "err", err)
	}
	if d.pub != nil {
		if err := d.pub.Close(ctx); err != nil {
			d.log.Warn("publishing the last metrics", "err", err)
		}
	}
	switch {
	case runErr != nil:
		d.log.Error("the agent stopped with an error", "err", runErr)
		return exitFail
	case !requested:
		d.log.Error("the agent stopped without being asked to")
		return exitFail
	}
	return exitOK
}

// reload re-reads the configuration: producers for new streams or changed buffer settings
// first, then the agent's flows. A configuration that cannot be used leaves everything as it
// was.
func (d *daemon) reload() {
	d.log.Info("reloading the configuration", "config", d.opts.configPath)
	cfg, err := loadConfig(d.opts, d.log)
	if err != nil {
		d.log.Error("reload failed; the configuration in use is kept", "err", err)
		return
	}
	cfg.Metrics = d.reg
	for _, name := range restartOnly(d.cfg, cfg) {
		d.log.Warn("setting changed; it takes effect after a restart", "setting", name)
	}
	if err := d.fh.Update(cfg); err != nil {
		d.log.Error("reload failed; the configuration in use is kept", "err", err)
		return
	}
	if err := d.sink.Update(cfg); err != nil {
		d.log.Error("reload failed; the configuration in use is kept", "err", err)
		return
	}
	if err := d.agent.Reload(cfg); err != nil {
		d.log.Error("reload failed", "err", err)
		return
	}
	d.cfg = cfg
}

// logProgress logs one line of the agent's and the producers' counters, like the Amazon
// Kinesis Agent's periodic progress lines.
func (d *daemon) logProgress(msg string) {
	s := d.agent.Stats()
	var put, kinesisPut, failed, expired, throttled, pending, retries int64
	for _, ps := range d.sink.Stats() {
		put += ps.UserRecordsPut
		kinesisPut += ps.KinesisRecordsPut
		failed += ps.UserRecordsFailed
		expired += ps.UserRecordsExpired
		throttled += ps.ThrottledRecords
		pending += ps.UserRecordsPending
		retries += ps.Retries
	}
	attrs := []any{
		"linesRead", s.LinesRead, "recordsSent", s.RecordsSent, "acked", s.RecordsAcked,
		"bytesAcked", s.BytesAcked, "failed", s.RecordsFailed, "resent", s.RecordsRetried,
		"inFlight", s.InFlightRecords, "inFlightBytes", s.InFlightBytes,
		"filesTailed", s.FilesTailed, "truncations", s.Truncations, "parseErrors", s.ParseErrors,
		"checkpointSaves", s.CheckpointSaves, "checkpointErrors", s.CheckpointErrors,
		"kinesisRecordsPut", kinesisPut, "producerPending", pending, "producerRetries", retries,
		"throttled", throttled, "expired", expired, "producerFailed", failed, "userRecordsPut", put,
	}
	fs := d.fh.Stats()
	attrs = append(attrs, "firehosePut", fs.RecordsPut, "firehoseFailed", fs.RecordsFailed, "firehoseCalls", fs.Calls)
	if d.pub != nil {
		ps := d.pub.Stats()
		attrs = append(attrs, "metricsSent", ps.DatumsSent, "metricsDropped", ps.DatumsDropped)
	}
	d.log.Info(msg, attrs...)
}
