package bench

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/internal/wire"
	"github.com/stockflow/stockflow/producer"
	"github.com/stockflow/stockflow/worker"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// BenchmarkPipeline runs the worker package in-process, as cmd/stockworker
// wires it, on a backlog of b.N orders already in a real Kafka topic, and
// times the orders being decided (first ledger row → last). Only the worker
// and the database poll run in this process while the timer runs, so a CPU
// profile of this benchmark is a profile of the worker loop:
//
//	go test ./bench -run '^$' -bench 'Pipeline/batch/hot' -benchtime 20000x -cpuprofile cpu.out
//
// Use -benchtime Nx: every round creates its own database, topics and group.
func BenchmarkPipeline(b *testing.B) {
	for _, c := range []struct {
		strategy, workload string
		consumers, lanes   int
	}{
		{"batch", "hot", 1, 1}, {"batch", "hot", 2, 1}, {"batch", "spread", 1, 1}, {"batch", "spread", 1, 8},
		{"atomic", "hot", 1, 1}, {"atomic", "spread", 1, 1}, {"atomic", "spread", 1, 16},
		{"pessimistic", "hot", 1, 1}, {"pessimistic", "spread", 1, 1}, {"pessimistic", "spread", 1, 16},
	} {
		b.Run(fmt.Sprintf("%s/%s/consumers=%d/lanes=%d", c.strategy, c.workload, c.consumers, c.lanes), func(b *testing.B) {
			runPipeline(b, c.strategy, c.workload, c.consumers, c.lanes)
		})
	}
}

func runPipeline(b *testing.B, strategy, workload string, consumers, lanes int) {
	brokers := testsvc.KafkaBrokers()
	testsvc.Require(b, "Kafka", brokers[0])
	g := testsvc.Database(b, max(16, 2*lanes))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Topics of our own, deleted afterwards.
	id := testsvc.Unique("pl")
	orders, events_, dlq := id+".orders.placed", id+".stock.events", id+".orders.dlq"
	if err := producer.EnsureTopics(ctx, brokers, 6, 1, orders, events_, dlq); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
		c.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{orders, events_, dlq}}) //nolint:errcheck // best effort
	})

	// Stock as cmd/stockbench does: hot is one goods with half the demand,
	// spread is 10,000 goods with ample stock.
	n := b.N
	msgs := make([]kafka.Message, n)
	switch workload {
	case "hot":
		testsvc.Stock(b, g, 1, int64(n/2))
		for i := range msgs {
			msgs[i] = orderMessage(b, orders, fmt.Sprintf("t-%d", i), 1)
		}
	default:
		for start := int64(1); start <= 10_000; start += 1000 {
			var pairs []int64
			for goods := start; goods < start+1000; goods++ {
				pairs = append(pairs, goods, 1_000_000)
			}
			stockMany(b, g, pairs)
		}
		for i := range msgs {
			msgs[i] = orderMessage(b, orders, fmt.Sprintf("t-%d", i), int64(1+(i*7919)%10_000))
		}
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchBytes: 16 << 20, BatchTimeout: time.Millisecond,
		Transport: &kafka.Transport{Dial: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}}
	for start := 0; start < n; start += 5000 {
		if err := w.WriteMessages(ctx, msgs[start:min(start+5000, n)]...); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	msgs = nil // not kept alive (and scanned by the GC) while the worker runs

	// The worker, wired as cmd/stockworker wires it.
	s, err := db.NewStrategy(strategy, g, nil, db.Options{})
	if err != nil {
		b.Fatal(err)
	}
	pub := producer.New(brokers, producer.Options{})
	defer pub.Close()
	wk, err := worker.New(worker.Config{
		Brokers: brokers, GroupID: id, OrdersTopic: orders, EventsTopic: events_, DLQTopic: dlq,
		Strategy: strategy, BatchSize: 1024, Consumers: consumers, Lanes: lanes, Transient: wire.Transient,
	}, wire.Deductor(s), wire.Ledger(db.NewLedger(g, db.Options{})), pub, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var grp errgroup.Group
	grp.Go(func() error { return wk.Run(runCtx) })
	defer func() {
		stop()
		if err := grp.Wait(); err != nil {
			b.Error(err)
		}
	}()

	sqlDB, err := g.DB()
	if err != nil {
		b.Fatal(err)
	}
	decided := func() int {
		var c int
		if err := sqlDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM order_outcomes").Scan(&c); err != nil {
			b.Fatal(err)
		}
		return c
	}
	deadline := time.Now().Add(5 * time.Minute)
	timed := false
	for {
		c := decided()
		if !timed && c > 0 {
			// The group has joined and the first batch is in: time from here.
			b.ResetTimer()
			timed = true
		}
		if c >= n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d orders decided after 5m", c, n)
		}
		time.Sleep(25 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "orders/s")
}

func orderMessage(b *testing.B, topic, id string, goods int64) kafka.Message {
	v, err := events.EncodeOrderPlaced(events.OrderPlaced{OrderID: id, Lines: []events.Line{{GoodsID: goods, Num: 1}}})
	if err != nil {
		b.Fatal(err)
	}
	return kafka.Message{Topic: topic, Key: []byte(id), Value: v}
}
