package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// This file is what the demo prints: events as they happen, a progress line while it runs and
// the final report.

// console prints events and progress. On a terminal the progress line is redrawn in place
// below the events; elsewhere (CI logs, a pipe) progress is printed as plain lines, every
// plainEvery.
type console struct {
	w     io.Writer
	fd    int
	tty   bool
	start time.Time

	mu        sync.Mutex
	live      string // the progress line on screen (terminal only)
	lastPlain time.Time
}

const plainEvery = 2 * time.Second

func newConsole(f *os.File) *console {
	fd := int(f.Fd())
	return &console{w: f, fd: fd, tty: term.IsTerminal(fd), start: time.Now()}
}

func (c *console) elapsed() string {
	return fmt.Sprintf("%5.1fs", time.Since(c.start).Seconds())
}

// event prints one thing that happened, with the time since the start.
func (c *console) event(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
	fmt.Fprintf(c.w, "%s  %s\n", c.elapsed(), fmt.Sprintf(format, args...))
	c.drawLocked()
}

// progress shows the progress line: redrawn on a terminal, printed every plainEvery elsewhere.
func (c *console) progress(text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty {
		c.live = text
		c.clearLocked()
		c.drawLocked()
		return
	}
	if time.Since(c.lastPlain) >= plainEvery {
		c.lastPlain = time.Now()
		fmt.Fprintf(c.w, "%s  %s\n", c.elapsed(), text)
	}
}

// done removes the progress line, before the report.
func (c *console) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
	c.live = ""
}

func (c *console) clearLocked() {
	if c.tty && c.live != "" {
		fmt.Fprint(c.w, "\r\x1b[K")
	}
}

func (c *console) drawLocked() {
	if c.tty && c.live != "" {
		line := c.elapsed() + "  " + c.live
		if width, _, err := term.GetSize(c.fd); err == nil && width > 1 && len(line) >= width {
			line = line[:width-1] // a wrapped line could not be redrawn in place
		}
		fmt.Fprint(c.w, line)
	}
}

// progressText is the progress line: the three counts along the pipeline.
func progressText(phase string, written uint64, delivered int64, s snapshot) string {
	return fmt.Sprintf("%-9s written %7s   delivered %7s   processed %7s (distinct %s)",
		phase, num(int64(written)), num(delivered), num(s.processed), num(s.unique))
}

// result is everything the final report shows.
type result struct {
	took        time.Duration
	written     written
	delivered   int64 // records the agent acknowledged, from its final progress line
	kinesisRecs int64 // the Kinesis records that carried them
	agentFinal  bool  // the agent logged its final counts
	parseErrors int64 // lines the agent's parser rejected
	counts      snapshot
	byWorker    []workerCount
	lost        int64
	lostIDs     []uint64
	unknown     int64
	stopped     string // which worker was stopped, and how
	tables      *tally // what was processed, each request once
}

type workerCount struct {
	id        string
	processed int64
}

// printReport prints the final report and returns whether the run passed: nothing lost.
func printReport(w io.Writer, r result) bool {
	p := func(format string, args ...any) {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf(format, args...), " "))
	}
	p("")
	p("Result")
	files := len(r.written.files)
	p("  lines written      %9s   to access.log and %d rotated files (%d renamed, %d copytruncate)",
		num(int64(r.written.lines)), files-1, r.written.rotated, r.written.copied)
	delivered := "unknown (the agent logged no final progress line)"
	if r.agentFinal {
		delivered = num(r.delivered)
	}
	note := fmt.Sprintf("acknowledged to the agent, one record per line, in %s Kinesis records (KPL aggregation)", num(r.kinesisRecs))
	if r.parseErrors > 0 {
		note += fmt.Sprintf("; %s lines did not parse", num(r.parseErrors))
	}
	p("  records delivered  %9s   %s", delivered, note)
	var per []string
	for _, wc := range r.byWorker {
		per = append(per, fmt.Sprintf("%s %s", wc.id, num(wc.processed)))
	}
	p("  records processed  %9s   %s", num(r.counts.processed), strings.Join(per, ", "))
	lostNote := ""
	if r.lost > 0 {
		lostNote = "request ids " + joinIDs(r.lostIDs)
		if r.lost > int64(len(r.lostIDs)) {
			lostNote += ", ..."
		}
	}
	p("  lost               %9s   %s", num(r.lost), lostNote)
	// Delivery is at least once, and two steps may repeat a line: the agent sends a line again
	// when it cannot be sure it was delivered (a copytruncate copy found while lines of the
	// original were in flight), and a shard that changes hands without a checkpoint of its
	// last batch is processed again from that checkpoint.
	dupNote := "no request was processed twice"
	if r.counts.duplicates > 0 {
		var why []string
		resent := int64(0)
		if r.agentFinal && r.delivered > int64(r.written.lines) {
			resent = min(r.delivered-int64(r.written.lines), r.counts.duplicates)
			why = append(why, fmt.Sprintf("%s sent twice by the agent", num(resent)))
		}
		if n := r.counts.duplicates - resent; n > 0 {
			why = append(why, fmt.Sprintf("%s processed again after %s", num(n), r.stopped))
		}
		dupNote = strings.Join(why, ", ") + " (delivery is at least once)"
	}
	p("  duplicates         %9s   %s", num(r.counts.duplicates), dupNote)
	if r.counts.malformed > 0 || r.unknown > 0 {
		p("  unexpected         %9s   records that were not requests of this run", num(r.counts.malformed+r.unknown))
	}

	t := r.tables
	total := int64(0)
	for _, n := range t.byStatus {
		total += n
	}
	p("")
	p("  requests per status code")
	p("    status  requests   share")
	for _, s := range t.statuses() {
		n := t.byStatus[s]
		p("    %6d  %8s  %5.1f%%", s, num(n), 100*float64(n)/float64(max(total, 1)))
	}
	p("")
	p("  requests per minute of log time (UTC)")
	p("    minute  requests       2xx      3xx      4xx      5xx")
	for _, m := range t.minutes() {
		row := t.byMinute[m]
		sum := row[0] + row[1] + row[2] + row[3]
		p("    %s  %8s  %8s %8s %8s %8s", m.Format("15:04"), num(sum), num(row[0]), num(row[1]), num(row[2]), num(row[3]))
	}
	p("")
	matches := t.equal(r.written.counts)
	switch {
	case r.lost == 0 && matches:
		p("  The tables match what was written, request for request.")
	case !matches:
		p("  The tables differ from what was written: %s requests are missing from them.", num(r.lost))
	}
	ok := r.lost == 0
	if ok {
		p("PASS: every line written was processed (%.1f s)", r.took.Seconds())
	} else {
		p("FAIL: %s of %s lines written were never processed (%.1f s)", num(r.lost), num(int64(r.written.lines)), r.took.Seconds())
	}
	return ok
}

func joinIDs(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(s, ", ")
}

// num formats n with thousands separators.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
