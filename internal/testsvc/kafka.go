package testsvc

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
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
	if err := producer.EnsureTopics(ctx, brokers, partitions, 1, tp.Orders, tp.Cancelled, tp.Events, tp.DLQ); err != nil {
		t.Fatal(err)
	}
	return tp
}

// Collect reads topic from its start until it has n messages or timeout passes,
// and returns what it read. It reads every partition without a consumer group.
func Collect(t testing.TB, topic string, n int, timeout time.Duration) []kafka.Message {
	t.Helper()
	return CollectUntil(t, topic, timeout, func(got []kafka.Message) bool { return len(got) >= n })
}

// CollectUntil reads topic from its start until done says the messages read so
// far are enough, or timeout passes, and returns what it read.
func CollectUntil(t testing.TB, topic string, timeout time.Duration, done func([]kafka.Message) bool) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(KafkaBrokers()...), Transport: transport}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 {
		t.Fatalf("metadata of %s: %v", topic, err)
	}
	out := make(chan kafka.Message)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	readers := make([]*kafka.Reader, 0, len(md.Topics[0].Partitions))
	for _, p := range md.Topics[0].Partitions {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: KafkaBrokers(), Topic: topic, Partition: p.ID, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 100 * time.Millisecond})
		readers = append(readers, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				select {
				case out <- m:
				case <-stop:
					return
				}
			}
		}()
	}
	defer func() {
		close(stop)
		cancel()
		wg.Wait()
		for _, r := range readers {
			r.Close()
		}
	}()
	var got []kafka.Message
	for !done(got) {
		select {
		case m := <-out:
			got = append(got, m)
		case <-ctx.Done():
			return got
		}
	}
	return got
}
