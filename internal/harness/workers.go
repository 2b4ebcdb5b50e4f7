package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds of the process plumbing.
const (
	httpTimeout  = 5 * time.Second        // one Get
	readyPoll    = 100 * time.Millisecond // WaitReady's polling interval
	waitDelay    = 5 * time.Second        // Wait's bound on output still open after an exit
	startupStop  = 5 * time.Second        // StartWorkers' bound when it stops what it started
	maxBodyBytes = 16 << 20
)

// WorkerVars returns the names of stockworker's settings, the environment
// variables it reads. StartWorkers removes them from the inherited
// environment; cmd/stockworker's tests check the list is complete.
func WorkerVars() []string {
	return []string{
		"KAFKA_BROKERS", "MYSQL_DSN", "REDIS_ADDR", "LOCK_STRATEGY", "GROUP_ID", "ORDERS_TOPIC",
		"CANCELLED_TOPIC", "EVENTS_TOPIC", "DLQ_TOPIC", "HTTP_ADDR", "TOPIC_PARTITIONS", "CREATE_TOPICS",
		"MIGRATE", "LOG_LEVEL", "DB_MAX_OPEN", "SHUTDOWN_GRACE", "BATCH_SIZE", "BATCH_WAIT", "CONSUMERS",
		"REDIS_PREFIX", "POISON_ATTEMPTS", "LANES", "MAX_MESSAGE_BYTES", "MAX_LINES", "MAX_ORDER_ID_BYTES", "MAX_NUM",
		"OUTCOME_PARTITIONER", "TOPIC_REPLICATION",
		// Kafka TLS and SASL (internal/kafkaconn)
		"KAFKA_TLS", "KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE",
		"KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD_FILE",
		// MySQL and Redis security, secrets, pprof
		"MYSQL_DSN_FILE", "MYSQL_TLS_CA_FILE", "MYSQL_TLS_CERT_FILE", "MYSQL_TLS_KEY_FILE",
		"REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_PASSWORD_FILE", "REDIS_TLS", "REDIS_TLS_CA_FILE", "PPROF_ADDR",
	}
}

// WorkerSettings returns the entries of environ (KEY=VALUE, as from
// os.Environ) that are stockworker settings, in their order: for a caller that
// passes its own settings on to its workers on purpose.
func WorkerSettings(environ []string) []string {
	vars := WorkerVars()
	var out []string
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); slices.Contains(vars, k) {
			out = append(out, kv)
		}
	}
	return out
}

// inheritedEnv is this process's environment without stockworker settings.
func inheritedEnv() []string {
	vars := WorkerVars()
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(vars, k) {
			env = append(env, kv)
		}
	}
	return env
}

// Options configure StartWorkers. The zero value is usable.
type Options struct {
	// Name names the processes in logs and errors: a single process is Name,
	// several are "Name 1", "Name 2"... Default "worker".
	Name string
	// Env is set for every process, KEY=VALUE, after the inherited
	// environment without WorkerVars, so only what the caller sets of
	// stockworker's settings applies; of a key given twice the later wins.
	// HTTP_ADDR is always StartWorkers' own (see Worker.Addr).
	Env []string
	// LogFile, when set, also writes each process's output to a file made by
	// os.CreateTemp in os.TempDir() with LogFile as the pattern, its "%d"
	// replaced by the process number (1-based):
	// "demo-batch-worker%d-*.log". The caller removes the files
	// (Worker.LogFile names them). Default: no files.
	LogFile string
	// TailBytes is how much of each process's output is kept in memory for
	// Worker.Log and Workers.Logs. Default 64 KiB.
	TailBytes int
}

// Workers are processes started together by StartWorkers. A goroutine per
// process waits for it; Context is cancelled, with an *UnexpectedExit as its
// cause, as soon as a process exits that the harness did not signal, so
// whatever waits on it gives up at once instead of timing out.
//
// The caller must call Stop on every path: it ends the processes, waits for
// every goroutine and releases the HTTP connections. The methods are safe for
// concurrent use.
type Workers struct {
	ctx       context.Context
	cancel    context.CancelCauseFunc
	list      []*Worker
	wg        sync.WaitGroup // the reapers
	transport *http.Transport
	client    *http.Client

	stopOnce sync.Once
	exits    []Exit
}

// Worker is one process of Workers.
type Worker struct {
	ws      *Workers
	name    string
	addr    string
	logFile string
	cmd     *exec.Cmd
	out     *tailBuffer

	stopping atomic.Bool  // the harness signalled or killed it: its exit is expected
	killed   atomic.Bool  // the harness killed it
	signaled atomic.Int64 // unix nanoseconds of the last signal the harness sent

	done chan struct{} // closed once reaped; exit is set before
	exit Exit
}

// Exit is how one process ended.
type Exit struct {
	Name   string
	Err    error         // what exec.Cmd.Wait returned: nil for status 0, else usually *exec.ExitError
	Killed bool          // the harness killed it: it did not exit within Stop's bound
	Took   time.Duration // from the last signal the harness sent it to its exit; 0 if it exited unasked
}

// Clean reports an exit with status 0 that needed no kill.
func (e Exit) Clean() bool { return e.Err == nil && !e.Killed }

// Problem is nil for a clean exit, else an error saying what happened.
func (e Exit) Problem() error {
	switch {
	case e.Killed:
		return fmt.Errorf("%s did not exit within its bound; killed after %v", e.Name, e.Took.Round(time.Millisecond))
	case e.Err != nil:
		return fmt.Errorf("%s exited with %v", e.Name, e.Err)
	}
	return nil
}

// StartWorkers starts n processes of bin. Each gets the inherited environment
// without stockworker's settings (WorkerVars), then opts.Env, then
// HTTP_ADDR=127.0.0.1:<a free port> (Worker.Addr), so /readyz and /metrics can
// be read. Output (stdout and stderr together) is kept in memory and, with
// opts.LogFile, in a file. On Linux each process gets SIGTERM when this
// process dies.
//
// Cancelling ctx cancels Context but does not touch the processes: Stop does.
// On an error nothing is left running and no file is left behind.
//
// The free port is found by listening on port 0 and closing it before the
// process starts: another process may take it in between, and then the
// worker exits at start, which cancels Context with the reason.
func StartWorkers(ctx context.Context, bin string, n int, opts Options) (*Workers, error) {
	if n < 1 {
		return nil, fmt.Errorf("start %s: want at least 1 process, got %d", bin, n)
	}
	if opts.Name == "" {
		opts.Name = "worker"
	}
	env := append(inheritedEnv(), opts.Env...)
	wctx, cancel := context.WithCancelCause(ctx)
	transport := &http.Transport{DialContext: (&net.Dialer{Timeout: httpTimeout}).DialContext}
	ws := &Workers{ctx: wctx, cancel: cancel, transport: transport,
		client: &http.Client{Transport: transport, Timeout: httpTimeout}}
	for i := range n {
		name := opts.Name
		if n > 1 {
			name = fmt.Sprintf("%s %d", opts.Name, i+1)
		}
		w, err := ws.start(bin, name, i, env, opts)
		if err != nil {
			ws.Stop(syscall.SIGTERM, startupStop)
			for _, w := range ws.list {
				if w.logFile != "" {
					_ = os.Remove(w.logFile)
				}
			}
			return nil, err
		}
		ws.list = append(ws.list, w)
	}
	return ws, nil
}

func (ws *Workers) start(bin, name string, i int, env []string, opts Options) (*Worker, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	w := &Worker{ws: ws, name: name, addr: addr, out: newTailBuffer(opts.TailBytes), done: make(chan struct{})}
	var out io.Writer = w.out
	var file *os.File
	if opts.LogFile != "" {
		file, err = os.CreateTemp("", strings.Replace(opts.LogFile, "%d", strconv.Itoa(i+1), 1))
		if err != nil {
			return nil, fmt.Errorf("log file of %s: %w", name, err)
		}
		w.logFile = file.Name()
		out = &tee{tail: w.out, file: file}
	}
	// A slice of its own: env is shared by every process of the call.
	w.cmd = exec.Command(bin)
	w.cmd.Env = append(slices.Clip(env), "HTTP_ADDR="+addr)
	w.cmd.Stdout, w.cmd.Stderr = out, out
	w.cmd.SysProcAttr = sysProcAttr()
	w.cmd.WaitDelay = waitDelay
	if err := w.cmd.Start(); err != nil {
		if file != nil {
			_ = file.Close()
			_ = os.Remove(file.Name())
		}
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	ws.wg.Add(1)
	go w.reap(file)
	return w, nil
}

// FreeAddr returns 127.0.0.1 and a port nothing listened on a moment ago.
//
// The port is released before the worker binds it, so it is picked below the
// kernel's ephemeral range (32768 and up by default): a port the kernel hands
// out itself could meanwhile become the local end of one of the many
// outgoing connections (to Kafka, MariaDB) of the processes running beside
// it — "address already in use", seen here with a dozen workers at once.
func FreeAddr() (string, error) {
	for range 50 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken: try another
		}
		if err := ln.Close(); err != nil {
			return "", fmt.Errorf("find a free port: %w", err)
		}
		return addr, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	return addr, nil
}

// reap waits for the process, records its exit and, when nobody asked it to
// exit, cancels the Workers' context. Workers.Stop waits for it.
func (w *Worker) reap(file *os.File) {
	defer w.ws.wg.Done()
	err := w.cmd.Wait()
	if file != nil {
		_ = file.Close()
	}
	var took time.Duration
	if at := w.signaled.Load(); at != 0 {
		took = time.Since(time.Unix(0, at))
	}
	w.exit = Exit{Name: w.name, Err: err, Killed: w.killed.Load(), Took: took}
	close(w.done)
	if !w.stopping.Load() {
		w.ws.cancel(&UnexpectedExit{Name: w.name, Pid: w.cmd.Process.Pid, Err: err})
	}
}

// Context is cancelled when a process exits unasked (cause *UnexpectedExit),
// when Stop is called (cause ErrStopped) or when StartWorkers' ctx ends.
func (ws *Workers) Context() context.Context { return ws.ctx }

// List returns the processes in start order.
func (ws *Workers) List() []*Worker { return slices.Clone(ws.list) }

// Stop sends sig to every process still running, waits up to bound (for all
// of them together), then kills those left. It returns every process's Exit in
// start order, after every process is reaped and every goroutine of ws has
// ended; Context is then cancelled with ErrStopped. It is idempotent: later
// calls wait for the first and return its result.
func (ws *Workers) Stop(sig os.Signal, bound time.Duration) []Exit {
	ws.stopOnce.Do(func() {
		for _, w := range ws.list {
			w.stopping.Store(true)
		}
		for _, w := range ws.list {
			if !w.exited() {
				_ = w.Signal(sig) // fails only if it is gone already
			}
		}
		deadline := time.NewTimer(bound)
		defer deadline.Stop()
		expired := false
		for _, w := range ws.list {
			if !expired {
				select {
				case <-w.done:
					continue
				case <-deadline.C:
					expired = true
				}
			}
			if !w.exited() {
				w.kill()
			}
			<-w.done
		}
		ws.cancel(ErrStopped)
		ws.wg.Wait()
		ws.transport.CloseIdleConnections()
		for _, w := range ws.list {
			ws.exits = append(ws.exits, w.exit)
		}
	})
	return slices.Clone(ws.exits)
}

// WaitReady waits until every process's /readyz reports want (true: 200,
// false: anything else it answers), all within bound. See Worker.WaitReady.
func (ws *Workers) WaitReady(want bool, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for _, w := range ws.list {
		if err := w.WaitReady(want, max(time.Until(deadline), readyPoll)); err != nil {
			return err
		}
	}
	return nil
}

// Logs returns every process's kept output, each under its name and
// indented, for a failure message.
func (ws *Workers) Logs() string {
	var b strings.Builder
	for _, w := range ws.list {
		fmt.Fprintf(&b, "%s:\n%s\n", w.name, indent(w.Log()))
	}
	return b.String()
}

// Explain returns why a process died when err is only the consequence of
// Context being cancelled for it (err wraps context.Canceled, or the cause
// itself as the harness's own waits do), else err.
func (ws *Workers) Explain(err error) error {
	var exit *UnexpectedExit
	cause := context.Cause(ws.ctx)
	if err != nil && errors.As(cause, &exit) && (errors.Is(err, context.Canceled) || errors.Is(err, cause)) {
		return cause
	}
	return err
}

// Name is the process's name: "worker 1".
func (w *Worker) Name() string { return w.name }

// Pid is the process id.
func (w *Worker) Pid() int { return w.cmd.Process.Pid }

// Addr is the process's HTTP_ADDR, 127.0.0.1:port.
func (w *Worker) Addr() string { return w.addr }

// LogFile is the path of the process's log file; "" without Options.LogFile.
func (w *Worker) LogFile() string { return w.logFile }

// Log returns the end of the process's output (Options.TailBytes of it).
func (w *Worker) Log() string { return w.out.String() }

// Done is closed once the process has exited and been reaped.
func (w *Worker) Done() <-chan struct{} { return w.done }

// Err is what Wait returned (nil for status 0) once Done is closed; nil while
// the process runs.
func (w *Worker) Err() error {
	if !w.exited() {
		return nil
	}
	return w.exit.Err
}

func (w *Worker) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process. From then on its exit is expected: it no
// longer cancels Context.
func (w *Worker) Signal(sig os.Signal) error {
	w.stopping.Store(true)
	w.signaled.Store(time.Now().UnixNano())
	if err := w.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", w.name, err)
	}
	return nil
}

func (w *Worker) kill() {
	w.stopping.Store(true)
	w.killed.Store(true)
	_ = w.cmd.Process.Kill() // fails only if it is gone already
}

// Stop sends sig to this process (unless it has exited), waits up to bound
// for its exit, kills it if it is still there, and returns its Exit. The other
// processes and Context are left alone; Workers.Stop must still be called.
func (w *Worker) Stop(sig os.Signal, bound time.Duration) Exit {
	if !w.exited() {
		_ = w.Signal(sig)
		t := time.NewTimer(bound)
		defer t.Stop()
		select {
		case <-w.done:
		case <-t.C:
			w.kill()
			<-w.done
		}
	}
	return w.exit
}

// Get fetches path (such as "/metrics") from the process's HTTP server and
// returns the status code and body. Each request is bounded by 5s and ctx.
func (w *Worker) Get(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.addr+path, nil)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s of %s: %w", path, w.name, err)
	}
	resp, err := w.ws.client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s of %s: %w", path, w.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return resp.StatusCode, string(b), fmt.Errorf("GET %s of %s: %w", path, w.name, err)
	}
	return resp.StatusCode, string(b), nil
}

// Metrics reads the process's /metrics and parses it.
func (w *Worker) Metrics(ctx context.Context) (Metrics, error) {
	code, body, err := w.Get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics of %s: status %d: %.200s", w.name, code, body)
	}
	m, err := ParseMetrics(strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("/metrics of %s: %w", w.name, err)
	}
	return m, nil
}

// WaitReady polls /readyz every 100ms until it reports want (true: 200, false:
// any other status the server answers with) or bound passes. It gives up at
// once when the process exits or Context ends, and says what it last saw.
func (w *Worker) WaitReady(want bool, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(w.ws.ctx, bound)
	defer cancel()
	wantText := "ready"
	if !want {
		wantText = "not ready"
	}
	last := "no answer"
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		code, body, err := w.Get(ctx, "/readyz")
		switch {
		case err != nil:
			if ctx.Err() == nil { // else it is only the bound cutting this Get short
				last = err.Error()
			}
		case (code == http.StatusOK) == want:
			return nil
		default:
			last = fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
		}
		select {
		case <-w.done:
			return fmt.Errorf("%s exited (%s) while waiting for it to be %s", w.name, exitText(w.exit.Err), wantText)
		case <-ctx.Done():
			return fmt.Errorf("%s not %s within %v (last /readyz: %s): %w", w.name, wantText, bound, last, context.Cause(ctx))
		case <-tick.C:
		}
	}
}
