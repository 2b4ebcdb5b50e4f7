package producer_test

import (
	"context"
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
		var msgs []kafka.Message
		for key := range java {
			ev := events.Deducted(key, []events.Line{{GoodsID: 16, Num: 1}}, time.Now())
			b, err := ev.Encode()
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, producer.Outcome(c.topic, key, ev.Type, b))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := pub.Publish(ctx, msgs...)
		cancel()
		pub.Close()
		if err != nil {
			t.Fatal(err)
		}
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
