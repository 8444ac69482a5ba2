package agent

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// fakeIMDS serves IMDSv2 as the EC2 user guide describes it: PUT /latest/api/token with
// X-aws-ec2-metadata-token-ttl-seconds returns a session token, and GET requests must carry
// it in X-aws-ec2-metadata-token (401 without). It serves the instance identity document.
type fakeIMDS struct {
	mu        sync.Mutex
	documents int
	refused   int
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
		w.Write([]byte("session-token"))
	case r.Method == http.MethodGet && r.URL.Path == "/latest/dynamic/instance-identity/document":
		if r.Header.Get("X-aws-ec2-metadata-token") != "session-token" {
			f.refused++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		f.documents++
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"accountId": "123456789012", "architecture": "x86_64", "availabilityZone": "eu-west-1b",
			"imageId": "ami-0abcdef1234567890", "instanceId": "i-1234567890abcdef0", "instanceType": "m5.large",
			"pendingTime": "2026-01-01T00:00:00Z", "privateIp": "10.1.2.3", "region": "eu-west-1", "version": "2017-09-30"}`))
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// TestAddEC2Metadata: ADDEC2METADATA adds the instance identity's fields, named as the
// Amazon Kinesis Agent's AddEC2MetadataConverter names them, to each JSON record, read through
// IMDSv2 once per metadataTTL however many records there are; a record that is not JSON
// passes unchanged.
func TestAddEC2Metadata(t *testing.T) {
	fake := &fakeIMDS{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, "a,1\nb,2\n")
	cfg := testConfig(t, p)
	cfg.InstanceIdentity = imds.New(imds.Options{Endpoint: srv.URL})
	cfg.Flows[0].DataProcessingOptions = []ProcessingOption{
		{OptionName: "CSVTOJSON", CustomFieldNames: []string{"k", "v"}},
		{OptionName: "ADDEC2METADATA", MetadataTTL: 300 * time.Millisecond},
	}
	sink := keepingSink()
	_, stop := running(t, cfg, sink)
	eventually(t, 5*time.Second, "two records", func() bool { return len(sink.data()) == 2 })
	time.Sleep(500 * time.Millisecond) // past the TTL
	appendFile(t, p, "c,3\n")
	eventually(t, 5*time.Second, "three records", func() bool { return len(sink.data()) == 3 })
	stop()
	for _, d := range sink.data() {
		var m map[string]string
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("record %q: %v", d, err)
		}
		want := map[string]string{"privateIp": "10.1.2.3", "availabilityZone": "eu-west-1b", "instanceId": "i-1234567890abcdef0",
			"instanceType": "m5.large", "accountId": "123456789012", "amiId": "ami-0abcdef1234567890", "region": "eu-west-1"}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("record %q: %s = %q, want %q", d, k, m[k], v)
			}
		}
		if m["k"] == "" || m["metadataTimestamp"] == "" {
			t.Errorf("record %q lacks its own fields or the timestamp", d)
		}
	}
	fake.mu.Lock()
	docs, refused := fake.documents, fake.refused
	fake.mu.Unlock()
	if docs != 2 || refused != 0 {
		t.Errorf("%d identity documents read (want 2: once, then once after the TTL), %d without a token", docs, refused)
	}

	out, _ := runProcessor(t, []ProcessingOption{{OptionName: "ADDEC2METADATA", MetadataTTL: time.Hour}}, "not json\n")
	if out != "not json\n" {
		t.Errorf("a line that is not JSON became %q", out)
	}
}
