package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/corpus"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

// TestCorpusEndToEnd sends the whole bad-input corpus (testdata/corpus, and
// the inputs the fuzz targets found) through the real broker to two worker
// processes, then one good order, for every lock strategy, and checks that
// each case got exactly the answer it names, that the good order was answered
// within seconds (no case left a partition stuck), that both workers are alive
// and ready, that nothing needed the poison safety net, and that the stock is
// exact.
func TestCorpusEndToEnd(t *testing.T) {
	dir, err := corpus.Dir()
	if err != nil {
		t.Fatal(err)
	}
	c, err := corpus.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	fuzz, err := corpus.LoadFuzz(filepath.Join(filepath.Dir(filepath.Dir(dir)), "events", "testdata", "fuzz"))
	if err != nil {
		t.Fatal(err)
	}
	for _, strategy := range db.StrategyNames() {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			corpusRun(t, strategy, c, fuzz)
		})
	}
}

// expectation is what one message must get: an outcome sequence for an
// order id, or a dead letter under its key.
type expectation struct {
	name    string
	orderID string   // "" for a dead letter
	events  []string // distinct events, in order ("stock-rejected/invalid_order")
	value   []byte
}

func corpusRun(t *testing.T, strategy string, c corpus.Corpus, fuzz []corpus.Fuzz) {
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 6)
	pool := openDSN(t, dsn)
	for goods, n := range c.Stock {
		testsvc.Stock(t, pool, goods, n)
	}
	env := workerEnv(dsn, topics, strategy, "REDIS_PREFIX="+testsvc.Unique("sftest:")+":", "LOG_LEVEL=warn")
	workers := []*workerProc{startWorker(t, "worker 1", env), startWorker(t, "worker 2", env)}
	for _, w := range workers {
		if !w.waitReady(true, 60*time.Second) {
			t.Fatalf("%s never ready\n%s", w.name, w.logs)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, w := range workers {
				t.Logf("%s log:\n%s", w.name, w.logs)
			}
		}
	})

	var (
		msgs   []kafka.Message
		expect []expectation
		want   = maps.Clone(c.Stock)
	)
	for _, k := range c.Cases {
		topic := topics.Orders
		if k.Topic == corpus.Cancelled {
			topic = topics.Cancelled
		}
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(k.Name), Value: k.Value})
		e := expectation{name: k.Name, value: k.Value}
		switch {
		case k.Expect == corpus.DeadLetter:
		case k.Expect == corpus.Released:
			e.orderID, e.events = *k.OrderID, []string{"stock-rejected/cancelled", "stock-released"}
		case k.Expect == corpus.Deducted:
			e.orderID, e.events = *k.OrderID, []string{events.TypeDeducted}
			for _, d := range k.Deduct {
				want[d[0]] -= d[1]
			}
		default:
			e.orderID, e.events = *k.OrderID, []string{strings.Replace(k.Expect, "rejected", events.TypeRejected, 1)}
		}
		expect = append(expect, e)
	}
	// Fuzz-found inputs expect the kind of answer the decoder gives them.
	for _, f := range fuzz {
		name := "fuzz-" + f.Target + "-" + f.File
		e := expectation{name: name, value: f.Value}
		if o, err := events.DecodeOrderPlaced(f.Value); err == nil {
			e.orderID = o.OrderID
		} else if inv := (*events.InvalidError)(nil); errors.As(err, &inv) {
			e.orderID = inv.OrderID
		}
		if e.orderID != "" && slices.ContainsFunc(expect, func(x expectation) bool { return x.orderID == e.orderID }) {
			continue // an order id the corpus already uses: its answer would be ambiguous
		}
		msgs = append(msgs, kafka.Message{Topic: topics.Orders, Key: []byte(name), Value: f.Value})
		expect = append(expect, e)
	}

	w := &kafka.Writer{Addr: kafka.TCP(testsvc.KafkaBrokers()...), Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, BatchBytes: 2 << 20,
		// A transport of its own: kafka.DefaultTransport, shared by the whole
		// test binary, caches topic metadata and would not know the topics
		// this test just created.
		Transport: &kafka.Transport{}}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("publish the corpus: %v", err)
	}
	good := "GOOD-after-corpus"
	sent := time.Now()
	if err := w.WriteMessages(ctx, kafka.Message{Topic: topics.Orders, Key: []byte(good),
		Value: []byte(`{"order_id":"` + good + `","items":[{"goods_id":2,"num":5}]}`)}); err != nil {
		t.Fatal(err)
	}
	want[2] -= 5

	// Every outcome expected, and the good order's, read from the start.
	var (
		byOrder    = map[string][]events.Outcome{}
		goodAnswer time.Time
	)
	read := 0
	answered := func() bool {
		for _, e := range expect {
			if e.orderID == "" {
				continue
			}
			evs := byOrder[e.orderID]
			if len(e.events) > 0 && (len(evs) == 0 || evs[len(evs)-1].Type != strings.Split(e.events[len(e.events)-1], "/")[0]) {
				return false
			}
			if len(evs) == 0 {
				return false
			}
		}
		return len(byOrder[good]) > 0
	}
	testsvc.CollectUntil(t, topics.Events, 2*time.Minute, func(got []kafka.Message) bool {
		for _, m := range got[read:] {
			o, err := events.DecodeOutcome(m.Value)
			if err != nil {
				t.Errorf("not an outcome event: %q", m.Value)
				continue
			}
			if string(m.Key) != o.OrderID {
				t.Errorf("outcome of %q keyed %q", o.OrderID, m.Key)
			}
			if o.OrderID == good && goodAnswer.IsZero() {
				goodAnswer = time.Now()
			}
			byOrder[o.OrderID] = append(byOrder[o.OrderID], o)
		}
		read = len(got)
		return answered()
	})
	if goodAnswer.IsZero() {
		t.Fatalf("the good order sent after the corpus was never answered: a partition is stuck")
	}
	took := goodAnswer.Sub(sent)
	t.Logf("%d corpus messages (%d fuzz inputs); the good order after them answered %v after it was sent", len(msgs), len(fuzz), took.Round(time.Millisecond))
	if took > 20*time.Second {
		t.Errorf("the good order took %v: something held its partition up", took)
	}

	// Dead letters, by key.
	deadKeys := map[string]bool{}
	for _, e := range expect {
		if e.orderID == "" {
			deadKeys[e.name] = true
		}
	}
	dead := map[string]kafka.Message{}
	testsvc.CollectUntil(t, topics.DLQ, time.Minute, func(got []kafka.Message) bool {
		for _, m := range got {
			dead[string(m.Key)] = m
		}
		for k := range deadKeys {
			if _, ok := dead[k]; !ok {
				return false
			}
		}
		return true
	})

	known := map[string]bool{good: true}
	for _, e := range expect {
		if e.orderID == "" {
			m, ok := dead[e.name]
			switch {
			case !ok:
				t.Errorf("%s: no dead letter", e.name)
				continue
			case header(m, producer.HeaderKind) != producer.KindUndecodable || header(m, producer.HeaderError) == "":
				t.Errorf("%s: dead letter headers %v", e.name, m.Headers)
			case header(m, producer.HeaderTruncatedValue) != "":
				if !bytes.HasPrefix(e.value, m.Value) || header(m, producer.HeaderTruncatedValue) != fmt.Sprint(len(e.value)) {
					t.Errorf("%s: a cut dead letter must keep the start and the original size", e.name)
				}
			case !bytes.Equal(m.Value, e.value):
				t.Errorf("%s: dead letter value differs from the original", e.name)
			}
			continue
		}
		known[e.orderID] = true
		if _, ok := dead[e.name]; ok {
			t.Errorf("%s: answered as order %q and also dead-lettered", e.name, e.orderID)
		}
		if e.events == nil {
			continue // a fuzz input: any answer will do
		}
		if got := distinctEvents(byOrder[e.orderID]); !slices.Equal(got, e.events) {
			t.Errorf("%s: order %q answered %v, want %v", e.name, e.orderID, got, e.events)
		}
	}
	for id := range byOrder {
		if !known[id] {
			t.Errorf("an outcome for order %q, which no case names (an order id changed on the way?)", id)
		}
	}
	if o := byOrder["L3000"]; len(o) > 0 && (len(o[0].Items) != events.MaxLines || o[0].ItemsTotal != 3000) {
		t.Errorf("L3000: the rejection lists %d items, items_total %d; want %d and 3000", len(o[0].Items), o[0].ItemsTotal, events.MaxLines)
	}

	for goods, n := range want {
		if got := testsvc.Stocks(t, pool, goods); got != n {
			t.Errorf("goods %d: stock %d, want %d", goods, got, n)
		}
	}
	poison := 0.0
	for _, w := range workers {
		select {
		case err := <-w.done:
			w.done <- err
			t.Fatalf("%s exited during the corpus: %v", w.name, err)
		default:
		}
		if code, body := w.get("/readyz"); code != http.StatusOK {
			t.Errorf("%s not ready after the corpus: %d %s", w.name, code, body)
		}
		poison += scrapeCounter(t, w, "stockflow_poison_total")
	}
	if poison != 0 {
		t.Errorf("%v messages parked as poison: every corpus case must be answered without the safety net", poison)
	}
	for _, w := range workers {
		w.stopClean()
	}
}

// distinctEvents lists an order's distinct events (type, and reason for
// rejections) in the order first seen.
func distinctEvents(evs []events.Outcome) []string {
	var out []string
	for _, o := range evs {
		k := strings.TrimSuffix(o.Type+"/"+o.Reason, "/")
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

func header(m kafka.Message, key string) string {
	v, _ := producer.Header(m, key)
	return v
}

// scrapeCounter sums every series of the counter name on the worker's /metrics.
func scrapeCounter(t *testing.T, w *workerProc, name string) float64 {
	t.Helper()
	code, body := w.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("%s /metrics: %d %s", w.name, code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s /metrics: %v", w.name, err)
	}
	sum := 0.0
	if f, ok := families[name]; ok {
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
