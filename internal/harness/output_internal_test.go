package harness

import "testing"

func TestTailBufferKeepsTheEnd(t *testing.T) {
	tb := newTailBuffer(10)
	tb.Write([]byte("0123456789"))
	tb.Write([]byte("abc"))
	if got := tb.String(); got != "3456789abc" {
		t.Errorf("tail = %q", got)
	}
	tb.Write([]byte("a write longer than the whole buffer"))
	if got := tb.String(); got != "ole buffer" { // the last 10 bytes
		t.Errorf("tail = %q", got)
	}
}

func TestIndent(t *testing.T) {
	if got := indent("a\nb"); got != "    a\n    b" {
		t.Errorf("indent = %q", got)
	}
	if got := indent(""); got != "    (no output)" {
		t.Errorf("indent of nothing = %q", got)
	}
}
