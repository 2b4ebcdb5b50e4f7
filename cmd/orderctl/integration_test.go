package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

// These tests run against the real Kafka and MariaDB (scripts/services.sh up);
// each uses its own topics and database, so they run in parallel. Without the
// services they skip, except under CI=true.

// kafkaConfig is a config on fresh topics of the real broker.
func kafkaConfig(t *testing.T) config {
	t.Helper()
	tp := testsvc.NewTopics(t, 3)
	cfg := testConfig()
	cfg.OrdersTopic, cfg.CancelledTopic, cfg.EventsTopic = tp.Orders, tp.Cancelled, tp.Events
	return cfg
}

// testConfig is the configuration of the test services, with the default topics.
func testConfig() config {
	cfg := configFromEnv(func(string) string { return "" })
	cfg.Brokers = strings.Join(testsvc.KafkaBrokers(), ",")
	cfg.MySQLDSN = testsvc.MySQLDSN()
	cfg.RedisAddr = testsvc.RedisAddr()
	return cfg
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestPlacePublishesTheOrderKeyedByItsID(t *testing.T) {
	t.Parallel()
	cfg := kafkaConfig(t)
	var out, errb bytes.Buffer
	if err := runPlace(testContext(t, time.Minute), cfg, []string{"A1001", "17:2", "16:1", "17:1"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "placed A1001 on "+cfg.OrdersTopic+": 16×1 17×3\n"; got != want {
		t.Fatalf("stdout %q, want %q", got, want)
	}
	msgs := testsvc.Collect(t, cfg.OrdersTopic, 1, 30*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("read %d messages, want 1", len(msgs))
	}
	if string(msgs[0].Key) != "A1001" {
		t.Fatalf("key %q, want A1001", msgs[0].Key)
	}
	o, err := events.DecodeOrderPlaced(msgs[0].Value)
	if err != nil {
		t.Fatalf("published order does not decode: %v (%s)", err, msgs[0].Value)
	}
	if o.OrderID != "A1001" || fmt.Sprint(o.Lines) != "[{16 1} {17 3}]" {
		t.Fatalf("order = %+v", o)
	}
}

func TestPlaceWaitPrintsTheOutcome(t *testing.T) {
	t.Parallel()
	cfg := kafkaConfig(t)
	ctx := testContext(t, time.Minute)

	// A stand-in worker: once the order is on the orders topic, answer it.
	// (Collect would call t.Fatal off the test goroutine; a tail does not.)
	orders, err := openTail(ctx, cfg.kafka(), cfg.OrdersTopic, true)
	if err != nil {
		t.Fatal(err)
	}
	defer orders.Close()
	answered := make(chan error, 1)
	go func() {
		m, err := orders.Next(ctx)
		if err != nil {
			answered <- err
			return
		}
		o, err := events.DecodeOrderPlaced(m.Value)
		if err != nil {
			answered <- err
			return
		}
		b, err := events.Rejected(o.OrderID, events.ReasonInsufficientStock, o.Lines, map[int64]int64{16: 0}, time.Now()).Encode()
		if err != nil {
			answered <- err
			return
		}
		answered <- publish(ctx, cfg.kafka(),
			producer.Outcome(cfg.EventsTopic, "someone-else", events.TypeDeducted, []byte(`{"type":"stock-deducted","order_id":"someone-else"}`)),
			producer.Outcome(cfg.EventsTopic, o.OrderID, events.TypeRejected, b))
	}()

	var out, errb bytes.Buffer
	if err := runPlace(ctx, cfg, []string{"W1", "16:1", "-wait", "-timeout", "45s"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !regexp.MustCompile(`^\d\d:\d\d:\d\d  W1  stock-rejected   insufficient_stock  16×1 \(available 0\)$`).MatchString(lines[1]) {
		t.Fatalf("stdout:\n%s", out.String())
	}
}

func TestPlaceWaitTimesOutClearly(t *testing.T) {
	t.Parallel()
	cfg := kafkaConfig(t)
	var out, errb bytes.Buffer
	err := runPlace(testContext(t, time.Minute), cfg, []string{"-wait", "-timeout", "1s", "T1", "16:1"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "no outcome for T1 on "+cfg.EventsTopic+" within 1s") {
		t.Fatalf("err = %v", err)
	}
}

func TestCancelPublishesTheOrderID(t *testing.T) {
	t.Parallel()
	cfg := kafkaConfig(t)
	var out, errb bytes.Buffer
	if err := runCancel(testContext(t, time.Minute), cfg, []string{"A1001"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	msgs := testsvc.Collect(t, cfg.CancelledTopic, 1, 30*time.Second)
	if len(msgs) != 1 || string(msgs[0].Key) != "A1001" {
		t.Fatalf("messages = %v", msgs)
	}
	if string(msgs[0].Value) != `{"order_id":"A1001"}` {
		t.Fatalf("payload %s", msgs[0].Value)
	}
	if c, err := events.DecodeOrderCancelled(msgs[0].Value); err != nil || c.OrderID != "A1001" {
		t.Fatalf("decoded %+v, %v", c, err)
	}
	if !strings.Contains(out.String(), "cancelled A1001 on "+cfg.CancelledTopic) {
		t.Fatalf("stdout %q", out.String())
	}
}

func TestLoadPublishesExactlyNDistinctOrders(t *testing.T) {
	t.Parallel()
	cfg := kafkaConfig(t)
	ctx := testContext(t, 2*time.Minute)
	var out, errb bytes.Buffer
	// Small batches and several publishers, to exercise the fan-out.
	if err := runLoad(ctx, cfg, []string{"-n", "200", "-batch", "30", "-concurrency", "3"}, &out, &errb); err != nil {
		t.Fatalf("%v\nstderr: %s", err, errb.String())
	}
	if !strings.HasPrefix(out.String(), "sent 200 orders (load-") {
		t.Fatalf("summary %q", out.String())
	}
	if total := topicSize(t, ctx, cfg, cfg.OrdersTopic); total != 200 {
		t.Fatalf("the topic holds %d messages, want 200", total)
	}
	msgs := testsvc.Collect(t, cfg.OrdersTopic, 200, 30*time.Second)
	idPattern := regexp.MustCompile(`^(load-\d{8}-\d{6}-[0-9a-f]{6})-(\d+)$`)
	prefixes, nums := map[string]bool{}, map[int]bool{}
	for _, m := range msgs {
		o, err := events.DecodeOrderPlaced(m.Value)
		if err != nil {
			t.Fatalf("undecodable order %s: %v", m.Value, err)
		}
		if string(m.Key) != o.OrderID {
			t.Fatalf("key %q, order_id %q", m.Key, o.OrderID)
		}
		match := idPattern.FindStringSubmatch(o.OrderID)
		if match == nil {
			t.Fatalf("order id %q", o.OrderID)
		}
		n, _ := strconv.Atoi(match[2])
		prefixes[match[1]], nums[n] = true, true
		if fmt.Sprint(o.Lines) != "[{16 1}]" {
			t.Fatalf("hot order lines %v, want goods 16 ×1", o.Lines)
		}
	}
	if len(prefixes) != 1 || len(nums) != 200 {
		t.Fatalf("%d prefixes, %d distinct numbers", len(prefixes), len(nums))
	}
	for i := 1; i <= 200; i++ {
		if !nums[i] {
			t.Fatalf("order %d missing", i)
		}
	}
}

func TestLoadSpreadAtARate(t *testing.T) {
	t.Parallel()
	cfg := kafkaConfig(t)
	ctx := testContext(t, 2*time.Minute)
	var out, errb bytes.Buffer
	start := time.Now()
	err := runLoad(ctx, cfg, []string{"-n", "40", "-goods", "spread", "-spread-goods", "50", "-lines", "3", "-rate", "100", "-prefix", "rated"}, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	// 40 orders at 100/s: the last batch is released after 0.35-0.4s.
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("40 orders at 100/s took only %v", d)
	}
	msgs := testsvc.Collect(t, cfg.OrdersTopic, 40, 30*time.Second)
	ids := map[string]bool{}
	for _, m := range msgs {
		o, err := events.DecodeOrderPlaced(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		ids[o.OrderID] = true
		if len(o.Lines) != 3 {
			t.Fatalf("order %s has lines %v, want 3 distinct goods", o.OrderID, o.Lines)
		}
		for _, l := range o.Lines {
			if l.GoodsID < 1 || l.GoodsID > 50 {
				t.Fatalf("goods %d outside 1..50", l.GoodsID)
			}
		}
	}
	if len(ids) != 40 || !ids["rated-1"] || !ids["rated-40"] {
		t.Fatalf("%d distinct ids", len(ids))
	}
}

// topicSize is the number of messages in a fresh topic (the sum of its end offsets).
func topicSize(t *testing.T, ctx context.Context, cfg config, topic string) int64 {
	t.Helper()
	ends, err := startOffsets(ctx, cfg.kafka(), topic, false)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, off := range ends {
		total += off
	}
	return total
}

func TestWatchPrintsOutcomes(t *testing.T) {
	t.Parallel()
	cfg := kafkaConfig(t)
	ctx := testContext(t, time.Minute)
	deducted, _ := events.Deducted("A1", []events.Line{{GoodsID: 16, Num: 1}, {GoodsID: 17, Num: 2}}, fixedTime).Encode()
	rejected, _ := events.Rejected("A2", events.ReasonInsufficientStock, []events.Line{{GoodsID: 16, Num: 1}}, nil, fixedTime).Encode()
	if err := publish(ctx, cfg.kafka(),
		producer.Outcome(cfg.EventsTopic, "A1", events.TypeDeducted, deducted),
		producer.Outcome(cfg.EventsTopic, "A2", events.TypeRejected, rejected)); err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if err := runWatch(ctx, cfg, []string{"-from-beginning", "-n", "2"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"  A1  stock-deducted   16×1 17×2\n", "  A2  stock-rejected   insufficient_stock  16×1 (available 0)\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("watch output lacks %q:\n%s", want, got)
		}
	}

	out.Reset()
	if err := runWatch(ctx, cfg, []string{"-from-beginning", "-n", "2", "-json"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("-json printed %q", line)
		}
	}
	if !strings.Contains(out.String(), string(deducted)) || !strings.Contains(out.String(), string(rejected)) {
		t.Fatalf("-json output:\n%s", out.String())
	}
}

func TestWatchStopsCleanlyOnCancel(t *testing.T) {
	t.Parallel()
	cfg := kafkaConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errb bytes.Buffer
	go func() { done <- runWatch(ctx, cfg, nil, &out, &errb) }()
	time.Sleep(time.Second)
	cancel() // what Ctrl-C does
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch returned %v on cancel, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("watch did not stop within 15s of cancel")
	}
}

func TestTailStartsAtTheEnd(t *testing.T) {
	t.Parallel()
	cfg := kafkaConfig(t)
	ctx := testContext(t, time.Minute)
	msg := func(id string) kafka.Message {
		return kafka.Message{Topic: cfg.EventsTopic, Key: []byte(id), Value: []byte(`{"order_id":"` + id + `"}`)}
	}
	if err := publish(ctx, cfg.kafka(), msg("old-1"), msg("old-2"), msg("old-3")); err != nil {
		t.Fatal(err)
	}
	tl, err := openTail(ctx, cfg.kafka(), cfg.EventsTopic, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	if err := publish(ctx, cfg.kafka(), msg("new")); err != nil {
		t.Fatal(err)
	}
	m, err := tl.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Key) != "new" {
		t.Fatalf("first message read %q, want the one published after openTail", m.Key)
	}
	if err := tl.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := tl.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestTailOfAMissingTopic(t *testing.T) {
	t.Parallel()
	testsvc.Require(t, "Kafka", testsvc.KafkaBrokers()[0])
	_, err := openTail(testContext(t, time.Minute), harness.Kafka{Brokers: testsvc.KafkaBrokers()}, testsvc.Unique("no-such-topic-"), false)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
}

// freshDSN names a database that does not exist yet, dropped when the test ends.
func freshDSN(t *testing.T) string {
	t.Helper()
	mc, err := mysql.ParseDSN(testsvc.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	testsvc.Require(t, "MariaDB", mc.Addr)
	mc.DBName = testsvc.Unique("sf_test_orderctl_")
	dsn := mc.FormatDSN()
	server := *mc
	server.DBName = ""
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		g, err := db.Open(ctx, server.FormatDSN(), db.PoolOptions{MaxOpen: 1})
		if err != nil {
			t.Errorf("drop %s: %v", mc.DBName, err)
			return
		}
		defer db.Close(g)
		if err := g.WithContext(ctx).Exec("DROP DATABASE IF EXISTS `" + mc.DBName + "`").Error; err != nil {
			t.Errorf("drop %s: %v", mc.DBName, err)
		}
	})
	return dsn
}

func TestStockRoundTripOnAFreshDatabase(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MySQLDSN = freshDSN(t)
	ctx := testContext(t, time.Minute)
	var out, errb bytes.Buffer

	// Before anything: the database does not exist, and get says so.
	err := runStockGet(ctx, cfg, []string{"16"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("get on a missing database: %v", err)
	}

	// set creates the database, migrates it, and upserts.
	if err := runStockSet(ctx, cfg, []string{"16=10", "17=5"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if err := runStockSet(ctx, cfg, []string{"16=7", "18=0"}, &out, &errb); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	if err := runStockGet(ctx, cfg, []string{"16", "17", "18"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	rows := parseTable(t, out.String())
	if rows["16"][0] != "7" || rows["17"][0] != "5" || rows["18"][0] != "0" {
		t.Fatalf("get:\n%s", out.String())
	}
	if rows["16"][1] != "1" || rows["17"][1] != "0" {
		t.Fatalf("an overwrite must bump the version, an insert not:\n%s", out.String())
	}

	out.Reset()
	err = runStockGet(ctx, cfg, []string{"16", "99"}, &out, &errb)
	if err == nil || err.Error() != "goods 99 does not exist (stock it with: orderctl stock set 99=N)" {
		t.Fatalf("get of a missing goods: %v", err)
	}
	if rows := parseTable(t, out.String()); rows["16"][0] != "7" || len(rows) != 1 {
		t.Fatalf("the goods that exist are still shown:\n%s", out.String())
	}

	out.Reset()
	if err := runStockList(ctx, cfg, []string{"-limit", "2"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if rows := parseTable(t, out.String()); len(rows) != 2 || rows["16"] == nil || rows["17"] == nil {
		t.Fatalf("list -limit 2:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "(2 of 3 goods; -limit 0 shows all)") {
		t.Fatalf("list does not say it is cut:\n%s", out.String())
	}
	out.Reset()
	if err := runStockList(ctx, cfg, []string{"-limit", "0"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if rows := parseTable(t, out.String()); len(rows) != 3 {
		t.Fatalf("list -limit 0:\n%s", out.String())
	}
}

func TestStockListOfAnEmptyInventory(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MySQLDSN = testsvc.DatabaseDSN(t)
	var out, errb bytes.Buffer
	if err := runStockList(testContext(t, time.Minute), cfg, nil, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no goods stocked") {
		t.Fatalf("stdout %q", out.String())
	}
}

// parseTable reads the goods table of stock get/list: goods → [stock, version].
func parseTable(t *testing.T, s string) map[string][]string {
	t.Helper()
	rows := map[string][]string{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] == "goods" || strings.HasPrefix(line, "(") {
			continue
		}
		rows[f[0]] = f[1:3]
	}
	return rows
}
