package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/shardline/shardline/agent"
	"github.com/shardline/shardline/internal/testenv"
)

// fakeSTS answers AssumeRole as the STS API reference documents it (awsQuery: a form-encoded
// POST with Action=AssumeRole, RoleArn, RoleSessionName, DurationSeconds and ExternalId, and
// an XML AssumeRoleResponse with temporary credentials), and remembers what it was asked and
// with which access key the request was signed.
type fakeSTS struct {
	mu      sync.Mutex
	form    url.Values
	signer  string
	answers int
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	f.mu.Lock()
	f.form = form
	if _, after, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		f.signer, _, _ = strings.Cut(after, "/")
	}
	f.answers++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	io.WriteString(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIAASSUMEDROLE</AccessKeyId>
      <SecretAccessKey>assumed-secret</SecretAccessKey>
      <SessionToken>assumed-token</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/agent/AWSKinesisAgent</Arn>
      <AssumedRoleId>AROAEXAMPLE:AWSKinesisAgent</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>`)
}

// TestCredentialSettings: awsAccessKeyId and awsSecretAccessKey come before the environment's
// credentials, and assumeRoleARN assumes that role through sts.endpoint, signed with them,
// with the Kinesis Agent's session name and the external ID, so the clients use the role's
// temporary credentials. No secret appears in the logs.
func TestCredentialSettings(t *testing.T) {
	dir := t.TempDir()
	none := filepath.Join(dir, "none")
	for k, v := range map[string]string{"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none, "AWS_PROFILE": "",
		"AWS_ACCESS_KEY_ID": "AKIDFROMENV", "AWS_SECRET_ACCESS_KEY": "env-secret"} {
		t.Setenv(k, v)
	}
	sts := &fakeSTS{}
	srv := httptest.NewServer(sts)
	defer srv.Close()
	conf := filepath.Join(dir, "agent.json")
	write := func(extra string) {
		if err := os.WriteFile(conf, []byte(`{"cloudwatch.emitMetrics": false, `+extra+`
			"flows": [{"filePattern": "/var/log/x.log", "kinesisStream": "s"}]}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	retrieve := func() string {
		t.Helper()
		cfg, err := agent.LoadConfig(conf)
		if err != nil {
			t.Fatal(err)
		}
		ac, err := loadAWSConfig(context.Background(), cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		creds, err := ac.Credentials.Retrieve(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return creds.AccessKeyID
	}

	write(`"awsAccessKeyId": "AKIDFROMCONFIG", "awsSecretAccessKey": "config-secret",`)
	if got := retrieve(); got != "AKIDFROMCONFIG" {
		t.Errorf("static keys: credentials %s, want the configuration's", got)
	}
	write(`"awsAccessKeyId": "AKIDFROMCONFIG", "awsSecretAccessKey": "config-secret",
		"assumeRoleARN": "arn:aws:iam::123456789012:role/agent", "assumeRoleExternalId": "ext-42",
		"sts.endpoint": "` + srv.URL + `",`)
	if got := retrieve(); got != "ASIAASSUMEDROLE" {
		t.Errorf("assumed role: credentials %s, want the role's", got)
	}
	sts.mu.Lock()
	form, signer := sts.form, sts.signer
	sts.mu.Unlock()
	if form.Get("Action") != "AssumeRole" || form.Get("RoleArn") != "arn:aws:iam::123456789012:role/agent" ||
		form.Get("RoleSessionName") != "AWSKinesisAgent" || form.Get("ExternalId") != "ext-42" || form.Get("DurationSeconds") != "3600" {
		t.Errorf("AssumeRole request %v", form)
	}
	if signer != "AKIDFROMCONFIG" {
		t.Errorf("AssumeRole signed with %q, want the configuration's keys", signer)
	}
	for _, secret := range []string{"config-secret", "assumed-secret", "env-secret"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("a secret is in the logs:\n%s", logs.String())
		}
	}

	write(`"awsAccessKeyId": "AKIDFROMCONFIG",`)
	if _, err := agent.LoadConfig(conf); err == nil || !strings.Contains(err.Error(), "awsSecretAccessKey: awsAccessKeyId and awsSecretAccessKey must be set together") {
		t.Errorf("a key ID without its secret: %v", err)
	}
}

// fakeIMDS serves IMDSv2 as the EC2 user guide describes it: a session token from PUT
// /latest/api/token (answered with the token's TTL in X-aws-ec2-metadata-token-ttl-seconds),
// which GET requests must carry, and the instance identity document.
func fakeIMDS(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" && r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") != "":
			w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", "21600") // IMDS says how long the token lasts
			w.Write([]byte("tok"))
		case r.Method == http.MethodGet && r.URL.Path == "/latest/dynamic/instance-identity/document" && r.Header.Get("X-aws-ec2-metadata-token") == "tok":
			w.Write([]byte(`{"accountId": "123456789012", "availabilityZone": "eu-west-1b", "imageId": "ami-1", "instanceId": "i-0feedface",
				"instanceType": "t3.micro", "privateIp": "10.0.0.9", "region": "eu-west-1"}`))
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestEndToEndAddEC2Metadata: the daemon's ADDEC2METADATA step reads the instance identity
// from the metadata endpoint the AWS configuration names and adds it to every JSON record.
func TestEndToEndAddEC2Metadata(t *testing.T) {
	kc := testenv.Kinesis(t, nil, func(o *kinesis.Options) { o.RetryMaxAttempts = 5 })
	stream := testenv.CreateStream(t, kc, 1)
	imdsSrv := fakeIMDS(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "agent.json")
	logFile := filepath.Join(dir, "app.log")
	appendLines(t, logFile, `{"n":`, 1, 0) // creates the file
	writeJSON(t, conf, map[string]any{
		"kinesis.endpoint": testenv.KinesisEndpoint(t), "cloudwatch.emitMetrics": false,
		"flows": []any{map[string]any{
			"filePattern": logFile, "kinesisStream": stream, "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 1000,
			"dataProcessingOptions": []any{map[string]any{"optionName": "ADDEC2METADATA", "metadataTTL": 60}},
		}},
	})
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 50; i++ {
		fmt.Fprintf(f, "{\"n\": %d}\n", i)
	}
	f.Close()
	proc := startAgent(t, agentEnv(t, "AWS_EC2_METADATA_DISABLED=false", "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imdsSrv.URL),
		"-config", conf, "-state-dir", filepath.Join(dir, "state"), "-stats-interval", "100ms")
	proc.waitLinesRead(20*time.Second, 50, "the lines")
	proc.stopGracefully(30 * time.Second)
	rd := newStreamReader(t, kc, stream)
	rd.poll(t)
	recs := rd.all()
	if len(recs) != 50 {
		t.Fatalf("%d records, want 50", len(recs))
	}
	for _, r := range recs {
		var m map[string]any
		if err := json.Unmarshal([]byte(r), &m); err != nil || m["instanceId"] != "i-0feedface" || m["region"] != "eu-west-1" || m["n"] == nil {
			t.Errorf("record %q: %v", r, err)
		}
	}
}
