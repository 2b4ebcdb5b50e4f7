package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress reports a running count on w from its own goroutine, until stop:
// on a terminal a bar redrawn in place,
//
//	[#########                     ] 312/1000 orders  850/s
//
// elsewhere (a pipe, a file, CI logs) one line every progressLogEvery.
type progress struct {
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

const (
	progressRedraw   = 200 * time.Millisecond
	progressLogEvery = 5 * time.Second
	progressBarWidth = 30
	eraseLine        = "\x1b[K" // clears what a longer previous line left behind
)

func startProgress(w io.Writer, total int64, count *atomic.Int64, start time.Time) *progress {
	p := &progress{done: make(chan struct{})}
	tty := isTerminal(w)
	every := progressLogEvery
	if tty {
		every = progressRedraw
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if tty {
					fmt.Fprint(w, "\r"+progressBar(count.Load(), total, time.Since(start))+eraseLine)
				} else {
					fmt.Fprintf(w, "load: %s\n", progressLine(count.Load(), total, time.Since(start)))
				}
			case <-p.done:
				if tty {
					fmt.Fprint(w, "\r"+progressBar(count.Load(), total, time.Since(start))+eraseLine+"\n")
				}
				return
			}
		}
	}()
	return p
}

// stop ends the reports (drawing the bar a last time) and waits for the
// goroutine. It is idempotent.
func (p *progress) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}

func progressBar(n, total int64, elapsed time.Duration) string {
	filled := 0
	if total > 0 {
		filled = int(min(n, total) * progressBarWidth / total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(" ", progressBarWidth-filled) + "] " + progressLine(n, total, elapsed)
}

func progressLine(n, total int64, elapsed time.Duration) string {
	rate := 0.0
	if elapsed > 0 {
		rate = float64(n) / elapsed.Seconds()
	}
	return fmt.Sprintf("%d/%d orders  %.0f/s", n, total, rate)
}

// isTerminal reports whether w is a character device such as a terminal.
// (/dev/null is one too; drawing a bar into it harms no one.)
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
