package main

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

// javaPartitionOf6 is where the Java client (kafka-clients 4.1.1,
// BuiltInPartitioner.partitionForKey) puts each key among 6 partitions:
// toPositive(murmur2(key)) % 6.
var javaPartitionOf6 = map[string]int{
	"A1001": 1, "A1002": 2, "order-42": 0, "foobar": 0, "a": 4, "ab": 2, "abc": 3, "abcd": 2, "21": 0,
	"Ünïcødé-順序": 4, "o-0123456789abcdef": 0, "9223372036854775807": 3, "x:stock-deducted": 4,
	"a-little-bit-long-string": 2, "a-little-bit-longer-string": 5, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": 5,
}

// End to end, a worker publishes the outcome of order K, and the dead letter
// of a message keyed K, on the partition the Java client computes for K; with
// OUTCOME_PARTITIONER=fnv1a, where kafka-go's Hash put them before.
func TestOutcomesLandWhereJavaPutsTheirKey(t *testing.T) {
	for _, c := range []struct {
		setting string
		want    func(key string) int
	}{
		{"", func(key string) int { return javaPartitionOf6[key] }},
		{"fnv1a", func(key string) int { return producer.FNV1a.Partition([]byte(key), 6) }},
	} {
		name := c.setting
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dsn := testsvc.DatabaseDSN(t)
			topics := testsvc.NewTopics(t, 6)
			env := workerEnv(dsn, topics, "pessimistic", "LOG_LEVEL=warn")
			if c.setting != "" {
				env = append(env, "OUTCOME_PARTITIONER="+c.setting)
			}
			ws := startWorkers(t, "worker", 1, env)
			if err := ws.WaitReady(true, time.Minute); err != nil {
				t.Fatal(err)
			}
			waitAssigned(t, topics, testConsumers)

			// Goods that are never stocked: every order is rejected
			// (unknown_goods), an answer like any other.
			var msgs []kafka.Message
			for key := range javaPartitionOf6 {
				msgs = append(msgs, kafka.Message{Topic: topics.Orders, Key: []byte(key),
					Value: []byte(fmt.Sprintf(`{"order_id":%q,"items":[{"goods_id":404,"num":1}]}`, key))})
			}
			msgs = append(msgs, kafka.Message{Topic: topics.Orders, Key: []byte("foobar"), Value: []byte("not an order")},
				kafka.Message{Topic: topics.Orders, Key: []byte("a-little-bit-longer-string"), Value: []byte("[]")})
			pub := producer.New(testsvc.KafkaBrokers(), producer.Options{})
			defer pub.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := pub.Publish(ctx, msgs...); err != nil {
				t.Fatal(err)
			}

			answered := map[string]bool{}
			for _, m := range testsvc.CollectUntil(t, topics.Events, time.Minute, func(got []kafka.Message) bool {
				return len(got) >= len(javaPartitionOf6)
			}) {
				o, err := events.DecodeOutcome(m.Value)
				if err != nil || o.OrderID != string(m.Key) {
					t.Fatalf("outcome %q keyed %q: %v", m.Value, m.Key, err)
				}
				answered[o.OrderID] = true
				if want := c.want(o.OrderID); m.Partition != want {
					t.Errorf("the outcome of %q is on partition %d, want %d", o.OrderID, m.Partition, want)
				}
			}
			if len(answered) != len(javaPartitionOf6) {
				t.Fatalf("%d of %d orders answered", len(answered), len(javaPartitionOf6))
			}
			letters := testsvc.Collect(t, topics.DLQ, 2, time.Minute)
			if len(letters) != 2 {
				t.Fatalf("%d dead letters, want 2", len(letters))
			}
			for _, m := range letters {
				if want := c.want(string(m.Key)); m.Partition != want {
					t.Errorf("the dead letter keyed %q is on partition %d, want %d", m.Key, m.Partition, want)
				}
			}
		})
	}
}
