package metrics

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// metricTable renders Definitions as the table in doc.go.
func metricTable() string {
	var b strings.Builder
	row := func(cols ...string) {
		line := fmt.Sprintf("%-35s %-13s %-13s %-9s %-9s %s", cols[0], cols[1], cols[2], cols[3], cols[4], cols[5])
		b.WriteString("//\t" + strings.TrimRight(line, " ") + "\n")
	}
	row("Name", "Kind", "Unit", "Level", "Role", "Meaning")
	row(strings.Repeat("-", 34), strings.Repeat("-", 12), strings.Repeat("-", 12), strings.Repeat("-", 8), strings.Repeat("-", 8), strings.Repeat("-", 7))
	for _, d := range Definitions() {
		row(d.Name, d.Kind.String(), string(d.Unit), strings.ToLower(d.Level.String()), d.Role, d.Meaning)
	}
	return b.String()
}

// TestDocTableMatchesDefinitions keeps the one table of metrics in the package documentation
// in step with Definitions. On failure it prints the table to paste into doc.go.
func TestDocTableMatchesDefinitions(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	want := metricTable()
	if !strings.Contains(string(src), want) {
		t.Fatalf("the table in doc.go differs from Definitions(); it should read:\n%s", want)
	}
}

func TestDefinitionsAreConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range Definitions() {
		if seen[d.Name] {
			t.Errorf("%s defined twice", d.Name)
		}
		seen[d.Name] = true
		if !knownUnit(d.Unit) || d.Kind == 0 || d.Level < LevelSummary || d.Meaning == "" {
			t.Errorf("incomplete definition %+v", d)
		}
		if got, ok := LookupDefinition(d.Name); !ok || got != d {
			t.Errorf("LookupDefinition(%s) = %+v, %v", d.Name, got, ok)
		}
	}
	if _, ok := LookupDefinition("NoSuchMetric"); ok {
		t.Error("LookupDefinition found an unknown name")
	}
}
