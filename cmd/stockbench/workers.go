package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// workerVars are the stockworker settings; they are removed from the
// inherited environment so that only what the benchmark sets applies.
var workerVars = []string{
	"KAFKA_BROKERS", "MYSQL_DSN", "REDIS_ADDR", "LOCK_STRATEGY", "GROUP_ID", "ORDERS_TOPIC",
	"CANCELLED_TOPIC", "EVENTS_TOPIC", "DLQ_TOPIC", "HTTP_ADDR", "TOPIC_PARTITIONS", "CREATE_TOPICS",
	"MIGRATE", "LOG_LEVEL", "DB_MAX_OPEN", "SHUTDOWN_GRACE", "BATCH_SIZE", "BATCH_WAIT", "CONSUMERS",
}

// workerEnv is the process environment of a worker: the benchmark's own
// environment without stockworker settings, then set.
func workerEnv(set []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, v := range workerVars {
			if k == v {
				keep = false
			}
		}
		if keep {
			env = append(env, kv)
		}
	}
	return append(env, set...)
}

// workers are the stockworker processes of one run. A goroutine per process
// waits for it; ctx is cancelled, with the reason as its cause, as soon as a
// process exits before stop asked it to, so every wait of the run gives up at
// once instead of timing out.
type workers struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	procs  []*workerProc

	mu       sync.Mutex
	stopping bool
}

type workerProc struct {
	n    int
	cmd  *exec.Cmd
	out  *tail
	done chan struct{} // closed once the process is reaped; err is set then
	err  error
}

// stopGrace is how long a worker may take to drain and exit after SIGTERM
// before it is killed. The workers get SHUTDOWN_GRACE below it.
const (
	stopGrace     = 15 * time.Second
	workerDrainIn = "5s"
)

// startWorkers starts n processes of bin with env. On an error the processes
// already started are stopped again. The caller must call stop on every path.
func startWorkers(ctx context.Context, bin string, n int, env []string) (*workers, error) {
	wctx, cancel := context.WithCancelCause(ctx)
	ws := &workers{ctx: wctx, cancel: cancel}
	for i := range n {
		cmd := exec.Command(bin)
		cmd.Env = env
		out := &tail{max: 32 << 10}
		cmd.Stdout, cmd.Stderr = out, out
		// If the benchmark itself dies (kill -9), the kernel stops its workers.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			ws.stop()
			return ws, fmt.Errorf("start %s: %w", bin, err)
		}
		p := &workerProc{n: i + 1, cmd: cmd, out: out, done: make(chan struct{})}
		ws.procs = append(ws.procs, p)
		go func() {
			p.err = cmd.Wait()
			close(p.done)
			ws.mu.Lock()
			stopping := ws.stopping
			ws.mu.Unlock()
			if !stopping {
				ws.cancel(fmt.Errorf("worker %d (pid %d) exited unexpectedly (%v); its last output:\n%s",
					p.n, cmd.Process.Pid, p.err, indent(p.out.String())))
			}
		}()
	}
	return ws, nil
}

// peakRSS returns each running worker's peak resident set (VmHWM), in bytes.
func (ws *workers) peakRSS() ([]int64, error) {
	var out []int64
	var errs []error
	for _, p := range ws.procs {
		v, err := procStatusKB(p.cmd.Process.Pid, "VmHWM")
		if err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", p.n, err))
			continue
		}
		out = append(out, v*1024)
	}
	return out, errors.Join(errs...)
}

// stop sends SIGTERM to every worker, waits up to stopGrace for them to
// drain and exit, then kills what is left. It is safe to call more than once
// and returns the workers' exit errors, if any.
func (ws *workers) stop() error {
	ws.mu.Lock()
	already := ws.stopping
	ws.stopping = true
	ws.mu.Unlock()
	if !already {
		for _, p := range ws.procs {
			_ = p.cmd.Process.Signal(syscall.SIGTERM) // fails only if it is gone already
		}
	}
	deadline := time.NewTimer(stopGrace)
	defer deadline.Stop()
	var errs []error
	for _, p := range ws.procs {
		select {
		case <-p.done:
		case <-deadline.C:
			_ = p.cmd.Process.Kill()
			<-p.done
			errs = append(errs, fmt.Errorf("worker %d did not stop within %s after SIGTERM; killed", p.n, stopGrace))
			deadline.Reset(0)
		}
		if p.err != nil && !already {
			errs = append(errs, fmt.Errorf("worker %d: %v; its last output:\n%s", p.n, p.err, indent(p.out.String())))
		}
	}
	ws.cancel(errors.New("workers stopped"))
	return errors.Join(errs...)
}

// logs returns the tail of every worker's output.
func (ws *workers) logs() string {
	var b strings.Builder
	for _, p := range ws.procs {
		if s := p.out.String(); s != "" {
			fmt.Fprintf(&b, "worker %d:\n%s\n", p.n, indent(s))
		}
	}
	return b.String()
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
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

// listenPort finds the TCP port pid listens on (its HTTP_ADDR=127.0.0.1:0
// endpoint) through /proc: the socket inodes among its file descriptors,
// matched with the LISTEN entries of /proc/net/tcp. 0 when there is none.
func listenPort(pid int) (int, error) {
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		return 0, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
			continue
		}
		_, port, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseInt(port, 16, 32)
		if err == nil {
			return int(p), nil
		}
	}
	return 0, nil
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

func (a metricsSnapshot) sub(b metricsSnapshot) metricsSnapshot {
	return metricsSnapshot{a.BatchSum - b.BatchSum, a.BatchCount - b.BatchCount, a.DeductSum - b.DeductSum,
		a.DeductCount - b.DeductCount, a.DBRetries - b.DBRetries, a.BatchRetries - b.BatchRetries, a.Replayed - b.Replayed}
}

// scrapeMetrics reads /metrics of every worker. Workers whose endpoint cannot
// be found or read are skipped; ok is false then.
func (ws *workers) scrapeMetrics(ctx context.Context) (metricsSnapshot, bool) {
	var total metricsSnapshot
	ok := true
	for _, p := range ws.procs {
		port, err := listenPort(p.cmd.Process.Pid)
		if err != nil || port == 0 {
			ok = false
			continue
		}
		s, err := scrape(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			ok = false
			continue
		}
		total.BatchSum += s.BatchSum
		total.BatchCount += s.BatchCount
		total.DeductSum += s.DeductSum
		total.DeductCount += s.DeductCount
		total.DBRetries += s.DBRetries
		total.BatchRetries += s.BatchRetries
		total.Replayed += s.Replayed
	}
	return total, ok
}

func scrape(ctx context.Context, url string) (metricsSnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return metricsSnapshot{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return metricsSnapshot{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return metricsSnapshot{}, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return parseMetrics(res.Body)
}

// parseMetrics sums the series the report needs from Prometheus text format.
func parseMetrics(r io.Reader) (metricsSnapshot, error) {
	var s metricsSnapshot
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(line[:i], "{")
		switch name {
		case "stockflow_batch_size_sum":
			s.BatchSum += v
		case "stockflow_batch_size_count":
			s.BatchCount += v
		case "stockflow_deduct_seconds_sum":
			s.DeductSum += v
		case "stockflow_deduct_seconds_count":
			s.DeductCount += v
		case "stockflow_db_retries_total":
			s.DBRetries += v
		case "stockflow_batch_retries_total":
			s.BatchRetries += v
		case "stockflow_orders_total":
			if strings.Contains(labels, `replayed="true"`) {
				s.Replayed += v
			}
		}
	}
	return s, sc.Err()
}
