package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shardline/shardline/metrics"
)

// DefaultStateDirectory is where the checkpoint file lives unless the configuration says
// otherwise. It is under /var/lib because checkpoints must survive a reboot; the Amazon Kinesis
// Agent's default under /var/run is wiped by one, which turns every reboot into a re-send or a
// gap.
const DefaultStateDirectory = "/var/lib/shardline-agent"

// CheckpointFileName is the name of the checkpoint file inside the state directory.
const CheckpointFileName = "checkpoints.json"

// Defaults for the settings a configuration leaves out. Where the Amazon Kinesis Agent has the
// same setting, the default is the same.
const (
	DefaultCheckpointInterval      = time.Second
	DefaultCheckpointTTL           = 7 * 24 * time.Hour
	DefaultShutdownTimeout         = 10 * time.Second
	DefaultAssumeRoleDuration      = time.Hour
	DefaultMaxInFlightBytes        = 16 << 20
	DefaultMaxInFlightRecords      = 10000
	DefaultMaxOpenFiles            = 4096
	DefaultMaxRecordSizeBytes      = 1 << 20
	MaxRecordSizeLimit             = 10 << 20
	DefaultMaxBufferAge            = time.Minute
	DefaultMaxBufferSizeBytes      = 5 << 20
	DefaultMaxBufferSizeRecords    = 500
	DefaultMinTimeBetweenFilePolls = 100 * time.Millisecond
	DefaultRescanInterval          = 10 * time.Second
	DefaultPartialLineTimeout      = time.Minute
	DefaultMultiLineTimeout        = 5 * time.Second
	DefaultCloseInactive           = 5 * time.Minute
	DefaultRetryInitialBackoff     = 100 * time.Millisecond
	DefaultRetryMaxBackoff         = 10 * time.Second
)

// InitialPosition says where reading starts in a file that has no checkpoint when the flow
// starts for the first time.
type InitialPosition string

// Initial positions, spelled as in agent.json.
const (
	StartOfFile InitialPosition = "START_OF_FILE"
	EndOfFile   InitialPosition = "END_OF_FILE"
)

// PartitionKeyOption says how a record's partition key is chosen.
type PartitionKeyOption string

// Partition key options. Random and Deterministic are the Amazon Kinesis Agent's; Field is
// Shardline's and takes the key from a field that CSVTOJSON or LOGTOJSON parsed.
const (
	PartitionKeyRandom        PartitionKeyOption = "RANDOM"
	PartitionKeyDeterministic PartitionKeyOption = "DETERMINISTIC"
	PartitionKeyField         PartitionKeyOption = "FIELD"
)

// Config is the agent's configuration: global settings and the flows that tie file patterns to
// streams. LoadConfig and ParseConfig read it from an agent.json file; a program may also fill
// it in directly, leaving zero values for defaults.
type Config struct {
	// StateDirectory holds the checkpoint file when CheckpointFile is empty
	// ("stateDirectory"; default DefaultStateDirectory).
	StateDirectory string
	// CheckpointFile is the checkpoint file's path ("checkpointFile"). It must not be an Amazon
	// Kinesis Agent checkpoint database: the formats differ, and the agent refuses to overwrite one.
	CheckpointFile string
	// CheckpointInterval is how often positions are saved ("checkpointIntervalMillis").
	CheckpointInterval time.Duration
	// CheckpointTTL drops checkpoints of files not seen for this long
	// ("checkpointTimeToLiveDays").
	CheckpointTTL time.Duration
	// ShutdownTimeout bounds how long Run waits for in-flight records when it stops
	// ("shutdownTimeoutMillis").
	ShutdownTimeout time.Duration
	// MaxInFlightBytes and MaxInFlightRecords bound the records read but not yet acknowledged,
	// across all flows ("maxInFlightBytes", "maxInFlightRecords"). Reading pauses at the bound.
	MaxInFlightBytes   int64
	MaxInFlightRecords int
	// MaxOpenFiles caps the files open for reading at once, across all flows
	// ("maxOpenFiles"; default DefaultMaxOpenFiles, 4096, at most 1,048,576). The Amazon
	// Kinesis Agent has no such cap; Filebeat's is harvester_limit. Opening one more closes
	// the open file that grew least recently; it is opened again when it grows, at the
	// position it was closed at, so a line it was in the middle of is read whole then.
	MaxOpenFiles int

	// KinesisEndpoint and KinesisRegion are "kinesis.endpoint" and "kinesis.region", for the
	// program that builds the sink; the agent itself does not use them.
	KinesisEndpoint string
	KinesisRegion   string
	// FirehoseEndpoint is "firehose.endpoint", for the program that builds the Firehose sink.
	FirehoseEndpoint string

	// AWSAccessKeyID and AWSSecretAccessKey ("awsAccessKeyId", "awsSecretAccessKey") are
	// static credentials for the program that builds the AWS clients; as in the Amazon
	// Kinesis Agent's AgentAWSCredentialsProviderChain they come before the environment, the
	// shared files and the instance role, and only when both are set. They are never logged.
	AWSAccessKeyID     string
	AWSSecretAccessKey string
	// AssumeRoleARN ("assumeRoleARN"), when set, makes the clients use that role, assumed with
	// STS on top of the credentials above, as the Kinesis Agent's AgentContext does: session
	// name AWSKinesisAgent, AssumeRoleExternalID ("assumeRoleExternalId") when set, for
	// AssumeRoleDuration ("assumeRoleDurationSeconds"; default one hour), through
	// STSEndpoint ("sts.endpoint") when set.
	AssumeRoleARN        string
	AssumeRoleExternalID string
	AssumeRoleDuration   time.Duration
	STSEndpoint          string
	// CloudWatchEmitMetrics ("cloudwatch.emitMetrics", default true), CloudWatchEndpoint and
	// CloudWatchNamespace are for the program that publishes metrics.
	CloudWatchEmitMetrics bool
	CloudWatchEndpoint    string
	CloudWatchNamespace   string
	// KinesisAgentMetrics ("cloudwatch.kinesisAgentMetrics", default false) publishes the
	// flows' metrics as the Amazon Kinesis Agent does, so its dashboards and alarms keep
	// working: with the Destination dimension ("KinesisStream:NAME" or "DeliveryStream:NAME")
	// instead of StreamName, in the namespace KinesisAgentNamespace ("AWSKinesisAgent") unless
	// CloudWatchNamespace names another. See FlowMetricsDimension.
	KinesisAgentMetrics bool

	// Flows tie file patterns to streams ("flows").
	Flows []Flow

	// Warnings lists, once each, the settings of the file that Shardline does not use, with
	// their JSON paths. New logs them.
	Warnings []string

	// Logger receives the agent's logs; nil means slog.Default().
	Logger *slog.Logger
	// InstanceIdentity gives ADDEC2METADATA the EC2 instance identity; the daemon passes an
	// IMDS client (imds.NewFromConfig). Nil means no identity: the step passes records
	// unchanged, with a warning.
	InstanceIdentity InstanceIdentitySource
	// Metrics, when not nil, receives the agent's metrics (LinesRead, RecordsSent, ...).
	Metrics *metrics.Registry
	// OpenFile opens a file for reading; nil means os.Open. Tests replace it to simulate
	// files that cannot be opened.
	OpenFile func(name string) (*os.File, error)
}

// Flow ties the files that match one pattern to one stream, with the settings that turn
// their lines into records.
type Flow struct {
	// FilePattern selects the files ("filePattern"): an absolute path whose elements may use
	// the Amazon Kinesis Agent's (Java's) glob syntax, *, ?, [...] ([!...] negates), {a,b}
	// for either subpattern and \ to escape, and ** as a whole element for any number of
	// directories. A flow whose pattern matches no file for a minute is warned about.
	FilePattern string
	// ExcludePatterns leaves out files that FilePattern matches ("excludePatterns"): a
	// pattern with no path separator is matched against the file's name, as in
	// "*.old"; an absolute one against the whole path, with the same wildcards as
	// FilePattern. Compressed files (names ending in .gz, .bz2, .zip, .xz or .zst, in any
	// case) are always left out, as the Amazon Kinesis Agent leaves out .gz, .bz2 and .zip:
	// a pattern such as "app.log*" also matches logrotate's compressed rotations, which
	// are binary.
	ExcludePatterns []string
	// KinesisStream is the stream records go to ("kinesisStream").
	KinesisStream string
	// DeliveryStream is the Amazon Data Firehose delivery stream records go to instead
	// ("deliveryStream"). A flow names one of the two; one that names both is a Firehose flow,
	// as the Amazon Kinesis Agent's FileFlowFactory decides, and kinesisStream is ignored with a
	// warning. A Firehose flow's records are at most 1,000 KiB (maxRecordSizeBytes' default
	// and limit), and its buffers at most 500 records and 4 MiB, the limits of one
	// PutRecordBatch call (the Kinesis Agent's FirehoseConstants).
	DeliveryStream string
	// PartitionKeyOption chooses partition keys ("partitionKeyOption"; default RANDOM). With
	// RANDOM, each run of 64 consecutive records of a file shares one random key (the Amazon
	// Kinesis Agent draws one per record); records still spread evenly over the shards, and
	// the key's hash is computed once per run instead of once per record.
	PartitionKeyOption PartitionKeyOption
	// PartitionKeyField names the parsed field whose value is the partition key
	// ("partitionKeyField"); it implies PartitionKeyField.
	PartitionKeyField string
	// InitialPosition applies to files without a checkpoint when the flow runs for the first
	// time ("initialPosition"; default END_OF_FILE, as in the Amazon Kinesis Agent). Files that
	// appear later are read from their start.
	InitialPosition InitialPosition
	// MultiLineStartPattern, when set, is a regular expression that matches the start of the
	// first line of each record ("multiLineStartPattern"); following lines that do not match
	// belong to the same record.
	MultiLineStartPattern string
	// SkipHeaderLines lines at the start of each file are not sent ("skipHeaderLines").
	SkipHeaderLines int
	// TruncatedRecordTerminator ends a record cut to MaxRecordSizeBytes
	// ("truncatedRecordTerminator"; default "\n").
	TruncatedRecordTerminator string
	// MaxRecordSizeBytes bounds a record's data plus partition key ("maxRecordSizeBytes";
	// default 1 MiB, which every stream takes; up to the stream's maximum record size, 10 MiB
	// at most, on a stream raised with UpdateMaxRecordSize: NewProducerSink checks it there).
	MaxRecordSizeBytes int
	// MaxBufferAge, MaxBufferSizeBytes and MaxBufferSizeRecords are the Amazon Kinesis Agent's
	// batching settings ("maxBufferAgeMillis", "maxBufferSizeBytes", "maxBufferSizeRecords").
	// Batching is the sink's job: ProducerConfig maps them onto the producer's Linger and
	// batch limits, as the package documentation describes.
	MaxBufferAge         time.Duration
	MaxBufferSizeBytes   int
	MaxBufferSizeRecords int
	// MinTimeBetweenFilePolls is how often an idle file is checked for new data
	// ("minTimeBetweenFilePollsMillis"); file system events wake it sooner.
	MinTimeBetweenFilePolls time.Duration
	// RescanInterval is how often the pattern is matched again to find files that file system
	// events missed ("rescanIntervalMillis"; the Amazon Kinesis Agent's
	// "maxTimeBetweenFileTrackerRefreshMillis" is accepted with the same meaning).
	RescanInterval time.Duration
	// PartialLineTimeout is how long a last line without a newline waits for its newline once
	// the file has left the pattern (rotated away or deleted) before it is sent as it is, with
	// a newline added ("partialLineTimeoutMillis"; default one minute). While the file still
	// matches the pattern such a line waits for its newline however long that takes, as in
	// the Amazon Kinesis Agent, whose parser only ever hands out complete records; it is sent
	// as it is only when the file is closed as inactive (CloseInactive, or PartialLineTimeout
	// if that is longer, without growth), since a writer that stopped mid-line for that long
	// has most likely stopped for good. A line completed later would otherwise arrive in two
	// records.
	PartialLineTimeout time.Duration
	// MultiLineTimeout is how long a multi-line record whose lines are complete waits for the
	// next start line before it is sent ("multiLineTimeoutMillis"; default 5 s).
	MultiLineTimeout time.Duration
	// IgnoreFilesOlderThan skips files without a checkpoint that were last modified longer ago
	// than this ("ignoreFilesOlderThanMillis"; zero means no limit).
	IgnoreFilesOlderThan time.Duration
	// CloseInactive closes a file that has not grown for this long; it is opened again when it
	// changes ("closeInactiveMillis").
	CloseInactive time.Duration
	// RetryInitialBackoff and RetryMaxBackoff space the re-sends of records whose delivery
	// failed ("retryInitialBackoffMillis", "retryMaxBackoffMillis").
	RetryInitialBackoff time.Duration
	RetryMaxBackoff     time.Duration
	// DataProcessingOptions transform each record in order ("dataProcessingOptions").
	DataProcessingOptions []ProcessingOption
}

// ProcessingOption is one step of a flow's "dataProcessingOptions".
type ProcessingOption struct {
	// OptionName is SINGLELINE, CSVTOJSON, LOGTOJSON, ADDMETADATA or ADDEC2METADATA ("optionName").
	OptionName string
	// CustomFieldNames names the fields of CSVTOJSON, or overrides LOGTOJSON's
	// ("customFieldNames").
	CustomFieldNames []string
	// Delimiter separates CSVTOJSON's fields ("delimiter"; default ","). As in the Amazon
	// Kinesis Agent it is a regular expression, so "\\t" and "\\|" work as expected.
	Delimiter string
	// LogFormat is LOGTOJSON's format ("logFormat"): COMMONAPACHELOG, COMBINEDAPACHELOG,
	// APACHEERRORLOG, SYSLOG (RFC 3164 as written to files), RFC3339SYSLOG, or Shardline's
	// RFC5424SYSLOG.
	LogFormat string
	// MatchPattern replaces the format's regular expression ("matchPattern"); its capture
	// groups are named by CustomFieldNames.
	MatchPattern string
	// JSONFormat is COMPACT (default) or PRETTYPRINT ("jsonFormat").
	JSONFormat string
	// MetadataFields is ADDMETADATA's value ("metadata", as in the Amazon Kinesis Agent; the
	// older "metadataFields" is read too): any JSON value, usually an object, written as the
	// record's "metadata" field, with object keys sorted.
	MetadataFields json.RawMessage
	// ParseOptions are SINGLELINE's ("parseOptions"; default none), as the Amazon Kinesis
	// Agent's SingleLineDataConverter reads them: NO_TRIM keeps each line's leading and
	// trailing white space, ESCAPE_NEW_LINE joins the lines with the characters \\n instead of
	// nothing. Other values are ignored, as there, with a warning.
	ParseOptions []string
	// MetadataTTL is how long ADDEC2METADATA uses the instance identity before reading it
	// again ("metadataTTL", in seconds as in the Amazon Kinesis Agent; default one hour).
	MetadataTTL time.Duration
	// Timestamp makes ADDMETADATA add a "ts" field first, the time of processing in UTC as
	// 2006-01-02T15:04:05.000Z, as the Amazon Kinesis Agent's AddMetadataConverter does
	// ("timestamp": "true"; a JSON boolean works too; default false).
	Timestamp bool
}

// Key identifies a flow across reloads and in checkpoints: its stream (or "firehose/" and its
// delivery stream) and its pattern.
func (f *Flow) Key() string {
	if f.DeliveryStream != "" {
		return "firehose/" + f.DeliveryStream + "|" + f.FilePattern
	}
	return f.KinesisStream + "|" + f.FilePattern
}

// MaxFirehoseRecordSize, MaxFirehoseBatchRecords and MaxFirehoseBatchBytes are the limits of
// one record and of one PutRecordBatch call (the Amazon Kinesis Agent's FirehoseConstants).
const (
	MaxFirehoseRecordSize   = 1000 << 10
	MaxFirehoseBatchRecords = 500
	MaxFirehoseBatchBytes   = 4 << 20
)

// DropInDirName is the directory beside the configuration file whose files add flows: for
// /etc/aws-kinesis/agent.json it is /etc/aws-kinesis/agent.d, the Amazon Kinesis Agent's
// fixed drop-in directory (Agent.readConfigurationDirectory).
const DropInDirName = "agent.d"

// LoadConfig reads and validates an agent.json file and the drop-in files of the agent.d
// directory beside it. As in the Amazon Kinesis Agent, every regular file there is read (in
// name order here, so the result does not depend on the directory's order; names starting
// with a dot, which editors and configuration tools use for files being written, are left
// out), only its "flows" are used, appended after the main file's, and a file that is not a
// JSON object is skipped with a warning rather than refused. The main file may then list no
// flows. A flow of a drop-in file that is wrong is an error, reported as
// "agent.d/NAME: flows[i].key: ...".
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent: reading configuration: %w", err)
	}
	drops, warns, err := readDropIns(filepath.Join(filepath.Dir(path), DropInDirName))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	cfg, err := parseConfig(b, drops, warns)
	if err != nil {
		return nil, fmt.Errorf("agent: %s: %w", path, err)
	}
	return cfg, nil
}

// dropIn is one file of the drop-in directory.
type dropIn struct {
	name string // as errors show it: agent.d/NAME
	data []byte
}

func readDropIns(dir string) ([]dropIn, []string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && errors.Is(err, syscall.ENOTDIR) {
			return nil, nil, nil // a file of that name is not a drop-in directory
		}
		return nil, nil, fmt.Errorf("reading drop-in directory: %w", err)
	}
	var out []dropIn
	var warns []string
	for _, e := range entries { // ReadDir sorts by name
		name := DropInDirName + "/" + e.Name()
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			warns = append(warns, name+": cannot be read, skipped: "+err.Error())
			continue
		}
		out = append(out, dropIn{name: name, data: b})
	}
	return out, warns, nil
}

// ParseConfig parses and validates the contents of an agent.json file. Settings are checked
// against their JSON paths, so an error reads like
//
//	flows[1].filePattern: must not be empty
//
// Settings of the Amazon Kinesis Agent that Shardline does not use are listed in
// Config.Warnings; unknown settings are listed there too, since they are most likely typos.
func ParseConfig(data []byte) (*Config, error) { return parseConfig(data, nil, nil) }

func parseConfig(data []byte, drops []dropIn, warns []string) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, jsonSyntaxError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("configuration: unexpected data after the top-level object")
	}
	p := &parser{warnings: warns}
	top, ok := root.(map[string]any)
	if !ok {
		return nil, errors.New("configuration: must be a JSON object")
	}
	var extra [][]any
	for _, d := range drops {
		flows, ok := p.dropInFlows(d)
		if ok {
			extra = append(extra, flows)
			p.dropIns = append(p.dropIns, d.name)
		}
	}
	cfg := p.parseTop(&object{path: "", m: top}, extra)
	cfg.applyDefaults()
	// Settings that could not be read were reported already; the checks of the rest are
	// added, so one run shows every problem.
	reported := map[string]bool{}
	for _, e := range p.problems {
		reported[e.(*ConfigError).Path] = true
	}
	if err := cfg.Validate(); err != nil {
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			if ce, ok := e.(*ConfigError); ok {
				ce.Path = p.relabel(ce.Path)
				if !reported[ce.Path] {
					p.problems = append(p.problems, e)
				}
			}
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// dropInFlows reads a drop-in file's flows; ok is false for a file that is skipped.
func (p *parser) dropInFlows(d dropIn) (flows []any, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(d.data))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		p.warnings = append(p.warnings, d.name+": skipped: "+jsonSyntaxError(d.data, err).Error())
		return nil, false
	}
	m, isObj := root.(map[string]any)
	if !isObj {
		p.warnings = append(p.warnings, d.name+": skipped: not a JSON object")
		return nil, false
	}
	var keys []string
	for k := range m {
		if k != "flows" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.warnings = append(p.warnings, d.name+": "+k+": ignored: drop-in files add flows only")
	}
	v, has := m["flows"]
	if !has || v == nil {
		return nil, true
	}
	arr, isArr := v.([]any)
	if !isArr {
		p.errorf(d.name+": flows", "must be an array, got %s", describe(v))
		return nil, false
	}
	return arr, true
}

// relabel turns Validate's "flows[i]..." path for the merged flows into the place the flow
// was written: the main file's flows[j] or a drop-in file's.
func (p *parser) relabel(path string) string {
	var i int
	var rest string
	if n, err := fmt.Sscanf(path, "flows[%d]", &i); n != 1 || err != nil {
		return path
	}
	rest = path[len(fmt.Sprintf("flows[%d]", i)):]
	if i < 0 || i >= len(p.origins) {
		return path
	}
	return p.origins[i] + rest
}

// jsonSyntaxError turns a decoding error into one that says where, by line and column.
func jsonSyntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	off := int64(-1)
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 1 || off > int64(len(data)) {
		return fmt.Errorf("configuration: invalid JSON: %w", err)
	}
	line := 1 + bytes.Count(data[:off-1], []byte{'\n'})
	// Offset counts the offending byte, which is the one to point at.
	col := int(off) - 1 - bytes.LastIndexByte(data[:off-1], '\n')
	return fmt.Errorf("configuration: invalid JSON at line %d, column %d: %w", line, col, err)
}

// notApplicable lists the Amazon Kinesis Agent settings that Shardline reads past, with the
// reason given in the warning.
var notApplicable = map[string]string{
	"awsSessionToken":                          "credentials come from the standard AWS configuration (environment, shared files, instance role)",
	"userDefinedCredentialsProvider.classname": "Java credential providers do not apply",
	"userDefinedCredentialsProvider.location":  "Java credential providers do not apply",
	"cloudwatch.tagInstance":                   "not supported",
	"cloudwatch.metricsBufferTimeMillis":       "the metrics publisher has its own interval",
	"cloudwatch.metricsQueueSize":              "the metrics publisher has its own bounds",
	"log.emitMetrics":                          "use Stats or the metrics registry",
	"log.emitInternalMetrics":                  "use Stats or the metrics registry",
	"log.statusReportingPeriodSeconds":         "use Stats or the metrics registry",
	"maxSendingThreads":                        "sending concurrency is the producer's",
	"maxSendingThreadsPerCore":                 "sending concurrency is the producer's",
	"sendingThreadsKeepAliveMillis":            "sending concurrency is the producer's",
	"sendingThreadsMaxQueueSize":               "sending concurrency is the producer's",
	"maxConnections":                           "HTTP settings are the producer's",
	"connectionTimeoutMillis":                  "HTTP settings are the producer's",
	"connectionTTLMillis":                      "HTTP settings are the producer's",
	"socketTimeoutMillis":                      "HTTP settings are the producer's",
	"useTcpKeepAlive":                          "HTTP settings are the producer's",
	"useHttpGzip":                              "HTTP settings are the producer's",
}

var flowNotApplicable = map[string]string{
	"aggregatedRecordSizeBytes":     "Firehose record aggregation is not supported",
	"waitOnFullPublishQueueMillis":  "the agent's queue is bounded by maxInFlightBytes and maxInFlightRecords",
	"waitOnEmptyPublishQueueMillis": "the agent's queue is bounded by maxInFlightBytes and maxInFlightRecords",
	"waitOnFullRetryQueueMillis":    "the agent's queue is bounded by maxInFlightBytes and maxInFlightRecords",
	"publishQueueCapacity":          "the agent's queue is bounded by maxInFlightBytes and maxInFlightRecords",
	"fileFooterPattern":             "not supported",
	"log.emitInternalMetrics":       "use Stats or the metrics registry",
}

// parser collects every problem of a file, so one run shows them all.
type parser struct {
	problems []error
	warnings []string
	dropIns  []string // names of the drop-in files whose flows were read, in order
	origins  []string // for each flow kept, where it was written: "flows[j]" or "agent.d/x: flows[j]"
}

// ConfigError is one problem of a configuration, at a JSON path.
type ConfigError struct {
	Path    string
	Problem string
}

// Error returns "path: problem", the form every configuration problem is reported in.
func (e *ConfigError) Error() string {
	if e.Path == "" {
		return "configuration: " + e.Problem
	}
	return e.Path + ": " + e.Problem
}

func (p *parser) errorf(path, format string, args ...any) {
	p.problems = append(p.problems, &ConfigError{Path: path, Problem: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(path, format string, args ...any) {
	p.warnings = append(p.warnings, path+": "+fmt.Sprintf(format, args...))
}

func (p *parser) err() error { return errors.Join(p.problems...) }

// object is a JSON object being read; it remembers which keys were used, so the rest can be
// reported.
type object struct {
	path string
	m    map[string]any
	used map[string]bool
}

func (o *object) child(key string) string {
	if o.path == "" {
		return key
	}
	return o.path + "." + key
}

func (o *object) get(key string) (any, bool) {
	if o.used == nil {
		o.used = map[string]bool{}
	}
	o.used[key] = true
	v, ok := o.m[key]
	if ok && v == nil {
		return nil, false // null means "not set", as a missing key does
	}
	return v, ok
}

func (p *parser) str(o *object, key string) string {
	v, ok := o.get(key)
	if !ok {
		return ""
	}
	s, isStr := v.(string)
	if !isStr {
		p.errorf(o.child(key), "must be a string, got %s", describe(v))
	}
	return s
}

func (p *parser) boolean(o *object, key string, def bool) bool {
	v, ok := o.get(key)
	if !ok {
		return def
	}
	switch x := v.(type) {
	case bool:
		return x
	case string: // the Amazon Kinesis Agent accepts "true" and "false" in quotes
		if b, err := strconv.ParseBool(x); err == nil {
			return b
		}
	}
	p.errorf(o.child(key), "must be true or false, got %s", describe(v))
	return def
}

// integer reads a whole number; numbers in strings are accepted as the Amazon Kinesis Agent
// accepts them.
func (p *parser) integer(o *object, key string) (int64, bool) {
	v, ok := o.get(key)
	if !ok {
		return 0, false
	}
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		p.errorf(o.child(key), "must be a whole number, got %s", describe(v))
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		p.errorf(o.child(key), "must be a whole number, got %s", describe(v))
		return 0, false
	}
	return n, true
}

func (p *parser) millis(o *object, key string) (time.Duration, bool) {
	n, ok := p.integer(o, key)
	if !ok {
		return 0, false
	}
	if n < 0 {
		p.errorf(o.child(key), "must not be negative, got %d", n)
		return 0, false
	}
	if n > int64(365*24*time.Hour/time.Millisecond) {
		p.errorf(o.child(key), "must be at most a year, got %d", n)
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

func (p *parser) strings(o *object, key string) ([]string, bool) {
	v, ok := o.get(key)
	if !ok {
		return nil, false
	}
	arr, isArr := v.([]any)
	if !isArr {
		p.errorf(o.child(key), "must be an array of strings, got %s", describe(v))
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			p.errorf(fmt.Sprintf("%s[%d]", o.child(key), i), "must be a string, got %s", describe(e))
			continue
		}
		out = append(out, s)
	}
	return out, true
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case json.Number:
		return x.String()
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return strconv.Quote(x)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// leftovers reports the keys nobody read: known Amazon Kinesis Agent settings that do not
// apply, and unknown keys.
func (p *parser) leftovers(o *object, na map[string]string) {
	keys := make([]string, 0, len(o.m))
	for k := range o.m {
		if !o.used[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why, ok := na[k]; ok {
			p.warnf(o.child(k), "ignored: %s", why)
		} else {
			p.warnf(o.child(k), "unknown setting, ignored")
		}
	}
}

func (p *parser) parseTop(o *object, dropInFlows [][]any) *Config {
	cfg := &Config{}
	cfg.StateDirectory = p.str(o, "stateDirectory")
	cfg.CheckpointFile = p.str(o, "checkpointFile")
	if d, ok := p.millis(o, "checkpointIntervalMillis"); ok {
		cfg.CheckpointInterval = d
		if d == 0 {
			p.errorf(o.child("checkpointIntervalMillis"), "must be positive")
		}
	}
	if n, ok := p.integer(o, "checkpointTimeToLiveDays"); ok {
		if n <= 0 || n > 3650 {
			p.errorf(o.child("checkpointTimeToLiveDays"), "must be between 1 and 3650, got %d", n)
		}
		cfg.CheckpointTTL = time.Duration(n) * 24 * time.Hour
	}
	if d, ok := p.millis(o, "shutdownTimeoutMillis"); ok {
		cfg.ShutdownTimeout = d
		if d == 0 {
			p.errorf(o.child("shutdownTimeoutMillis"), "must be positive")
		}
	}
	if n, ok := p.integer(o, "maxInFlightBytes"); ok {
		if n < 64<<10 {
			p.errorf(o.child("maxInFlightBytes"), "must be at least 65536, got %d", n)
		}
		cfg.MaxInFlightBytes = n
	}
	if n, ok := p.integer(o, "maxInFlightRecords"); ok {
		if n < 1 || n > 1<<24 {
			p.errorf(o.child("maxInFlightRecords"), "must be between 1 and %d, got %d", 1<<24, n)
		}
		cfg.MaxInFlightRecords = int(n)
	}
	if n, ok := p.integer(o, "maxOpenFiles"); ok {
		if n < 1 || n > 1<<20 {
			p.errorf(o.child("maxOpenFiles"), "must be between 1 and %d, got %d", 1<<20, n)
		}
		cfg.MaxOpenFiles = int(n)
	}
	cfg.KinesisEndpoint = p.str(o, "kinesis.endpoint")
	cfg.KinesisRegion = p.str(o, "kinesis.region")
	cfg.FirehoseEndpoint = p.str(o, "firehose.endpoint")
	cfg.AWSAccessKeyID = p.str(o, "awsAccessKeyId")
	cfg.AWSSecretAccessKey = p.str(o, "awsSecretAccessKey")
	if (cfg.AWSAccessKeyID == "") != (cfg.AWSSecretAccessKey == "") {
		p.errorf("awsSecretAccessKey", "awsAccessKeyId and awsSecretAccessKey must be set together")
	}
	cfg.AssumeRoleARN = p.str(o, "assumeRoleARN")
	cfg.AssumeRoleExternalID = p.str(o, "assumeRoleExternalId")
	if n, ok := p.integer(o, "assumeRoleDurationSeconds"); ok {
		if n < 900 || n > 43200 {
			p.errorf("assumeRoleDurationSeconds", "must be between 900 and 43200 (STS's limits), got %d", n)
		}
		cfg.AssumeRoleDuration = time.Duration(n) * time.Second
	}
	cfg.STSEndpoint = p.str(o, "sts.endpoint")
	if cfg.AssumeRoleARN != "" && !strings.HasPrefix(cfg.AssumeRoleARN, "arn:") {
		p.errorf("assumeRoleARN", "must be a role ARN (arn:aws:iam::ACCOUNT:role/NAME), got %s", describe(cfg.AssumeRoleARN))
	}
	if cfg.AssumeRoleARN == "" && cfg.AssumeRoleExternalID != "" {
		p.errorf("assumeRoleExternalId", "needs assumeRoleARN")
	}
	cfg.CloudWatchEmitMetrics = p.boolean(o, "cloudwatch.emitMetrics", true)
	cfg.CloudWatchEndpoint = p.str(o, "cloudwatch.endpoint")
	cfg.CloudWatchNamespace = p.str(o, "cloudwatch.namespace")
	cfg.KinesisAgentMetrics = p.boolean(o, "cloudwatch.kinesisAgentMetrics", false)

	flowsOf := func(prefix string, arr []any) int {
		for i, e := range arr {
			path := fmt.Sprintf("%sflows[%d]", prefix, i)
			m, isObj := e.(map[string]any)
			if !isObj {
				p.errorf(path, "must be an object, got %s", describe(e))
				continue
			}
			fo := &object{path: path, m: m}
			if f, keep := p.parseFlow(fo); keep {
				cfg.Flows = append(cfg.Flows, f)
				p.origins = append(p.origins, path)
			}
		}
		return len(arr)
	}
	listed := 0
	v, ok := o.get("flows")
	if ok {
		if arr, isArr := v.([]any); !isArr {
			p.errorf("flows", "must be an array, got %s", describe(v))
			listed = -1
		} else {
			listed += flowsOf("", arr)
		}
	}
	for i, arr := range dropInFlows {
		if listed >= 0 {
			listed += flowsOf(p.dropIns[i]+": ", arr)
		}
	}
	switch {
	case listed == 0:
		p.errorf("flows", "must list at least one flow (here or in the %s directory beside this file)", DropInDirName)
	}
	p.leftovers(o, notApplicable)
	cfg.Warnings = p.warnings
	return cfg
}

// parseFlow reads one flow; keep is false for a flow that cannot run here (a Firehose one).
func (p *parser) parseFlow(o *object) (f Flow, keep bool) {
	f.FilePattern = p.str(o, "filePattern")
	if ex, ok := p.strings(o, "excludePatterns"); ok {
		f.ExcludePatterns = ex
	}
	f.KinesisStream = p.str(o, "kinesisStream")
	f.DeliveryStream = p.str(o, "deliveryStream")
	if f.DeliveryStream != "" && f.KinesisStream != "" {
		p.warnf(o.child("kinesisStream"), "ignored: the flow also names deliveryStream, which takes precedence as in the Amazon Kinesis Agent")
		f.KinesisStream = ""
	}
	if pk := p.str(o, "partitionKeyOption"); pk != "" {
		f.PartitionKeyOption = PartitionKeyOption(strings.ToUpper(pk))
	}
	f.PartitionKeyField = p.str(o, "partitionKeyField")
	if ip := p.str(o, "initialPosition"); ip != "" {
		f.InitialPosition = InitialPosition(strings.ToUpper(ip))
	}
	f.MultiLineStartPattern = p.str(o, "multiLineStartPattern")
	if n, ok := p.integer(o, "skipHeaderLines"); ok {
		if n < 0 || n > 1<<30 {
			p.errorf(o.child("skipHeaderLines"), "must be a non-negative whole number, got %d", n)
		}
		f.SkipHeaderLines = int(n)
	}
	if _, ok := o.m["truncatedRecordTerminator"]; ok {
		f.TruncatedRecordTerminator = p.str(o, "truncatedRecordTerminator")
		if f.TruncatedRecordTerminator == "" {
			p.errorf(o.child("truncatedRecordTerminator"), "must not be empty")
		}
	}
	intField := func(key string, dst *int) {
		if n, ok := p.integer(o, key); ok {
			if n < 0 || n > 1<<40 {
				p.errorf(o.child(key), "out of range: %d", n)
				return
			}
			*dst = int(n)
			if n == 0 {
				p.errorf(o.child(key), "must be positive")
			}
		}
	}
	intField("maxRecordSizeBytes", &f.MaxRecordSizeBytes)
	intField("maxBufferSizeBytes", &f.MaxBufferSizeBytes)
	intField("maxBufferSizeRecords", &f.MaxBufferSizeRecords)
	durField := func(key string, dst *time.Duration, positive bool) {
		if d, ok := p.millis(o, key); ok {
			*dst = d
			if positive && d == 0 {
				p.errorf(o.child(key), "must be positive")
			}
		}
	}
	durField("maxBufferAgeMillis", &f.MaxBufferAge, true)
	durField("minTimeBetweenFilePollsMillis", &f.MinTimeBetweenFilePolls, true)
	_, hasRescan := o.m["rescanIntervalMillis"]
	_, hasRefresh := o.m["maxTimeBetweenFileTrackerRefreshMillis"]
	if hasRescan && hasRefresh {
		p.errorf(o.child("rescanIntervalMillis"), "set either rescanIntervalMillis or maxTimeBetweenFileTrackerRefreshMillis, not both")
	}
	durField("rescanIntervalMillis", &f.RescanInterval, true)
	if !hasRescan {
		durField("maxTimeBetweenFileTrackerRefreshMillis", &f.RescanInterval, true)
	}
	durField("partialLineTimeoutMillis", &f.PartialLineTimeout, true)
	durField("multiLineTimeoutMillis", &f.MultiLineTimeout, true)
	durField("ignoreFilesOlderThanMillis", &f.IgnoreFilesOlderThan, false)
	durField("closeInactiveMillis", &f.CloseInactive, true)
	durField("retryInitialBackoffMillis", &f.RetryInitialBackoff, true)
	durField("retryMaxBackoffMillis", &f.RetryMaxBackoff, true)

	if v, ok := o.get("dataProcessingOptions"); ok {
		path := o.child("dataProcessingOptions")
		arr, isArr := v.([]any)
		if !isArr {
			p.errorf(path, "must be an array, got %s", describe(v))
		}
		for i, e := range arr {
			ipath := fmt.Sprintf("%s[%d]", path, i)
			m, isObj := e.(map[string]any)
			if !isObj {
				p.errorf(ipath, "must be an object, got %s", describe(e))
				continue
			}
			if opt, keep := p.parseOption(&object{path: ipath, m: m}); keep {
				f.DataProcessingOptions = append(f.DataProcessingOptions, opt)
			}
		}
	}
	p.leftovers(o, flowNotApplicable)
	return f, true
}

func (p *parser) parseOption(o *object) (opt ProcessingOption, keep bool) {
	opt.OptionName = strings.ToUpper(p.str(o, "optionName"))
	switch opt.OptionName {
	case "ADDBRACKETS":
		// Keep reading the option's keys so only this warning is shown for it.
		for k := range o.m {
			o.get(k)
		}
		p.warnf(o.path, "skipped: optionName %s is not supported; records are sent without this step", opt.OptionName)
		return opt, false
	}
	if names, ok := p.strings(o, "customFieldNames"); ok {
		opt.CustomFieldNames = names
		if names == nil {
			opt.CustomFieldNames = []string{}
		}
	}
	if _, ok := o.m["delimiter"]; ok {
		opt.Delimiter = p.str(o, "delimiter")
		if opt.Delimiter == "" {
			p.errorf(o.child("delimiter"), "must not be empty")
		}
	}
	opt.LogFormat = strings.ToUpper(p.str(o, "logFormat"))
	opt.MatchPattern = p.str(o, "matchPattern")
	opt.JSONFormat = strings.ToUpper(p.str(o, "jsonFormat"))
	if opt.OptionName == "SINGLELINE" {
		if po, ok := p.strings(o, "parseOptions"); ok {
			opt.ParseOptions = po
			for i, v := range po {
				if v != "NO_TRIM" && v != "ESCAPE_NEW_LINE" {
					p.warnf(fmt.Sprintf("%s[%d]", o.child("parseOptions"), i), "ignored: %q is not NO_TRIM or ESCAPE_NEW_LINE", v)
				}
			}
		}
	}
	if opt.OptionName == "ADDEC2METADATA" {
		if n, ok := p.integer(o, "metadataTTL"); ok {
			if n < 1 || n > 7*24*3600 {
				p.errorf(o.child("metadataTTL"), "must be between 1 and 604800 seconds, got %d", n)
			}
			opt.MetadataTTL = time.Duration(n) * time.Second
		}
	}
	if opt.OptionName == "ADDMETADATA" {
		_, hasMeta := o.m["metadata"]
		_, hasFields := o.m["metadataFields"]
		key := "metadata"
		if hasMeta && hasFields {
			p.errorf(o.child("metadataFields"), "set metadata (the Amazon Kinesis Agent's name) or metadataFields, not both")
		} else if hasFields {
			key = "metadataFields"
		}
		if v, ok := o.get(key); ok {
			raw, err := json.Marshal(v)
			if err != nil {
				p.errorf(o.child(key), "%v", err)
			}
			opt.MetadataFields = raw
		}
		o.get("metadataFields")
		opt.Timestamp = p.boolean(o, "timestamp", false)
	}
	p.leftovers(o, nil)
	return opt, true
}

// applyDefaults fills in every setting left at its zero value.
func (c *Config) applyDefaults() {
	if c.StateDirectory == "" {
		c.StateDirectory = DefaultStateDirectory
	}
	if c.CheckpointFile == "" {
		c.CheckpointFile = filepath.Join(c.StateDirectory, CheckpointFileName)
	}
	setDur(&c.CheckpointInterval, DefaultCheckpointInterval)
	setDur(&c.CheckpointTTL, DefaultCheckpointTTL)
	setDur(&c.ShutdownTimeout, DefaultShutdownTimeout)
	setDur(&c.AssumeRoleDuration, DefaultAssumeRoleDuration)
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if c.MaxInFlightRecords == 0 {
		c.MaxInFlightRecords = DefaultMaxInFlightRecords
	}
	if c.MaxOpenFiles == 0 {
		c.MaxOpenFiles = DefaultMaxOpenFiles
	}
	for i := range c.Flows {
		c.Flows[i].applyDefaults()
	}
}

func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func (f *Flow) applyDefaults() {
	if f.PartitionKeyOption == "" {
		if f.PartitionKeyField != "" {
			f.PartitionKeyOption = PartitionKeyField
		} else {
			f.PartitionKeyOption = PartitionKeyRandom
		}
	}
	if f.InitialPosition == "" {
		f.InitialPosition = EndOfFile
	}
	if f.TruncatedRecordTerminator == "" {
		f.TruncatedRecordTerminator = "\n"
	}
	if f.MaxRecordSizeBytes == 0 {
		f.MaxRecordSizeBytes = DefaultMaxRecordSizeBytes
		if f.DeliveryStream != "" {
			f.MaxRecordSizeBytes = MaxFirehoseRecordSize
		}
	}
	setDur(&f.MaxBufferAge, DefaultMaxBufferAge)
	if f.MaxBufferSizeBytes == 0 {
		f.MaxBufferSizeBytes = DefaultMaxBufferSizeBytes
		if f.DeliveryStream != "" {
			f.MaxBufferSizeBytes = MaxFirehoseBatchBytes
		}
	}
	if f.MaxBufferSizeRecords == 0 {
		f.MaxBufferSizeRecords = DefaultMaxBufferSizeRecords
	}
	setDur(&f.MinTimeBetweenFilePolls, DefaultMinTimeBetweenFilePolls)
	setDur(&f.RescanInterval, DefaultRescanInterval)
	setDur(&f.PartialLineTimeout, DefaultPartialLineTimeout)
	setDur(&f.MultiLineTimeout, DefaultMultiLineTimeout)
	setDur(&f.CloseInactive, DefaultCloseInactive)
	setDur(&f.RetryInitialBackoff, DefaultRetryInitialBackoff)
	setDur(&f.RetryMaxBackoff, DefaultRetryMaxBackoff)
	for i := range f.DataProcessingOptions {
		o := &f.DataProcessingOptions[i]
		if o.JSONFormat == "" {
			o.JSONFormat = "COMPACT"
		}
		if o.OptionName == "ADDEC2METADATA" && o.MetadataTTL == 0 {
			o.MetadataTTL = DefaultMetadataTTL
		}
		if o.OptionName == "CSVTOJSON" && o.Delimiter == "" {
			o.Delimiter = ","
		}
	}
}

// streamName is what Kinesis accepts as a stream name, deliveryStreamName what Firehose
// accepts as a delivery stream's.
var (
	streamName         = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
	deliveryStreamName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)
)

// Validate checks a configuration whose defaults have been applied, returning every problem
// found, each naming its JSON path.
func (c *Config) Validate() error {
	p := &parser{}
	if c.CheckpointFile != "" && !filepath.IsAbs(c.CheckpointFile) {
		p.errorf("checkpointFile", "must be an absolute path, got %q", c.CheckpointFile)
	}
	if c.MaxInFlightBytes < 0 {
		p.errorf("maxInFlightBytes", "must be positive")
	}
	if c.MaxInFlightRecords < 0 {
		p.errorf("maxInFlightRecords", "must be positive")
	}
	if c.MaxOpenFiles < 0 || c.MaxOpenFiles > 1<<20 {
		p.errorf("maxOpenFiles", "must be between 1 and %d, got %d", 1<<20, c.MaxOpenFiles)
	}
	if len(c.Flows) == 0 {
		p.errorf("flows", "must list at least one flow")
	}
	seen := map[string]int{}
	for i := range c.Flows {
		f := &c.Flows[i]
		path := fmt.Sprintf("flows[%d]", i)
		f.validate(p, path)
		if j, dup := seen[f.Key()]; dup {
			p.errorf(path, "same filePattern and destination as flows[%d]", j)
		}
		seen[f.Key()] = i
	}
	return p.err()
}

func (f *Flow) validate(p *parser, path string) {
	at := func(k string) string { return path + "." + k }
	switch {
	case strings.TrimSpace(f.FilePattern) == "":
		p.errorf(at("filePattern"), "must not be empty")
	case !filepath.IsAbs(f.FilePattern):
		p.errorf(at("filePattern"), "must be an absolute path, got %q", f.FilePattern)
	default:
		if _, err := compileGlob(f.FilePattern); err != nil {
			p.errorf(at("filePattern"), "%v", err)
		}
	}
	for i, ex := range f.ExcludePatterns {
		if _, err := compileExclude(ex); err != nil {
			p.errorf(fmt.Sprintf("%s[%d]", at("excludePatterns"), i), "%v", err)
		}
	}
	switch {
	case f.DeliveryStream != "":
		if !deliveryStreamName.MatchString(f.DeliveryStream) {
			p.errorf(at("deliveryStream"), "%q is not a valid delivery stream name (1 to 64 of a-z, A-Z, 0-9, _ . -)", f.DeliveryStream)
		}
		if f.MaxRecordSizeBytes > MaxFirehoseRecordSize {
			p.errorf(at("maxRecordSizeBytes"), "must be at most %d for a Firehose flow (Firehose's record limit), got %d", MaxFirehoseRecordSize, f.MaxRecordSizeBytes)
		}
		if f.MaxBufferSizeBytes > MaxFirehoseBatchBytes {
			p.errorf(at("maxBufferSizeBytes"), "must be at most %d for a Firehose flow (one PutRecordBatch call), got %d", MaxFirehoseBatchBytes, f.MaxBufferSizeBytes)
		}
	case f.KinesisStream == "":
		p.errorf(at("kinesisStream"), "must not be empty (or name a Firehose deliveryStream)")
	case !streamName.MatchString(f.KinesisStream):
		p.errorf(at("kinesisStream"), "%q is not a valid stream name (1 to 128 of a-z, A-Z, 0-9, _ . -)", f.KinesisStream)
	}
	switch f.PartitionKeyOption {
	case PartitionKeyRandom, PartitionKeyDeterministic:
		if f.PartitionKeyField != "" {
			p.errorf(at("partitionKeyField"), "needs partitionKeyOption FIELD (or none), not %s", f.PartitionKeyOption)
		}
	case PartitionKeyField:
		if f.PartitionKeyField == "" {
			p.errorf(at("partitionKeyField"), "must name a field when partitionKeyOption is FIELD")
		} else if !producesFields(f.DataProcessingOptions) {
			p.errorf(at("partitionKeyField"), "needs a CSVTOJSON or LOGTOJSON step in dataProcessingOptions to parse fields from")
		}
	default:
		p.errorf(at("partitionKeyOption"), "must be RANDOM, DETERMINISTIC or FIELD, got %q", f.PartitionKeyOption)
	}
	switch f.InitialPosition {
	case StartOfFile, EndOfFile:
	default:
		p.errorf(at("initialPosition"), "must be START_OF_FILE or END_OF_FILE, got %q", f.InitialPosition)
	}
	if f.MultiLineStartPattern != "" {
		if _, err := regexp.Compile(f.MultiLineStartPattern); err != nil {
			p.errorf(at("multiLineStartPattern"), "invalid regular expression: %v", err)
		}
	}
	if f.SkipHeaderLines < 0 {
		p.errorf(at("skipHeaderLines"), "must not be negative")
	}
	if f.MaxRecordSizeBytes < 1024 || f.MaxRecordSizeBytes > MaxRecordSizeLimit {
		p.errorf(at("maxRecordSizeBytes"), "must be between 1024 and %d, got %d", MaxRecordSizeLimit, f.MaxRecordSizeBytes)
	} else if len(f.TruncatedRecordTerminator) >= f.MaxRecordSizeBytes-256 {
		p.errorf(at("truncatedRecordTerminator"), "is longer than a record can hold")
	}
	if f.MaxBufferAge < time.Second || f.MaxBufferAge > 15*time.Minute {
		p.errorf(at("maxBufferAgeMillis"), "must be between 1000 and 900000, got %d", f.MaxBufferAge.Milliseconds())
	}
	if f.MaxBufferSizeBytes < 1 || f.MaxBufferSizeBytes > 5<<20 {
		p.errorf(at("maxBufferSizeBytes"), "must be between 1 and %d, got %d", 5<<20, f.MaxBufferSizeBytes)
	}
	if f.MaxBufferSizeRecords < 1 || f.MaxBufferSizeRecords > 500 {
		p.errorf(at("maxBufferSizeRecords"), "must be between 1 and 500, got %d", f.MaxBufferSizeRecords)
	}
	if f.RetryMaxBackoff < f.RetryInitialBackoff {
		p.errorf(at("retryMaxBackoffMillis"), "must not be less than retryInitialBackoffMillis")
	}
	for i := range f.DataProcessingOptions {
		validateOption(p, fmt.Sprintf("%s.dataProcessingOptions[%d]", path, i), &f.DataProcessingOptions[i])
	}
}

func producesFields(opts []ProcessingOption) bool {
	for _, o := range opts {
		if o.OptionName == "CSVTOJSON" || o.OptionName == "LOGTOJSON" {
			return true
		}
	}
	return false
}

func validateOption(p *parser, path string, o *ProcessingOption) {
	at := func(k string) string { return path + "." + k }
	if o.JSONFormat != "" && o.JSONFormat != "COMPACT" && o.JSONFormat != "PRETTYPRINT" {
		p.errorf(at("jsonFormat"), "must be COMPACT or PRETTYPRINT, got %q", o.JSONFormat)
	}
	switch o.OptionName {
	case "":
		p.errorf(at("optionName"), "must not be empty")
	case "SINGLELINE", "ADDEC2METADATA":
	case "CSVTOJSON":
		if len(o.CustomFieldNames) == 0 {
			p.errorf(at("customFieldNames"), "must list the field names for CSVTOJSON")
		}
		if _, err := compileDelimiter(o.Delimiter); err != nil {
			p.errorf(at("delimiter"), "invalid regular expression: %v", err)
		}
	case "LOGTOJSON":
		if _, err := newLogParser(o); err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				p.errorf(at(ce.Path), "%s", ce.Problem)
			} else {
				p.errorf(path, "%v", err)
			}
		}
	case "ADDMETADATA":
		if len(o.MetadataFields) > 0 && !json.Valid(o.MetadataFields) {
			p.errorf(at("metadata"), "must be valid JSON")
		}
	default:
		p.errorf(at("optionName"), "must be SINGLELINE, CSVTOJSON, LOGTOJSON, ADDMETADATA or ADDEC2METADATA, got %q", o.OptionName)
	}
	for i, n := range o.CustomFieldNames {
		if n == "" {
			p.errorf(fmt.Sprintf("%s[%d]", at("customFieldNames"), i), "must not be empty")
		}
	}
}
