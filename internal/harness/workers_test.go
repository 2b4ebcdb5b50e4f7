package harness_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stockflow/stockflow/internal/harness"
	"go.uber.org/goleak"
)

// The test binary is also the helper process the worker tests start: with
// HARNESS_HELPER set it serves /readyz and /metrics on HTTP_ADDR like a tiny
// stockworker instead of running the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("HARNESS_HELPER"); mode != "" {
		os.Exit(helper(mode))
	}
	goleak.VerifyTestMain(m)
}

const helperMetrics = `# TYPE stockflow_orders_total counter
stockflow_orders_total{outcome="deducted",replayed="false"} 7
stockflow_orders_total{outcome="deducted",replayed="true"} 2
`

// helper is the helper process: "serve" answers HTTP until SIGTERM (exit
// EXIT_CODE, default 0; IGNORE_TERM=1 ignores it), "exit" fails at once.
func helper(mode string) int {
	fmt.Printf("KAFKA_BROKERS=%q HELPER_SETTING=%q\n", os.Getenv("KAFKA_BROKERS"), os.Getenv("HELPER_SETTING"))
	fmt.Fprintln(os.Stderr, "a line on stderr")
	if mode == "exit" {
		fmt.Println("failing on purpose")
		return 3
	}
	term := make(chan os.Signal, 1)
	if os.Getenv("IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(term, syscall.SIGTERM)
	}
	readyAfter, _ := time.ParseDuration(os.Getenv("READY_AFTER"))
	start := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if time.Since(start) < readyAfter {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "warming up")
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, helperMetrics) })
	ln, err := net.Listen("tcp", os.Getenv("HTTP_ADDR"))
	if err != nil {
		fmt.Println(err)
		return 1
	}
	go http.Serve(ln, mux) //nolint:errcheck // the process ends with it
	<-term
	fmt.Println("bye")
	code := 0
	fmt.Sscan(os.Getenv("EXIT_CODE"), &code)
	return code
}

func helperOptions(env ...string) harness.Options {
	return harness.Options{Name: "helper", Env: append([]string{"HARNESS_HELPER=serve"}, env...)}
}

func TestWorkersStartServeAndStop(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "inherited:9092") // a stockworker setting: removed
	t.Setenv("HELPER_SETTING", "inherited")     // anything else: inherited, unless Env sets it
	opts := helperOptions("HELPER_SETTING=from-env", "READY_AFTER=300ms")
	opts.LogFile = "harness-test-helper%d-*.log"
	ws, err := harness.StartWorkers(context.Background(), os.Args[0], 2, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Stop(syscall.SIGKILL, time.Second)
	list := ws.List()
	for _, w := range list {
		t.Cleanup(func() { os.Remove(w.LogFile()) })
	}
	if list[0].Name() != "helper 1" || list[1].Name() != "helper 2" {
		t.Fatalf("names %q, %q", list[0].Name(), list[1].Name())
	}
	if list[0].Addr() == list[1].Addr() || !strings.HasPrefix(list[0].Addr(), "127.0.0.1:") {
		t.Fatalf("addresses %s, %s", list[0].Addr(), list[1].Addr())
	}
	if err := ws.WaitReady(true, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, ws.Logs())
	}
	for _, w := range list {
		m, err := w.Metrics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Sum("stockflow_orders_total", harness.Labels{"replayed": "false"}); got != 7 {
			t.Fatalf("%s: replayed=false sums to %v", w.Name(), got)
		}
		if !strings.Contains(w.Log(), `KAFKA_BROKERS="" HELPER_SETTING="from-env"`) || !strings.Contains(w.Log(), "a line on stderr") {
			t.Fatalf("%s output:\n%s", w.Name(), w.Log())
		}
		b, err := os.ReadFile(w.LogFile())
		if err != nil || !strings.Contains(w.LogFile(), "harness-test-helper") || !strings.Contains(string(b), "a line on stderr") {
			t.Fatalf("log file %s: %v\n%s", w.LogFile(), err, b)
		}
	}
	exits := ws.Stop(syscall.SIGTERM, 10*time.Second)
	if len(exits) != 2 {
		t.Fatalf("exits %v", exits)
	}
	for _, e := range exits {
		if !e.Clean() || e.Problem() != nil || e.Took <= 0 {
			t.Fatalf("exit %+v", e)
		}
	}
	if cause := context.Cause(ws.Context()); !errors.Is(cause, harness.ErrStopped) {
		t.Fatalf("cause after Stop: %v", cause)
	}
	if again := ws.Stop(syscall.SIGTERM, time.Second); len(again) != 2 || again[0] != exits[0] {
		t.Fatalf("second Stop %v", again)
	}
	if !strings.Contains(list[0].Log(), "bye") || !strings.Contains(ws.Logs(), "helper 2:\n    ") {
		t.Fatalf("logs:\n%s", ws.Logs())
	}
}

func TestWorkersUnexpectedExitCancelsTheContext(t *testing.T) {
	ws, err := harness.StartWorkers(context.Background(), os.Args[0], 1, harness.Options{Env: []string{"HARNESS_HELPER=exit"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Stop(syscall.SIGTERM, time.Second)
	w := ws.List()[0]
	if err := w.WaitReady(true, 20*time.Second); err == nil || !strings.Contains(err.Error(), "worker exited (exit status 3)") {
		t.Fatalf("WaitReady of a process that exits: %v", err)
	}
	select {
	case <-ws.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the context was not cancelled")
	}
	var exit *harness.UnexpectedExit
	if cause := context.Cause(ws.Context()); !errors.As(cause, &exit) || exit.Name != "worker" ||
		cause.Error() != "worker exited before it was stopped (exit status 3)" {
		t.Fatalf("cause %v", cause)
	}
	if got := ws.Explain(fmt.Errorf("publish: %w", context.Canceled)); got != context.Cause(ws.Context()) {
		t.Fatalf("Explain of a consequence = %v", got)
	}
	if got := ws.Explain(fmt.Errorf("wait for the group: %w", context.Cause(ws.Context()))); got != context.Cause(ws.Context()) {
		t.Fatalf("Explain of an error wrapping the cause = %v", got)
	}
	if other := errors.New("other"); ws.Explain(other) != other {
		t.Fatal("Explain changed an unrelated error")
	}
	if w.Err() == nil || !strings.Contains(w.Log(), "failing on purpose") {
		t.Fatalf("Err %v, log:\n%s", w.Err(), w.Log())
	}
	e := ws.Stop(syscall.SIGTERM, time.Second)[0]
	if e.Clean() || e.Killed || e.Took != 0 || !strings.Contains(e.Problem().Error(), "worker exited with exit status 3") {
		t.Fatalf("exit %+v (%v)", e, e.Problem())
	}
}

func TestWorkersStopKillsStragglers(t *testing.T) {
	ws, err := harness.StartWorkers(context.Background(), os.Args[0], 1, helperOptions("IGNORE_TERM=1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WaitReady(true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e := ws.Stop(syscall.SIGTERM, 300*time.Millisecond)[0]
	if !e.Killed || e.Clean() || e.Problem() == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("exit %+v after %v", e, time.Since(start))
	}
}

// One process stopped on its own (a planned exit) cancels nothing; the others
// keep running.
func TestWorkerStopLeavesTheOthers(t *testing.T) {
	ws, err := harness.StartWorkers(context.Background(), os.Args[0], 2, helperOptions("EXIT_CODE=4"))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Stop(syscall.SIGTERM, 10*time.Second)
	if err := ws.WaitReady(true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	first, second := ws.List()[0], ws.List()[1]
	e := first.Stop(syscall.SIGTERM, 10*time.Second)
	if e.Clean() || e.Killed || first.Err() == nil {
		t.Fatalf("exit %+v: want status 4", e)
	}
	if err := ws.Context().Err(); err != nil {
		t.Fatalf("a planned exit cancelled the context: %v", context.Cause(ws.Context()))
	}
	if err := second.WaitReady(true, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := second.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-second.Done()
	if err := ws.Context().Err(); err != nil {
		t.Fatalf("a signalled exit cancelled the context: %v", context.Cause(ws.Context()))
	}
}

func TestWaitReadyFalse(t *testing.T) {
	ws, err := harness.StartWorkers(context.Background(), os.Args[0], 1, helperOptions("READY_AFTER=1h"))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Stop(syscall.SIGTERM, 10*time.Second)
	w := ws.List()[0]
	if err := w.WaitReady(false, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	err = w.WaitReady(true, 500*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "last /readyz: 503 warming up") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestStartWorkersErrors(t *testing.T) {
	if _, err := harness.StartWorkers(context.Background(), "/nonexistent/stockworker", 2, harness.Options{}); err == nil {
		t.Fatal("started a missing binary")
	}
	if _, err := harness.StartWorkers(context.Background(), os.Args[0], 0, harness.Options{}); err == nil {
		t.Fatal("started 0 processes")
	}
}

func TestWorkerSettings(t *testing.T) {
	got := harness.WorkerSettings([]string{"PATH=/bin", "MYSQL_DSN=x", "REDIS_PREFIX=p:", "MYSQL_DSN_OTHER=y", "CONSUMERS=3"})
	if strings.Join(got, " ") != "MYSQL_DSN=x REDIS_PREFIX=p: CONSUMERS=3" {
		t.Fatalf("settings %q", got)
	}
}
