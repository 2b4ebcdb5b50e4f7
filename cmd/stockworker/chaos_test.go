//go:build chaos

// Chaos tests restart the shared MariaDB and Redis, so they run on their own,
// after the rest of the suite: `make test` runs them with -tags chaos -p 1.
//
// They wait for conditions, not for time: a worker ready (/readyz), its group
// owning every partition (harness.WaitAssigned), orders answered (the workers'
// /metrics). The only sleeps left are the disruption's own length, and say so.

package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/stockflow/stockflow/internal/testsvc"
	"gorm.io/gorm"
)

// outage is how long a stopped service stays down once the workers noticed:
// the disruption itself, not a wait for something.
const outage = 2 * time.Second

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
