package worker_test

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/internal/wire"
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
		Transient:      wire.Transient,
	}, wire.Deductor(strategy), wire.Ledger(db.NewLedger(r.g, db.Options{})), r.pub, zaptest.NewLogger(r.t))
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

// answers reads the events topic from its start until every order in ids has
// an event of its final type (the values of final), or 60s pass, and returns
// each order's events in the order they were published. Delivery is at least
// once, so an order may have more events than it needs; callers compare
// distinct events, never counts of messages.
func (r *rig) answers(final map[string]string) map[string][]events.Outcome {
	r.t.Helper()
	return r.answersUntil(fmt.Sprintf("final events %v", final), func(byOrder map[string][]events.Outcome) bool {
		for id, typ := range final {
			evs := byOrder[id]
			if len(evs) == 0 || evs[len(evs)-1].Type != typ {
				return false
			}
		}
		return true
	})
}

// answersUntil reads the events topic from its start until done holds for the
// events read so far (by order, in publication order), or 60s pass.
func (r *rig) answersUntil(what string, done func(map[string][]events.Outcome) bool) map[string][]events.Outcome {
	r.t.Helper()
	byOrder := map[string][]events.Outcome{}
	read := 0
	testsvc.CollectUntil(r.t, r.topics.Events, 60*time.Second, func(got []kafka.Message) bool {
		for _, m := range got[read:] {
			o := outcome(r.t, m)
			byOrder[o.OrderID] = append(byOrder[o.OrderID], o)
		}
		read = len(got)
		return done(byOrder)
	})
	if !done(byOrder) {
		r.t.Fatalf("not every order answered as expected; want %s, got %v", what, summary(byOrder))
	}
	return byOrder
}

// summary lists each order's event types and reasons, in order.
func summary(byOrder map[string][]events.Outcome) map[string][]string {
	out := map[string][]string{}
	for id, evs := range byOrder {
		for _, o := range evs {
			out[id] = append(out[id], strings.TrimSuffix(o.Type+"/"+o.Reason, "/"))
		}
	}
	return out
}

// distinct returns the distinct events of each order, in the order first seen.
func distinct(byOrder map[string][]events.Outcome) map[string][]string {
	out := map[string][]string{}
	for id, evs := range byOrder {
		seen := map[string]bool{}
		for _, o := range evs {
			k := strings.TrimSuffix(o.Type+"/"+o.Reason, "/")
			if !seen[k] {
				seen[k] = true
				out[id] = append(out[id], k)
			}
		}
	}
	return out
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
	o := r.answers(map[string]string{"A1001": events.TypeDeducted})["A1001"][0]
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
	var got []kafka.Message
	testsvc.CollectUntil(t, r.topics.Events, 60*time.Second, func(m []kafka.Message) bool { got = m; return len(m) >= 2 })
	if len(got) < 2 {
		t.Fatalf("got %d outcome events for two deliveries, want at least 2", len(got))
	}
	for _, m := range got[1:] {
		if string(m.Value) != string(got[0].Value) {
			t.Fatalf("outcome events differ:\n%s\n%s", got[0].Value, m.Value)
		}
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
	got := r.answers(map[string]string{"short": events.TypeRejected, "unknown": events.TypeRejected, "invalid": events.TypeRejected})
	for id, reason := range want {
		for _, o := range got[id] {
			if o.Type != events.TypeRejected || o.Reason != reason {
				t.Errorf("%s: outcome %+v, want rejected/%s", id, o, reason)
			}
		}
	}
	if o := got["short"][0]; len(o.Items) != 2 || *o.Items[0].Available != 10 || *o.Items[1].Available != 1 {
		t.Errorf("short: items must list every line with its stock: %+v", o)
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

	dead := testsvc.CollectUntil(t, r.topics.DLQ, 60*time.Second, func(m []kafka.Message) bool { return len(distinctKeys(m)) == len(garbage) })
	if keys := distinctKeys(dead); len(keys) != len(garbage) {
		t.Fatalf("dead letters for %v, want one per garbage message", keys)
	}
	for _, m := range dead {
		i, err := strconv.Atoi(strings.TrimPrefix(string(m.Key), "g"))
		if err != nil || string(m.Value) != garbage[i] {
			t.Errorf("dead letter: key %q value %q, want the original", m.Key, m.Value)
		}
		if header(m, producer.HeaderError) == "" || header(m, producer.HeaderSourceTopic) != r.topics.Orders ||
			header(m, producer.HeaderSourcePartition) == "" || header(m, producer.HeaderSourceOffset) == "" ||
			header(m, producer.HeaderKind) != producer.KindUndecodable {
			t.Errorf("dead letter %q headers: %v", m.Key, m.Headers)
		}
	}
	if o := r.answers(map[string]string{"after": events.TypeDeducted})["after"][0]; o.Type != events.TypeDeducted {
		t.Fatalf("order after the garbage: %+v", o)
	}
}

func distinctKeys(msgs []kafka.Message) map[string]bool {
	keys := map[string]bool{}
	for _, m := range msgs {
		keys[string(m.Key)] = true
	}
	return keys
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
	start := make(chan struct{})
	final := map[string]string{}
	for i := range 20 {
		id := fmt.Sprintf("seed-%d", i)
		final[id] = ""
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r.send(id, fmt.Sprintf(`{"order_id":%q,"items":[{"goods_id":16,"num":1}]}`, id))
		}()
	}
	close(start)
	wg.Wait()
	got := r.answersAny(final)
	count := map[string]int{}
	for id, kinds := range distinct(got) {
		if len(kinds) != 1 {
			t.Errorf("order %s answered %v: two different outcomes", id, kinds)
		}
		count[kinds[0]]++
	}
	if count["stock-deducted"] != 10 || count["stock-rejected/insufficient_stock"] != 10 {
		t.Fatalf("distinct outcomes = %v, want 10 deducted and 10 rejected", count)
	}
	if s := testsvc.Stocks(t, r.g, 16); s != 0 {
		t.Fatalf("final stock = %d, want 0", s)
	}
}

// answersAny is answers for orders whose final event type is not known in
// advance: it waits for at least one event of each.
func (r *rig) answersAny(ids map[string]string) map[string][]events.Outcome {
	r.t.Helper()
	return r.answersUntil(fmt.Sprintf("an answer for each of %d orders", len(ids)), func(byOrder map[string][]events.Outcome) bool {
		for id := range ids {
			if len(byOrder[id]) == 0 {
				return false
			}
		}
		return true
	})
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
	got := r.answers(map[string]string{"b1": events.TypeDeducted, "b2": events.TypeRejected, "b3": events.TypeRejected,
		"b4": events.TypeDeducted, "b5": events.TypeRejected})
	want := map[string][]string{"b1": {"stock-deducted"}, "b2": {"stock-rejected/insufficient_stock"},
		"b3": {"stock-rejected/invalid_order"}, "b4": {"stock-deducted"}, "b5": {"stock-rejected/unknown_goods"}}
	if d := distinct(got); !reflect.DeepEqual(d, want) {
		t.Errorf("outcomes = %v, want %v", d, want)
	}
	if len(got["b1"]) < 2 {
		t.Errorf("b1 was placed twice and answered %d times", len(got["b1"]))
	}
	if dead := testsvc.Collect(t, r.topics.DLQ, 1, 30*time.Second); len(dead) < 1 || string(dead[0].Value) != "not an order" {
		t.Fatalf("dead letters = %v", dead)
	}
	if s := testsvc.Stocks(t, r.g, 16); s != 0 {
		t.Fatalf("stock = %d, want 0", s)
	}
	if n := metricValue(t, r.reg, "stockflow_batch_size", nil); n < 1 {
		t.Errorf("stockflow_batch_size observed %v batch transactions", n)
	}
}

func TestCancellations(t *testing.T) {
	r := newRig(t)
	testsvc.Stock(t, r.g, 16, 10)
	r.start()
	r.send("A", `{"order_id":"A","items":[{"goods_id":16,"num":4}]}`)
	r.send("R", `{"order_id":"R","items":[{"goods_id":16,"num":99}]}`)
	r.answers(map[string]string{"A": events.TypeDeducted, "R": events.TypeRejected})
	// Cancel the deducted order twice, the rejected one once, and one that has
	// not arrived yet; then that order arrives.
	r.sendTo(r.topics.Cancelled, "A", `{"order_id":"A"}`, `{"order_id":"A"}`)
	r.sendTo(r.topics.Cancelled, "R", `{"order_id":"R"}`)
	r.sendTo(r.topics.Cancelled, "E", `{"order_id":"E"}`)
	r.sendTo(r.topics.Cancelled, "x", `not a cancel`)
	// Kafka orders nothing across topics: E's order is sent once its cancel
	// is answered, so that the cancel really comes first.
	r.answers(map[string]string{"E": events.TypeReleased})
	r.send("E", `{"order_id":"E","items":[{"goods_id":16,"num":1}]}`)

	// Every cancel is answered with stock-released, and it is each cancelled
	// order's last event: also E's, whose order arrived after its cancel.
	got := r.answersUntil("A, R and E released last, E answered four times", func(byOrder map[string][]events.Outcome) bool {
		for _, id := range []string{"A", "R", "E"} {
			evs := byOrder[id]
			if len(evs) == 0 || evs[len(evs)-1].Type != events.TypeReleased {
				return false
			}
		}
		return len(byOrder["E"]) >= 4
	})
	want := map[string][]string{
		"A": {"stock-deducted", "stock-released"},
		"R": {"stock-rejected/insufficient_stock", "stock-released"},
		"E": {"stock-rejected/cancelled", "stock-released"},
	}
	if d := distinct(got); !reflect.DeepEqual(d, want) {
		t.Fatalf("outcomes = %v, want %v", summary(got), want)
	}
	for id, evs := range got {
		payloads := map[string]map[string]bool{}
		for _, o := range evs {
			b, _ := o.Encode()
			if payloads[o.Type] == nil {
				payloads[o.Type] = map[string]bool{}
			}
			payloads[o.Type][string(b)] = true
		}
		for typ, p := range payloads {
			if len(p) != 1 {
				t.Errorf("%s %s published with %d different payloads", id, typ, len(p))
			}
		}
	}
	if s := testsvc.Stocks(t, r.g, 16); s != 10 {
		t.Fatalf("stock = %d, want 10: A's 4 given back once, E never deducted", s)
	}
	if dead := testsvc.Collect(t, r.topics.DLQ, 1, 30*time.Second); len(dead) < 1 ||
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
}

// The triggers that used to stop a partition for good, through the real
// broker and database: each is answered and the partition moves on.
func TestFormerPartitionStoppers(t *testing.T) {
	for _, strategy := range db.StrategyNames() {
		if strategy == "redis" {
			continue // needs a Redis client; the corpus test covers it end to end
		}
		t.Run(strategy, func(t *testing.T) {
			r := newRig(t)
			r.strategy = strategy
			testsvc.Stock(t, r.g, 16, 10)
			r.start()
			parts := make([]string, 3000)
			for i := range parts {
				parts[i] = fmt.Sprintf(`{"goods_id":%d,"num":1}`, i+1)
			}
			r.send("k", `{"order_id":"big","items":[`+strings.Join(parts, ",")+`]}`)
			r.send("k", `{"order_id":"TS1","items":[{"goods_id":16,"num":1}]}`, `{"order_id":"TS1 ","items":[{"goods_id":16,"num":1}]}`)
			r.send("k", "{\"order_id\":\"U\xff\xfeV\",\"items\":[{\"goods_id\":16,\"num\":1}]}", `{"order_id":"U\ud800V","items":[{"goods_id":16,"num":1}]}`)
			r.send("k", `{"order_id":"last","items":[{"goods_id":16,"num":1}]}`)
			got := r.answers(map[string]string{"big": events.TypeRejected, "TS1": events.TypeDeducted, "TS1 ": events.TypeDeducted,
				"last": events.TypeDeducted})
			if o := got["big"][0]; o.Reason != events.ReasonInvalidOrder || o.ItemsTotal != 3000 || len(o.Items) != events.MaxLines {
				t.Errorf("big: %+v", o)
			}
			if len(got) != 4 {
				t.Errorf("answered orders %v: the undecodable ones must not be answered as orders", summary(got))
			}
			dead := testsvc.CollectUntil(t, r.topics.DLQ, 30*time.Second, func(m []kafka.Message) bool { return len(m) >= 2 })
			if len(dead) < 2 {
				t.Fatalf("dead letters = %d, want the invalid UTF-8 and the lone surrogate", len(dead))
			}
			if s := testsvc.Stocks(t, r.g, 16); s != 7 {
				t.Fatalf("stock = %d, want 7", s)
			}
		})
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

// The first copy of an order by offset decides it, wherever a batch starts:
// a later invalid copy of the same order id replays that decision.
func TestFirstCopyDecidesAnOrder(t *testing.T) {
	for _, strategy := range []string{"pessimistic", "batch"} {
		t.Run(strategy, func(t *testing.T) {
			r := newRig(t)
			r.strategy = strategy
			testsvc.Stock(t, r.g, 16, 10)
			r.send("k", `{"order_id":"V","items":[{"goods_id":16,"num":1}]}`, `{"order_id":"V","items":[]}`)
			r.start()
			got := r.answersUntil("two answers for V", func(b map[string][]events.Outcome) bool { return len(b["V"]) >= 2 })
			if d := distinct(got)["V"]; len(d) != 1 || d[0] != events.TypeDeducted {
				t.Fatalf("V answered %v, want only stock-deducted (its first copy)", summary(got)["V"])
			}
			if s := testsvc.Stocks(t, r.g, 16); s != 9 {
				t.Fatalf("stock = %d, want 9", s)
			}
		})
	}
}

// placed X → cancelled X → placed X again (a redelivery): the last event of X
// is still its stock-released, and the stock was given back once.
func TestRedeliveredOrderAfterItsCancelEndsReleased(t *testing.T) {
	r := newRig(t)
	testsvc.Stock(t, r.g, 16, 10)
	r.start()
	order := `{"order_id":"X","items":[{"goods_id":16,"num":3}]}`
	r.send("X", order)
	r.answers(map[string]string{"X": events.TypeDeducted})
	r.sendTo(r.topics.Cancelled, "X", `{"order_id":"X"}`)
	r.answers(map[string]string{"X": events.TypeReleased})
	r.send("X", order)
	got := r.answersUntil("X deducted again, then released again", func(b map[string][]events.Outcome) bool {
		evs := b["X"]
		return len(evs) >= 4 && evs[len(evs)-1].Type == events.TypeReleased
	})
	want := []string{"stock-deducted", "stock-released", "stock-deducted", "stock-released"}
	if s := summary(got)["X"]; !reflect.DeepEqual(s, want) {
		t.Fatalf("X's events = %v, want %v", s, want)
	}
	if s := testsvc.Stocks(t, r.g, 16); s != 10 {
		t.Fatalf("stock = %d, want 10", s)
	}
}
