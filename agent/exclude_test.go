package agent

import (
	"bytes"
	"compress/gzip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCompressedAndExcludedFilesAreNotTailed: with a pattern such as "app.log*", logrotate's
// compressed rotations match too; they are binary and are never read (the Amazon Kinesis
// Agent's SourceFile.validateFile skips .gz, .bz2 and .zip; .xz and .zst are skipped as
// well), and neither are files that the flow's excludePatterns name, by file name or by path.
func TestCompressedAndExcludedFilesAreNotTailed(t *testing.T) {
	dir := t.TempDir()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Repeat("compressed line\n", 100)))
	zw.Close()
	for name, data := range map[string]string{
		"app.log":       "plain 1\n",
		"app.log.1":     "plain 2\n",
		"app.log.2.gz":  gz.String(),
		"app.log.3.GZ":  gz.String(),
		"app.log.4.bz2": "BZh91AY&SY binary\n",
		"app.log.5.zip": "PK\x03\x04 binary\n",
		"app.log.6.xz":  "\xfd7zXZ binary\n",
		"app.log.7.zst": "\x28\xb5\x2f\xfd binary\n",
		"app.log.old":   "excluded by name\n",
		"app.log.debug": "excluded by path\n",
	} {
		appendFile(t, filepath.Join(dir, name), data)
	}
	cfg := testConfig(t, filepath.Join(dir, "app.log*"))
	cfg.Flows[0].ExcludePatterns = []string{"*.old", filepath.Join(dir, "app.log.debug")}
	sink := keepingSink()
	a, stop := running(t, cfg, sink)
	eventually(t, 5*time.Second, "the plain files", hasAll(sink, "plain 1\n", "plain 2\n"))
	appendFile(t, filepath.Join(dir, "app.log.8.gz"), gz.String()) // found by an event or a rescan
	time.Sleep(3 * cfg.Flows[0].RescanInterval)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := sink.data(); len(got) != 2 {
		t.Errorf("records %q, want only the two plain lines", got)
	}
	if n := a.Stats().FilesDiscovered; n != 2 {
		t.Errorf("%d files discovered, want 2", n)
	}
}

func TestExcludePatternsConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"flows": [{"filePattern": "/var/log/app.log*", "kinesisStream": "s",
		"excludePatterns": ["*.old", "/var/log/app.log.debug*"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Flows[0].ExcludePatterns; len(got) != 2 || got[0] != "*.old" {
		t.Errorf("excludePatterns %q", got)
	}
	for _, bad := range []string{`["relative/x"]`, `["[" ]`, `[""]`, `"*.old"`} {
		_, err := ParseConfig([]byte(`{"flows": [{"filePattern": "/var/log/a*", "kinesisStream": "s", "excludePatterns": ` + bad + `}]}`))
		if err == nil || !strings.Contains(err.Error(), "flows[0].excludePatterns") {
			t.Errorf("excludePatterns %s: %v", bad, err)
		}
	}
}
