package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
)

// sortRuns puts runs in table order: strategy, workload, workers as given,
// then lanes ascending (the lanes=1 baseline before the default).
func sortRuns(runs []*runResult, o options) {
	idx := func(list []string, v string) int { return slices.Index(list, v) }
	slices.SortStableFunc(runs, func(a, b *runResult) int {
		if d := idx(o.Strategies, a.Strategy) - idx(o.Strategies, b.Strategy); d != 0 {
			return d
		}
		if d := idx(o.Workloads, a.Workload) - idx(o.Workloads, b.Workload); d != 0 {
			return d
		}
		if d := a.Workers - b.Workers; d != 0 {
			return d
		}
		return a.Lanes - b.Lanes
	})
}

// computeRatios sets each run's throughput ratio to the seed-style run of the
// same workload and worker count (seed-style has one, at LANES=1, whatever
// -lanes), and to the db-limit rate.
func computeRatios(res *results) {
	seed := map[string]float64{}
	for _, r := range res.Runs {
		if r.Strategy == seedStyle && r.Correct {
			seed[fmt.Sprintf("%s/%d", r.Workload, r.Workers)] = r.OrdersPerS
		}
	}
	limit := 0.0
	if res.DBLimit != nil && res.DBLimit.Correct {
		limit = res.DBLimit.UpdatesPerS
	}
	for _, r := range res.Runs {
		if !r.Correct {
			r.VsSeedStyle, r.VsDBLimit = nil, nil
			continue
		}
		r.VsSeedStyle = ratio(r.OrdersPerS, seed[fmt.Sprintf("%s/%d", r.Workload, r.Workers)])
		r.VsDBLimit = ratio(r.OrdersPerS, limit)
	}
}

// printTable writes the results table.
func printTable(w io.Writer, res *results) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, tableHeader)
	if d := res.DBLimit; d != nil {
		cw, cd, ck, cb := cpuCols(d.CPU)
		fmt.Fprintf(tw, "%s\t%s\t%d conns\t-\t%d\t%.0f\t-\t1.00×\t-\t-\t-\t-\t-\t-\t%s\t%s\t%s\t%s\t%s\t\n",
			dbLimit, workloadHot, d.Conns, d.Updates, d.UpdatesPerS, cw, cd, ck, cb, verdict(d.Correct && d.Error == "", ""))
	}
	if d := res.OrderLimit; d != nil {
		cw, cd, ck, cb := cpuCols(d.CPU)
		vs := "-"
		if res.DBLimit != nil && res.DBLimit.Correct {
			vs = fmtRatio(ratio(d.OrdersPerS, res.DBLimit.UpdatesPerS))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d conns\t-\t%d\t%.0f\t-\t%s\t-\t-\t-\t-\t-\t-\t%s\t%s\t%s\t%s\t%s\t\n",
			orderLimit, workloadSpread, d.Conns, d.Orders, d.OrdersPerS, vs, cw, cd, ck, cb, verdict(d.Correct && d.Error == "", ""))
	}
	saturated := false
	for _, r := range res.Runs {
		if r.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\tskipped\t\n", r.Strategy, r.Workload, r.Workers, fmtLanesCol(r))
			continue
		}
		p50, p99 := "-", "-"
		if r.Latency != nil {
			p50, p99 = fmtMS(r.Latency.P50MS), fmtMS(r.Latency.P99MS)
			if r.Latency.Saturated {
				p50, p99 = p50+"*", p99+"*"
				saturated = true
			}
		}
		rps, tx, rb, rss, batch := "-", "-", "-", "-", "-"
		if r.OrdersPerS > 0 {
			rps = strconv.FormatFloat(r.OrdersPerS, 'f', 0, 64)
			tx = strconv.FormatFloat(r.TxPerOrder, 'f', 3, 64)
			rb = strconv.FormatFloat(r.RbPerOrder, 'f', 3, 64)
		}
		if r.MeanBatch > 0 {
			batch = strconv.FormatFloat(r.MeanBatch, 'f', 1, 64)
		}
		if r.PeakRSSMB > 0 {
			rss = strconv.FormatFloat(r.PeakRSSMB, 'f', 0, 64)
		}
		cw, cd, ck, cb := cpuCols(r.CPU)
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			r.Strategy, r.Workload, r.Workers, fmtLanesCol(r), r.Orders, rps, fmtRatio(r.VsSeedStyle), fmtRatio(r.VsDBLimit),
			p50, p99, tx, rb, batch, rss, cw, cd, ck, cb, verdict(r.Correct, r.Error))
	}
	tw.Flush()
	if res.Options.LatencySeconds > 0 {
		fmt.Fprintf(w, "p50/p99 at %.0f orders/s offered for %gs; tx/order and rb/order are Com_commit/Com_rollback deltas of the whole server; batch is the mean run (orders per transaction) of the batch strategy.\n",
			res.Options.Rate, res.Options.LatencySeconds)
	}
	if res.DBLimit != nil && res.DBLimit.CPU != nil || res.OrderLimit != nil && res.OrderLimit.CPU != nil || slices.ContainsFunc(res.Runs, func(r *runResult) bool { return r.CPU != nil }) {
		fmt.Fprintln(w, "worker/db/kafka µs: CPU time (user+system) per order over the throughput phase of the worker processes, the database server and the Kafka brokers, when they run on this machine (db-limit: per UPDATE; db-limit and order-limit: their worker column is the benchmark itself, the client); busy cores: the whole machine's non-idle CPU over that phase, of all its cores.")
	}
	if slices.ContainsFunc(res.Runs, func(r *runResult) bool { return r.Lanes > 0 }) {
		fmt.Fprintf(w, "lanes: LANES of the workers, decisions one consumer takes at once; 1 decides one order at a time (the behaviour before lanes); the default is DB_MAX_OPEN / CONSUMERS (%d here), 1 for batch; seed-style always 1.\n",
			defaultLanesOf(res.Options, "pessimistic"))
	}
	if saturated {
		fmt.Fprintf(w, "* saturated: the offered %.0f orders/s is above that run's throughput; its latency phase was cut to %gs of its throughput and p50/p99 show the queue.\n",
			res.Options.Rate, res.Options.LatencySeconds)
	}
	for _, r := range res.Runs {
		if !r.Correct && r.Skipped == "" {
			fmt.Fprintf(w, "%s: %s\n", r.Name, firstLine(r.Error, r.Check.Problems))
			for _, p := range r.Check.Problems {
				fmt.Fprintf(w, "    %s\n", p)
			}
		}
	}
}

// tableHeader is the first line of the table, tab-separated.
const tableHeader = "strategy\tworkload\tworkers\tlanes\torders\torders/s\t×seed\t×db-limit\tp50\tp99\ttx/order\trb/order\tbatch\tpeak RSS MB\tworker µs\tdb µs\tkafka µs\tbusy cores\tcorrect\t"

// fmtLanesCol is the lanes column: the LANES of the run, "-" when unknown (a
// results file from before lanes).
func fmtLanesCol(r *runResult) string {
	if r.Lanes <= 0 {
		return "-"
	}
	return strconv.Itoa(r.Lanes)
}

func verdict(ok bool, err string) string {
	switch {
	case ok:
		return "yes"
	case err != "":
		return "ERROR"
	default:
		return "NO"
	}
}

// writeJSON writes v to path, creating its directory.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(path, append(b, '\n'))
}

func writeFile(path string, b []byte) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, b, 0o644)
}
