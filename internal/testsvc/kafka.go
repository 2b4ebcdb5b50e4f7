package testsvc

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/producer"
)

// Topics are one test's own topic names.
type Topics struct {
	Orders, Cancelled, Events, DLQ string
}

// NewTopics creates uniquely named topics with the given partition count on the
// real broker, requiring the broker to be up.
func NewTopics(t testing.TB, partitions int) Topics {
	t.Helper()
	brokers := KafkaBrokers()
	Require(t, "Kafka", brokers[0])
	id := Unique("t")
	tp := Topics{Orders: id + ".orders.placed", Cancelled: id + ".orders.cancelled", Events: id + ".stock.events", DLQ: id + ".orders.dlq"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Replication 0: the cluster's default (1 on the single broker, 3 on the
	// kafka-cluster of scripts/services.sh).
	if err := producer.EnsureTopics(ctx, brokers, partitions, 0, tp.Orders, tp.Cancelled, tp.Events, tp.DLQ); err != nil {
		t.Fatal(err)
	}
	// The topics go when the test ends (TEST_KEEP_DB=1 keeps them, with the
	// database): the broker's state outlives every run on a machine, and
	// thousands of leftover topics slow every later test down.
	t.Cleanup(func() {
		if os.Getenv("TEST_KEEP_DB") != "" {
			t.Logf("kept topics %s.*", id)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		transport := &kafka.Transport{}
		defer transport.CloseIdleConnections()
		c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second, Transport: transport}
		if _, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{tp.Orders, tp.Cancelled, tp.Events, tp.DLQ}}); err != nil {
			t.Logf("delete topics %s.*: %v", id, err)
		}
	})
	return tp
}

// Collect reads topic from its start until it has n messages or timeout passes,
// and returns what it read. It reads every partition without a consumer group
// (harness.Tail). Call it from the test's goroutine: it fails the test when
// the topic cannot be read.
func Collect(t testing.TB, topic string, n int, timeout time.Duration) []kafka.Message {
	t.Helper()
	return CollectUntil(t, topic, timeout, func(got []kafka.Message) bool { return len(got) >= n })
}

// CollectUntil reads topic from its start until done says the messages read so
// far are enough, or timeout passes, and returns what it read. done is called
// on the test's goroutine, with everything read so far, after each message.
//
// Every message of an outcome or dead-letter topic is checked against the
// event contract (harness.ContractCheck, package api): one that breaks it
// fails the test, reported with the message and every problem, and is still
// returned, so the test goes on.
func CollectUntil(t testing.TB, topic string, timeout time.Duration, done func([]kafka.Message) bool) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tl, err := harness.OpenTail(ctx, KafkaBrokers(), topic, harness.FromStart, harness.WithCheck(harness.ContractCheck(topic)))
	if err != nil {
		t.Fatalf("collect %s: %v", topic, err)
	}
	defer tl.Close()
	var got []kafka.Message
	for !done(got) {
		m, err := tl.Next(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			return got
		}
		var broken *harness.CheckError
		if errors.As(err, &broken) {
			t.Errorf("a message breaks the event contract (api/asyncapi.yaml): %v", broken)
			err = nil
		}
		if err != nil {
			t.Fatalf("collect %s: %v", topic, err)
		}
		got = append(got, m)
	}
	return got
}
