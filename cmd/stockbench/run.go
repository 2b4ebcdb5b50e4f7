package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/producer"
	"golang.org/x/sync/errgroup"
)

// runResult is one row of the table: a strategy on a workload with a number
// of worker processes and lanes.
type runResult struct {
	Name     string `json:"name"`
	Strategy string `json:"strategy"`
	Workload string `json:"workload"`
	Workers  int    `json:"workers"`
	// Lanes is the LANES the workers were given; 0 in results written before
	// there were lanes: unknown.
	Lanes int `json:"lanes,omitempty"`
	// LanesDefault: Lanes is the strategy's default (what LANES=0 gives).
	LanesDefault bool     `json:"lanes_default"`
	WorkerEnv    []string `json:"worker_env,omitempty"`
	Orders       int      `json:"orders"`
	ProduceS     float64  `json:"produce_seconds"`
	Seconds      float64  `json:"seconds"`
	OrdersPerS   float64  `json:"orders_per_s"`
	VsSeedStyle  *float64 `json:"vs_seed_style,omitempty"`
	VsDBLimit    *float64 `json:"vs_db_limit,omitempty"`
	Latency      *latency `json:"latency,omitempty"`
	Commits      int64    `json:"commits"`
	Rollbacks    int64    `json:"rollbacks"`
	TxPerOrder   float64  `json:"tx_per_order"`
	RbPerOrder   float64  `json:"rollbacks_per_order"`
	PeakRSSMB    float64  `json:"peak_rss_mb"`
	// CPU of the throughput phase per order; nil when /proc could not be read.
	CPU          *cpuUse `json:"cpu,omitempty"`
	RSSPerWorker []int64 `json:"peak_rss_bytes_per_worker,omitempty"`
	// Worker metrics over the throughput phase, when /metrics could be read.
	MeanBatch    float64 `json:"mean_batch,omitempty"`
	MeanDeductMS float64 `json:"mean_deduct_ms,omitempty"`
	DBRetries    float64 `json:"db_retries"`
	BatchRetries float64 `json:"batch_retries"`
	Replayed     float64 `json:"replayed_orders"`

	Check        checkResult `json:"check"`
	Correct      bool        `json:"correct"`
	Error        string      `json:"error,omitempty"`
	Skipped      string      `json:"skipped,omitempty"`
	Notes        []string    `json:"notes,omitempty"`
	SetupSeconds float64     `json:"setup_seconds"`
	WallSeconds  float64     `json:"wall_seconds"`
	Database     string      `json:"database,omitempty"`
	TopicPrefix  string      `json:"topic_prefix,omitempty"`
}

// latency is the latency phase of a run.
type latency struct {
	Orders       int     `json:"orders"`
	OfferedRate  float64 `json:"offered_rate"`
	AchievedRate float64 `json:"achieved_offered_rate"`
	P50MS        float64 `json:"p50_ms"`
	P99MS        float64 `json:"p99_ms"`
	MaxMS        float64 `json:"max_ms"`
	// Saturated: the offered rate was above the run's throughput, so the
	// orders queued and the percentiles show the backlog.
	Saturated  bool    `json:"saturated,omitempty"`
	TxPerOrder float64 `json:"tx_per_order"`
}

// runSpec names one run of the matrix.
type runSpec struct {
	Strategy, Workload string
	Workers, N, L      int
	Lanes              lanesSetting
}

func (s runSpec) name() string {
	return fmt.Sprintf("%s/%s/%d/lanes=%d", s.Strategy, s.Workload, s.Workers, s.Lanes.Lanes)
}

// result is the row of s before it has run.
func (s runSpec) result() *runResult {
	return &runResult{Name: s.name(), Strategy: s.Strategy, Workload: s.Workload, Workers: s.Workers,
		Lanes: s.Lanes.Lanes, LanesDefault: s.Lanes.Default, Orders: s.N}
}

// workerSettings are the stockworker variables of a run besides connections
// and names: what the table's strategy and lanes mean. LANES is always set,
// resolved (lanesFor), so the number in the table is what ran; -worker-env
// cannot override it (parseOptions).
func workerSettings(o options, strategy string, lanes int) []string {
	var env []string
	lock, batch := strategy, ""
	if o.BatchSize > 0 {
		batch = strconv.Itoa(o.BatchSize)
	}
	if strategy == seedStyle {
		lock, batch = "pessimistic", "1"
	}
	env = append(env, "LOCK_STRATEGY="+lock)
	if strategy == seedStyle {
		lanes = 1 // one order at a time, as the seed decided them
	}
	env = append(env, "LANES="+strconv.Itoa(lanes))
	if batch != "" {
		env = append(env, "BATCH_SIZE="+batch)
	}
	if o.BatchWait > 0 {
		env = append(env, "BATCH_WAIT="+o.BatchWait.String())
	}
	if o.DBMaxOpen > 0 {
		env = append(env, "DB_MAX_OPEN="+strconv.Itoa(o.DBMaxOpen))
	}
	return append(env, o.WorkerEnv...)
}

// runner runs one spec. Every wait is bounded; every resource (database,
// topics, workers, readers) is released by defer on every path, Ctrl-C
// included.
type runner struct {
	o     options
	spec  runSpec
	log   func(format string, args ...any)
	res   *runResult
	stamp time.Time
}

func runOne(ctx context.Context, o options, spec runSpec, progress io.Writer, tag string) *runResult {
	start := time.Now()
	res := spec.result()
	r := &runner{o: o, spec: spec, res: res, stamp: start, log: func(format string, args ...any) {
		fmt.Fprintf(progress, "%s %s: %s\n", tag, spec.name(), fmt.Sprintf(format, args...))
	}}
	err := r.run(ctx)
	res.WallSeconds = time.Since(start).Seconds()
	if err != nil {
		res.Error = err.Error()
	}
	res.Correct = err == nil && res.Check.Correct
	return res
}

func (r *runner) run(ctx context.Context) (err error) {
	o, spec, res := r.o, r.spec, r.res
	id := harness.Unique("sb")
	tp := newTopics(id)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("run %s: %s", spec.name(), fmt.Sprintf(format, args...))
	}
	// Teardown gets its own time: the run's ctx may be cancelled (Ctrl-C).
	cleanup := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	}

	// A fresh database and topics.
	rdb, err := createDB(ctx, o.MySQLDSN, "stockbench_"+id, 4)
	if err != nil {
		return fail("database: %v", err)
	}
	defer func() {
		cctx, cancel := cleanup()
		defer cancel()
		if o.Keep {
			res.Database = rdb.name
			rdb.close()
			return
		}
		if derr := rdb.drop(cctx); derr != nil {
			err = errors.Join(err, fail("%v", derr))
		}
	}()
	if err := producer.EnsureTopics(ctx, o.Brokers, o.Partitions, 1, tp.all()...); err != nil {
		return fail("topics: %v", err)
	}
	admin := kafkaClient(o.Brokers)
	defer func() {
		if o.Keep {
			res.TopicPrefix = id
			return
		}
		cctx, cancel := cleanup()
		defer cancel()
		if derr := deleteTopics(cctx, admin, tp.all()...); derr != nil {
			err = errors.Join(err, fail("%v", derr))
		}
	}()

	// Stock, and the orders to send.
	p, err := newPlan(spec.Workload, spec.N, spec.L, o.Seed)
	if err != nil {
		return fail("%v", err)
	}
	warmups := warmupOrders(o.Partitions)
	stock := map[int64]int64{warmupGoods: int64(len(warmups))}
	for g, s := range p.stock {
		stock[g] = s
	}
	if err := rdb.stock(ctx, stock); err != nil {
		return fail("%v", err)
	}
	warmMsgs, err := orderMessages(tp.Orders, warmups)
	if err != nil {
		return fail("%v", err)
	}
	tpMsgs, err := orderMessages(tp.Orders, p.throughput)
	if err != nil {
		return fail("%v", err)
	}

	col, err := startCollector(ctx, o.Brokers, tp.Events)
	if err != nil {
		return fail("%v", err)
	}
	defer col.close()
	writer := orderWriter(o.Brokers, 1000, time.Millisecond)
	defer writer.Close()

	// The workers, configured by environment only.
	settings := workerSettings(o, spec.Strategy, spec.Lanes.Lanes)
	res.WorkerEnv = settings
	env := append([]string{
		"KAFKA_BROKERS=" + strings.Join(o.Brokers, ","),
		"MYSQL_DSN=" + rdb.dsn,
		"REDIS_ADDR=" + o.RedisAddr,
		"GROUP_ID=" + id,
		"ORDERS_TOPIC=" + tp.Orders,
		"CANCELLED_TOPIC=" + tp.Cancelled,
		"EVENTS_TOPIC=" + tp.Events,
		"DLQ_TOPIC=" + tp.DLQ,
		"LOG_LEVEL=warn",
		"TOPIC_PARTITIONS=" + strconv.Itoa(o.Partitions),
		"SHUTDOWN_GRACE=" + workerDrainIn,
		"CONSUMERS=" + strconv.Itoa(defaultConsumers),
	}, settings...)
	hw, err := harness.StartWorkers(ctx, o.Worker, spec.Workers, harness.Options{Env: env})
	if err != nil {
		return fail("%v", err)
	}
	ws := &workers{Workers: hw}
	defer func() {
		if serr := ws.stop(); serr != nil {
			err = errors.Join(err, fail("stop workers: %v", serr))
		}
	}()
	wctx := ws.Context() // cancelled if a worker dies

	// Wait until every worker's members are in the group and own every
	// partition, then until every partition answers.
	gctx, cancelWait := context.WithTimeout(wctx, 90*time.Second)
	_, err = harness.WaitAssigned(gctx, o.Brokers, id, spec.Workers*consumersOf(env), tp.Orders, tp.Cancelled)
	cancelWait()
	if err != nil {
		return fail("%v\n%s", ws.Explain(err), ws.logs())
	}
	if err := produceAll(wctx, writer, warmMsgs, len(warmMsgs), 1, nil); err != nil {
		return fail("warm-up: %v\n%s", ws.Explain(err), ws.logs())
	}
	if _, err := r.wait(wctx, col, "warm-up", "w", len(warmups), 60*time.Second); err != nil {
		return fail("%v\n%s", err, ws.logs())
	}
	before, err := harness.DescribeGroup(wctx, o.Brokers, id, tp.Orders, tp.Cancelled)
	if err != nil {
		return fail("describe group: %v", err)
	}
	res.SetupSeconds = time.Since(r.stamp).Seconds()
	r.log("workers ready (%s) after %.1fs; throughput phase: %d orders", before, res.SetupSeconds, spec.N)

	// Throughput: as fast as possible, first produced → last outcome consumed.
	m0, metricsOK := ws.scrapeMetrics(wctx)
	c0, err := rdb.txCounters(wctx)
	if err != nil {
		return fail("%v", err)
	}
	meter, cpuErr := newCPUMeter(o.MySQLDSN, o.Brokers)
	var cpu0 cpuSample
	if cpuErr == nil {
		cpu0, cpuErr = meter.sample(ws.pids())
	}
	g, gctx := errgroup.WithContext(wctx)
	t0 := time.Now()
	var produced time.Duration
	g.Go(func() error {
		if err := produceAll(gctx, writer, tpMsgs, 1000, 4, nil); err != nil {
			return err
		}
		produced = time.Since(t0)
		return nil
	})
	tLast, werr := r.wait(gctx, col, "throughput", "t", spec.N, o.Timeout)
	if err := errors.Join(g.Wait(), werr); err != nil {
		return fail("%v\n%s", err, ws.logs())
	}
	if cpuErr == nil {
		var cpu1 cpuSample
		if cpu1, cpuErr = meter.sample(ws.pids()); cpuErr == nil {
			res.CPU = meter.use(cpu0, cpu1, spec.N)
		}
	}
	if cpuErr != nil {
		res.Notes = append(res.Notes, "no CPU figures: "+cpuErr.Error())
	}
	c1, err := rdb.txCounters(wctx)
	if err != nil {
		return fail("%v", err)
	}
	m1, ok := ws.scrapeMetrics(wctx)
	elapsed := tLast.Sub(t0)
	res.ProduceS = produced.Seconds()
	res.Seconds = elapsed.Seconds()
	res.OrdersPerS = rate(spec.N, elapsed)
	res.Commits, res.Rollbacks = c1.Commit-c0.Commit, c1.Rollback-c0.Rollback
	res.TxPerOrder = float64(res.Commits) / float64(spec.N)
	res.RbPerOrder = float64(res.Rollbacks) / float64(spec.N)
	if metricsOK && ok {
		d := m1.sub(m0)
		if d.BatchCount > 0 {
			res.MeanBatch = d.BatchSum / d.BatchCount
		}
		if d.DeductCount > 0 {
			res.MeanDeductMS = d.DeductSum / d.DeductCount * 1000
		}
		res.DBRetries, res.BatchRetries, res.Replayed = d.DBRetries, d.BatchRetries, d.Replayed
	} else {
		res.Notes = append(res.Notes, "worker /metrics not readable: no batch and retry figures")
	}
	r.log("throughput: %d orders in %.2fs = %.0f orders/s (produced in %.2fs), %.2f commits/order%s",
		spec.N, res.Seconds, res.OrdersPerS, res.ProduceS, res.TxPerOrder, cpuSummary(res.CPU))

	// Latency: a fixed offered rate, produce → outcome per order. A run whose
	// throughput is below the offered rate cannot keep up with it: its phase
	// is cut to LatencySeconds of its own throughput, so the backlog (what its
	// p99 shows) drains in about that time instead of minutes.
	if n := len(p.latency); n > 0 && res.OrdersPerS < o.Rate {
		p.truncateLatency(max(int(res.OrdersPerS*o.LatencySeconds), min(n, 100)))
		res.Notes = append(res.Notes, fmt.Sprintf("saturated: %.0f orders/s offered is above the throughput; latency phase cut to %d orders", o.Rate, len(p.latency)))
	}
	latMsgs, err := orderMessages(tp.Orders, p.latency)
	if err != nil {
		return fail("%v", err)
	}
	if len(latMsgs) > 0 {
		lw := orderWriter(o.Brokers, 100, time.Millisecond)
		defer lw.Close()
		sent := make([]time.Time, len(latMsgs))
		g, gctx := errgroup.WithContext(wctx)
		var achieved float64
		g.Go(func() error {
			var err error
			achieved, err = producePaced(gctx, lw, latMsgs, o.Rate, sent)
			return err
		})
		_, werr := r.wait(gctx, col, "latency", "l", len(latMsgs), o.Timeout)
		if err := errors.Join(g.Wait(), werr); err != nil {
			return fail("%v\n%s", err, ws.logs())
		}
		c2, err := rdb.txCounters(wctx)
		if err != nil {
			return fail("%v", err)
		}
		ids := make([]string, len(p.latency))
		for i, ord := range p.latency {
			ids[i] = ord.OrderID
		}
		seen := col.firstSeen(ids)
		lat := make([]time.Duration, len(ids))
		for i := range ids {
			lat[i] = seen[i].Sub(sent[i])
		}
		res.Latency = &latency{
			Orders: len(ids), OfferedRate: o.Rate, AchievedRate: achieved, Saturated: res.OrdersPerS < o.Rate,
			P50MS: ms(percentile(lat, 50)), P99MS: ms(percentile(lat, 99)), MaxMS: ms(percentile(lat, 100)),
			TxPerOrder: float64(c2.Commit-c1.Commit) / float64(len(ids)),
		}
		r.log("latency: %d orders at %.0f/s offered (%.0f achieved): p50 %s, p99 %s, max %s",
			len(ids), o.Rate, achieved, fmtMS(res.Latency.P50MS), fmtMS(res.Latency.P99MS), fmtMS(res.Latency.MaxMS))
	}

	// Peak RSS, then stop the workers before looking at the results.
	rss, err := ws.peakRSS()
	if err != nil {
		return fail("peak RSS: %v", err)
	}
	res.RSSPerWorker = rss
	for _, v := range rss {
		res.PeakRSSMB = max(res.PeakRSSMB, float64(v)/(1<<20))
	}
	after, err := harness.DescribeGroup(wctx, o.Brokers, id, tp.Orders, tp.Cancelled)
	if err == nil && !slices.Equal(before.Members, after.Members) {
		res.Notes = append(res.Notes, fmt.Sprintf("the group rebalanced during the run: %d members before, %d after", len(before.Members), len(after.Members)))
	}
	if err := ws.stop(); err != nil {
		return fail("stop workers: %v", err)
	}

	// Correctness.
	cctx, cancel := cleanup()
	defer cancel()
	final, err := rdb.stocks(cctx)
	if err != nil {
		return fail("%v", err)
	}
	ledger, err := rdb.ledger(cctx)
	if err != nil {
		return fail("%v", err)
	}
	res.Check = check(checkInput{Plan: p, Warmups: warmups, FinalStock: final, Ledger: ledger, Events: col.messages()})
	if !res.Check.Correct {
		r.log("INCORRECT: %v", res.Check.Problems)
	}
	return nil
}

// wait waits until want orders with id prefix have an outcome and returns when
// the last of them was consumed. It fails after timeout, after o.Stall without
// progress, when a worker dies or ctx ends, always saying how far it got.
func (r *runner) wait(ctx context.Context, col *collector, phase, prefix string, want int, timeout time.Duration) (time.Time, error) {
	start := time.Now()
	lastN, lastChange, nextReport := -1, start, start.Add(5*time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		n, last, err := col.progress(prefix)
		now := time.Now()
		switch {
		case err != nil:
			return last, fmt.Errorf("%s: %d of %d outcomes after %s: %w", phase, n, want, now.Sub(start).Round(time.Second), err)
		case n >= want:
			return last, nil
		case now.Sub(start) > timeout:
			return last, fmt.Errorf("%s: %d of %d outcomes after %s", phase, n, want, timeout)
		}
		if n != lastN {
			lastN, lastChange = n, now
		} else if now.Sub(lastChange) > r.o.Stall {
			return last, fmt.Errorf("%s: %d of %d outcomes after %s, none for the last %s", phase, n, want,
				now.Sub(start).Round(time.Second), r.o.Stall)
		}
		if now.After(nextReport) {
			r.log("%s: %d of %d outcomes (%.0fs)", phase, n, want, now.Sub(start).Seconds())
			nextReport = now.Add(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("%s: %d of %d outcomes after %s: %w", phase, n, want, now.Sub(start).Round(time.Second), context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// latencyOrders is how many orders the latency phase sends.
func latencyOrders(o options) int {
	if o.LatencySeconds <= 0 {
		return 0
	}
	return max(int(o.Rate*o.LatencySeconds), 1)
}
