package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// kinesisAgentJSON is an agent.json as Amazon Kinesis Agent users write it: settings that
// apply, settings that do not, and a Firehose flow.
const kinesisAgentJSON = `{
  "cloudwatch.emitMetrics": false,
  "kinesis.endpoint": "https://kinesis.eu-west-1.amazonaws.com",
  "kinesis.region": "eu-west-1",
  "firehose.endpoint": "https://firehose.eu-west-1.amazonaws.com",
  "assumeRoleARN": "arn:aws:iam::123456789012:role/agent",
  "cloudwatch.tagInstance": true,
  "checkpointFile": "/var/lib/shardline-agent/cp.json",
  "shutdownTimeoutMillis": "15000",
  "flows": [
    {
      "filePattern": "/var/log/httpd/access_log*",
      "kinesisStream": "web",
      "partitionKeyOption": "DETERMINISTIC",
      "initialPosition": "START_OF_FILE",
      "maxBufferAgeMillis": 5000,
      "maxBufferSizeRecords": 100,
      "skipHeaderLines": 1,
      "dataProcessingOptions": [
        {"optionName": "LOGTOJSON", "logFormat": "COMBINEDAPACHELOG"}
      ]
    },
    {
      "filePattern": "/var/log/app/*.log",
      "kinesisStream": "app",
      "multiLineStartPattern": "\\d{4}-\\d{2}-\\d{2}",
      "truncatedRecordTerminator": "<TRUNCATED>\n",
      "maxTimeBetweenFileTrackerRefreshMillis": 2000,
      "dataProcessingOptions": [
        {"optionName": "SINGLELINE"},
        {"optionName": "CSVTOJSON", "customFieldNames": ["a", "b"], "delimiter": "\\t"},
        {"optionName": "ADDEC2METADATA"}
      ]
    },
    {"filePattern": "/var/log/other.log", "deliveryStream": "firehose-only"}
  ]
}`

func TestParseKinesisAgentConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(kinesisAgentJSON))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CloudWatchEmitMetrics || cfg.KinesisRegion != "eu-west-1" || cfg.KinesisEndpoint == "" {
		t.Errorf("global settings: %+v", cfg)
	}
	if cfg.CheckpointFile != "/var/lib/shardline-agent/cp.json" || cfg.ShutdownTimeout != 15*time.Second {
		t.Errorf("checkpointFile %q, shutdown %v", cfg.CheckpointFile, cfg.ShutdownTimeout)
	}
	if len(cfg.Flows) != 3 || cfg.Flows[2].DeliveryStream != "firehose-only" || cfg.Flows[2].MaxRecordSizeBytes != MaxFirehoseRecordSize {
		t.Fatalf("want the 2 Kinesis flows and the Firehose one, got %+v", cfg.Flows)
	}
	if cfg.FirehoseEndpoint != "https://firehose.eu-west-1.amazonaws.com" {
		t.Errorf("firehose.endpoint %q", cfg.FirehoseEndpoint)
	}
	web, app := cfg.Flows[0], cfg.Flows[1]
	if web.PartitionKeyOption != PartitionKeyDeterministic || web.InitialPosition != StartOfFile ||
		web.MaxBufferAge != 5*time.Second || web.MaxBufferSizeRecords != 100 || web.SkipHeaderLines != 1 {
		t.Errorf("web flow: %+v", web)
	}
	if app.InitialPosition != EndOfFile || app.PartitionKeyOption != PartitionKeyRandom {
		t.Errorf("defaults are the Amazon Kinesis Agent's: %+v", app)
	}
	if app.RescanInterval != 2*time.Second || app.TruncatedRecordTerminator != "<TRUNCATED>\n" {
		t.Errorf("app flow: %+v", app)
	}
	if len(app.DataProcessingOptions) != 3 || app.DataProcessingOptions[1].Delimiter != `\t` || app.DataProcessingOptions[2].MetadataTTL != DefaultMetadataTTL {
		t.Errorf("options: %+v", app.DataProcessingOptions)
	}
	warnings := strings.Join(cfg.Warnings, "\n")
	for _, want := range []string{
		"cloudwatch.tagInstance: ignored",
	} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	if cfg.AssumeRoleARN != "arn:aws:iam::123456789012:role/agent" || cfg.AssumeRoleDuration != time.Hour || strings.Contains(warnings, "assumeRoleARN") {
		t.Errorf("assumeRoleARN %q for %v; warnings:\n%s", cfg.AssumeRoleARN, cfg.AssumeRoleDuration, warnings)
	}
	if strings.Count(warnings, "cloudwatch.tagInstance") != 1 {
		t.Errorf("each setting is reported once:\n%s", warnings)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ json, want string }{
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s"}, {"filePattern": "", "kinesisStream": "s"}]}`,
			"flows[1].filePattern: must not be empty"},
		{`{"flows": [{"filePattern": "relative/*.log", "kinesisStream": "s"}]}`,
			`flows[0].filePattern: must be an absolute path`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "skipHeaderLines": "two"}]}`,
			`flows[0].skipHeaderLines: must be a whole number, got "two"`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "initialPosition": "MIDDLE"}]}`,
			`flows[0].initialPosition: must be START_OF_FILE or END_OF_FILE, got "MIDDLE"`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "partitionKeyOption": "HASH"}]}`,
			`flows[0].partitionKeyOption: must be RANDOM, DETERMINISTIC or FIELD`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "multiLineStartPattern": "(["}]}`,
			`flows[0].multiLineStartPattern: invalid regular expression`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "maxBufferAgeMillis": 10}]}`,
			`flows[0].maxBufferAgeMillis: must be between 1000 and 900000, got 10`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "SYSLOG", "customFieldNames": ["a"]}]}]}`,
			`flows[0].dataProcessingOptions[0].customFieldNames: SYSLOG has 5 fields, customFieldNames names 1`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "SYSLOG", "matchPattern": "(a)(b)", "customFieldNames": ["a"]}]}]}`,
			`flows[0].dataProcessingOptions[0].customFieldNames: names 1 fields but matchPattern has 2 capture groups`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "dataProcessingOptions": [{"optionName": "CSVTOJSON"}]}]}`,
			`flows[0].dataProcessingOptions[0].customFieldNames: must list the field names for CSVTOJSON`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "dataProcessingOptions": [{"optionName": "UPPERCASE"}]}]}`,
			`flows[0].dataProcessingOptions[0].optionName: must be SINGLELINE, CSVTOJSON, LOGTOJSON, ADDMETADATA or ADDEC2METADATA, got "UPPERCASE"`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "partitionKeyField": "host"}]}`,
			`flows[0].partitionKeyField: needs a CSVTOJSON or LOGTOJSON step`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s"}, {"filePattern": "/a", "kinesisStream": "s"}]}`,
			`flows[1]: same filePattern and destination as flows[0]`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "bad name!"}]}`,
			`flows[0].kinesisStream: "bad name!" is not a valid stream name`},
		{`{"flows": []}`, `flows: must list at least one flow`},
		{`{"flows": [{"filePattern": "/a"}]}`, `flows[0].kinesisStream: must not be empty (or name a Firehose deliveryStream)`},
		{`{"flows": [{"filePattern": "/a", "deliveryStream": "f", "maxRecordSizeBytes": 1048576}]}`, `flows[0].maxRecordSizeBytes: must be at most 1024000 for a Firehose flow`},
		{`{"flows": [{"filePattern": "/a", "deliveryStream": "f", "maxBufferSizeBytes": 5242880}]}`, `flows[0].maxBufferSizeBytes: must be at most 4194304 for a Firehose flow`},
		{`{"checkpointFile": 7, "flows": [{"filePattern": "/a", "kinesisStream": "s"}]}`, `checkpointFile: must be a string, got 7`},
		{"{\n  \"flows\": [\n    {\"filePattern\": \"/a\",, }\n  ]\n}", `invalid JSON at line 3, column 26`},
		{`[]`, `must be a JSON object`},
		{`{"flows": [{"filePattern": "/a", "kinesisStream": "s"}]} {}`, `unexpected data after the top-level object`},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config %s\n  error %v\n  want  %q", c.json, err, c.want)
		}
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	_, err := ParseConfig([]byte(`{"flows": [{"filePattern": "", "kinesisStream": ""}, {"filePattern": "/x", "kinesisStream": "s", "skipHeaderLines": -1}]}`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"flows[0].filePattern", "flows[0].kinesisStream", "flows[1].skipHeaderLines"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}

func TestConfigUnknownSettingIsReported(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"flows": [{"filePattern": "/a", "kinesisStream": "s", "filepattern": "/b"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "flows[0].filepattern: unknown setting") {
		t.Errorf("warnings: %q", cfg.Warnings)
	}
}

func TestConfigDefaultsAndShardlineSettings(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{
		"stateDirectory": "/srv/state",
		"maxInFlightRecords": 50,
		"flows": [{"filePattern": "/a/**/*.log", "kinesisStream": "s",
			"partitionKeyField": "host", "partialLineTimeoutMillis": 250, "multiLineTimeoutMillis": 750, "ignoreFilesOlderThanMillis": 86400000,
			"dataProcessingOptions": [{"optionName": "LOGTOJSON", "logFormat": "commonapachelog"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CheckpointFile != filepath.Join("/srv/state", CheckpointFileName) {
		t.Errorf("checkpoint file %q", cfg.CheckpointFile)
	}
	f := cfg.Flows[0]
	if f.PartitionKeyOption != PartitionKeyField || f.PartialLineTimeout != 250*time.Millisecond || f.MultiLineTimeout != 750*time.Millisecond ||
		f.IgnoreFilesOlderThan != 24*time.Hour || f.MaxRecordSizeBytes != DefaultMaxRecordSizeBytes {
		t.Errorf("flow %+v", f)
	}
	if !cfg.CloudWatchEmitMetrics || cfg.ShutdownTimeout != DefaultShutdownTimeout || cfg.MaxInFlightRecords != 50 {
		t.Errorf("config %+v", cfg)
	}
}

func TestLoadConfigNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(p, []byte(`{"flows": [{"kinesisStream": "s"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(p)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "flows[0].filePattern: must not be empty") {
		t.Errorf("error %v", err)
	}
}

// TestFlowMetricsDimension: with kinesisAgentMetrics a flow's metrics carry the Destination
// values of the Amazon Kinesis Agent's KinesisSender ("KinesisStream:NAME") and
// FirehoseSender ("DeliveryStream:NAME"); without it, StreamName.
func TestFlowMetricsDimension(t *testing.T) {
	k := Flow{FilePattern: "/var/log/a.log", KinesisStream: "s1"}
	f := Flow{FilePattern: "/var/log/b.log", DeliveryStream: "d1"}
	for _, c := range []struct {
		f          *Flow
		compat     bool
		name, want string
	}{
		{&k, true, DimDestination, "KinesisStream:s1"},
		{&f, true, DimDestination, "DeliveryStream:d1"},
		{&k, false, "StreamName", "s1"},
	} {
		if d := FlowMetricsDimension(c.f, c.compat); d.Name != c.name || d.Value != c.want {
			t.Errorf("FlowMetricsDimension(%s, %v) = %s=%s, want %s=%s", c.f.Key(), c.compat, d.Name, d.Value, c.name, c.want)
		}
	}
	cfg, err := ParseConfig([]byte(`{"cloudwatch.kinesisAgentMetrics": true, "flows": [{"filePattern": "/var/log/a.log", "kinesisStream": "s"}]}`))
	if err != nil || !cfg.KinesisAgentMetrics {
		t.Errorf("cloudwatch.kinesisAgentMetrics not read: %v, %v", cfg, err)
	}
}
