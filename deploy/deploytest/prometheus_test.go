package deploytest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

// The load of TestPrometheusScrapesWorker.
const (
	hotOrders    = 300  // placed before the worker starts, one each of goods 16
	hotStock     = 200  // so 200 deducted, 100 rejected
	spreadOrders = 1000 // placed once the worker answers, on goods 17..36
	spreadGoods  = 20
	spreadStock  = 100 // per goods: enough for all of them
	inHand       = 64  // MaxInFlight of the worker below (4 × BATCH_SIZE, 64 × LANES)
)

// A real Prometheus, loaded with rules.yaml, scrapes a real stockworker
// (built from this module, on the real MariaDB and Kafka) every second.
//
// First the worker cannot decide: the test holds the hot goods' row locked
// in an open transaction, so every attempt ends in a lock-wait timeout, which
// the worker retries, not ready, while the rest of the orders wait on the
// topic.
// Through Prometheus's API the expressions of StockflowWorkerNotReady and
// StockflowNoOrdersAnswered then select this worker, and both alerts are
// pending. Then the lock is released and more orders, a cancel and a dead
// letter are sent: the series arrive by outcome, both expressions come back
// empty, every rule evaluates without error, and every query of the
// dashboard runs, the main panels with data.
func TestPrometheusScrapesWorker(t *testing.T) {
	promBin := requireTool(t, "prometheus")
	rules := readRules(t)
	notReadyExpr := alertExpr(t, rules, "StockflowWorkerNotReady")
	stalledExpr := alertExpr(t, rules, "StockflowNoOrdersAnswered")

	brokers := testsvc.KafkaBrokers()
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 1)
	pool := testsvc.Open(t, dsn, 2, nil)
	testsvc.Stock(t, pool, 16, hotStock)
	for g := range int64(spreadGoods) {
		testsvc.Stock(t, pool, 17+g, spreadStock)
	}
	// The row lock the worker will wait for, on a connection of its own.
	lock := pool.Begin()
	if err := lock.Error; err != nil {
		t.Fatal(err)
	}
	if err := lock.Exec("SELECT stocks FROM inventory WHERE goods = 16 FOR UPDATE").Error; err != nil {
		t.Fatal(err)
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			if err := lock.Rollback().Error; err != nil {
				t.Errorf("release the row lock: %v", err)
			}
		}
	}
	t.Cleanup(unlock)

	pub := producer.New(brokers, producer.Options{})
	defer pub.Close()
	publish(t, pub, orders(topics.Orders, "hot", hotOrders, func(int) int64 { return 16 }))

	ws := testsvc.StartWorkers(t, buildWorker(t), 1, harness.Options{Name: "worker", Env: []string{
		"KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"MYSQL_DSN=" + dsn,
		"LOCK_STRATEGY=batch",
		"GROUP_ID=" + topics.Orders + ".group",
		"ORDERS_TOPIC=" + topics.Orders,
		"CANCELLED_TOPIC=" + topics.Cancelled,
		"EVENTS_TOPIC=" + topics.Events,
		"DLQ_TOPIC=" + topics.DLQ,
		"CREATE_TOPICS=false",
		// One member deciding one run at a time holds at most inHand
		// messages between fetch and commit: the others stay lag.
		"CONSUMERS=1", "LANES=1", "BATCH_SIZE=16",
		"LOG_LEVEL=info",
	}})
	w := ws.List()[0]
	prom := startPrometheus(t, promBin, rulesFile, w.Addr())
	wait := func(what string, bound time.Duration, check func(context.Context) error) {
		t.Helper()
		waitFor(t, ws, prom, what, bound, check)
	}

	// ---- the worker cannot publish
	wait("StockflowWorkerNotReady's expression to select the worker", 2*time.Minute, func(ctx context.Context) error {
		got, err := prom.query(ctx, notReadyExpr)
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].Metric["instance"] != w.Addr() || got[0].Metric["job"] != "stockworker" {
			return fmt.Errorf("%s = %v", notReadyExpr, got)
		}
		return nil
	})
	wait("StockflowNoOrdersAnswered's expression to see the backlog", time.Minute, func(ctx context.Context) error {
		got, err := prom.query(ctx, stalledExpr)
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0].Metric["job"] != "stockworker" || got[0].Value < hotOrders-inHand-1 {
			return fmt.Errorf("%s = %v, want one sample of job stockworker, at least %d", stalledExpr, got, hotOrders-inHand-1)
		}
		return nil
	})
	wait("both alerts pending", time.Minute, func(ctx context.Context) error {
		as, err := prom.alerts(ctx)
		if err != nil {
			return err
		}
		var notReady, stalled bool
		for _, a := range as {
			switch a.Labels["alertname"] {
			case "StockflowWorkerNotReady":
				notReady = a.State == "pending" && a.Labels["instance"] == w.Addr() && a.Labels["severity"] == "critical"
			case "StockflowNoOrdersAnswered":
				stalled = a.State == "pending" && a.Labels["job"] == "stockworker"
			}
		}
		if !notReady || !stalled {
			return fmt.Errorf("alerts: %+v", as)
		}
		return nil
	})

	// ---- it can again, and more work comes
	unlock()
	// The next orders go out only once Prometheus has stored the answers to
	// the first: a counter series starts at its first scrape, so answers
	// that all came between two scrapes would show no rate.
	answered := func(want map[string]float64) func(context.Context) error {
		return func(ctx context.Context) error {
			got, err := prom.query(ctx, `sum by (outcome) (stockflow_orders_total{job="stockworker"})`)
			if err != nil {
				return err
			}
			have := map[string]float64{}
			for _, s := range got {
				have[s.Metric["outcome"]] = s.Value
			}
			for outcome, n := range want {
				if have[outcome] < n {
					return fmt.Errorf("answers by outcome %v, want at least %v", have, want)
				}
			}
			return nil
		}
	}
	wait("the first orders answered, by outcome", 3*time.Minute,
		answered(map[string]float64{"deducted": hotStock, "rejected": hotOrders - hotStock}))
	more := orders(topics.Orders, "spread", spreadOrders, func(i int) int64 { return 17 + int64(i%spreadGoods) })
	more = append(more,
		kafka.Message{Topic: topics.Orders, Key: []byte("garbage"), Value: []byte("this is not an order")},
		// A cancel of an order never placed: answered, and it changes no stock.
		kafka.Message{Topic: topics.Cancelled, Key: []byte("never-placed"), Value: []byte(`{"order_id":"never-placed"}`)})
	publish(t, pub, more)
	wait("every order answered, by outcome", 3*time.Minute,
		answered(map[string]float64{"deducted": hotStock + spreadOrders, "rejected": hotOrders - hotStock, "dead_letter": 1}))
	wait("the worker ready, the backlog gone, both expressions empty", 2*time.Minute, func(ctx context.Context) error {
		for _, expr := range []string{notReadyExpr, stalledExpr, `stockflow_ready{job="stockworker"} != 1`,
			`job:stockflow_consumer_lag:sum{job="stockworker"} != 0`} {
			got, err := prom.query(ctx, expr)
			if err != nil {
				return err
			}
			if len(got) != 0 {
				return fmt.Errorf("%s = %v, want nothing", expr, got)
			}
		}
		return nil
	})
	wait("the recording rules to carry the load", time.Minute, func(ctx context.Context) error {
		for expr, labels := range map[string][]string{
			`job:stockflow_orders:rate5m{job="stockworker", outcome="deducted"} > 0`:           {"replayed"},
			`job:stockflow_deduct_seconds:p99_5m{job="stockworker", strategy="batch"}`:         {"strategy"},
			`job:stockflow_consumer_lag:sum{job="stockworker", topic="` + topics.Orders + `"}`: {"topic"},
			`job:stockflow_cancellations:rate5m{job="stockworker"}`:                            {"result"},
			`job:stockflow_dead_letters:rate5m{job="stockworker"}`:                             {"topic"},
		} {
			got, err := prom.query(ctx, expr)
			if err != nil {
				return err
			}
			if len(got) == 0 {
				return fmt.Errorf("%s is empty", expr)
			}
			for _, l := range labels {
				if got[0].Metric[l] == "" {
					return fmt.Errorf("%s = %v has no %s label", expr, got, l)
				}
			}
		}
		return nil
	})
	wait("every rule evaluated without error", time.Minute, func(ctx context.Context) error {
		rs, err := prom.rules(ctx)
		if err != nil {
			return err
		}
		if len(rs) != len(rules) {
			return fmt.Errorf("Prometheus has %d rules loaded, %s %d", len(rs), rulesFile, len(rules))
		}
		for _, r := range rs {
			if r.Health != "ok" {
				return fmt.Errorf("rule %s: health %s %s", r.Name, r.Health, r.LastError)
			}
		}
		return nil
	})

	// ---- the dashboard on this Prometheus
	withData := []string{
		`panel "Workers ready" target 0`, `panel "Workers ready" target 1`,
		`panel "Orders answered" target 0`, `panel "Backlog" target 0`,
		`panel "p99 deduction" target 0`, `panel "Poison (30 min)" target 0`,
		`panel "Orders answered by outcome" target 0`, `panel "Cancellations by result" target 0`,
		`panel "Consumer lag by topic" target 0`, `panel "Consumer lag by partition and worker" target 0`,
		`panel "Deduction latency heatmap" target 0`, `panel "Deduction p50 and p99 by strategy" target 0`,
		`panel "Worker readiness" target 0`, `panel "Worker retries" target 0`,
		`panel "Dead letters by source topic" target 0`, `panel "Resident memory" target 0`,
		`variable "job"`,
	}
	qs := readDashboard(t).queries(t)
	for _, q := range withData {
		if !slices.ContainsFunc(qs, func(x query) bool { return x.where == q }) {
			t.Errorf("the dashboard has no %s", q)
		}
	}
	wait("every dashboard query to run, the main ones with data", time.Minute, func(ctx context.Context) error {
		for _, q := range qs {
			got, err := prom.query(ctx, q.expr)
			if err != nil {
				return fmt.Errorf("%s: %w", q.where, err)
			}
			if len(got) == 0 && slices.Contains(withData, q.where) {
				return fmt.Errorf("%s: %s has no data", q.where, q.expr)
			}
		}
		return nil
	})

	// The series the dashboard and rules read beside the worker's own
	// (the Go runtime's and the process's, which exported() takes from the
	// collectors cmd/stockworker registers) are on the real /metrics.
	known, rec := exported(t), recorded(rules)
	mctx, mcancel := context.WithTimeout(ws.Context(), 10*time.Second)
	defer mcancel()
	served, err := w.Metrics(mctx)
	if err != nil {
		t.Fatal(ws.Explain(err))
	}
	for _, q := range qs {
		names, _ := checkQuery(q, known, rec)
		for _, n := range names {
			if s, ok := known[n]; ok && !strings.HasPrefix(s.family, "stockflow_") && served[s.family] == nil {
				t.Errorf("%s reads %s, which the real worker does not serve", q.where, n)
			}
		}
	}
	// And the other way round: every stockflow_ family the worker serves is
	// one exported() derives, so no series of it escapes the checks above.
	families := map[string]bool{}
	for _, s := range known {
		families[s.family] = true
	}
	for name := range served {
		if strings.HasPrefix(name, "stockflow_") && !families[name] {
			t.Errorf("the worker serves %s, which worker.NewMetrics does not register", name)
		}
	}
}

// waitFor calls check every 500ms, each call bounded by promHTTPBound, until
// it returns nil. It fails the test with check's last error when bound
// passes, and at once when the worker or Prometheus exits.
func waitFor(t *testing.T, ws *harness.Workers, prom *promServer, what string, bound time.Duration, check func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ws.Context(), bound)
	defer cancel()
	start := time.Now()
	for {
		cctx, ccancel := context.WithTimeout(ctx, promHTTPBound)
		err := check(cctx)
		ccancel()
		if err == nil {
			t.Logf("%s: after %v", what, time.Since(start).Round(100*time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %v)\nprometheus log:\n%s", what, ws.Explain(context.Cause(ctx)), err, prom.log())
		case <-prom.done:
			t.Fatalf("waiting for %s: prometheus exited (%v)\n%s", what, prom.cmd.ProcessState, prom.log())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// orders returns n order-placed messages of one line each, order ids
// prefix-0, prefix-1..., goods goods(i).
func orders(topic, prefix string, n int, goods func(i int) int64) []kafka.Message {
	out := make([]kafka.Message, n)
	for i := range out {
		id := fmt.Sprintf("%s-%d", prefix, i)
		out[i] = kafka.Message{Topic: topic, Key: []byte(id),
			Value: fmt.Appendf(nil, `{"order_id":%q,"items":[{"goods_id":%d,"num":1}]}`, id, goods(i))}
	}
	return out
}

func publish(t *testing.T, pub *producer.Publisher, msgs []kafka.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pub.Publish(ctx, msgs...); err != nil {
		t.Fatalf("publish %d messages: %v", len(msgs), err)
	}
}

// buildWorker builds cmd/stockworker into the test's temporary directory.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stockworker")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/stockflow/stockflow/cmd/stockworker").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/stockworker: %v\n%s", err, out)
	}
	return bin
}
