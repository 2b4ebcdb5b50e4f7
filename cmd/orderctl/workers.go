package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/stockflow/stockflow/internal/harness"
)

// stopWorkers sends SIGTERM to the demo's workers, waits up to timeout for
// all of them, kills the rest, and returns a problem per worker that did not
// exit cleanly (status 0), "worker N: ...".
func stopWorkers(ws *harness.Workers, timeout time.Duration) []string {
	var problems []string
	for i, e := range ws.Stop(syscall.SIGTERM, timeout) {
		switch {
		case e.Killed:
			problems = append(problems, fmt.Sprintf("worker %d: did not exit within %v of SIGTERM; killed", i+1, timeout))
		case e.Err != nil:
			problems = append(problems, fmt.Sprintf("worker %d: exited with %v after SIGTERM, want status 0", i+1, e.Err))
		}
	}
	return problems
}

// logFiles returns the workers' log files.
func logFiles(ws *harness.Workers) []string {
	var paths []string
	for _, w := range ws.List() {
		paths = append(paths, w.LogFile())
	}
	return paths
}

// tailLines returns the last n lines of the file at path (a short note when it
// cannot be read).
func tailLines(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return []string{fmt.Sprintf("(cannot read the log: %v)", err)}
	}
	defer f.Close()
	const most = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > most {
		_, _ = f.Seek(-most, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return []string{fmt.Sprintf("(cannot read the log: %v)", err)}
	}
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return []string{"(empty)"}
	}
	lines := strings.Split(string(b), "\n")
	return lines[max(0, len(lines)-n):]
}

func removeFiles(paths []string) {
	for _, p := range paths {
		_ = os.Remove(p)
	}
}
