package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stockflow/stockflow/internal/harness"
)

// stopGrace is how long a worker may take to drain and exit after SIGTERM
// before it is killed. The workers get SHUTDOWN_GRACE below it.
const (
	stopGrace     = 15 * time.Second
	workerDrainIn = "5s"
)

// defaultConsumers is CONSUMERS of the workers unless -worker-env sets it: set
// explicitly, so the run knows how many group members to wait for.
const defaultConsumers = 2

// consumersOf returns CONSUMERS of env, the last setting winning as in a
// process environment.
func consumersOf(env []string) int {
	return lastInt(env, "CONSUMERS", defaultConsumers)
}

// workers are the stockworker processes of one run (harness.Workers: each
// with its own HTTP port, output kept in memory, Context cancelled when one
// dies). The runner uses them from one goroutine.
type workers struct {
	*harness.Workers
	stopped bool
}

// stop sends SIGTERM to every worker, waits up to stopGrace for them to drain
// and exit, then kills what is left. It returns the workers' exit problems,
// the first time only: later calls return nil.
func (ws *workers) stop() error {
	if ws.stopped {
		return nil
	}
	ws.stopped = true
	var errs []error
	for i, e := range ws.Stop(syscall.SIGTERM, stopGrace) {
		switch {
		case e.Killed:
			errs = append(errs, fmt.Errorf("worker %d did not stop within %s after SIGTERM; killed", i+1, stopGrace))
		case e.Err != nil:
			errs = append(errs, fmt.Errorf("worker %d: %v; its last output:\n%s", i+1, e.Err, indent(ws.List()[i].Log())))
		}
	}
	return errors.Join(errs...)
}

// pids returns the process ids of the workers.
func (ws *workers) pids() []int {
	var out []int
	for _, w := range ws.List() {
		out = append(out, w.Pid())
	}
	return out
}

// peakRSS returns each running worker's peak resident set (VmHWM), in bytes.
func (ws *workers) peakRSS() ([]int64, error) {
	var out []int64
	var errs []error
	for i, w := range ws.List() {
		v, err := procStatusKB(w.Pid(), "VmHWM")
		if err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", i+1, err))
			continue
		}
		out = append(out, v*1024)
	}
	return out, errors.Join(errs...)
}

// logs returns the tail of every worker's output.
func (ws *workers) logs() string {
	var b strings.Builder
	for i, w := range ws.List() {
		if s := w.Log(); s != "" {
			fmt.Fprintf(&b, "worker %d:\n%s\n", i+1, indent(s))
		}
	}
	return b.String()
}

func indent(s string) string {
	if s == "" {
		return "    (no output)"
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 20 {
		lines = append([]string{fmt.Sprintf("... %d lines before", len(lines)-20)}, lines[len(lines)-20:]...)
	}
	return "    " + strings.Join(lines, "\n    ")
}

// procStatusKB reads a "kB" field such as VmHWM from /proc/<pid>/status.
func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		num := strings.TrimSuffix(strings.TrimSpace(v), " kB")
		return strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// metricsSnapshot holds the worker series the report uses, summed over the
// run's workers.
type metricsSnapshot struct {
	BatchSum, BatchCount   float64 // stockflow_batch_size
	DeductSum, DeductCount float64 // stockflow_deduct_seconds
	DBRetries              float64 // stockflow_db_retries_total
	BatchRetries           float64 // stockflow_batch_retries_total
	Replayed               float64 // stockflow_orders_total{replayed="true"}
}

func (a metricsSnapshot) add(b metricsSnapshot) metricsSnapshot {
	return metricsSnapshot{a.BatchSum + b.BatchSum, a.BatchCount + b.BatchCount, a.DeductSum + b.DeductSum,
		a.DeductCount + b.DeductCount, a.DBRetries + b.DBRetries, a.BatchRetries + b.BatchRetries, a.Replayed + b.Replayed}
}

func (a metricsSnapshot) sub(b metricsSnapshot) metricsSnapshot {
	return metricsSnapshot{a.BatchSum - b.BatchSum, a.BatchCount - b.BatchCount, a.DeductSum - b.DeductSum,
		a.DeductCount - b.DeductCount, a.DBRetries - b.DBRetries, a.BatchRetries - b.BatchRetries, a.Replayed - b.Replayed}
}

// snapshotOf picks the series the report needs out of one worker's metrics.
func snapshotOf(m harness.Metrics) metricsSnapshot {
	var s metricsSnapshot
	s.BatchSum, s.BatchCount = m.Histogram("stockflow_batch_size", nil)
	s.DeductSum, s.DeductCount = m.Histogram("stockflow_deduct_seconds", nil)
	s.DBRetries = m.Sum("stockflow_db_retries_total", nil)
	s.BatchRetries = m.Sum("stockflow_batch_retries_total", nil)
	s.Replayed = m.Sum("stockflow_orders_total", harness.Labels{"replayed": "true"})
	return s
}

// scrapeMetrics reads /metrics of every worker. Workers whose endpoint cannot
// be read are skipped; ok is false then.
func (ws *workers) scrapeMetrics(ctx context.Context) (metricsSnapshot, bool) {
	var total metricsSnapshot
	ok := true
	for _, w := range ws.List() {
		m, err := w.Metrics(ctx)
		if err != nil {
			ok = false
			continue
		}
		total = total.add(snapshotOf(m))
	}
	return total, ok
}
