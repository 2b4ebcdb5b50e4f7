package db_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/testsvc"
	"gorm.io/gorm"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// newStrategy builds the named strategy over g, with a Redis client when it
// needs one. Unless opts names one, every strategy gets a Redis key prefix of
// its own, so no other test's locks can make it wait.
func newStrategy(t testing.TB, name string, g *gorm.DB, opts db.Options) db.Strategy {
	t.Helper()
	var s db.Strategy
	var err error
	if name == "redis" {
		if opts.RedisPrefix == "" {
			opts.RedisPrefix = testsvc.Unique("sftest:") + ":"
		}
		s, err = db.NewStrategy(name, g, testsvc.Redis(t), opts)
	} else {
		s, err = db.NewStrategy(name, g, nil, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// decide is what the worker does with a transient failure: try again, with a
// pause. Lock strategies may return transient errors under contention (retries
// exhausted, lock not acquired); they must never be rejections.
func decide(ctx context.Context, s db.Strategy, o events.OrderPlaced) (db.Decision, error) {
	for attempt := 1; ; attempt++ {
		d, err := s.Deduct(ctx, o)
		if err == nil || !db.Transient(err) || attempt == 200 {
			return d, err
		}
		time.Sleep(time.Duration(attempt%10+1) * time.Millisecond)
	}
}

func order(id string, lines ...events.Line) events.OrderPlaced {
	return events.OrderPlaced{OrderID: id, Lines: lines}
}

func line(goods int64, num int32) events.Line { return events.Line{GoodsID: goods, Num: num} }

// conformance is the one suite every lock strategy must pass. Sessions run at
// READ COMMITTED (db.Open sets it), where MariaDB's innodb_snapshot_isolation
// has no effect, so the suite runs once.
func conformance(t *testing.T, name string) {
	suite(t, name, nil)
}

func suite(t *testing.T, name string, params map[string]string) {
	ctx := context.Background()
	setup := func(t *testing.T, maxOpen int, opts db.Options, stock ...int64) (*gorm.DB, db.Strategy, string) {
		t.Parallel()
		dsn := testsvc.DatabaseDSN(t)
		g := testsvc.Open(t, dsn, maxOpen, params)
		testsvc.Stock(t, g, stock...)
		return g, newStrategy(t, name, g, opts), dsn
	}
	decode := func(t *testing.T, d db.Decision) events.Outcome {
		t.Helper()
		o, err := events.DecodeOutcome(d.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if o.OrderID != d.OrderID || o.Type != d.EventType() || o.EventID != d.OrderID+":"+d.EventType() {
			t.Fatalf("payload %s does not match decision %+v", d.Payload, d)
		}
		return o
	}
	ledgerRows := func(t *testing.T, g *gorm.DB) int64 {
		t.Helper()
		var n int64
		if err := g.Model(&db.OrderOutcome{}).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	expectStock := func(t *testing.T, g *gorm.DB, want map[int64]int64) {
		t.Helper()
		for goods, w := range want {
			if got := testsvc.Stocks(t, g, goods); got != w {
				t.Fatalf("goods %d stock = %d, want %d", goods, got, w)
			}
		}
	}

	t.Run("single order", func(t *testing.T) {
		g, s, _ := setup(t, 4, db.Options{}, 16, 10)
		d, err := s.Deduct(ctx, order("A1", line(16, 3)))
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != db.StatusDeducted || d.Replayed {
			t.Fatalf("decision = %+v", d)
		}
		if o := decode(t, d); len(o.Items) != 1 || o.Items[0].Num != 3 || o.Items[0].Available != nil {
			t.Fatalf("outcome = %+v", o)
		}
		expectStock(t, g, map[int64]int64{16: 7})
	})

	t.Run("insufficient stock leaves the row untouched", func(t *testing.T) {
		g, s, _ := setup(t, 4, db.Options{}, 16, 2)
		d, err := s.Deduct(ctx, order("A1", line(16, 3)))
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != db.StatusRejected || d.Reason != events.ReasonInsufficientStock {
			t.Fatalf("decision = %+v", d)
		}
		if o := decode(t, d); o.Items[0].Available == nil || *o.Items[0].Available != 2 {
			t.Fatalf("rejection must report available 2: %s", d.Payload)
		}
		expectStock(t, g, map[int64]int64{16: 2})
		var v int64
		g.Raw("SELECT version FROM inventory WHERE goods = 16").Scan(&v)
		if v != 0 {
			t.Fatalf("version = %d: a rejection wrote the row", v)
		}
	})

	t.Run("zero stock", func(t *testing.T) {
		g, s, _ := setup(t, 4, db.Options{}, 16, 0)
		d, err := s.Deduct(ctx, order("A1", line(16, 1)))
		if err != nil || d.Reason != events.ReasonInsufficientStock {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		expectStock(t, g, map[int64]int64{16: 0})
	})

	t.Run("unknown goods", func(t *testing.T) {
		g, s, _ := setup(t, 4, db.Options{}, 16, 5)
		d, err := s.Deduct(ctx, order("A1", line(16, 1), line(999, 1)))
		if err != nil || d.Status != db.StatusRejected || d.Reason != events.ReasonUnknownGoods {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		o := decode(t, d)
		if len(o.Items) != 2 || *o.Items[0].Available != 5 || *o.Items[1].Available != 0 {
			t.Fatalf("outcome items = %s", d.Payload)
		}
		expectStock(t, g, map[int64]int64{16: 5})
	})

	t.Run("multi-item all or nothing", func(t *testing.T) {
		g, s, _ := setup(t, 4, db.Options{}, 1, 10, 2, 10, 3, 1)
		d, err := s.Deduct(ctx, order("short", line(1, 1), line(2, 1), line(3, 2)))
		if err != nil || d.Reason != events.ReasonInsufficientStock {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		expectStock(t, g, map[int64]int64{1: 10, 2: 10, 3: 1})
		d, err = s.Deduct(ctx, order("fits", line(1, 1), line(2, 2), line(3, 1)))
		if err != nil || d.Status != db.StatusDeducted {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		expectStock(t, g, map[int64]int64{1: 9, 2: 8, 3: 0})
	})

	t.Run("duplicate goods lines are summed", func(t *testing.T) {
		g, s, _ := setup(t, 4, db.Options{}, 7, 5)
		// Not through the decoder: the strategy merges lines itself.
		if d, err := s.Deduct(ctx, order("dup", line(7, 2), line(7, 2))); err != nil || d.Status != db.StatusDeducted {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		expectStock(t, g, map[int64]int64{7: 1})
		d, err := s.Deduct(ctx, order("dup2", line(7, 1), line(7, 1)))
		if err != nil || d.Reason != events.ReasonInsufficientStock {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		if o := decode(t, d); len(o.Items) != 1 || o.Items[0].Num != 2 {
			t.Fatalf("outcome must list the merged line: %s", d.Payload)
		}
	})

	t.Run("replay is a no-op with the same outcome", func(t *testing.T) {
		g, s, _ := setup(t, 4, db.Options{}, 16, 10)
		first, err := s.Deduct(ctx, order("R1", line(16, 4)))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // a replay must not get a new occurred_at
		again, err := s.Deduct(ctx, order("R1", line(16, 4)))
		if err != nil {
			t.Fatal(err)
		}
		if !again.Replayed || string(again.Payload) != string(first.Payload) {
			t.Fatalf("replay = %+v\nfirst payload %s", again, first.Payload)
		}
		expectStock(t, g, map[int64]int64{16: 6})
		// A rejected order replays as the same rejection even after restocking.
		rej, err := s.Deduct(ctx, order("R2", line(16, 100)))
		if err != nil || rej.Status != db.StatusRejected {
			t.Fatalf("decision = %+v, %v", rej, err)
		}
		testsvc.Stock(t, g, 16, 1000)
		again, err = s.Deduct(ctx, order("R2", line(16, 100)))
		if err != nil || !again.Replayed || string(again.Payload) != string(rej.Payload) {
			t.Fatalf("replayed rejection = %+v, %v", again, err)
		}
		expectStock(t, g, map[int64]int64{16: 1000})
	})

	t.Run("an order cancelled before it arrives is rejected as cancelled", func(t *testing.T) {
		g, s, _ := setup(t, 4, db.Options{}, 16, 10)
		c, err := db.NewLedger(g, db.Options{}).Cancel(ctx, "early")
		if err != nil || c.Result != db.CancelBeforeOrder {
			t.Fatalf("cancel = %+v, %v", c, err)
		}
		d, err := s.Deduct(ctx, order("early", line(16, 1)))
		if err != nil || d.Status != db.StatusRejected || d.Reason != events.ReasonCancelled || !d.Replayed {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		if string(d.Payload) != string(c.Events[0].Payload) {
			t.Fatalf("the order's rejection differs from the one recorded at cancel time:\n%s\n%s", d.Payload, c.Events[0].Payload)
		}
		expectStock(t, g, map[int64]int64{16: 10})
	})

	t.Run("cancelled context writes nothing", func(t *testing.T) {
		g, s, _ := setup(t, 4, db.Options{}, 16, 10)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Deduct(cctx, order("C1", line(16, 1))); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		expectStock(t, g, map[int64]int64{16: 10})
		if n := ledgerRows(t, g); n != 0 {
			t.Fatalf("%d ledger rows after a cancelled attempt", n)
		}
	})

	t.Run("context cancelled mid-transaction writes nothing", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		g, s, _ := setup(t, 4, db.Options{Inject: func(ctx context.Context, point string) error {
			if point == db.PointWritten {
				cancel()
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}}, 1, 10, 2, 10)
		if _, err := s.Deduct(cctx, order("C2", line(1, 1), line(2, 1))); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		expectStock(t, g, map[int64]int64{1: 10, 2: 10})
		if n := ledgerRows(t, g); n != 0 {
			t.Fatalf("%d ledger rows after a cancelled attempt", n)
		}
	})

	t.Run("failure mid-transaction leaves no partial write", func(t *testing.T) {
		injected := errors.New("injected: connection lost")
		var fail sync.Once
		g, s, _ := setup(t, 4, db.Options{Inject: func(_ context.Context, point string) error {
			var err error
			if point == db.PointWritten {
				fail.Do(func() { err = injected })
			}
			return err
		}}, 1, 10, 2, 10)
		if _, err := s.Deduct(ctx, order("F1", line(1, 1), line(2, 1))); !errors.Is(err, injected) {
			t.Fatalf("err = %v, want the injected failure", err)
		}
		expectStock(t, g, map[int64]int64{1: 10, 2: 10})
		if n := ledgerRows(t, g); n != 0 {
			t.Fatalf("%d ledger rows after a failed attempt", n)
		}
		// The redelivery then decides it, once.
		if d, err := s.Deduct(ctx, order("F1", line(1, 1), line(2, 1))); err != nil || d.Status != db.StatusDeducted || d.Replayed {
			t.Fatalf("retry = %+v, %v", d, err)
		}
		expectStock(t, g, map[int64]int64{1: 9, 2: 9})
	})

	t.Run("N goroutines on one goods end exact", func(t *testing.T) {
		const (
			stock  = 50
			orders = 120
		)
		g, s, _ := setup(t, 16, db.Options{}, 16, stock)
		accepted, errs := race(orders, func(i int) (db.Decision, error) {
			return decide(ctx, s, order(fmt.Sprintf("N%d", i), line(16, 1)))
		})
		if len(errs) > 0 {
			t.Fatalf("%d orders failed, first: %v", len(errs), errs[0])
		}
		if accepted != stock {
			t.Fatalf("accepted %d, want %d", accepted, stock)
		}
		expectStock(t, g, map[int64]int64{16: 0})
		if n := ledgerRows(t, g); n != orders {
			t.Fatalf("ledger rows = %d, want %d", n, orders)
		}
	})

	t.Run("opposite-order multi-item orders do not deadlock", func(t *testing.T) {
		const orders = 60
		var (
			mu      sync.Mutex
			retries = map[string]int{}
		)
		opts := db.Options{OnRetry: func(_ string, err error) {
			mu.Lock()
			defer mu.Unlock()
			retries[db.RetryCause(err)]++
		}}
		g, s, _ := setup(t, 16, opts, 1, 1000, 2, 1000, 3, 1000)
		lines := func(i int) []events.Line {
			// Half the orders list their lines in descending goods order: the
			// strategy, not its caller, owns the lock order.
			if i%2 == 1 {
				return []events.Line{line(3, 1), line(2, 1), line(1, 1)}
			}
			return []events.Line{line(1, 1), line(2, 1), line(3, 1)}
		}
		// Called once each, without the caller's retry: no deadlock may reach
		// the caller (a strategy retries what it meets inside, bounded).
		accepted, errs := race(orders, func(i int) (db.Decision, error) {
			return s.Deduct(ctx, order(fmt.Sprintf("X%d", i), lines(i)...))
		})
		for _, err := range errs {
			if db.RetryCause(err) == "deadlock" {
				t.Fatalf("a deadlock reached the caller: %v", err)
			}
			if !db.Transient(err) {
				t.Fatalf("an order failed for good: %v", err)
			}
		}
		mu.Lock()
		t.Logf("%d orders; retried inside the strategy: %v; %d transient failures (contention) reached the caller", orders, retries, len(errs))
		mu.Unlock()
		// What contention left undecided is decided on redelivery.
		for i := range orders {
			if _, err := decide(ctx, s, order(fmt.Sprintf("X%d", i), lines(i)...)); err != nil {
				t.Fatal(err)
			}
		}
		if accepted > orders {
			t.Fatalf("accepted %d of %d", accepted, orders)
		}
		expectStock(t, g, map[int64]int64{1: 1000 - orders, 2: 1000 - orders, 3: 1000 - orders})
	})

	t.Run("order ids are compared as bytes", func(t *testing.T) {
		g, s, _ := setup(t, 4, db.Options{}, 16, 10)
		ids := []string{"TS1", "TS1 ", " TS1", "ts1", "\u00e9", "e\u0301", "TS1\x00"}
		for _, id := range ids {
			d, err := s.Deduct(ctx, order(id, line(16, 1)))
			if err != nil || d.Status != db.StatusDeducted || d.Replayed || d.OrderID != id {
				t.Fatalf("order %q: %+v, %v (another id was taken for it)", id, d, err)
			}
		}
		if n := ledgerRows(t, g); n != int64(len(ids)) {
			t.Fatalf("ledger rows = %d, want %d", n, len(ids))
		}
		expectStock(t, g, map[int64]int64{16: 10 - int64(len(ids))})
		c, err := db.NewLedger(g, db.Options{}).Cancel(ctx, "TS1 ")
		if err != nil || c.Result != db.CancelReleased {
			t.Fatalf("cancel of %q = %+v, %v", "TS1 ", c, err)
		}
		expectStock(t, g, map[int64]int64{16: 10 - int64(len(ids)) + 1})
		if d, err := s.Deduct(ctx, order("TS1", line(16, 1))); err != nil || !d.Replayed || d.Status != db.StatusDeducted {
			t.Fatalf("replay of TS1 = %+v, %v", d, err)
		}
	})

	t.Run("concurrent redeliveries of one order deduct once", func(t *testing.T) {
		g, s, _ := setup(t, 16, db.Options{}, 16, 100)
		var (
			mu       sync.Mutex
			payloads = map[string]int{}
		)
		_, errs := race(10, func(int) (db.Decision, error) {
			d, err := decide(ctx, s, order("same", line(16, 7)))
			mu.Lock()
			payloads[string(d.Payload)]++
			mu.Unlock()
			return d, err
		})
		if len(errs) > 0 {
			t.Fatal(errs[0])
		}
		if len(payloads) != 1 {
			t.Fatalf("%d different payloads for one order: %v", len(payloads), payloads)
		}
		expectStock(t, g, map[int64]int64{16: 93})
	})

	t.Run("several OS processes on one goods end exact", func(t *testing.T) {
		const (
			stock      = 100
			processes  = 3
			goroutines = 8
			perRoutine = 10
		)
		g, _, dsn := setup(t, 2, db.Options{}, 16, stock)
		res := runChildren(t, childSpec{DSN: dsn, Params: params, Strategy: name, Goods: 16,
			Processes: processes, Goroutines: goroutines, PerGoroutine: perRoutine})
		if res.Errors > 0 {
			t.Fatalf("%d orders failed in the children, first: %s", res.Errors, res.FirstError)
		}
		if total := processes * goroutines * perRoutine; res.Accepted != stock || res.Rejected != total-stock {
			t.Fatalf("accepted %d, rejected %d of %d orders on stock %d", res.Accepted, res.Rejected, total, stock)
		}
		expectStock(t, g, map[int64]int64{16: 0})
	})
}

// race releases n calls of fn together and counts the deductions and errors.
func race(n int, fn func(i int) (db.Decision, error)) (accepted int, errs []error) {
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		mu    sync.Mutex
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			d, err := fn(i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if d.Status == db.StatusDeducted && !d.Replayed {
				accepted++
			}
		}()
	}
	close(start)
	wg.Wait()
	return accepted, errs
}

const childEnv = "STOCKFLOW_CONFORMANCE_CHILD"

// childSpec is what the parent test hands each child process (as JSON).
type childSpec struct {
	DSN          string
	Params       map[string]string
	Strategy     string
	RedisAddr    string
	RedisPrefix  string
	Goods        int64
	Processes    int
	Goroutines   int
	PerGoroutine int
	Index        int // this child's number
}

type childResult struct {
	Accepted, Rejected, Errors int
	FirstError                 string
}

// runChildren runs spec.Processes copies of this test binary as children that
// deduct concurrently and sums their results. The children meet at a barrier:
// each connects, builds its strategy and says "ready"; once all have, the
// parent tells them all to go.
func runChildren(t *testing.T, spec childSpec) childResult {
	t.Helper()
	spec.RedisAddr = testsvc.RedisAddr()
	spec.RedisPrefix = testsvc.Unique("sftest:") + ":"
	type proc struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stdout *bufio.Reader
		stderr *bytes.Buffer
	}
	procs := make([]*proc, spec.Processes)
	for i := range procs {
		spec.Index = i
		b, _ := json.Marshal(spec)
		p := &proc{cmd: exec.Command(os.Args[0], "-test.run=^$"), stderr: &bytes.Buffer{}}
		p.cmd.Env = append(os.Environ(), childEnv+"="+string(b))
		p.cmd.Stderr = p.stderr
		var err error
		if p.stdin, err = p.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		out, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdout = bufio.NewReader(out)
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i] = p
		t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	}
	fail := func(i int, format string, args ...any) {
		t.Helper()
		t.Fatalf("child %d: %s\nits stderr:\n%s", i, fmt.Sprintf(format, args...), procs[i].stderr)
	}
	// The barrier: wait for every child to be ready (a hung child ends the
	// wait through the test's timeout), then release them all at once.
	for i, p := range procs {
		line, err := p.stdout.ReadString('\n')
		if err != nil || line != "ready\n" {
			fail(i, "did not get ready: %q, %v", line, err)
		}
	}
	for _, p := range procs {
		p.stdin.Close() // EOF is the signal to go
	}
	var total childResult
	for i, p := range procs {
		var r childResult
		if err := json.NewDecoder(p.stdout).Decode(&r); err != nil {
			fail(i, "no result: %v", err)
		}
		if err := p.cmd.Wait(); err != nil {
			fail(i, "exited with %v", err)
		}
		total.Accepted += r.Accepted
		total.Rejected += r.Rejected
		total.Errors += r.Errors
		if total.FirstError == "" {
			total.FirstError = r.FirstError
		}
	}
	return total
}

// child is the body of a child process: it builds the strategy, says ready,
// waits at the barrier (its stdin closing), deducts from its goroutines and
// prints a childResult.
func child() int {
	var spec childSpec
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	os.Setenv("TEST_REDIS_ADDR", spec.RedisAddr)
	t := &childT{}
	g := testsvc.Open(t, spec.DSN, spec.Goroutines, spec.Params)
	s := newStrategy(t, spec.Strategy, g, db.Options{RedisPrefix: spec.RedisPrefix})
	defer t.cleanup()
	// Open every connection before the barrier, so the release measures
	// the strategy, not connection set-up.
	if sqlDB, err := g.DB(); err == nil {
		var wg sync.WaitGroup
		for range spec.Goroutines {
			wg.Add(1)
			go func() { defer wg.Done(); sqlDB.Exec("SELECT SLEEP(0.05)") }()
		}
		wg.Wait()
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	var r childResult
	ctx := context.Background()
	accepted, errs := race(spec.Goroutines*spec.PerGoroutine, func(i int) (db.Decision, error) {
		id := "P" + strconv.Itoa(spec.Index) + "-" + strconv.Itoa(i)
		return decide(ctx, s, order(id, line(spec.Goods, 1)))
	})
	r.Accepted, r.Errors = accepted, len(errs)
	r.Rejected = spec.Goroutines*spec.PerGoroutine - accepted - len(errs)
	if len(errs) > 0 {
		r.FirstError = errs[0].Error()
	}
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// childT is the testing.TB a child process hands to the testsvc helpers: a
// failure ends the process with the message on stderr.
type childT struct {
	testing.TB
	cleanups []func()
}

func (c *childT) Helper()           {}
func (c *childT) Cleanup(f func())  { c.cleanups = append(c.cleanups, f) }
func (c *childT) Fatal(args ...any) { fmt.Fprintln(os.Stderr, args...); os.Exit(3) }
func (c *childT) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(3)
}
func (c *childT) Skip(args ...any) { c.Fatal(args...) }
func (c *childT) cleanup() {
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
}

func TestLedgerReject(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 4)
	l := db.NewLedger(g, db.Options{})
	ctx := context.Background()
	first, err := l.Reject(ctx, "bad1", events.ReasonInvalidOrder, []events.Line{{GoodsID: 3, Num: 0}}, 0)
	if err != nil || first.Status != db.StatusRejected || first.Reason != events.ReasonInvalidOrder {
		t.Fatalf("reject = %+v, %v", first, err)
	}
	again, err := l.Reject(ctx, "bad1", events.ReasonInvalidOrder, nil, 0)
	if err != nil || !again.Replayed || string(again.Payload) != string(first.Payload) {
		t.Fatalf("second reject = %+v, %v", again, err)
	}
	got, found, err := l.Lookup(ctx, "bad1")
	if err != nil || !found || string(got.Payload) != string(first.Payload) {
		t.Fatalf("lookup = %+v, %v, %v", got, found, err)
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 4) // already migrated once
	var wg sync.WaitGroup
	errs := make([]error, 3)
	applied := make([][]int, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied[i], errs[i] = db.Migrate(context.Background(), g)
		}()
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil || len(applied[i]) != 0 {
			t.Fatalf("re-migrate %d: applied %v, err %v", i, applied[i], errs[i])
		}
	}
	// The contract's way to stock goods works on the migrated schema.
	if err := g.Exec("INSERT INTO inventory (goods, stocks) VALUES (16, 10)").Error; err != nil {
		t.Fatal(err)
	}
	if err := g.Exec("UPDATE inventory SET stocks = -1 WHERE goods = 16").Error; err == nil {
		t.Fatal("the schema accepted a negative stock")
	}
}

func TestSessionsAreReadCommitted(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 1)
	var level string
	if err := g.Raw("SELECT @@tx_isolation").Scan(&level).Error; err != nil {
		if err := g.Raw("SELECT @@transaction_isolation").Scan(&level).Error; err != nil {
			t.Fatal(err)
		}
	}
	if level != "READ-COMMITTED" {
		t.Fatalf("session isolation = %q, want READ-COMMITTED", level)
	}
}
