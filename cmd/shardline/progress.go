package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

// spinnerFrames animate a live line so that a reader sees the command is alive even when the
// text does not change.
var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// clearLine returns the cursor to the start of the line and erases it.
const clearLine = "\r\x1b[K"

// liveLine keeps one status line at the bottom of a terminal, redrawn in place at a fixed
// interval from what render returns. Messages printed through it appear above the line
// instead of being overwritten by it.
type liveLine struct {
	w        io.Writer
	render   func(elapsed time.Duration) string
	start    time.Time
	width    int
	interval time.Duration

	mu      sync.Mutex
	frame   int
	stopped bool

	stop chan struct{}
	done chan struct{}
}

// startLiveLine draws the line at once and then every interval until Stop.
func startLiveLine(w io.Writer, interval time.Duration, render func(elapsed time.Duration) string) *liveLine {
	l := &liveLine{
		w:        w,
		render:   render,
		start:    time.Now(),
		width:    terminalWidth(w),
		interval: interval,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	l.mu.Lock()
	l.drawLocked()
	l.mu.Unlock()
	go l.loop()
	return l
}

func (l *liveLine) loop() {
	defer close(l.done)
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			if !l.stopped {
				l.drawLocked()
			}
			l.mu.Unlock()
		}
	}
}

func (l *liveLine) drawLocked() {
	frame := spinnerFrames[l.frame%len(spinnerFrames)]
	l.frame++
	text := frame + " " + l.render(time.Since(l.start))
	if l.width > 1 {
		text = truncateRunes(text, l.width-1)
	}
	fmt.Fprint(l.w, clearLine+text)
}

// Println prints a line above the live line.
func (l *liveLine) Println(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		fmt.Fprintln(l.w, s)
		return
	}
	fmt.Fprint(l.w, clearLine+s+"\n")
	l.drawLocked()
}

// Stop erases the line and stops redrawing it. It may be called more than once.
func (l *liveLine) Stop() {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped = true
	fmt.Fprint(l.w, clearLine)
	l.mu.Unlock()
	close(l.stop)
	<-l.done
}

// terminalWidth returns the width of the terminal behind w, or 0 when unknown.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return width
}

// truncateRunes cuts s to at most n runes, because a line wider than the terminal wraps and
// can no longer be redrawn in place.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if n == 0 {
			break
		}
		b.WriteRune(r)
		n--
	}
	return b.String()
}

// roundDuration formats a duration for display: seconds with one decimal below a minute,
// whole seconds above.
func roundDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}
