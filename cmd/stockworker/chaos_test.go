//go:build chaos

// Chaos tests restart the shared MariaDB and Redis, so they run on their own,
// after the rest of the suite: `make test` runs them with -tags chaos -p 1.

package main

import (
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
	"gorm.io/gorm"
)

// services runs scripts/services.sh with args.
func services(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("../../scripts/services.sh", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("services.sh %v: %v\n%s", args, err, out)
	}
}

// load is a steady stream of single-unit orders on one goods while the test
// does something to the system.
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
	t.Cleanup(func() { l.pub.Close() })
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		placeOrders(t, l.pub, topics.Orders, 16, l.prefix, 0, n, rate)
	}()
	return l
}

// verify waits until every order has an outcome and checks the effects: every
// order deducted exactly once (stock was ample, so any rejection is a failure),
// one ledger row per order, and the stock arithmetic exact.
func (l *load) verify(pool func() *gorm.DB, initial int64, workers ...*workerProc) {
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
		for _, w := range workers {
			t.Logf("%s log:\n%s", w.name, w.logs)
		}
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
	w := startWorker(t, "worker", workerEnv(dsn, topics, strategy))
	if !w.waitReady(true, 30*time.Second) {
		t.Fatalf("worker never ready\n%s", w.logs)
	}
	l := startLoad(t, topics, orders, 100)
	time.Sleep(2 * time.Second)

	services(t, "down", service)
	if !w.waitReady(false, 20*time.Second) {
		t.Errorf("readiness did not drop while %s was down", service)
	}
	time.Sleep(2 * time.Second)
	services(t, "up", service)
	if !w.waitReady(true, 60*time.Second) {
		t.Fatalf("readiness did not come back after %s returned\n%s", service, w.logs)
	}
	// A fresh pool: the old one's connections died with a restarted MariaDB.
	l.verify(func() *gorm.DB { return openDSN(t, dsn) }, 100000, w)
	w.stopClean()
}

// SIGTERM during a load: the worker exits 0 within its bound and the next one
// resumes where it stopped; nothing is lost or applied twice.
func TestChaosSIGTERMDuringLoad(t *testing.T) {
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 3)
	pool := openDSN(t, dsn)
	testsvc.Stock(t, pool, 16, 100000)
	env := workerEnv(dsn, topics, "atomic", "SHUTDOWN_GRACE=5s")
	first := startWorker(t, "first worker", env)
	l := startLoad(t, topics, 800, 200)
	time.Sleep(2 * time.Second)
	err, took := first.stop(syscall.SIGTERM, 20*time.Second)
	if err != nil {
		t.Fatalf("first worker exited with %v\n%s", err, first.logs)
	}
	t.Logf("first worker exited 0 %v after SIGTERM", took)
	second := startWorker(t, "second worker", env)
	l.verify(func() *gorm.DB { return pool }, 100000, first, second)
	second.stopClean()
}

// Members join and leave (1 → 3 → 1) during a steady load: every order ends
// with exactly one effect and at least one outcome event.
func TestChaosRebalance(t *testing.T) {
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 6)
	pool := openDSN(t, dsn)
	testsvc.Stock(t, pool, 16, 100000)
	env := workerEnv(dsn, topics, "pessimistic")
	a := startWorker(t, "worker a", env)
	l := startLoad(t, topics, 1500, 150)
	time.Sleep(2 * time.Second)
	b, c := startWorker(t, "worker b", env), startWorker(t, "worker c", env)
	time.Sleep(4 * time.Second)
	b.stopClean()
	c.stopClean()
	l.verify(func() *gorm.DB { return pool }, 100000, a, b, c)
	a.stopClean()
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
	first := startWorker(t, "first worker", env)
	if !first.waitReady(true, 30*time.Second) {
		t.Fatalf("worker never ready\n%s", first.logs)
	}
	l := startLoad(t, topics, 300, 100)
	time.Sleep(time.Second)
	services(t, "down", "mariadb")
	defer services(t, "up", "mariadb")
	if !first.waitReady(false, 20*time.Second) {
		t.Fatalf("readiness did not drop while MariaDB was down\n%s", first.logs)
	}
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-first.done:
		first.done <- err
		t.Fatalf("the worker exited (%v) without finishing its batch, while MariaDB was down\n%s", err, first.logs)
	case <-time.After(2 * time.Second): // still draining, as it should
	}
	err, took := first.stop(syscall.SIGTERM, 5*time.Second)
	if err == nil {
		t.Fatalf("the second signal ended the worker with status 0; want the immediate-exit status")
	}
	t.Logf("second signal: exited %v after %v", err, took)
	services(t, "up", "mariadb")
	second := startWorker(t, "second worker", env)
	l.verify(func() *gorm.DB { return openDSN(t, dsn) }, 100000, first, second)
	second.stopClean()
}
