package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/testsvc"
)

// A database and a broker that are away when the worker starts (a rolling
// upgrade, a failover) are waited for, with a warning naming each, instead of
// exiting: the worker starts once they answer and decides orders.
func TestWorkerWaitsForItsServicesAtStart(t *testing.T) {
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 2)
	testsvc.Stock(t, openDSN(t, dsn), 16, 5)

	// Two addresses nobody listens on yet; proxies to the real services
	// open on them later.
	mysqlAddr, kafkaAddr := unusedAddr(t), unusedAddr(t)
	mysqlDSN := strings.Replace(dsn, "tcp(127.0.0.1:3306)", "tcp("+mysqlAddr+")", 1)
	if mysqlDSN == dsn {
		t.Fatalf("the test DSN %s does not name 127.0.0.1:3306", dsn)
	}
	env := workerEnv(mysqlDSN, topics, "atomic", "KAFKA_BROKERS="+kafkaAddr)
	ws := startWorkers(t, "worker", 1, env)
	w := ws.List()[0]

	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(w.Log(), what) {
			select {
			case <-w.Done():
				t.Fatalf("the worker exited while it should wait (%v):\n%s", w.Err(), w.Log())
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the worker's log within 30s:\n%s", what, w.Log())
			}
		}
	}
	waitLog("MySQL does not answer yet")
	tcpProxy(t, mysqlAddr, "127.0.0.1:3306")
	waitLog("Kafka does not answer yet")
	tcpProxy(t, kafkaAddr, testsvc.KafkaBrokers()[0])

	if err := w.WaitReady(true, time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, w.Log())
	}
	waitAssigned(t, topics, testConsumers)
	publish(t, kafka.Message{Topic: topics.Orders, Key: []byte("late-1"),
		Value: []byte(`{"order_id":"late-1","items":[{"goods_id":16,"num":2}]}`)})
	got := testsvc.Collect(t, topics.Events, 1, 30*time.Second)
	if len(got) == 0 || !strings.Contains(string(got[0].Value), `"stock-deducted"`) {
		t.Fatalf("outcome of late-1: %v\n%s", got, w.Log())
	}
	if e := w.Stop(syscall.SIGTERM, 30*time.Second); !e.Clean() {
		t.Fatalf("%v\n%s", e.Problem(), w.Log())
	}
}

// unusedAddr is a loopback address nothing listens on right now
// (harness.FreeAddr).
func unusedAddr(t *testing.T) string {
	t.Helper()
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
