package bench

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

// kafkaTopic creates a 6-partition topic for one benchmark and deletes it
// afterwards.
func kafkaTopic(b *testing.B) (brokers []string, topic string) {
	b.Helper()
	brokers = testsvc.KafkaBrokers()
	testsvc.Require(b, "Kafka", brokers[0])
	topic = testsvc.Unique("kb") + ".t"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := producer.EnsureTopics(ctx, brokers, 6, 1, topic); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
		c.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic}}) //nolint:errcheck // best effort
	})
	return brokers, topic
}

// BenchmarkPublishOutcomes is the worker's publish step for one micro-batch:
// size outcome events in one Publish call through producer.Publisher (acks=all,
// hash by order_id, its default 2ms batch timeout), waiting for the acks.
func BenchmarkPublishOutcomes(b *testing.B) {
	brokers, topic := kafkaTopic(b)
	at := time.Now()
	for _, size := range []int{1, 256} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			pub := producer.New(brokers, producer.Options{})
			defer pub.Close()
			msgs := make([]kafka.Message, size)
			for i := range msgs {
				id := fmt.Sprintf("t-%06d", i)
				v, err := events.Deducted(id, []events.Line{{GoodsID: int64(i), Num: 1}}, at).Encode()
				if err != nil {
					b.Fatal(err)
				}
				msgs[i] = producer.Outcome(topic, id, events.TypeDeducted, v)
			}
			ctx := context.Background()
			for b.Loop() {
				if err := pub.Publish(ctx, msgs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkCommitOffsets is the worker's commit step: one synchronous
// CommitMessages of a consumer-group reader (CommitInterval 0), as after every
// micro-batch.
func BenchmarkCommitOffsets(b *testing.B) {
	brokers, topic := kafkaTopic(b)
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond,
		Transport: &kafka.Transport{Dial: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("v"), Topic: topic}); err != nil {
		b.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: testsvc.Unique("g"), Topic: topic,
		StartOffset: kafka.FirstOffset, CommitInterval: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := r.CommitMessages(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}
