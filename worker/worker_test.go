package worker_test

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
	"github.com/stockflow/stockflow/worker"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"gorm.io/gorm"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rig is one test's worker on the real Kafka and MariaDB.
type rig struct {
	t         *testing.T
	g         *gorm.DB
	topics    testsvc.Topics
	pub       *producer.Publisher
	strategy  string
	consumers int
	metrics   *worker.Metrics
	reg       *prometheus.Registry
	w         *worker.Worker
}

func newRig(t *testing.T) *rig {
	t.Parallel()
	r := &rig{t: t, g: testsvc.Database(t, 8), topics: testsvc.NewTopics(t, 3), strategy: "pessimistic"}
	r.pub = producer.New(testsvc.KafkaBrokers(), producer.Options{})
	t.Cleanup(func() { r.pub.Close() })
	return r
}

// start runs a worker until the test ends and checks that it stops cleanly.
func (r *rig) start() {
	r.t.Helper()
	strategy, err := db.NewStrategy(r.strategy, r.g, nil, db.Options{})
	if err != nil {
		r.t.Fatal(err)
	}
	if r.reg == nil {
		r.reg = prometheus.NewRegistry()
		r.metrics = worker.NewMetrics(r.reg)
	}
	w, err := worker.New(worker.Config{
		Brokers:        testsvc.KafkaBrokers(),
		GroupID:        r.topics.Orders + ".group",
		OrdersTopic:    r.topics.Orders,
		CancelledTopic: r.topics.Cancelled,
		EventsTopic:    r.topics.Events,
		DLQTopic:       r.topics.DLQ,
		Strategy:       r.strategy,
		MinBackoff:     10 * time.Millisecond,
		Consumers:      r.consumers,
		Metrics:        r.metrics,
	}, strategy, db.NewLedger(r.g, db.Options{}), r.pub, zaptest.NewLogger(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	r.w = w
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				r.t.Errorf("worker Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			r.t.Errorf("worker did not stop within 30s of cancel")
		}
	})
}

// send publishes raw order-placed values keyed by key.
func (r *rig) send(key string, values ...string) {
	r.t.Helper()
	r.sendTo(r.topics.Orders, key, values...)
}

// sendTo publishes raw values keyed by key to topic.
func (r *rig) sendTo(topic, key string, values ...string) {
	r.t.Helper()
	msgs := make([]kafka.Message, len(values))
	for i, v := range values {
		msgs[i] = kafka.Message{Topic: topic, Key: []byte(key), Value: []byte(v)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.pub.Publish(ctx, msgs...); err != nil {
		r.t.Fatal(err)
	}
}

// outcomes waits for n outcome events and checks there is no (n+1)th.
func (r *rig) outcomes(n int) []kafka.Message {
	r.t.Helper()
	got := testsvc.Collect(r.t, r.topics.Events, n, 60*time.Second)
	if len(got) != n {
		r.t.Fatalf("got %d outcome events, want %d", len(got), n)
	}
	if extra := testsvc.Collect(r.t, r.topics.Events, n+1, 2*time.Second); len(extra) != n {
		r.t.Fatalf("got %d outcome events, want exactly %d", len(extra), n)
	}
	return got
}

func outcome(t *testing.T, m kafka.Message) events.Outcome {
	t.Helper()
	o, err := events.DecodeOutcome(m.Value)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Key) != o.OrderID {
		t.Fatalf("outcome keyed %q, want its order_id %q", m.Key, o.OrderID)
	}
	if typ := header(m, producer.HeaderType); typ != o.Type {
		t.Fatalf("type header %q, payload type %q", typ, o.Type)
	}
	return o
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestOrderDeductedEndToEnd(t *testing.T) {
	r := newRig(t)
	testsvc.Stock(t, r.g, 16, 10, 17, 5)
	r.start()
	r.send("A1001", `{"order_id":"A1001","items":[{"goods_id":16,"num":1},{"goods_id":17,"num":2}]}`)
	o := outcome(t, r.outcomes(1)[0])
	if o.Type != events.TypeDeducted || o.EventID != "A1001:stock-deducted" || len(o.Items) != 2 {
		t.Fatalf("outcome = %+v", o)
	}
	if a, b := testsvc.Stocks(t, r.g, 16), testsvc.Stocks(t, r.g, 17); a != 9 || b != 3 {
		t.Fatalf("stocks = %d, %d, want 9, 3", a, b)
	}
}

func TestRedeliveredOrderDeductsOnce(t *testing.T) {
	r := newRig(t)
	testsvc.Stock(t, r.g, 16, 10)
	r.start()
	order := `{"order_id":"twice","items":[{"goods_id":16,"num":3}]}`
	r.send("twice", order, order)
	got := r.outcomes(2)
	if string(got[0].Value) != string(got[1].Value) {
		t.Fatalf("outcome events differ:\n%s\n%s", got[0].Value, got[1].Value)
	}
	if o := outcome(t, got[0]); o.Type != events.TypeDeducted {
		t.Fatalf("outcome = %+v", o)
	}
	if s := testsvc.Stocks(t, r.g, 16); s != 7 {
		t.Fatalf("stock = %d, want 7: one deduction", s)
	}
}

func TestRejections(t *testing.T) {
	r := newRig(t)
	testsvc.Stock(t, r.g, 1, 10, 2, 1)
	r.start()
	r.send("short", `{"order_id":"short","items":[{"goods_id":1,"num":2},{"goods_id":2,"num":2}]}`)
	r.send("unknown", `{"order_id":"unknown","items":[{"goods_id":404,"num":1}]}`)
	r.send("invalid", `{"order_id":"invalid","items":[{"goods_id":1,"num":0}]}`)
	want := map[string]string{
		"short":   events.ReasonInsufficientStock,
		"unknown": events.ReasonUnknownGoods,
		"invalid": events.ReasonInvalidOrder,
	}
	for _, m := range r.outcomes(3) {
		o := outcome(t, m)
		if o.Type != events.TypeRejected || o.Reason != want[o.OrderID] {
			t.Errorf("%s: outcome %s", o.OrderID, m.Value)
		}
		if o.OrderID == "short" && (len(o.Items) != 2 || *o.Items[0].Available != 10 || *o.Items[1].Available != 1) {
			t.Errorf("short: items must list every line with its stock: %s", m.Value)
		}
	}
	if a, b := testsvc.Stocks(t, r.g, 1), testsvc.Stocks(t, r.g, 2); a != 10 || b != 1 {
		t.Fatalf("stocks = %d, %d: a rejected order changed stock", a, b)
	}
}

func TestGarbageGoesToDeadLetterAndWorkerGoesOn(t *testing.T) {
	r := newRig(t)
	testsvc.Stock(t, r.g, 16, 10)
	r.start()
	garbage := []string{"\x00\xffnot json", `[1,2,3]`, `{"items":[]}`, `{"order_id":""}`}
	for i, g := range garbage {
		r.send("g"+strconv.Itoa(i), g)
	}
	r.send("after", `{"order_id":"after","items":[{"goods_id":16,"num":1}]}`)

	dead := testsvc.Collect(t, r.topics.DLQ, len(garbage), 60*time.Second)
	if len(dead) != len(garbage) {
		t.Fatalf("dead letters = %d, want %d", len(dead), len(garbage))
	}
	sort.Slice(dead, func(i, j int) bool { return string(dead[i].Key) < string(dead[j].Key) })
	for i, m := range dead {
		if string(m.Key) != "g"+strconv.Itoa(i) || string(m.Value) != garbage[i] {
			t.Errorf("dead letter %d: key %q value %q, want the original", i, m.Key, m.Value)
		}
		if header(m, producer.HeaderError) == "" || header(m, producer.HeaderSourceTopic) != r.topics.Orders ||
			header(m, producer.HeaderSourcePartition) == "" || header(m, producer.HeaderSourceOffset) == "" {
			t.Errorf("dead letter %d headers: %v", i, m.Headers)
		}
	}
	if o := outcome(t, r.outcomes(1)[0]); o.OrderID != "after" || o.Type != events.TypeDeducted {
		t.Fatalf("order after the garbage: %+v", o)
	}
}

// TestSeedScenario is the seed code's test, made real: goods 16 stocked 10, 20
// orders of 1 placed concurrently, two workers in one group.
func TestSeedScenario(t *testing.T) {
	r := newRig(t)
	r.consumers = 2 // two workers of two members each, on three partitions
	testsvc.Stock(t, r.g, 16, 10)
	r.start()
	r.start()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("seed-%d", i)
			r.send(id, fmt.Sprintf(`{"order_id":%q,"items":[{"goods_id":16,"num":1}]}`, id))
		}()
	}
	wg.Wait()
	count := map[string]int{}
	for _, m := range r.outcomes(20) {
		o := outcome(t, m)
		count[o.Type+"/"+o.Reason]++
	}
	if count["stock-deducted/"] != 10 || count["stock-rejected/insufficient_stock"] != 10 {
		t.Fatalf("outcomes = %v, want 10 deducted and 10 rejected", count)
	}
	if s := testsvc.Stocks(t, r.g, 16); s != 0 {
		t.Fatalf("final stock = %d, want 0", s)
	}
}

// A backlog answered by the batch strategy in micro-batches: garbage, invalid
// orders and repeated orders inside one batch are each answered, in offset
// order per key, and the stock ends exact.
func TestBatchStrategyAnswersAMixedBacklog(t *testing.T) {
	r := newRig(t)
	r.strategy = "batch"
	testsvc.Stock(t, r.g, 16, 5)
	// One key, so the whole backlog lands on one partition in this order.
	r.send("k",
		`{"order_id":"b1","items":[{"goods_id":16,"num":2}]}`,
		`not an order`,
		`{"order_id":"b2","items":[{"goods_id":16,"num":4}]}`,
		`{"order_id":"b1","items":[{"goods_id":16,"num":2}]}`,
		`{"order_id":"b3","items":[{"goods_id":16,"num":0}]}`,
		`{"order_id":"b4","items":[{"goods_id":16,"num":3}]}`,
		`{"order_id":"b5","items":[{"goods_id":404,"num":1}]}`,
	)
	r.start()
	// Outcomes are keyed by order_id, so only one order's events keep their
	// relative order; compare them as a set.
	got := r.outcomes(6)
	seen := map[string]int{}
	b1 := map[string]bool{}
	for _, m := range got {
		o := outcome(t, m)
		seen[o.OrderID+" "+o.Type+" "+o.Reason]++
		if o.OrderID == "b1" {
			b1[string(m.Value)] = true
		}
	}
	want := map[string]int{"b1 stock-deducted ": 2, "b2 stock-rejected insufficient_stock": 1,
		"b3 stock-rejected invalid_order": 1, "b4 stock-deducted ": 1, "b5 stock-rejected unknown_goods": 1}
	if !maps.Equal(seen, want) {
		t.Errorf("outcomes = %v, want %v", seen, want)
	}
	if len(b1) != 1 {
		t.Errorf("the repeated order's outcomes differ: %v", b1)
	}
	if dead := testsvc.Collect(t, r.topics.DLQ, 1, 30*time.Second); len(dead) != 1 || string(dead[0].Value) != "not an order" {
		t.Fatalf("dead letters = %v", dead)
	}
	if s := testsvc.Stocks(t, r.g, 16); s != 0 {
		t.Fatalf("stock = %d, want 0", s)
	}
}

func TestCancellations(t *testing.T) {
	r := newRig(t)
	testsvc.Stock(t, r.g, 16, 10)
	r.start()
	r.send("A", `{"order_id":"A","items":[{"goods_id":16,"num":4}]}`)
	r.send("R", `{"order_id":"R","items":[{"goods_id":16,"num":99}]}`)
	if got := r.outcomes(2); len(got) != 2 {
		t.Fatal("orders not answered")
	}
	// Cancel the deducted order twice, the rejected one once, and one that has
	// not arrived yet; then that order arrives.
	r.sendTo(r.topics.Cancelled, "A", `{"order_id":"A"}`, `{"order_id":"A"}`)
	r.sendTo(r.topics.Cancelled, "R", `{"order_id":"R"}`)
	r.sendTo(r.topics.Cancelled, "E", `{"order_id":"E"}`)
	r.sendTo(r.topics.Cancelled, "x", `not a cancel`)
	r.send("E", `{"order_id":"E","items":[{"goods_id":16,"num":1}]}`)

	// A: deducted, released ×2 (the replay re-publishes); R: rejected only;
	// E: rejected/cancelled at cancel time and again when the order arrives.
	got := r.outcomes(2 + 2 + 2)
	count := map[string]int{}
	payloads := map[string]map[string]bool{}
	for _, m := range got {
		o := outcome(t, m)
		k := o.OrderID + " " + o.Type + " " + o.Reason
		count[k]++
		if payloads[k] == nil {
			payloads[k] = map[string]bool{}
		}
		payloads[k][string(m.Value)] = true
	}
	want := map[string]int{"A stock-deducted ": 1, "R stock-rejected insufficient_stock": 1,
		"A stock-released ": 2, "E stock-rejected cancelled": 2}
	if !maps.Equal(count, want) {
		t.Fatalf("outcomes = %v, want %v", count, want)
	}
	for k, p := range payloads {
		if len(p) != 1 {
			t.Errorf("%s published with %d different payloads", k, len(p))
		}
	}
	if s := testsvc.Stocks(t, r.g, 16); s != 10 {
		t.Fatalf("stock = %d, want 10: A's 4 given back once, E never deducted", s)
	}
	if dead := testsvc.Collect(t, r.topics.DLQ, 1, 30*time.Second); len(dead) != 1 ||
		header(dead[0], producer.HeaderSourceTopic) != r.topics.Cancelled {
		t.Fatalf("dead letters = %v", dead)
	}
	// The counters moved with what happened.
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"stockflow_cancellations_total", map[string]string{"result": "released", "replayed": "false"}, 1},
		{"stockflow_cancellations_total", map[string]string{"result": "released", "replayed": "true"}, 1},
		{"stockflow_cancellations_total", map[string]string{"result": "nothing", "replayed": "false"}, 1},
		{"stockflow_cancellations_total", map[string]string{"result": "before_order", "replayed": "false"}, 1},
		{"stockflow_orders_total", map[string]string{"outcome": "deducted", "replayed": "false"}, 1},
		{"stockflow_orders_total", map[string]string{"outcome": "rejected", "replayed": "true"}, 1},
		{"stockflow_dead_letters_total", map[string]string{"topic": r.topics.Cancelled}, 1},
		{"stockflow_ready", nil, 1},
	} {
		if got := metricValue(t, r.reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := metricValue(t, r.reg, "stockflow_batch_size", nil); n < 1 {
		t.Errorf("stockflow_batch_size observed %v batches", n)
	}
}

// metricValue is the value of the series name{labels} in reg: a counter's or
// gauge's value, a histogram's sample count; 0 when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}
