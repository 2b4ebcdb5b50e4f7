package main

import (
	"context"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/testsvc"
)

// testConsumers is CONSUMERS of every test worker (workerEnv sets it), so a
// test knows how many group members n processes make: n × testConsumers.
const testConsumers = 2

// workerEnv is the stockworker settings of a worker on the test's database and
// topics; extra settings come last and win. Nothing else of stockworker's
// settings applies: the harness removes them from the inherited environment.
func workerEnv(dsn string, topics testsvc.Topics, strategy string, extra ...string) []string {
	return append([]string{
		"KAFKA_BROKERS=" + strings.Join(testsvc.KafkaBrokers(), ","),
		"MYSQL_DSN=" + dsn,
		"LOCK_STRATEGY=" + strategy,
		"REDIS_ADDR=" + testsvc.RedisAddr(),
		"GROUP_ID=" + groupOf(topics),
		"ORDERS_TOPIC=" + topics.Orders,
		"CANCELLED_TOPIC=" + topics.Cancelled,
		"EVENTS_TOPIC=" + topics.Events,
		"DLQ_TOPIC=" + topics.DLQ,
		"CONSUMERS=" + strconv.Itoa(testConsumers),
		"LOG_LEVEL=info",
	}, extra...)
}

// groupOf is the consumer group workerEnv configures for topics.
func groupOf(topics testsvc.Topics) string { return topics.Orders + ".group" }

// startWorkers starts n stockworker processes (built with -race) with env,
// named after name; see testsvc.StartWorkers for what happens when the test
// ends.
func startWorkers(t *testing.T, name string, n int, env []string) *harness.Workers {
	t.Helper()
	return testsvc.StartWorkers(t, buildWorker(t), n, harness.Options{Name: name, Env: env})
}

// waitAssigned waits, up to a minute, until the workers' group is Stable with
// members members owning every partition of the orders and cancellations
// topics: only then does an order placed go to a member that stays.
func waitAssigned(t *testing.T, topics testsvc.Topics, members int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := harness.WaitAssigned(ctx, testsvc.KafkaBrokers(), groupOf(topics), members, topics.Orders, topics.Cancelled); err != nil {
		t.Fatal(err)
	}
}

// waitCounter polls the workers' /metrics until the sum of name over all of
// them (series matching labels) reaches at least want, or bound passes, and
// returns the last sum. A worker counts an answer just after publishing it, so
// a test that has read every answer may still have to wait a moment.
func waitCounter(t *testing.T, ws *harness.Workers, name string, labels harness.Labels, want float64, bound time.Duration) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	for {
		sum := 0.0
		for _, w := range ws.List() {
			m, err := w.Metrics(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return sum
				}
				t.Fatal(err)
			}
			sum += m.Sum(name, labels)
		}
		if sum >= want {
			return sum
		}
		select {
		case <-ctx.Done():
			return sum
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Every variable stockworker reads is one the harness removes from the
// inherited environment, so a setting of the developer's shell never leaks
// into a test, the demo or the benchmark.
func TestHarnessKnowsEveryWorkerSetting(t *testing.T) {
	var read []string
	_, _ = parseConfig(nil, func(k string) string { read = append(read, k); return "" }, io.Discard)
	if len(read) < 10 {
		t.Fatalf("parseConfig read only %v", read)
	}
	for _, k := range read {
		if !slices.Contains(harness.WorkerVars(), k) {
			t.Errorf("stockworker reads %s, which harness.WorkerVars does not list", k)
		}
	}
}

// workerProc is one stockworker process started by startWorker: a thin
// adapter over harness.Worker for the tests written against the older helper.
type workerProc struct {
	t    *testing.T
	w    *harness.Worker
	name string
	logs logText    // the end of its output (%s prints it)
	done chan error // receives the exit result once it has exited; put it back after reading
}

// logText prints a worker's output.
type logText struct{ w *harness.Worker }

func (l logText) String() string { return l.w.Log() }

// startWorker starts one stockworker with env (see workerEnv) and its own HTTP
// port; when the test ends it is stopped (testsvc.StartWorkers).
func startWorker(t *testing.T, name string, env []string) *workerProc {
	t.Helper()
	var forward sync.WaitGroup
	t.Cleanup(forward.Wait) // registered first: runs after the workers' cleanup has ended the process
	w := startWorkers(t, name, 1, env).List()[0]
	p := &workerProc{t: t, w: w, name: name, logs: logText{w}, done: make(chan error, 1)}
	forward.Add(1)
	go func() {
		defer forward.Done()
		<-w.Done()
		p.done <- w.Err()
	}()
	return p
}

// stop sends sig and waits at most bound for the exit; it returns the exit
// error (nil for exit 0) and how long the exit took. A process that does not
// exit within bound is killed and fails the test.
func (p *workerProc) stop(sig os.Signal, bound time.Duration) (error, time.Duration) {
	p.t.Helper()
	e := p.w.Stop(sig, bound)
	if e.Killed {
		p.t.Fatalf("%s did not exit within %v of %v\n%s", p.name, bound, sig, p.logs)
	}
	return e.Err, e.Took
}

// stopClean sends SIGTERM and requires exit 0 within 30s.
func (p *workerProc) stopClean() {
	p.t.Helper()
	if err, _ := p.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		p.t.Fatalf("%s exited with %v\n%s", p.name, err, p.logs)
	}
}

// get fetches path from the worker's HTTP server: status code and body, or 0
// and the error when it does not answer.
func (p *workerProc) get(path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	code, body, err := p.w.Get(ctx, path)
	if err != nil {
		return 0, err.Error()
	}
	return code, body
}

// waitReady polls /readyz until it reports want (true: 200) or bound passes.
func (p *workerProc) waitReady(want bool, bound time.Duration) bool {
	return p.w.WaitReady(want, bound) == nil
}
