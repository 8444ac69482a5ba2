package shardlineotel

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/shardline/shardline/metrics"
)

// nameTable renders every Shardline metric's OpenTelemetry name as the table in doc.go.
func nameTable() string {
	var b strings.Builder
	row := func(a, c string) { b.WriteString(strings.TrimRight(fmt.Sprintf("//\t%-35s %s", a, c), " ") + "\n") }
	row("Shardline name", "OpenTelemetry name and unit")
	row(strings.Repeat("-", 34), strings.Repeat("-", 52))
	for _, d := range metrics.Definitions() {
		name, unit := MetricName(d.Name, d.Unit)
		kind := map[metrics.Kind]string{metrics.KindCounter: "sum", metrics.KindGauge: "gauge", metrics.KindDistribution: "histogram"}[d.Kind]
		row(d.Name, fmt.Sprintf("%s %s (%s)", name, unit, kind))
	}
	return b.String()
}

// TestDocTableMatchesNames keeps the table in the package documentation in step with
// MetricName and metrics.Definitions. On failure it prints the table for doc.go.
func TestDocTableMatchesNames(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	if want := nameTable(); !strings.Contains(string(src), want) {
		t.Fatalf("the table in doc.go differs from MetricName; it should read:\n%s", want)
	}
}
