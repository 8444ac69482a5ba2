package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// This file writes the web server's access log that the agent tails: Apache's combined format,
// as nginx and Apache write it by default, rotated while it is written.

// apacheTime is the timestamp layout of Apache's %t.
const apacheTime = "02/Jan/2006:15:04:05 -0700"

// The log is synthetic, but every line is a real combined-format line:
//
//	203.0.113.9 - - [23/Nov/2025:10:31:02 +0000] "GET /products/1234?rid=4711 HTTP/1.1" 200 5123 "https://www.google.com/" "Mozilla/5.0 ..."
//
// Each request carries a unique id, rid, counting from 1, so that the end of the pipeline can
// tell which requests arrived, which did not and which arrived twice. It rides in the query
// string because the agent's COMBINEDAPACHELOG format keeps only the format's nine fields: an
// id appended after them, as nginx's $request_id often is, would be dropped by the parser.

// endpoint is one kind of request the site serves.
type endpoint struct {
	weight int
	method string
	path   func(r *rand.Rand) string
	// bytes returns a plausible response size for a successful response.
	bytes func(r *rand.Rand) int
}

var searchTerms = []string{"shoes", "rain+jacket", "socks", "backpack", "running+shoes", "gift+card", "tent", "headlamp"}

var endpoints = []endpoint{
	{10, "GET", func(*rand.Rand) string { return "/" }, sizeBetween(8_000, 40_000)},
	{22, "GET", func(r *rand.Rand) string { return "/products/" + strconv.Itoa(1+r.IntN(5000)) }, sizeBetween(6_000, 60_000)},
	{8, "GET", func(r *rand.Rand) string { return "/search?q=" + searchTerms[r.IntN(len(searchTerms))] }, sizeBetween(5_000, 30_000)},
	{15, "GET", func(r *rand.Rand) string { return "/api/v1/products/" + strconv.Itoa(1+r.IntN(5000)) }, sizeBetween(300, 4_000)},
	{4, "POST", func(*rand.Rand) string { return "/api/v1/cart/items" }, sizeBetween(100, 600)},
	{3, "GET", func(*rand.Rand) string { return "/cart" }, sizeBetween(4_000, 12_000)},
	{1, "POST", func(*rand.Rand) string { return "/checkout" }, sizeBetween(200, 2_000)},
	{2, "POST", func(*rand.Rand) string { return "/login" }, sizeBetween(200, 1_000)},
	{20, "GET", func(r *rand.Rand) string {
		return []string{"/static/css/site.css", "/static/js/app.js", "/static/js/vendor.js"}[r.IntN(3)]
	}, sizeBetween(20_000, 300_000)},
	{12, "GET", func(r *rand.Rand) string { return "/images/" + strconv.Itoa(1+r.IntN(800)) + ".jpg" }, sizeBetween(15_000, 250_000)},
	{2, "GET", func(r *rand.Rand) string { return []string{"/favicon.ico", "/robots.txt"}[r.IntN(2)] }, sizeBetween(70, 4_000)},
	{1, "GET", func(r *rand.Rand) string { return []string{"/wp-login.php", "/.env", "/admin.php"}[r.IntN(3)] }, sizeBetween(150, 500)},
}

func sizeBetween(lo, hi int) func(*rand.Rand) int {
	return func(r *rand.Rand) int { return lo + r.IntN(hi-lo) }
}

// statusMix is the share of each status code in per mille, roughly what a busy shop sees:
// mostly 200s, cache revalidations (304), redirects, a few client errors and rare server
// errors.
var statusMix = []struct{ code, perMille int }{
	{200, 800}, {304, 70}, {301, 15}, {302, 20}, {400, 10}, {401, 8}, {403, 5}, {404, 62},
	{500, 6}, {502, 2}, {503, 2},
}

// incidentFactor multiplies the weight of the 5xx codes while the incident lasts (a backend
// falls over for a minute), so the per-minute table has a minute that stands out.
const incidentFactor = 12

var referers = []string{"-", "-", "-", "https://www.google.com/", "https://www.bing.com/",
	"https://shop.example.com/", "https://shop.example.com/cart", "https://t.co/x7Pq2", "android-app://com.google.android.gm/"}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"curl/8.5.0",
	"python-requests/2.32.3",
}

// generator makes access log lines. It is not safe for concurrent use.
type generator struct {
	rng     *rand.Rand
	clients []string // the client addresses; each client sends many requests
	users   []string
	weights int // sum of the endpoints' weights
}

func newGenerator(seed uint64) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for range 600 {
		// Random public-looking IPv4 addresses: skip 0/8, 10/8, 127/8 and the multicast and
		// reserved ranges from 224 up.
		a := 11 + g.rng.IntN(212)
		if a == 127 {
			a = 128
		}
		g.clients = append(g.clients, fmt.Sprintf("%d.%d.%d.%d", a, g.rng.IntN(256), g.rng.IntN(256), 1+g.rng.IntN(254)))
	}
	g.users = []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	for _, e := range endpoints {
		g.weights += e.weight
	}
	return g
}

// status draws a status code from statusMix; during an incident the 5xx codes are more likely.
func (g *generator) status(incident bool) int {
	total := 0
	for _, s := range statusMix {
		total += g.weightOf(s.code, s.perMille, incident)
	}
	n := g.rng.IntN(total)
	for _, s := range statusMix {
		n -= g.weightOf(s.code, s.perMille, incident)
		if n < 0 {
			return s.code
		}
	}
	return 200
}

func (g *generator) weightOf(code, perMille int, incident bool) int {
	if incident && code >= 500 {
		return perMille * incidentFactor
	}
	return perMille
}

// appendLine appends one request's log line to dst and returns it with the request's status.
func (g *generator) appendLine(dst []byte, id uint64, at time.Time, incident bool) ([]byte, int) {
	n := g.rng.IntN(g.weights)
	e := &endpoints[0]
	for i := range endpoints {
		n -= endpoints[i].weight
		if n < 0 {
			e = &endpoints[i]
			break
		}
	}
	path := e.path(g.rng)
	status := g.status(incident)
	if e.method == "POST" && status == 200 {
		// A successful form post redirects and an API post creates.
		status = 302
		if strings.HasPrefix(path, "/api/") {
			status = 201
		}
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	user := "-"
	if g.rng.IntN(20) == 0 {
		user = g.users[g.rng.IntN(len(g.users))]
	}
	size := "-" // Apache's %b writes "-" for an empty body
	switch {
	case status == 200 || status == 201:
		size = strconv.Itoa(e.bytes(g.rng))
	case status >= 400:
		size = strconv.Itoa(150 + g.rng.IntN(900))
	}
	dst = fmt.Appendf(dst, "%s - %s [%s] \"%s %s%srid=%d HTTP/1.1\" %d %s \"%s\" \"%s\"\n",
		g.clients[g.rng.IntN(len(g.clients))], user, at.Format(apacheTime), e.method, path, sep, id,
		status, size, referers[g.rng.IntN(len(referers))], userAgents[g.rng.IntN(len(userAgents))])
	return dst, status
}

// rotation is one rotation of the log during the run.
type rotation struct {
	at   float64 // when, as a fraction of the writing time
	copy bool    // copytruncate rather than rename-and-create
}

// logPlan says what the writer writes and when it rotates.
type logPlan struct {
	dir       string        // the directory of access.log and its rotated files
	duration  time.Duration // how long lines are written
	rate      float64       // average lines per second
	window    time.Duration // the span of log time the run covers (log time runs faster)
	start     time.Time     // log time of the first line
	rotations []rotation
	seed      uint64
}

// Traffic shape over the run, as a fraction x of the writing time: a slow ramp up, and an
// incident from incidentFrom to incidentTo with more traffic (retries) and many 5xx.
const (
	incidentFrom = 0.55
	incidentTo   = 0.72
)

func trafficShape(x float64) float64 {
	s := 0.75 + 0.4*x
	if x >= incidentFrom && x < incidentTo {
		s *= 1.5
	}
	return s
}

// meanShape is the mean of trafficShape over [0, 1], so that rate stays the average rate.
const meanShape = 0.95 + 0.5*(incidentTo-incidentFrom)*(0.75+0.2*(incidentFrom+incidentTo))

// written is what the writer wrote, for checking the counts at the end. Only the writer
// updates it while it runs.
type written struct {
	lines   uint64 // ids 1..lines were written
	counts  *tally
	files   []string // every file the lines went to, rotated ones first
	rotated int      // rename-and-create rotations
	copied  int      // copytruncate rotations
}

// logWriter is the web server: it appends lines to access.log, and rotates the log itself.
// Because the application and the rotation are one goroutine, nothing is written while a
// rotation runs, which is what makes copytruncate safe here: logrotate's copytruncate loses
// whatever the application writes between the copy and the truncation, and no reader can
// recover it.
type logWriter struct {
	plan   logPlan
	gen    *generator
	path   string
	f      *os.File
	buf    *bufio.Writer
	out    written
	next   uint64        // the next request id
	count  atomic.Uint64 // lines written so far, for the progress line
	events func(string)
}

func newLogWriter(plan logPlan, events func(string)) (*logWriter, error) {
	w := &logWriter{plan: plan, gen: newGenerator(plan.seed), path: filepath.Join(plan.dir, "access.log"), next: 1, events: events}
	w.out.counts = newTally()
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

// open creates access.log. O_APPEND matters for copytruncate: after the truncation the next
// write lands at the new end of the file, where a plain descriptor would write at its old
// offset and leave a hole of zero bytes in front.
func (w *logWriter) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	w.f = f
	w.buf = bufio.NewWriterSize(f, 64<<10)
	return nil
}

// run writes for the plan's duration, at the traffic shape's rate, rotating as planned.
func (w *logWriter) run(ctx context.Context) error {
	defer w.f.Close()
	const tick = 20 * time.Millisecond
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	start := time.Now()
	speedup := float64(w.plan.window) / float64(w.plan.duration)
	owed := 0.0 // lines due but not written yet (fractions carry over)
	last := time.Duration(0)
	rot := 0
	var line []byte
	for {
		select {
		case <-ctx.Done():
			return w.finish(ctx.Err())
		case <-ticker.C:
		}
		el := min(time.Since(start), w.plan.duration)
		x := float64(el) / float64(w.plan.duration)
		for rot < len(w.plan.rotations) && x >= w.plan.rotations[rot].at {
			if err := w.rotate(w.plan.rotations[rot], len(w.out.files)+1); err != nil {
				return w.finish(err)
			}
			rot++
		}
		owed += w.plan.rate / meanShape * trafficShape(x) * (el - last).Seconds()
		n := int(owed)
		owed -= float64(n)
		incident := x >= incidentFrom && x < incidentTo
		for i := range n {
			// Log time advances speedup times faster than the clock, spread evenly over the
			// lines of this tick, so that a half-minute run fills several log minutes.
			t := last + (el-last)*time.Duration(i)/time.Duration(n)
			at := w.plan.start.Add(time.Duration(float64(t) * speedup))
			var status int
			line, status = w.gen.appendLine(line[:0], w.next, at, incident)
			if _, err := w.buf.Write(line); err != nil {
				return w.finish(err)
			}
			w.out.counts.add(status, at)
			w.out.lines = w.next
			w.next++
		}
		// One write call per tick, as a server's buffered log does.
		if err := w.buf.Flush(); err != nil {
			return w.finish(err)
		}
		w.count.Store(w.out.lines)
		last = el
		if el >= w.plan.duration {
			return w.finish(nil)
		}
	}
}

func (w *logWriter) finish(err error) error {
	if ferr := w.buf.Flush(); err == nil {
		err = ferr
	}
	w.count.Store(w.out.lines)
	w.out.files = append(w.out.files, w.path)
	return err
}

// rotate rotates access.log to access.log.N, the way logrotate does with dateext-style names
// (numbers that do not shift, so each file keeps its name once rotated).
func (w *logWriter) rotate(r rotation, n int) error {
	if err := w.buf.Flush(); err != nil {
		return err
	}
	rotated := fmt.Sprintf("%s.%d", w.path, n)
	w.out.files = append(w.out.files, rotated)
	if r.copy {
		// copytruncate: copy the file, then empty it in place; the application keeps its
		// descriptor. The agent recognises the copy by its first bytes and continues it where
		// reading of the original stopped.
		if err := copyFile(w.path, rotated); err != nil {
			return err
		}
		if err := w.f.Truncate(0); err != nil {
			return err
		}
		w.out.copied++
		w.events(fmt.Sprintf("rotated the log: copied access.log to %s and truncated it (copytruncate, at line %d)", filepath.Base(rotated), w.out.lines))
		return nil
	}
	// Rename and create: the renamed file keeps its inode, so the agent keeps reading it to
	// its end, and the new access.log is a new file read from its start.
	if err := os.Rename(w.path, rotated); err != nil {
		return err
	}
	old := w.f
	if err := w.open(); err != nil {
		return err
	}
	if err := old.Close(); err != nil {
		return err
	}
	w.out.rotated++
	w.events(fmt.Sprintf("rotated the log: renamed access.log to %s and created a new access.log (at line %d)", filepath.Base(rotated), w.out.lines))
	return nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
