package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/internal/harness"
)

// results is everything one stockbench invocation measured: the JSON file.
type results struct {
	Machine     machine           `json:"machine"`
	Started     time.Time         `json:"started"`
	Seconds     float64           `json:"seconds"`
	Options     options           `json:"options"`
	Worker      string            `json:"worker_binary"`
	DBLimit     *dbLimitResult    `json:"db_limit,omitempty"`
	OrderLimit  *orderLimitResult `json:"order_limit,omitempty"`
	Runs        []*runResult      `json:"runs"`
	Failed      int               `json:"failed"`
	Interrupted bool              `json:"interrupted,omitempty"`
	Notes       []string          `json:"notes"`
}

// notes explain how to read the numbers; they go into the JSON.
var notes = []string{
	"db-limit: the hot row's guarded UPDATE in autocommit, -db-limit-conns goroutines, no Kafka. order-limit: one-unit orders on 1,000 goods, each a transaction of that UPDATE and its ledger row (BEGIN, UPDATE, INSERT, COMMIT) with the plain driver, the workers' DB_MAX_OPEN goroutines, no Kafka: the most the database gives a row-at-a-time strategy.",
	"worker/db/kafka µs: CPU time per order over the throughput phase of the worker processes, the database server and the Kafka brokers when they run on this machine (/proc); busy cores: the machine's non-idle CPU over that phase. For db-limit and order-limit the worker figure is the benchmark process, their client.",
	"orders/s: throughput phase, first order produced → last outcome consumed (all N orders answered).",
	"p50/p99: latency phase at the offered rate, produce (handed to the Kafka writer) → first outcome consumed.",
	"tx/order: delta of the server-wide Com_commit over the throughput phase / orders; other clients of the server inflate it.",
	"peak RSS: max VmHWM over the run's worker processes, read before stopping them.",
	"seed-style: LOCK_STRATEGY=pessimistic with BATCH_SIZE=1 and LANES=1 — one order per transaction, row lock, synchronous offset commit per message.",
	"lanes: the LANES the workers were given, decisions one consumer takes at once; 1 decides one order at a time (the behaviour before lanes); lanes_default: the worker's default, DB_MAX_OPEN / CONSUMERS, at least 1, and 1 for batch. lanes=1 runs with one worker process only when -lanes lists other values too.",
	"db-limit: hot-row autocommit UPDATE ... WHERE goods = ? AND stocks >= 1 from a few connections, no Kafka.",
	"hot: one goods, stock N/2; spread: 10,000 goods, ample stock; multi: 3 distinct goods of 100 per order, stock 80% of demand.",
}

// bench runs the whole matrix.
type bench struct {
	o      options
	stdout io.Writer
	stderr io.Writer
}

// specs lists the runs of the matrix in table order, and the combinations
// skipped with the reason. The lanes=1 baseline with more than one worker
// process is not a combination of the matrix (baselineOnly), so it is in
// neither list.
func (b *bench) specs() (run []runSpec, skipped []*runResult) {
	l := latencyOrders(b.o)
	for _, s := range b.o.Strategies {
		lanes := lanesFor(b.o, s)
		for _, w := range b.o.Workloads {
			for _, k := range b.o.Workers {
				for _, ln := range lanes {
					if baselineOnly(b.o, ln, k) {
						continue
					}
					spec := runSpec{Strategy: s, Workload: w, Workers: k, N: b.o.N.For(s), L: l, Lanes: ln}
					if s == "mutex" && k > 1 {
						r := spec.result()
						r.Orders = 0
						r.Skipped = "mutex supports one worker process only (README: topology)"
						skipped = append(skipped, r)
						continue
					}
					run = append(run, spec)
				}
			}
		}
	}
	return run, skipped
}

func (b *bench) run(ctx context.Context) (*results, error) {
	res := &results{Started: time.Now(), Options: b.o, Worker: b.o.Worker, Notes: notes}
	defer func() { res.Seconds = time.Since(res.Started).Seconds() }()
	if err := b.preflight(ctx); err != nil {
		return res, err
	}

	// One database for the machine line and the db-limit reference.
	ref, err := createDB(ctx, b.o.MySQLDSN, harness.Unique("stockbench_ref_"), max(b.o.DBLimitConns, orderLimitConns(b.o))+1)
	if err != nil {
		return res, fmt.Errorf("database: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if b.o.Keep {
			ref.close()
		} else if err := ref.drop(cctx); err != nil {
			fmt.Fprintf(b.stderr, "stockbench: %v\n", err)
		}
	}()
	res.Machine = describeMachine(ctx, ref, b.o.KafkaVersion)
	fmt.Fprintf(b.stdout, "stockbench — %s\n", res.Machine)

	specs, skipped := b.specs()
	fmt.Fprintf(b.stderr, "stockbench: %d runs (%d skipped), lanes %s, orders %s, latency %.0f orders/s for %gs, worker %s\n",
		len(specs), len(skipped), fmtLanesList(b.o.Lanes), b.o.N, b.o.Rate, b.o.LatencySeconds, b.o.Worker)
	if b.o.DBLimitSeconds > 0 {
		d := time.Duration(b.o.DBLimitSeconds * float64(time.Second))
		fmt.Fprintf(b.stderr, "stockbench: db-limit: %d connections for %gs\n", b.o.DBLimitConns, b.o.DBLimitSeconds)
		dl, err := measureDBLimit(ctx, ref, b.o.DBLimitConns, d)
		dl.Error = tallyReference(res, err, dl.Correct)
		res.DBLimit = &dl
		fmt.Fprintf(b.stderr, "stockbench: db-limit: %.0f updates/s (correct %v)%s\n", dl.UpdatesPerS, dl.Correct, cpuSummary(dl.CPU))

		conns := orderLimitConns(b.o)
		fmt.Fprintf(b.stderr, "stockbench: order-limit: %d connections for %gs\n", conns, b.o.DBLimitSeconds)
		ol, err := measureOrderLimit(ctx, ref, conns, d)
		ol.Error = tallyReference(res, err, ol.Correct)
		res.OrderLimit = &ol
		fmt.Fprintf(b.stderr, "stockbench: order-limit: %.0f orders/s (correct %v)%s\n", ol.OrdersPerS, ol.Correct, cpuSummary(ol.CPU))
	}

	for i, spec := range specs {
		if ctx.Err() != nil {
			res.Interrupted = true
			break
		}
		tag := fmt.Sprintf("[%d/%d]", i+1, len(specs))
		fmt.Fprintf(b.stderr, "%s %s: start (%d orders, %d workers, %s)\n", tag, spec.name(), spec.N, spec.Workers, fmtLanes(spec.Lanes))
		r := runOne(ctx, b.o, spec, b.stderr, tag)
		res.Runs = append(res.Runs, r)
		if ctx.Err() != nil {
			res.Interrupted = true
		}
		if !r.Correct {
			res.Failed++
			fmt.Fprintf(b.stderr, "%s %s: FAILED after %.1fs: %s\n", tag, spec.name(), r.WallSeconds, firstLine(r.Error, r.Check.Problems))
			continue
		}
		fmt.Fprintf(b.stderr, "%s %s: done in %.1fs: %.0f orders/s, correct\n", tag, spec.name(), r.WallSeconds, r.OrdersPerS)
	}
	res.Runs = append(res.Runs, skipped...)
	sortRuns(res.Runs, b.o)
	computeRatios(res)
	if res.Interrupted {
		return res, context.Cause(ctx)
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("%d of %d runs failed", res.Failed, len(specs)+btoi(res.DBLimit != nil))
	}
	return res, nil
}

// preflight fails early, with the fix, when the worker binary or a service
// is missing.
func (b *bench) preflight(ctx context.Context) error {
	if st, err := os.Stat(b.o.Worker); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("worker binary %s is not an executable file; build it: go build -o %s ./cmd/stockworker", b.o.Worker, b.o.Worker)
	}
	cfg, err := mysql.ParseDSN(b.o.MySQLDSN)
	if err != nil {
		return fmt.Errorf("-mysql-dsn: %w", err)
	}
	need := []harness.Service{{Name: "MariaDB", Addr: cfg.Addr}, {Name: "Kafka", Addr: b.o.Brokers[0]}}
	if slices.Contains(b.o.Strategies, "redis") {
		need = append(need, harness.Service{Name: "Redis", Addr: b.o.RedisAddr})
	}
	return harness.Preflight(ctx, need...)
}

func firstLine(err string, problems []string) string {
	if err != "" {
		for i, c := range err {
			if c == '\n' {
				return err[:i]
			}
		}
		return err
	}
	if len(problems) > 0 {
		return "incorrect: " + problems[0]
	}
	return "incorrect"
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// tallyReference counts a reference measurement (db-limit, order-limit) that
// failed or came out wrong as a failed run, and returns its error text.
func tallyReference(res *results, err error, correct bool) string {
	switch {
	case err != nil:
		res.Failed++
		return err.Error()
	case !correct:
		res.Failed++
	}
	return ""
}
