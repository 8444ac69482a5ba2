package agent

import (
	"strings"
	"testing"
)

// TestSingleLineParseOptions: SINGLELINE's parseOptions as the Amazon Kinesis Agent's
// SingleLineDataConverter reads them. NO_TRIM keeps each line's surrounding white space
// (Java's String.trim otherwise removes bytes up to and including space); ESCAPE_NEW_LINE
// joins the lines with the three characters \\n (its delimiter is the Java literal "\\\\n")
// instead of nothing. Lines come from Java's String.split("\n"), which drops trailing empty
// strings, and the result ends with one newline.
func TestSingleLineParseOptions(t *testing.T) {
	const in = "Exception in main\n\tat a.b(C.java:1)\r\n\n  at d.e(F.java:2)\n\n"
	for _, c := range []struct {
		opts []string
		want string
	}{
		{nil, "Exception in mainat a.b(C.java:1)at d.e(F.java:2)\n"},
		{[]string{"NO_TRIM"}, "Exception in main\tat a.b(C.java:1)\r  at d.e(F.java:2)\n"},
		{[]string{"ESCAPE_NEW_LINE"}, `Exception in main\\nat a.b(C.java:1)\\n\\nat d.e(F.java:2)` + "\n"},
		{[]string{"NO_TRIM", "ESCAPE_NEW_LINE"}, `Exception in main\\n` + "\tat a.b(C.java:1)\r" + `\\n\\n` + "  at d.e(F.java:2)\n"},
	} {
		out, ok := runProcessor(t, []ProcessingOption{{OptionName: "SINGLELINE", ParseOptions: c.opts}}, in)
		if !ok || out != c.want {
			t.Errorf("parseOptions %v: got %q, want %q", c.opts, out, c.want)
		}
	}

	cfg, err := ParseConfig([]byte(`{"flows": [{"filePattern": "/var/log/a.log", "kinesisStream": "s",
		"dataProcessingOptions": [{"optionName": "SINGLELINE", "parseOptions": ["NO_TRIM", "ESCAPE_NEW_LINE", "OTHER"]}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Flows[0].DataProcessingOptions[0].ParseOptions; strings.Join(got, ",") != "NO_TRIM,ESCAPE_NEW_LINE,OTHER" {
		t.Errorf("parseOptions read as %q", got)
	}
	w := strings.Join(cfg.Warnings, "\n")
	if strings.Contains(w, "parseOptions: ") && !strings.Contains(w, "OTHER") {
		t.Errorf("parseOptions is warned about: %s", w)
	}
	if !strings.Contains(w, `parseOptions[2]`) || !strings.Contains(w, "OTHER") {
		t.Errorf("the unknown parse option is not warned about: %q", cfg.Warnings)
	}
	if _, err := ParseConfig([]byte(`{"flows": [{"filePattern": "/var/log/a.log", "kinesisStream": "s",
		"dataProcessingOptions": [{"optionName": "SINGLELINE", "parseOptions": "NO_TRIM"}]}]}`)); err == nil ||
		!strings.Contains(err.Error(), "dataProcessingOptions[0].parseOptions") {
		t.Errorf("a parseOptions that is not a list: %v", err)
	}
}
