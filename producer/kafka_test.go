package producer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

// Against the real broker, an outcome keyed K lands on the partition the Java
// client computes for K, and with fnv1a where kafka-go's Hash puts it.
func TestPublishedKeysLandWhereThePartitionerSays(t *testing.T) {
	t.Parallel()
	const partitions = 6
	tp := testsvc.NewTopics(t, partitions)
	java := producer.JavaPartitionOf6()
	for _, c := range []struct {
		p     producer.Partitioner
		topic string
	}{{"", tp.Events}, {producer.FNV1a, tp.Cancelled}} {
		pub := producer.New(testsvc.KafkaBrokers(), producer.Options{Partitioner: c.p})
		var keys []string
		for key := range java {
			keys = append(keys, key)
		}
		publishAndClose(t, pub, outcomes(t, c.topic, keys))
	}

	placed := testsvc.Collect(t, tp.Events, len(java), 30*time.Second)
	if len(placed) != len(java) {
		t.Fatalf("default (murmur2): read %d of %d messages", len(placed), len(java))
	}
	for _, m := range placed {
		if want := java[string(m.Key)]; m.Partition != want {
			t.Errorf("default (murmur2): key %q on partition %d, the Java client puts it on %d", m.Key, m.Partition, want)
		}
	}
	got := testsvc.Collect(t, tp.Cancelled, len(java), 30*time.Second)
	moved := 0
	for _, m := range got {
		if want := producer.FNV1a.Partition(m.Key, partitions); m.Partition != want {
			t.Errorf("fnv1a: key %q on partition %d, want %d", m.Key, m.Partition, want)
		}
		if m.Partition != java[string(m.Key)] {
			moved++
		}
	}
	if len(got) != len(java) || moved == 0 {
		t.Fatalf("fnv1a: read %d of %d messages, %d placed unlike murmur2", len(got), len(java), moved)
	}
}

// Publisher.Partition tells, once it has read the topic's partition count in
// the background, the partition Publish writes a message to; it answers
// false for a keyless message and before the count is known, without
// waiting for the cluster.
func TestPartitionIsWhereTheWriterPuts(t *testing.T) {
	t.Parallel()
	tp := testsvc.NewTopics(t, 6)
	for _, p := range []producer.Partitioner{producer.Murmur2, producer.FNV1a} {
		pub := producer.New(testsvc.KafkaBrokers(), producer.Options{Partitioner: p})
		topic := tp.Events
		if p == producer.FNV1a {
			topic = tp.Cancelled
		}
		if _, ok := pub.Partition(kafka.Message{Topic: topic}); ok {
			t.Errorf("%s: a keyless message has a partition", p)
		}
		keys := make([]string, 200)
		for i := range keys {
			keys[i] = fmt.Sprintf("order-%d", i)
		}
		msgs := outcomes(t, topic, keys)
		start := time.Now()
		_, ok := pub.Partition(msgs[0])
		if waited := time.Since(start); ok || waited > 100*time.Millisecond {
			t.Errorf("%s: first answer %v after %v; want false at once", p, ok, waited)
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, ok := pub.Partition(msgs[0]); !ok; _, ok = pub.Partition(msgs[0]) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: partition count of %s still unknown after 10s", p, topic)
			}
			time.Sleep(10 * time.Millisecond)
		}
		want := map[string]int{}
		for _, m := range msgs {
			n, ok := pub.Partition(m)
			if !ok {
				t.Fatalf("%s: no partition for %s", p, m.Key)
			}
			want[string(m.Key)] = n
		}
		publishAndClose(t, pub, msgs)
		got := testsvc.Collect(t, topic, len(msgs), 30*time.Second)
		spread := map[int]bool{}
		for _, m := range got {
			spread[m.Partition] = true
			if m.Partition != want[string(m.Key)] {
				t.Errorf("%s: %s written to partition %d, Partition said %d", p, m.Key, m.Partition, want[string(m.Key)])
			}
		}
		if len(got) != len(msgs) || len(spread) != 6 {
			t.Errorf("%s: read %d of %d messages over %d partitions", p, len(got), len(msgs), len(spread))
		}
	}
}

// outcomes are stock-deducted events for order ids keys, on topic.
func outcomes(t *testing.T, topic string, keys []string) []kafka.Message {
	t.Helper()
	msgs := make([]kafka.Message, len(keys))
	for i, id := range keys {
		ev := events.Deducted(id, []events.Line{{GoodsID: 16, Num: 1}}, time.Now())
		b, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = producer.Outcome(topic, id, ev.Type, b)
	}
	return msgs
}

// publishAndClose publishes msgs with pub, then closes it.
func publishAndClose(t *testing.T, pub *producer.Publisher, msgs []kafka.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := pub.Publish(ctx, msgs...)
	cancel()
	pub.Close()
	if err != nil {
		t.Fatal(err)
	}
}
