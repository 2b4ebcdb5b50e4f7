package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/producer"
	"gorm.io/gorm"
)

const demoHelp = `orderctl demo runs the seed scenario for real, once per lock strategy: a fresh
database with goods 16 stocked -stock, fresh topics and consumer group, TWO
stockworker processes, -orders concurrent orders of 1 (one goroutine each), then
SIGTERM to both workers. It prints one row per strategy and exits 1 unless every
strategy is exact: every order answered, nothing oversold, the final stock equal to
the stock minus what was deducted, and as much sold as there was.

The workers are configured only through environment variables (KAFKA_BROKERS,
the Kafka security settings KAFKA_TLS* and KAFKA_SASL_* as orderctl has them, MYSQL_DSN
on the demo's database with MYSQL_TLS_* as orderctl has them, LOCK_STRATEGY, GROUP_ID,
the topics, REDIS_ADDR, HTTP_ADDR=127.0.0.1:<a free port>, LOG_LEVEL=warn); other
stockworker variables in orderctl's environment pass through. Their logs go to
temporary files, shown when something goes wrong. The databases
(stockflow_demo_<strategy>_<random>), topics and groups are removed afterwards.

Database user: one that may create and drop the stockflow_demo_* databases and
grant nothing else, such as the development root of scripts/services.sh; not the
production users (stockflow, stockflow_migrate).

Usage:
  orderctl demo [flags]

Examples:
  make build && orderctl demo                    # bin/stockworker, all six strategies
  orderctl demo -worker /tmp/stockworker -strategies pessimistic,batch
  orderctl demo -orders 200 -stock 50
`

// demoGoods is the goods of the seed scenario.
const demoGoods = 16

// Bounds of one strategy's run.
const (
	demoPartitions   = 6
	demoReadyTimeout = 45 * time.Second // both workers joined the group and own every partition
	demoAnswerWithin = 60 * time.Second // every order answered, after the last was placed
	demoStopTimeout  = 30 * time.Second // a worker exits after SIGTERM
	demoLogTail      = 25               // log lines shown per worker on a failure
)

type demoOptions struct {
	worker     string
	strategies []string
	orders     int
	stock      int
}

// runDemo is `orderctl demo`.
func runDemo(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", demoHelp, &cfg)
	var o demoOptions
	var strategies string
	fs.StringVar(&o.worker, "worker", "bin/stockworker", "path of the stockworker binary")
	fs.StringVar(&strategies, "strategies", "all", "comma-separated lock strategies, or all: "+strings.Join(db.StrategyNames(), ", "))
	fs.IntVar(&o.orders, "orders", 20, "orders placed at once, each for 1 of goods 16")
	fs.IntVar(&o.stock, "stock", 10, "stock of goods 16 at the start")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("demo", "unexpected argument %q", pos[0])
	}
	if o.strategies, err = parseStrategies(strategies); err != nil {
		return usagef("demo", "%v", err)
	}
	if o.orders < 1 || o.orders > 10000 {
		return usagef("demo", "-orders must be in 1..10000, got %d", o.orders)
	}
	if o.stock < 0 {
		return usagef("demo", "-stock must be ≥ 0, got %d", o.stock)
	}
	path, err := exec.LookPath(o.worker)
	if err != nil {
		return fmt.Errorf("worker binary %q not found (build it with: make build, or go build -o bin/stockworker ./cmd/stockworker; or pass -worker PATH): %w", o.worker, err)
	}
	o.worker = path
	if err := demoPreflight(ctx, cfg, o.strategies); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "%d orders of 1 for goods %d stocked %d, two stockworker processes per strategy\n\n", o.orders, demoGoods, o.stock)
	fmt.Fprintf(stdout, "%-12s %9s %9s %12s %9s %9s  %s\n", "strategy", "deducted", "rejected", "final stock", "oversold", "time", "result")
	var failed []string
	for _, s := range o.strategies {
		r := demoStrategy(ctx, cfg, o, s)
		if ctx.Err() != nil {
			removeFiles(r.logs)
			return ctx.Err()
		}
		fmt.Fprintln(stdout, r.row())
		if !r.exact() {
			failed = append(failed, s)
			r.showLogs(stderr)
		}
		r.removeLogs()
	}
	fmt.Fprintln(stdout)
	if len(failed) > 0 {
		fmt.Fprintf(stdout, "NOT EXACT: %s\n", strings.Join(failed, ", "))
		return fmt.Errorf("%d of %d strategies not exact: %s", len(failed), len(o.strategies), strings.Join(failed, ", "))
	}
	fmt.Fprintln(stdout, "all strategies exact")
	return nil
}

func parseStrategies(s string) ([]string, error) {
	if s == "all" || s == "" {
		return db.StrategyNames(), nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
		case !slices.Contains(db.StrategyNames(), name):
			return nil, fmt.Errorf("-strategies: %q is not one of: %s", name, strings.Join(db.StrategyNames(), ", "))
		case !slices.Contains(out, name):
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-strategies names no strategy")
	}
	return out, nil
}

// demoPreflight fails fast, with a hint, when a service the demo needs does
// not answer, instead of letting every strategy time out on it.
func demoPreflight(ctx context.Context, cfg config, strategies []string) error {
	mcfg, err := mysql.ParseDSN(cfg.MySQLDSN)
	if err != nil {
		return fmt.Errorf("MYSQL_DSN %s: %w", db.RedactDSN(cfg.MySQLDSN), err)
	}
	services := []harness.Service{{Name: "MySQL", Addr: mcfg.Addr}}
	for _, b := range cfg.brokerList() {
		services = append(services, harness.Service{Name: "Kafka", Addr: b})
	}
	if slices.Contains(strategies, "redis") {
		services = append(services, harness.Service{Name: "Redis", Addr: cfg.RedisAddr})
	}
	return harness.Preflight(ctx, services...)
}

// demoResult is one strategy's row.
type demoResult struct {
	strategy   string
	stock      int64 // at the start
	err        error // the run itself failed: no verdict on the strategy
	answered   int   // distinct orders with an outcome
	deducted   int
	rejected   int
	finalStock int64
	elapsed    time.Duration // first order placed → last outcome read
	problems   []string
	logs       []string // worker log files
}

func (r demoResult) exact() bool { return r.err == nil && len(r.problems) == 0 }

func (r demoResult) row() string {
	if r.err != nil {
		return fmt.Sprintf("%-12s %9s %9s %12s %9s %9s  error: %v", r.strategy, "-", "-", "-", "-", "-", oneLine(r.err.Error()))
	}
	result := "exact"
	if !r.exact() {
		result = "NOT EXACT: " + strings.Join(r.problems, "; ")
	}
	return fmt.Sprintf("%-12s %9d %9d %12d %9d %9s  %s", r.strategy, r.deducted, r.rejected, r.finalStock,
		r.oversold(), r.elapsed.Round(10*time.Millisecond), result)
}

// oversold is what was deducted beyond the stock (0 when the orders did not
// ask for more than there was).
func (r demoResult) oversold() int64 { return max(0, int64(r.deducted)-r.stock) }

// judge fills r.problems from what was observed.
func (r *demoResult) judge(o demoOptions) {
	stock := r.stock
	if r.answered < o.orders {
		r.problems = append(r.problems, fmt.Sprintf("%d of %d orders unanswered", o.orders-r.answered, o.orders))
	}
	if over := int64(r.deducted) - stock; over > 0 {
		r.problems = append(r.problems, fmt.Sprintf("oversold %d", over))
	}
	if r.finalStock < 0 {
		r.problems = append(r.problems, fmt.Sprintf("negative stock %d", r.finalStock))
	}
	if want := stock - int64(r.deducted); r.finalStock != want {
		r.problems = append(r.problems, fmt.Sprintf("final stock %d, want %d − %d = %d", r.finalStock, stock, r.deducted, want))
	}
	if want := min(int64(o.orders), stock); r.answered == o.orders && int64(r.deducted) < want {
		r.problems = append(r.problems, fmt.Sprintf("undersold: %d deducted, %d could be", r.deducted, want))
	}
}

func (r demoResult) showLogs(w io.Writer) {
	for i, path := range r.logs {
		lines := tailLines(path, demoLogTail)
		fmt.Fprintf(w, "--- %s, worker %d: last %d log lines of %s ---\n", r.strategy, i+1, len(lines), path)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
}

func (r demoResult) removeLogs() {
	if r.exact() {
		removeFiles(r.logs)
	}
}

// demoStrategy runs the scenario for one strategy. Everything it creates is
// removed before it returns, whatever happens; only the logs of a failed run
// are kept for the caller to show.
func demoStrategy(ctx context.Context, cfg config, o demoOptions, strategy string) (r demoResult) {
	r.strategy, r.stock = strategy, int64(o.stock)
	k := cfg.kafka()
	brokers := k.Brokers
	suffix := harness.Unique("")

	// A fresh database, migrated, with the goods stocked.
	dsn, err := withDatabase(cfg.MySQLDSN, "stockflow_demo_"+strategy+"_"+suffix)
	if err != nil {
		r.err = err
		return r
	}
	mcfg := cfg.mysql()
	mcfg.DSN = dsn
	g, err := openInventory(ctx, mcfg, true)
	if err != nil {
		r.err = err
		return r
	}
	defer dropDatabase(g, dsn)
	if err := setStock(ctx, g, []stockArg{{Goods: demoGoods, Stocks: int32(o.stock)}}); err != nil {
		r.err = err
		return r
	}

	// Fresh topics and group.
	base := "demo." + strategy + "." + suffix
	topics := struct{ orders, cancelled, events, dlq string }{base + ".orders.placed", base + ".orders.cancelled", base + ".stock.events", base + ".orders.dlq"}
	group := base + ".group"
	if err := producer.EnsureTopicsWith(ctx, k.Security, brokers, demoPartitions, 1, topics.orders, topics.cancelled, topics.events, topics.dlq); err != nil {
		r.err = err
		return r
	}
	defer deleteKafkaLeftovers(k, group, topics.orders, topics.cancelled, topics.events, topics.dlq)

	// Two workers, configured only through the environment, each with
	// demoConsumers group members. orderctl's own stockworker settings pass
	// through (demoHelp); the demo's come after them and win.
	env := append(append(append(harness.WorkerSettings(os.Environ()), cfg.kafkaEnv()...), cfg.mysqlWorkerEnv(dsn)...),
		"CONSUMERS="+strconv.Itoa(demoConsumers),
		"KAFKA_BROKERS="+strings.Join(brokers, ","),
		"LOCK_STRATEGY="+strategy,
		"GROUP_ID="+group,
		"ORDERS_TOPIC="+topics.orders,
		"CANCELLED_TOPIC="+topics.cancelled,
		"EVENTS_TOPIC="+topics.events,
		"DLQ_TOPIC="+topics.dlq,
		"REDIS_ADDR="+cfg.RedisAddr,
		"LOG_LEVEL=warn",
	)
	ws, err := harness.StartWorkers(ctx, o.worker, 2, harness.Options{Env: env, LogFile: "orderctl-demo-" + strategy + "-worker%d-*.log"})
	if err != nil {
		r.err = err
		return r
	}
	r.logs = logFiles(ws)
	stopped := false
	defer func() {
		if !stopped {
			ws.Stop(syscall.SIGTERM, demoStopTimeout)
		}
	}()

	// Place the orders once both workers own every partition, so the time
	// measures deciding, not joining.
	wctx, cancel := context.WithTimeout(ws.Context(), demoReadyTimeout)
	_, err = k.WaitAssigned(wctx, group, 2*demoConsumers, topics.orders, topics.cancelled)
	cancel()
	if err != nil {
		r.err = ws.Explain(err)
		return r
	}
	outcomes, err := openTail(ws.Context(), k, topics.events, true)
	if err != nil {
		r.err = ws.Explain(err)
		return r
	}
	defer outcomes.Close()
	start := time.Now()
	if err := placeDemoOrders(ws.Context(), k, topics.orders, strategy, o.orders); err != nil {
		r.err = ws.Explain(err)
		return r
	}
	seen, last, err := collectOutcomes(ws.Context(), outcomes, o.orders, demoAnswerWithin)
	r.elapsed = last.Sub(start)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		r.err = ws.Explain(err)
		return r
	}
	r.answered = len(seen)
	for _, oc := range seen {
		switch {
		case oc.Type == events.TypeDeducted:
			r.deducted++
		case oc.Type == events.TypeRejected && oc.Reason == events.ReasonInsufficientStock:
			r.rejected++
		default:
			r.problems = append(r.problems, fmt.Sprintf("unexpected outcome %s %s for %s", oc.Type, oc.Reason, oc.OrderID))
		}
	}

	// SIGTERM: both workers finish what they hold and exit 0.
	stopped = true
	r.problems = append(r.problems, stopWorkers(ws, demoStopTimeout)...)

	qctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	var rows []db.Inventory
	if err := g.WithContext(qctx).Where("goods = ?", demoGoods).Find(&rows).Error; err != nil {
		r.err = fmt.Errorf("read the final stock: %w", err)
		return r
	}
	if len(rows) != 1 {
		r.err = fmt.Errorf("goods %d vanished from the inventory", demoGoods)
		return r
	}
	r.finalStock = int64(rows[0].Stocks)
	r.judge(o)
	return r
}

// placeDemoOrders publishes n orders of 1 of the demo goods at once, one
// goroutine each, through one shared Publisher.
func placeDemoOrders(ctx context.Context, k harness.Kafka, topic, strategy string, n int) error {
	pub := producer.New(k.Brokers, producer.Options{Security: k.Security})
	defer pub.Close()
	ctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := orderMessage(topic, events.OrderPlaced{
				OrderID: fmt.Sprintf("demo-%s-%d", strategy, i+1),
				Lines:   []events.Line{{GoodsID: demoGoods, Num: 1}},
			})
			if err == nil {
				err = pub.Publish(ctx, m)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// collectOutcomes reads outcome events until n distinct orders have one, and
// returns them (the first per order; redeliveries are dropped) with the time
// the last new one was read. It stops at timeout with what it has and
// context.DeadlineExceeded.
func collectOutcomes(ctx context.Context, t *harness.Tail, n int, timeout time.Duration) (map[string]events.Outcome, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	seen := map[string]events.Outcome{}
	last := time.Now()
	for len(seen) < n {
		m, err := t.Next(ctx)
		if err != nil {
			return seen, last, err
		}
		o, err := events.DecodeOutcome(m.Value)
		if err != nil {
			return seen, last, fmt.Errorf("undecodable outcome at partition %d offset %d: %w", m.Partition, m.Offset, err)
		}
		if _, dup := seen[o.OrderID]; !dup {
			seen[o.OrderID] = o
			last = time.Now()
		}
	}
	return seen, last, nil
}

// demoConsumers is CONSUMERS of each demo worker, set explicitly so the demo
// knows how many group members to wait for.
const demoConsumers = 2

// withDatabase returns dsn naming database name instead.
func withDatabase(dsn, name string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("MYSQL_DSN %s: %w", db.RedactDSN(dsn), err)
	}
	cfg.DBName = name
	return cfg.FormatDSN(), nil
}

// dropDatabase drops the demo database and closes g. It runs on a fresh
// context: the command's may be cancelled (Ctrl-C) by now.
func dropDatabase(g *gorm.DB, dsn string) {
	defer db.Close(g)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil || !strings.HasPrefix(cfg.DBName, "stockflow_demo_") {
		return // never drop anything but a demo database
	}
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	_ = g.WithContext(ctx).Exec("DROP DATABASE IF EXISTS `" + cfg.DBName + "`").Error
}

// deleteKafkaLeftovers removes the demo's group and topics, best effort.
func deleteKafkaLeftovers(k harness.Kafka, group string, topics ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), kafkaTimeout)
	defer cancel()
	client, transport := newClient(k)
	defer transport.CloseIdleConnections()
	_, _ = client.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{group}})
	_, _ = client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: topics})
}
