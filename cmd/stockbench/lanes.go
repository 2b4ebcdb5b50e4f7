package main

import (
	"slices"
	"strconv"
	"strings"
)

// workerDBMaxOpen is stockworker's DB_MAX_OPEN when it is not set
// (cmd/stockworker/config.go); the default LANES is derived from it.
const workerDBMaxOpen = 16

// lanesSetting is one LANES a strategy runs with.
type lanesSetting struct {
	// Lanes is the LANES the workers are given: at least 1.
	Lanes int
	// Default: Lanes is what LANES=0 gives this strategy with the run's
	// settings, the worker's own choice.
	Default bool
}

// defaultLanesOf resolves LANES=0 the way stockworker does (config.lanes):
// DB_MAX_OPEN / CONSUMERS, at least 1, and 1 for batch. seed-style is pinned
// to one lane. DB_MAX_OPEN and CONSUMERS are the run's: -db-max-open, then
// -worker-env (the last setting wins, as in workerSettings' environment),
// else the worker's and the benchmark's defaults.
func defaultLanesOf(o options, strategy string) int {
	if strategy == seedStyle || strategy == "batch" {
		return 1
	}
	return max(1, workersDBMaxOpen(o)/max(1, consumersOf(o.WorkerEnv)))
}

// workersDBMaxOpen is the DB_MAX_OPEN a worker process runs with.
func workersDBMaxOpen(o options) int {
	maxOpen := workerDBMaxOpen
	if o.DBMaxOpen > 0 {
		maxOpen = o.DBMaxOpen
	}
	return lastInt(o.WorkerEnv, "DB_MAX_OPEN", maxOpen)
}

// orderLimitConns is the connections of the order-limit measurement: one
// worker process's pool.
func orderLimitConns(o options) int { return max(1, workersDBMaxOpen(o)) }

// lanesFor returns the LANES strategy runs with for -lanes, ascending, each
// number once: a requested count and the default that come to the same
// number are one run, marked Default (batch: 1 and default; seed-style:
// always 1).
func lanesFor(o options, strategy string) []lanesSetting {
	def := defaultLanesOf(o, strategy)
	var out []lanesSetting
	for _, n := range o.Lanes {
		if n <= 0 || strategy == seedStyle {
			n = def
		}
		if !slices.ContainsFunc(out, func(s lanesSetting) bool { return s.Lanes == n }) {
			out = append(out, lanesSetting{Lanes: n, Default: n == def})
		}
	}
	slices.SortFunc(out, func(a, b lanesSetting) int { return a.Lanes - b.Lanes })
	return out
}

// baselineOnly reports whether a run with these lanes and worker processes
// is left out of the matrix: when -lanes lists more than one value, lanes=1
// (unless it is the strategy's default) is the baseline and is measured with
// one worker process only.
func baselineOnly(o options, l lanesSetting, workers int) bool {
	return len(o.Lanes) > 1 && l.Lanes == 1 && !l.Default && workers > 1
}

// lastInt returns the integer value of key in env (KEY=VALUE), the last
// setting winning as in a process environment; def when it is absent or not
// a number (the worker then refuses to start, which the run reports).
func lastInt(env []string, key string, def int) int {
	n := def
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			if c, err := strconv.Atoi(v); err == nil {
				n = c
			}
		}
	}
	return n
}

// fmtLanes describes a run's lanes for the progress lines: "LANES=8, the
// default", "LANES=1".
func fmtLanes(l lanesSetting) string {
	s := "LANES=" + strconv.Itoa(l.Lanes)
	if l.Default {
		s += ", the default"
	}
	return s
}

// fmtLanesList renders -lanes as given to it: "1,default".
func fmtLanesList(lanes []int) string {
	parts := make([]string, len(lanes))
	for i, n := range lanes {
		parts[i] = strconv.Itoa(n)
		if n == 0 {
			parts[i] = "default"
		}
	}
	return strings.Join(parts, ",")
}
