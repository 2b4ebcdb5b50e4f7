package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
)

func TestConfigFromEnvAndFlags(t *testing.T) {
	env := map[string]string{"LOCK_STRATEGY": "pessimistic", "GROUP_ID": "from-env", "TOPIC_PARTITIONS": "12"}
	c, err := parseConfig([]string{"-group-id", "from-flag"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.GroupID != "from-flag" || c.Partitions != 12 || c.Brokers != "localhost:9092" || c.OrdersTopic != "orders.placed" {
		t.Fatalf("config = %+v", c)
	}
	if !c.Migrate || !c.CreateTopics || c.HTTPAddr != ":8080" {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestConfigErrorsAreClear(t *testing.T) {
	env := map[string]string{"LOCK_STRATEGY": "spinlock", "TOPIC_PARTITIONS": "six", "MIGRATE": "maybe"}
	_, err := parseConfig(nil, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{`LOCK_STRATEGY "spinlock" is not one of: mutex, pessimistic, optimistic, redis, atomic, batch`, `TOPIC_PARTITIONS="six" is not a number`, `MIGRATE="maybe"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestHelpShowsEveryVariable(t *testing.T) {
	var out bytes.Buffer
	code := run(context.Background(), []string{"-help"}, func(string) string { return "" }, &out)
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, v := range []string{"KAFKA_BROKERS", "MYSQL_DSN", "REDIS_ADDR", "LOCK_STRATEGY", "GROUP_ID", "ORDERS_TOPIC",
		"CANCELLED_TOPIC", "EVENTS_TOPIC", "DLQ_TOPIC", "HTTP_ADDR", "stockworker migrate", "Examples"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("help does not mention %s", v)
		}
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildWorker builds stockworker (with -race) once per test run.
func buildWorker(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stockworker-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "stockworker")
		if out, err := exec.Command("go", "build", "-race", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// TestTwoProcessesSeedScenario is the seed scenario for real, under every lock
// strategy: goods 16 stocked 10, 20 orders of 1 placed at once through Kafka,
// two stockworker processes in one group. Then SIGTERM makes both exit 0
// promptly.
func TestTwoProcessesSeedScenario(t *testing.T) {
	for _, strategy := range db.StrategyNames() {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			seedScenario(t, strategy)
		})
	}
}

func seedScenario(t *testing.T, strategy string) {
	const orders, stock = 20, 10
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 6)
	pool := openDSN(t, dsn)
	testsvc.Stock(t, pool, 16, stock)
	// One lock-key prefix for this test's two processes: they must exclude
	// each other, and nobody else (other tests run the redis strategy at the
	// same time on the same Redis).
	env := workerEnv(dsn, topics, strategy, "REDIS_PREFIX="+testsvc.Unique("sftest:")+":")
	ws := startWorkers(t, "worker", 2, env)

	// Both ready and owning every partition before the first order: a member
	// that joins later would make a rebalance in the middle of the orders.
	if err := ws.WaitReady(true, time.Minute); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, topics, 2*testConsumers)

	// The orders, released at once.
	pub := producer.New(testsvc.KafkaBrokers(), producer.Options{})
	defer pub.Close()
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range orders {
		id := fmt.Sprintf("seed-%d", i)
		msg := kafka.Message{Topic: topics.Orders, Key: []byte(id),
			Value: []byte(fmt.Sprintf(`{"order_id":%q,"items":[{"goods_id":16,"num":1}]}`, id))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := pub.Publish(ctx, msg); err != nil {
				t.Errorf("place %s: %v", id, err)
			}
		}()
	}
	close(release)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Outcomes are at least once: a redelivery (after a rebalance, say)
	// repeats an order's outcome message. Count distinct orders, and each
	// order must have one distinct answer.
	answers := map[string]map[string]bool{} // order id → its distinct "type/reason"
	read := 0
	testsvc.CollectUntil(t, topics.Events, 90*time.Second, func(got []kafka.Message) bool {
		for _, m := range got[read:] {
			o, err := events.DecodeOutcome(m.Value)
			if err != nil {
				t.Fatalf("undecodable outcome %q: %v", m.Value, err)
			}
			if answers[o.OrderID] == nil {
				answers[o.OrderID] = map[string]bool{}
			}
			answers[o.OrderID][o.Type+"/"+o.Reason] = true
		}
		read = len(got)
		return len(answers) >= orders
	})
	count := map[string]int{}
	for id, kinds := range answers {
		if len(kinds) != 1 {
			t.Errorf("order %s was answered %d different ways: %v", id, len(kinds), kinds)
		}
		for k := range kinds {
			count[k]++
		}
	}
	if len(answers) != orders || count["stock-deducted/"] != stock || count["stock-rejected/insufficient_stock"] != orders-stock {
		t.Fatalf("%d orders answered (%d outcome messages): %v; want %d orders, %d deducted and %d rejected",
			len(answers), read, count, orders, stock, orders-stock)
	}
	if s := testsvc.Stocks(t, pool, 16); s != 0 {
		t.Fatalf("final stock = %d, want 0", s)
	}
	// The two workers together decided each order once: a redelivery is
	// counted as replayed="true", never as a fresh decision.
	fresh := harness.Labels{"replayed": "false"}
	if n := waitCounter(t, ws, "stockflow_orders_total", fresh, orders, 10*time.Second); n != orders {
		t.Fatalf("stockflow_orders_total{replayed=\"false\"} summed over both workers = %v, want %d", n, orders)
	}
	// SIGTERM: each process leaves the group and exits 0 within the bound.
	for _, e := range ws.Stop(syscall.SIGTERM, 30*time.Second) {
		if !e.Clean() {
			t.Errorf("%v", e.Problem())
		}
	}
}

// A DSN password never reaches the logs, even when the connection fails: not
// while the worker waits for a database nobody listens on yet, nor when the
// server refuses the user.
func TestPasswordNeverLogged(t *testing.T) {
	t.Parallel()
	bin := buildWorker(t)
	for _, c := range []struct {
		dsn   string
		waits bool // a database that does not answer is waited for; a refusal stops the worker
	}{
		{"stockflow:s3cr3t-pw@tcp(127.0.0.1:1)/stockflow?parseTime=true", true},                     // nothing listens
		{"nobody:s3cr3t-pw@tcp(" + testsvc.Env("TEST_MYSQL_ADDR", "127.0.0.1:3306") + ")/x", false}, // access denied
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cmd := exec.CommandContext(ctx, bin)
		cmd.Env = append(os.Environ(), "MYSQL_DSN="+c.dsn, "KAFKA_BROKERS=127.0.0.1:1", "HTTP_ADDR=")
		out, err := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		switch {
		case c.waits && !strings.Contains(string(out), "MySQL does not answer yet"):
			t.Fatalf("the worker did not say it waits for the database (%v):\n%s", err, out)
		case !c.waits && (err == nil || timedOut):
			t.Fatalf("the worker did not stop when the database refused it (%v):\n%s", err, out)
		}
		if strings.Contains(string(out), "s3cr3t-pw") {
			t.Fatalf("the password is in the output:\n%s", out)
		}
		if !strings.Contains(string(out), "xxxxx") {
			t.Errorf("the error does not name the (redacted) DSN:\n%s", out)
		}
	}
}

// Every worker setting of the configuration reaches the worker.
func TestWorkerConfigCarriesEverySetting(t *testing.T) {
	env := map[string]string{"GROUP_ID": "g", "ORDERS_TOPIC": "o", "CANCELLED_TOPIC": "c", "EVENTS_TOPIC": "e",
		"DLQ_TOPIC": "d", "LOCK_STRATEGY": "batch", "SHUTDOWN_GRACE": "7s", "BATCH_SIZE": "33", "BATCH_WAIT": "9ms", "CONSUMERS": "5"}
	c, err := parseConfig(nil, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	w := c.workerConfig([]string{"b:1"}, nil)
	if w.GroupID != "g" || w.OrdersTopic != "o" || w.CancelledTopic != "c" || w.EventsTopic != "e" || w.DLQTopic != "d" ||
		w.Strategy != "batch" || w.DrainTimeout != 7*time.Second || w.BatchSize != 33 || w.BatchWait != 9*time.Millisecond ||
		w.Consumers != 5 || len(w.Brokers) != 1 {
		t.Fatalf("worker config = %+v", w)
	}
}
