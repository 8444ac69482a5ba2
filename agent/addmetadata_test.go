package agent

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestAddMetadataKinesisAgentForm: ADDMETADATA as Amazon Kinesis Agent users write it, with a
// "metadata" value and "timestamp": "true" (a string: AddMetadataConverter reads it with
// new Boolean(String)). The record is, as that converter writes it, {"ts": the time of
// conversion in UTC with milliseconds, "metadata": the value, "data": the line without its
// newline}, in that order, followed by a newline. The metadata object's keys come out sorted
// (the converter's own test expects the same string).
func TestAddMetadataKinesisAgentForm(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"flows": [{"filePattern": "/var/log/a.log", "kinesisStream": "s",
		"dataProcessingOptions": [{"optionName": "ADDMETADATA", "timestamp": "true",
			"metadata": {"key": "value", "foo": {"bar": "baz"}}}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("warnings %q", cfg.Warnings)
	}
	opts := cfg.Flows[0].DataProcessingOptions
	before := time.Now().UTC().Truncate(time.Millisecond)
	out, ok := runProcessor(t, opts, "This is the data\n")
	after := time.Now().UTC()
	if !ok {
		t.Fatal("rejected")
	}
	re := regexp.MustCompile(`^\{"ts":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)","metadata":\{"foo":\{"bar":"baz"\},"key":"value"\},"data":"This is the data"\}\n$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("record %q", out)
	}
	ts, err := time.Parse("2006-01-02T15:04:05.000Z", m[1])
	if err != nil || ts.Before(before) || ts.After(after) {
		t.Errorf("ts %s not the time of conversion (between %v and %v)", m[1], before, after)
	}

	// Without timestamp (or with "false") there is no ts, as in the converter's own test.
	for _, ts := range []string{``, `"timestamp": "false",`, `"timestamp": false,`} {
		cfg, err := ParseConfig([]byte(`{"flows": [{"filePattern": "/var/log/a.log", "kinesisStream": "s",
			"dataProcessingOptions": [{"optionName": "ADDMETADATA", ` + ts + ` "metadata": {"key": "value"}}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := runProcessor(t, cfg.Flows[0].DataProcessingOptions, "This is the data\n")
		if out != `{"metadata":{"key":"value"},"data":"This is the data"}`+"\n" {
			t.Errorf("%s: record %q", ts, out)
		}
	}

	// Pretty printed, the ts comes first too, and the record is valid JSON.
	opts[0].JSONFormat = "PRETTYPRINT"
	out, _ = runProcessor(t, opts, "x\n")
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || !strings.HasPrefix(out, "{\n  \"ts\" : \"") || v["data"] != "x" {
		t.Errorf("pretty record %q: %v", out, err)
	}

	for _, bad := range []string{`"timestamp": "yes"`, `"timestamp": 1`} {
		_, err := ParseConfig([]byte(`{"flows": [{"filePattern": "/var/log/a.log", "kinesisStream": "s",
			"dataProcessingOptions": [{"optionName": "ADDMETADATA", "metadata": {}, ` + bad + `}]}]}`))
		if err == nil || !strings.Contains(err.Error(), "flows[0].dataProcessingOptions[0].timestamp") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
