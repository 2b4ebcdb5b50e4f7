package testsvc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

// recorder is a testing.TB that records Errorf instead of failing.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// Collecting a dead-letter topic fails the test for a letter that breaks the
// contract, names it, and still returns every message.
func TestCollectValidatesDeadLetters(t *testing.T) {
	t.Parallel()
	tp := testsvc.NewTopics(t, 2)
	src := kafka.Message{Topic: tp.Orders, Partition: 1, Offset: 7, Key: []byte("k1"), Value: []byte("not an order")}
	good := producer.DeadLetter(tp.DLQ, src, fmt.Errorf("events: undecodable message"))
	bad := good
	bad.Key = []byte("k2")
	bad.Headers = good.Headers[1:] // no error header
	pub := producer.New(testsvc.KafkaBrokers(), producer.Options{})
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, good, bad); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{TB: t}
	got := testsvc.Collect(rec, tp.DLQ, 2, 30*time.Second)
	if len(got) != 2 {
		t.Fatalf("collected %d letters, want 2", len(got))
	}
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], `key "k2"`) || !strings.Contains(rec.errors[0], "missing property 'error'") {
		t.Fatalf("reported %d problems, want one naming the letter keyed k2 and its missing header: %q", len(rec.errors), rec.errors)
	}
}
