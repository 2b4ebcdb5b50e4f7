package producer

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/segmentio/kafka-go"
)

func TestLetterKeepsTheOriginalAndItsSource(t *testing.T) {
	src := kafka.Message{Topic: "orders.placed", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("not json")}
	m := Letter("orders.dlq", src, KindPoison, errors.New("boom"), 7)
	if m.Topic != "orders.dlq" || string(m.Key) != "k" || string(m.Value) != "not json" {
		t.Fatalf("letter = %+v", m)
	}
	for k, want := range map[string]string{HeaderError: "boom", HeaderSourceTopic: "orders.placed", HeaderSourcePartition: "3",
		HeaderSourceOffset: "42", HeaderKind: KindPoison, HeaderAttempts: "7"} {
		if got, _ := Header(m, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := Header(m, HeaderTruncatedValue); ok {
		t.Error("a small letter marked as truncated")
	}
	if _, ok := Header(DeadLetter("d", src, errors.New("x")), HeaderAttempts); ok {
		t.Error("an undecodable message has no attempts")
	}
}

// A copy of a message close to 1 MB is cut to fit, says so, and the writer
// accepts it beside other messages.
func TestLetterFitsTheBrokerLimit(t *testing.T) {
	for _, c := range []struct{ key, value int }{{10, 1 << 20}, {900_000, 900_000}, {2 << 20, 0}} {
		src := kafka.Message{Topic: "orders.placed", Key: bytes.Repeat([]byte("k"), c.key), Value: bytes.Repeat([]byte("v"), c.value)}
		m := Letter("orders.dlq", src, KindUndecodable, errors.New(string(bytes.Repeat([]byte("e"), 10_000))), 0)
		size := len(m.Key) + len(m.Value)
		for _, h := range m.Headers {
			size += len(h.Key) + len(h.Value)
		}
		if size > MaxDeadLetterBytes {
			t.Fatalf("key %d value %d: letter is %d bytes", c.key, c.value, size)
		}
		if c.value > len(m.Value) {
			if v, _ := Header(m, HeaderTruncatedValue); v != strconv.Itoa(c.value) {
				t.Errorf("value cut from %d to %d without saying so (header %q)", c.value, len(m.Value), v)
			}
		}
		if c.key > len(m.Key) {
			if v, _ := Header(m, HeaderTruncatedKey); v != strconv.Itoa(c.key) {
				t.Errorf("key cut from %d to %d without saying so (header %q)", c.key, len(m.Key), v)
			}
		}
		if e, _ := Header(m, HeaderError); len(e) > maxErrorHeader {
			t.Errorf("error header of %d bytes", len(e))
		}
		if !bytes.HasPrefix(src.Value, m.Value) || !bytes.HasPrefix(src.Key, m.Key) {
			t.Error("the letter does not keep the start of the original")
		}
	}
}

func TestPerMessage(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{kafka.MessageTooLargeError{}, true},
		{fmt.Errorf("publish: %w", kafka.MessageSizeTooLarge), true},
		{kafka.WriteErrors{nil, kafka.MessageSizeTooLarge}, true},
		{kafka.WriteErrors{nil, kafka.NotEnoughReplicas}, false},
		{kafka.LeaderNotAvailable, false},
		{kafka.TopicAuthorizationFailed, false},
		{errors.New("dial tcp: connection refused"), false},
	} {
		if got := PerMessage(c.err); got != c.want {
			t.Errorf("PerMessage(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
