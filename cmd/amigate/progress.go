package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/amigate/packer-plugin-amigate/internal/gate"
	"github.com/amigate/packer-plugin-amigate/internal/report"
)

// progressView shows a run's lines and how far it is on stderr. On a
// terminal the last line is a progress bar redrawn in place (the run's
// lines print above it); elsewhere (CI logs, files) a plain line is printed
// now and then, as report.ProgressLines decides.
type progressView struct {
	mu  sync.Mutex
	w   io.Writer
	tty bool
	// bar is the bar drawn last, "" when none is on screen; drawn is when.
	bar   string
	drawn time.Time
	plain *report.ProgressLines
}

func newProgressView(w io.Writer) *progressView {
	v := &progressView{w: w, tty: isTerminal(w)}
	v.plain = report.NewProgressLines(func(line string) { fmt.Fprintln(w, line) })
	return v
}

// isTerminal reports whether w is a character device a person watches, not
// a CI log.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" || os.Getenv("CI") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Say prints one of the run's lines.
func (v *progressView) Say(line string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tty && v.bar != "" {
		fmt.Fprint(v.w, "\r\033[K")
		fmt.Fprintln(v.w, line)
		fmt.Fprint(v.w, v.bar)
		return
	}
	fmt.Fprintln(v.w, line)
}

// Status hears how far the run is.
func (v *progressView) Status(s gate.Status) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.tty {
		v.plain.Status(s)
		return
	}
	// A redraw at most every 100 ms, and always at a step's ends.
	if s.Done != 0 && s.Done != s.Total && time.Since(v.drawn) < 100*time.Millisecond {
		return
	}
	v.bar = progressBar(s, 30)
	v.drawn = time.Now()
	fmt.Fprint(v.w, "\r\033[K"+v.bar)
}

// Close clears the bar.
func (v *progressView) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.tty && v.bar != "" {
		fmt.Fprint(v.w, "\r\033[K")
		v.bar = ""
	}
}

// progressBar draws s as "inspect [=====>     ] 312/2000  3 failing".
func progressBar(s gate.Status, width int) string {
	filled := 0
	if s.Total > 0 {
		filled = s.Done * width / s.Total
	}
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	return fmt.Sprintf("%-11s [%s] %d/%d  %d failing", s.Step, bar, s.Done, s.Total, s.Failing)
}
