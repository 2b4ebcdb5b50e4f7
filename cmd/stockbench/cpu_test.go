package main

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/internal/testsvc"
)

func TestAddrIsLocal(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:3306": true, "localhost:9092": true, "[::1]:9092": true, "127.0.0.2": true,
		"10.0.0.5:3306": false, "kafka-0.kafka:9092": false, "db.example.com:3306": false, "": false,
	} {
		if got := addrIsLocal(addr); got != want {
			t.Errorf("addrIsLocal(%q) = %v, want %v", addr, got, want)
		}
	}
	for dsn, want := range map[string]bool{
		"root@tcp(127.0.0.1:3306)/x": true, "root@unix(/run/mysqld/mysqld.sock)/x": true,
		"root@tcp(db.internal:3306)/x": false, "not a dsn": false,
	} {
		if got := dsnIsLocal(dsn); got != want {
			t.Errorf("dsnIsLocal(%q) = %v, want %v", dsn, got, want)
		}
	}
}

// The meter counts the CPU a process burns between two samples, per order,
// and leaves out services that are not on this machine.
func TestCPUMeterCountsWork(t *testing.T) {
	m, err := newCPUMeter("root@tcp(db.example.com:3306)/x", []string{"kafka.example.com:9092"})
	if err != nil {
		t.Fatal(err)
	}
	self := []int{os.Getpid()}
	a, err := m.sample(self)
	if err != nil {
		t.Fatal(err)
	}
	const burn = 200 * time.Millisecond
	x := 0
	for start := time.Now(); time.Since(start) < burn; {
		for i := range 10_000 {
			x += i
		}
	}
	runtime.KeepAlive(x)
	b, err := m.sample(self)
	if err != nil {
		t.Fatal(err)
	}
	u := m.use(a, b, 1000)
	// 200 ms over 1,000 orders is 200 µs each; the clock ticks at 10 ms and
	// the machine is shared, so only the order of magnitude is checked.
	if u.WorkerUS < 100 || u.WorkerUS > 1000 {
		t.Errorf("worker %.0f µs per order after burning %v over 1,000 orders; want about 200", u.WorkerUS, burn)
	}
	if u.BusyCores <= 0 || u.Cores != runtime.NumCPU() {
		t.Errorf("busy %.2f of %d cores", u.BusyCores, u.Cores)
	}
	if u.DBUS != nil || u.KafkaUS != nil {
		t.Errorf("remote services measured: db %v, kafka %v", u.DBUS, u.KafkaUS)
	}
	if m.use(a, b, 0) != nil {
		t.Errorf("a use over no orders")
	}
}

// With the services on this machine (as scripts/services.sh runs them), the
// meter finds the database server and the Kafka broker: the table's db and
// kafka columns depend on it.
func TestCPUMeterFindsLocalServices(t *testing.T) {
	dsn, brokers := testsvc.MySQLDSN(), testsvc.KafkaBrokers()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	testsvc.Require(t, "MariaDB", cfg.Addr)
	testsvc.Require(t, "Kafka", brokers[0])
	if !dsnIsLocal(dsn) || !addrIsLocal(brokers[0]) {
		t.Skipf("services not on this machine (%s, %v): nothing to find", cfg.Addr, brokers)
	}
	m, err := newCPUMeter(dsn, brokers)
	if err != nil {
		t.Fatal(err)
	}
	if !m.dbOK || !m.kafkaOK {
		t.Fatalf("database server found %v (pids %v), Kafka broker found %v (pids %v)", m.dbOK, m.db, m.kafkaOK, m.kafka)
	}
	if _, err := m.sample(nil); err != nil {
		t.Fatal(err)
	}
}
