//go:build chaos

// Chaos tests restart the shared MariaDB and Redis, so they run on their own,
// after the rest of the suite: `make test` runs them with -tags chaos -p 1.
//
// They wait for conditions, not for time: a worker ready (/readyz), its group
// owning every partition (harness.WaitAssigned), orders answered (the workers'
// /metrics). The only sleeps left are the disruption's own length, and say so.

package main

import (
	"context"
	"fmt"
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

// outage is how long a stopped service stays down once the workers noticed:
// the disruption itself, not a wait for something.
const outage = 2 * time.Second

// services runs scripts/services.sh with args.
func services(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("../../scripts/services.sh", args...).CombinedOutput()
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
}

func startLoad(t *testing.T, topics testsvc.Topics, n, rate int) *load {
	l := &load{t: t, pub: producer.New(testsvc.KafkaBrokers(), producer.Options{}), topics: topics, prefix: testsvc.Unique("o"), n: n}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		l.wg.Wait()
		l.pub.Close()
	})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		placeOrders(ctx, t, l.pub, topics.Orders, 16, l.prefix, 0, n, rate)
	}()
	return l
}

// placeOrders publishes orders id(i) for i in [from, to) of one unit of goods,
// at most rate per second, and returns when all are acknowledged or ctx ends.
func placeOrders(ctx context.Context, t *testing.T, pub *producer.Publisher, topic string, goods int64, prefix string, from, to, rate int) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := from; i < to; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		id := fmt.Sprintf("%s-%d", prefix, i)
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := pub.Publish(pctx, kafka.Message{Topic: topic, Key: []byte(id),
			Value: []byte(fmt.Sprintf(`{"order_id":%q,"items":[{"goods_id":%d,"num":1}]}`, id, goods))})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("place %s: %v", id, err)
			}
			return
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
// are shown by their cleanup if it fails.
func (l *load) verify(pool func() *gorm.DB, initial int64) {
	t := l.t
	t.Helper()
	l.wg.Wait()
	// Outcomes are at least once: wait for every order, not for n messages.
	seen := map[string]bool{}
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
			seen[o.OrderID] = true
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

func TestChaosMariaDBRestart(t *testing.T) {
	for _, strategy := range []string{"pessimistic", "batch"} {
		t.Run(strategy, func(t *testing.T) { outageUnderLoad(t, strategy, "mariadb", 600) })
	}
}

func TestChaosRedisStopped(t *testing.T) {
	outageUnderLoad(t, "redis", "redis", 500)
}

// outageUnderLoad stops service during a steady load of orders: the worker's
// readiness drops and comes back, and every order is answered exactly once in
// effect, none rejected because of the outage.
func outageUnderLoad(t *testing.T, strategy, service string, orders int) {
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 3)
	pool := openDSN(t, dsn)
	testsvc.Stock(t, pool, 16, 100000)
	ws := ready(t, "worker", workerEnv(dsn, topics, strategy, "REDIS_PREFIX="+testsvc.Unique("sftest:")+":"), topics, testConsumers)
	w := ws.List()[0]
	l := startLoad(t, topics, orders, 100)
	flowing(t, ws, 50)

	services(t, "down", service)
	if err := w.WaitReady(false, 20*time.Second); err != nil {
		t.Errorf("readiness did not drop while %s was down: %v", service, err)
	}
	time.Sleep(outage) // the disruption: keep the service down a while longer
	services(t, "up", service)
	if err := w.WaitReady(true, time.Minute); err != nil {
		t.Fatalf("readiness did not come back after %s returned: %v", service, err)
	}
	// A fresh pool: the old one's connections died with a restarted MariaDB.
	l.verify(func() *gorm.DB { return openDSN(t, dsn) }, 100000)
	stopClean(t, ws)
}

// SIGTERM during a load: the worker exits 0 within its bound and the next one
// resumes where it stopped; nothing is lost or applied twice.
func TestChaosSIGTERMDuringLoad(t *testing.T) {
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 3)
	pool := openDSN(t, dsn)
	testsvc.Stock(t, pool, 16, 100000)
	env := workerEnv(dsn, topics, "atomic", "SHUTDOWN_GRACE=5s")
	first := ready(t, "first worker", env, topics, testConsumers)
	l := startLoad(t, topics, 800, 200)
	flowing(t, first, 100)
	e := first.List()[0].Stop(syscall.SIGTERM, 20*time.Second)
	if !e.Clean() {
		t.Fatalf("%v\n%s", e.Problem(), first.Logs())
	}
	t.Logf("first worker exited 0 %v after SIGTERM", e.Took)
	second := startWorkers(t, "second worker", 1, env)
	l.verify(func() *gorm.DB { return pool }, 100000)
	stopClean(t, second)
}

// Members join and leave (1 → 3 → 1) during a steady load: every order ends
// with exactly one effect and at least one outcome event.
func TestChaosRebalance(t *testing.T) {
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 6)
	pool := openDSN(t, dsn)
	testsvc.Stock(t, pool, 16, 100000)
	env := workerEnv(dsn, topics, "pessimistic")
	a := ready(t, "worker a", env, topics, testConsumers)
	l := startLoad(t, topics, 1500, 150)
	flowing(t, a, 100)
	bc := startWorkers(t, "joining worker", 2, env)
	if err := bc.WaitReady(true, time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, bc.Logs())
	}
	waitAssigned(t, topics, 3*testConsumers)
	stopClean(t, bc)
	waitAssigned(t, topics, testConsumers) // a alone again, still under load
	l.verify(func() *gorm.DB { return pool }, 100000)
	stopClean(t, a)
}

// While a batch cannot finish (MariaDB down), SIGTERM waits for it up to
// SHUTDOWN_GRACE; a second signal exits at once. Nothing is lost: the next
// worker answers every order.
func TestChaosSecondSignalExitsAtOnce(t *testing.T) {
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 3)
	pool := openDSN(t, dsn)
	testsvc.Stock(t, pool, 16, 100000)
	env := workerEnv(dsn, topics, "atomic", "SHUTDOWN_GRACE=60s")
	ws := ready(t, "first worker", env, topics, testConsumers)
	first := ws.List()[0]
	l := startLoad(t, topics, 300, 100)
	flowing(t, ws, 20)
	services(t, "down", "mariadb")
	defer services(t, "up", "mariadb")
	if err := first.WaitReady(false, 20*time.Second); err != nil {
		t.Fatalf("readiness did not drop while MariaDB was down: %v", err)
	}
	if err := first.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Not a wait for something: the check that nothing happens for 2s.
	select {
	case <-first.Done():
		t.Fatalf("the worker exited (%v) without finishing its batch, while MariaDB was down\n%s", first.Err(), first.Log())
	case <-time.After(2 * time.Second): // still draining, as it should
	}
	e := first.Stop(syscall.SIGTERM, 5*time.Second)
	if e.Killed {
		t.Fatalf("the second signal did not end the worker within 5s\n%s", first.Log())
	}
	if e.Err == nil {
		t.Fatalf("the second signal ended the worker with status 0; want the immediate-exit status")
	}
	t.Logf("second signal: exited %v after %v", e.Err, e.Took)
	services(t, "up", "mariadb")
	second := startWorkers(t, "second worker", 1, env)
	l.verify(func() *gorm.DB { return openDSN(t, dsn) }, 100000)
	stopClean(t, second)
}

// The broker restarts while a backlog is being answered: the worker does not
// exit (fetch, publish and commit failures are transient), readiness drops and
// comes back, and every order is answered exactly once in effect.
func TestChaosKafkaRestart(t *testing.T) {
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 3)
	pool := openDSN(t, dsn)
	testsvc.Stock(t, pool, 16, 100000)
	ws := ready(t, "worker", workerEnv(dsn, topics, "pessimistic"), topics, testConsumers)
	w := ws.List()[0]
	// A backlog, all published before the broker goes away: the load itself
	// needs the broker.
	l := startLoad(t, topics, 4000, 2000)
	l.wg.Wait()
	flowing(t, ws, 50)

	services(t, "down", "kafka")
	if err := w.WaitReady(false, 20*time.Second); err != nil {
		t.Errorf("readiness did not drop while Kafka was down: %v", err)
	}
	// The disruption: keep the broker down past the session timeout (10s), so
	// the group's generation ends and rejoining fails while it is away — the
	// errors kafka-go's reader hands to FetchMessage.
	time.Sleep(15 * time.Second)
	services(t, "up", "kafka")
	if err := w.WaitReady(true, 2*time.Minute); err != nil {
		t.Fatalf("readiness did not come back after Kafka returned: %v\n%s", err, ws.Logs())
	}
	select {
	case <-w.Done():
		t.Fatalf("the worker exited while Kafka restarted: %v\n%s", w.Err(), ws.Logs())
	default:
	}
	l.verify(func() *gorm.DB { return pool }, 100000)
	stopClean(t, ws)
}
