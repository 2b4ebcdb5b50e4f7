//go:build chaos || cluster

// What the chaos and the cluster tests share: the services script, a steady
// load of orders, and the checks that every order was answered exactly once
// in effect.

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
	"gorm.io/gorm"
)

// services runs scripts/services.sh with args.
func services(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../../scripts/services.sh", args...)
	// The cluster tests address three nodes, whatever the shell exports.
	cmd.Env = append(os.Environ(), "KAFKA_NODES=3")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("services.sh %v: %v\n%s", args, err, out)
	}
}

// load is a steady stream of single-unit orders on one goods while the test
// does something to the system. Its goroutine is stopped and awaited when the
// test ends, before its publisher is closed.
type load struct {
	t      *testing.T
	pub    *producer.Publisher
	topics testsvc.Topics
	prefix string
	n      int
	wg     sync.WaitGroup

	mu   sync.Mutex
	sent map[string]time.Time // when each order was first sent
}

func startLoad(t *testing.T, topics testsvc.Topics, n, rate int) *load {
	l := &load{t: t, pub: producer.New(testsvc.KafkaBrokers(), producer.Options{}), topics: topics, prefix: testsvc.Unique("o"), n: n,
		sent: make(map[string]time.Time, n)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		l.wg.Wait()
		l.pub.Close()
	})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		placeOrders(ctx, t, l.pub, topics.Orders, 16, l.prefix, 0, n, rate, l.sending)
	}()
	return l
}

// sending records when order id is first sent.
func (l *load) sending(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.sent[id]; !ok {
		l.sent[id] = time.Now()
	}
}

// placeOrders publishes orders id(i) for i in [from, to) of one unit of goods,
// at most rate per second, and returns when all are acknowledged or ctx ends.
// sending, when not nil, is told each order id before it is first sent.
//
// Each order is sent on its own (up to 256 at once), as independent clients
// of an order service would: one order waiting for its partition's new
// leader does not hold up the orders bound for the other partitions.
func placeOrders(ctx context.Context, t *testing.T, pub *producer.Publisher, topic string, goods int64, prefix string, from, to, rate int, sending func(string)) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	slots := make(chan struct{}, 256)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := from; i < to; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
		id := fmt.Sprintf("%s-%d", prefix, i)
		msg := kafka.Message{Topic: topic, Key: []byte(id),
			Value: []byte(fmt.Sprintf(`{"order_id":%q,"items":[{"goods_id":%d,"num":1}]}`, id, goods))}
		if sending != nil {
			sending(id)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			placeOne(ctx, t, pub, id, msg)
		}()
	}
}

// placeOne sends msg until the cluster takes it, as any order service would
// ride out a broker fault (a copy too many is a redelivery the worker must
// handle anyway), or ctx ends. Still failing after 2 minutes fails the test.
func placeOne(ctx context.Context, t *testing.T, pub *producer.Publisher, id string, msg kafka.Message) {
	for first := time.Now(); ; {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := pub.Publish(pctx, msg)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		if time.Since(first) > 2*time.Minute {
			t.Errorf("place %s: still failing after 2m: %v", id, err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// flowing waits until the workers have answered at least n orders between
// them: the load reaches them, so a disruption now hits work in progress.
func flowing(t *testing.T, ws *harness.Workers, n float64) {
	t.Helper()
	if got := waitCounter(t, ws, "stockflow_orders_total", nil, n, time.Minute); got < n {
		t.Fatalf("only %v orders answered within a minute, want %v\n%s", got, n, ws.Logs())
	}
}

// ready starts one worker called name and waits until it is ready and the
// group, members members in all (with the workers already there), owns every
// partition.
func ready(t *testing.T, name string, env []string, topics testsvc.Topics, members int) *harness.Workers {
	t.Helper()
	ws := startWorkers(t, name, 1, env)
	if err := ws.WaitReady(true, time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, ws.Logs())
	}
	waitAssigned(t, topics, members)
	return ws
}

// verify waits until every order has an outcome and checks the effects: every
// order deducted exactly once (stock was ample, so any rejection is a failure),
// one ledger row per order, and the stock arithmetic exact. The workers' logs
// are shown by their cleanup if it fails. It returns when each order's first
// outcome was published (its timestamp, set by the worker's producer).
func (l *load) verify(pool func() *gorm.DB, initial int64) map[string]time.Time {
	t := l.t
	t.Helper()
	l.wg.Wait()
	// Outcomes are at least once: wait for every order, not for n messages.
	seen := map[string]time.Time{}
	read := 0
	testsvc.CollectUntil(t, l.topics.Events, 3*time.Minute, func(got []kafka.Message) bool {
		for _, m := range got[read:] {
			o, err := events.DecodeOutcome(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			if o.Type != events.TypeDeducted {
				t.Errorf("order %s: %s %s — the disruption must not cause rejections", o.OrderID, o.Type, o.Reason)
			}
			if at, ok := seen[o.OrderID]; !ok || m.Time.Before(at) {
				seen[o.OrderID] = m.Time
			}
		}
		read = len(got)
		return len(seen) == l.n
	})
	if len(seen) != l.n {
		t.Fatalf("%d of %d orders answered", len(seen), l.n)
	}
	g := pool()
	var rows int64
	if err := g.Model(&db.OrderOutcome{}).Where("status = ?", db.StatusDeducted).Count(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if rows != int64(l.n) {
		t.Fatalf("%d deducted ledger rows, want %d", rows, l.n)
	}
	if s := testsvc.Stocks(t, g, 16); s != initial-int64(l.n) {
		t.Fatalf("final stock = %d, want %d", s, initial-int64(l.n))
	}
	return seen
}

// stopClean stops ws with SIGTERM and requires every exit 0 within 30s.
func stopClean(t *testing.T, ws *harness.Workers) {
	t.Helper()
	for _, e := range ws.Stop(syscall.SIGTERM, 30*time.Second) {
		if !e.Clean() {
			t.Fatalf("%v\n%s", e.Problem(), ws.Logs())
		}
	}
}
