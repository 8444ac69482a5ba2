package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDropInConfigs: as the Amazon Kinesis Agent reads /etc/aws-kinesis/agent.d/ beside
// /etc/aws-kinesis/agent.json (Agent.readConfigurationDirectory), the flows of every file of
// the agent.d directory beside the configuration file are added after the main file's; other
// keys there are ignored with a warning, a file that is not JSON is skipped with a warning, and
// a wrong flow is an error naming its file.
func TestDropInConfigs(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "agent.json")
	write := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(main, `{"cloudwatch.emitMetrics": false, "flows": []}`)
	if _, err := LoadConfig(main); err == nil || !strings.Contains(err.Error(), "must list at least one flow") {
		t.Errorf("no flows anywhere: %v", err)
	}
	d := filepath.Join(dir, DropInDirName)
	write(filepath.Join(d, "web.json"), `{"flows": [{"filePattern": "/var/log/web.log", "kinesisStream": "web"}], "kinesis.region": "x"}`)
	write(filepath.Join(d, "app.json"), `{"flows": [{"filePattern": "/var/log/app.log", "kinesisStream": "app"}]}`)
	write(filepath.Join(d, "broken.json"), `{"flows": [`)
	write(filepath.Join(d, ".web.json.swp"), `garbage`)
	if err := os.Mkdir(filepath.Join(d, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(main)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Flows) != 2 || cfg.Flows[0].KinesisStream != "app" || cfg.Flows[1].KinesisStream != "web" {
		t.Fatalf("flows %+v", cfg.Flows)
	}
	warns := strings.Join(cfg.Warnings, "\n")
	for _, w := range []string{"agent.d/broken.json: skipped", "agent.d/web.json: kinesis.region: ignored"} {
		if !strings.Contains(warns, w) {
			t.Errorf("no warning %q in %q", w, cfg.Warnings)
		}
	}
	if strings.Contains(warns, "swp") {
		t.Errorf("a hidden file was read: %q", cfg.Warnings)
	}

	write(main, `{"flows": [{"filePattern": "/var/log/main.log", "kinesisStream": "main"}]}`)
	write(filepath.Join(d, "app.json"), `{"flows": [{"filePattern": "relative.log", "kinesisStream": "app"}]}`)
	_, err = LoadConfig(main)
	if err == nil || !strings.Contains(err.Error(), "agent.d/app.json: flows[0].filePattern: must be an absolute path") {
		t.Errorf("a wrong drop-in flow: %v", err)
	}
}
