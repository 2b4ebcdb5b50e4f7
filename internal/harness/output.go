package harness

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// defaultTailBytes is how much of a process's output is kept in memory.
const defaultTailBytes = 64 << 10

// tailBuffer keeps the last max bytes written to it. It is safe for
// concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer {
	if max <= 0 {
		max = defaultTailBytes
	}
	return &tailBuffer{max: max}
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String returns what is kept, without surrounding white space.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// tee writes to the in-memory tail and, best effort, to a log file: a failing
// file (disk full) must not stop the copy, or the process would block on a
// full pipe.
type tee struct {
	tail *tailBuffer
	file io.Writer
}

func (w *tee) Write(p []byte) (int, error) {
	_, _ = w.file.Write(p)
	return w.tail.Write(p)
}

// indent prefixes every line of s with four spaces; "(no output)" when empty.
func indent(s string) string {
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
