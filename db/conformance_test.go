package db_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/testsvc"
	"gorm.io/gorm"
)

// deductor is what every lock strategy offers.
type deductor interface {
	Deduct(ctx context.Context, o events.OrderPlaced) (db.Decision, error)
	Name() string
}

// conformance is the one suite every lock strategy must pass. newStrategy builds
// the strategy over a pool on the test's own database.
func conformance(t *testing.T, newStrategy func(g *gorm.DB) deductor) {
	order := func(id string, lines ...events.Line) events.OrderPlaced {
		return events.OrderPlaced{OrderID: id, Lines: lines}
	}
	setup := func(t *testing.T, maxOpen int, stock ...int64) (*gorm.DB, deductor) {
		t.Parallel()
		g := testsvc.Database(t, maxOpen)
		testsvc.Stock(t, g, stock...)
		return g, newStrategy(g)
	}
	ctx := context.Background()
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

	t.Run("single order", func(t *testing.T) {
		g, s := setup(t, 4, 16, 10)
		d, err := s.Deduct(ctx, order("A1", events.Line{GoodsID: 16, Num: 3}))
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != db.StatusDeducted || d.Replayed {
			t.Fatalf("decision = %+v", d)
		}
		if o := decode(t, d); len(o.Items) != 1 || o.Items[0].Num != 3 || o.Items[0].Available != nil {
			t.Fatalf("outcome = %+v", o)
		}
		if got := testsvc.Stocks(t, g, 16); got != 7 {
			t.Fatalf("stock = %d, want 7", got)
		}
	})

	t.Run("insufficient stock leaves the row untouched", func(t *testing.T) {
		g, s := setup(t, 4, 16, 2)
		d, err := s.Deduct(ctx, order("A1", events.Line{GoodsID: 16, Num: 3}))
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != db.StatusRejected || d.Reason != events.ReasonInsufficientStock {
			t.Fatalf("decision = %+v", d)
		}
		o := decode(t, d)
		if o.Items[0].Available == nil || *o.Items[0].Available != 2 {
			t.Fatalf("rejection must report available 2: %s", d.Payload)
		}
		if got := testsvc.Stocks(t, g, 16); got != 2 {
			t.Fatalf("stock = %d, want 2", got)
		}
	})

	t.Run("zero stock", func(t *testing.T) {
		g, s := setup(t, 4, 16, 0)
		d, err := s.Deduct(ctx, order("A1", events.Line{GoodsID: 16, Num: 1}))
		if err != nil || d.Reason != events.ReasonInsufficientStock {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		if got := testsvc.Stocks(t, g, 16); got != 0 {
			t.Fatalf("stock = %d, want 0", got)
		}
	})

	t.Run("unknown goods", func(t *testing.T) {
		g, s := setup(t, 4, 16, 5)
		d, err := s.Deduct(ctx, order("A1", events.Line{GoodsID: 16, Num: 1}, events.Line{GoodsID: 999, Num: 1}))
		if err != nil || d.Status != db.StatusRejected || d.Reason != events.ReasonUnknownGoods {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		o := decode(t, d)
		if len(o.Items) != 2 || *o.Items[0].Available != 5 || *o.Items[1].Available != 0 {
			t.Fatalf("outcome items = %s", d.Payload)
		}
		if got := testsvc.Stocks(t, g, 16); got != 5 {
			t.Fatalf("stock = %d, want 5: nothing of a rejected order may be deducted", got)
		}
	})

	t.Run("multi-item all or nothing", func(t *testing.T) {
		g, s := setup(t, 4, 1, 10, 2, 10, 3, 1)
		d, err := s.Deduct(ctx, order("short", events.Line{GoodsID: 1, Num: 1}, events.Line{GoodsID: 2, Num: 1}, events.Line{GoodsID: 3, Num: 2}))
		if err != nil || d.Reason != events.ReasonInsufficientStock {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		for goods, want := range map[int64]int64{1: 10, 2: 10, 3: 1} {
			if got := testsvc.Stocks(t, g, goods); got != want {
				t.Fatalf("goods %d stock = %d, want %d", goods, got, want)
			}
		}
		d, err = s.Deduct(ctx, order("fits", events.Line{GoodsID: 1, Num: 1}, events.Line{GoodsID: 2, Num: 2}, events.Line{GoodsID: 3, Num: 1}))
		if err != nil || d.Status != db.StatusDeducted {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		for goods, want := range map[int64]int64{1: 9, 2: 8, 3: 0} {
			if got := testsvc.Stocks(t, g, goods); got != want {
				t.Fatalf("goods %d stock = %d, want %d", goods, got, want)
			}
		}
	})

	t.Run("duplicate goods lines are summed", func(t *testing.T) {
		g, s := setup(t, 4, 7, 5)
		o, err := events.DecodeOrderPlaced([]byte(`{"order_id":"dup","items":[{"goods_id":7,"num":2},{"goods_id":7,"num":2}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if d, err := s.Deduct(ctx, o); err != nil || d.Status != db.StatusDeducted {
			t.Fatalf("decision = %+v, %v", d, err)
		}
		if got := testsvc.Stocks(t, g, 7); got != 1 {
			t.Fatalf("stock = %d, want 1", got)
		}
		o.OrderID = "dup2" // 4 more of goods 7: only 1 left
		if d, err := s.Deduct(ctx, o); err != nil || d.Reason != events.ReasonInsufficientStock {
			t.Fatalf("decision = %+v, %v", d, err)
		}
	})

	t.Run("replay is a no-op with the same outcome", func(t *testing.T) {
		g, s := setup(t, 4, 16, 10)
		first, err := s.Deduct(ctx, order("R1", events.Line{GoodsID: 16, Num: 4}))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // a later replay must not get a new occurred_at
		again, err := s.Deduct(ctx, order("R1", events.Line{GoodsID: 16, Num: 4}))
		if err != nil {
			t.Fatal(err)
		}
		if !again.Replayed || string(again.Payload) != string(first.Payload) {
			t.Fatalf("replay = %+v\nfirst payload %s", again, first.Payload)
		}
		if got := testsvc.Stocks(t, g, 16); got != 6 {
			t.Fatalf("stock = %d, want 6", got)
		}
		// A rejected order replays as the same rejection even when stock arrives later.
		rej, err := s.Deduct(ctx, order("R2", events.Line{GoodsID: 16, Num: 100}))
		if err != nil || rej.Status != db.StatusRejected {
			t.Fatalf("decision = %+v, %v", rej, err)
		}
		testsvc.Stock(t, g, 16, 1000)
		again, err = s.Deduct(ctx, order("R2", events.Line{GoodsID: 16, Num: 100}))
		if err != nil || !again.Replayed || string(again.Payload) != string(rej.Payload) {
			t.Fatalf("replayed rejection = %+v, %v", again, err)
		}
		if got := testsvc.Stocks(t, g, 16); got != 1000 {
			t.Fatalf("stock = %d, want 1000", got)
		}
	})

	t.Run("cancelled context writes nothing", func(t *testing.T) {
		g, s := setup(t, 4, 16, 10)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Deduct(cctx, order("C1", events.Line{GoodsID: 16, Num: 1})); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if got := testsvc.Stocks(t, g, 16); got != 10 {
			t.Fatalf("stock = %d, want 10", got)
		}
		if _, found, err := db.NewLedger(g, db.Options{}).Lookup(ctx, "C1"); err != nil || found {
			t.Fatalf("ledger row for a cancelled attempt: found=%v err=%v", found, err)
		}
	})

	t.Run("N goroutines on one goods end exact", func(t *testing.T) {
		const (
			stock  = 50
			orders = 120
		)
		g, s := setup(t, 16, 16, stock)
		var (
			start    = make(chan struct{})
			wg       sync.WaitGroup
			mu       sync.Mutex
			accepted int
			errs     []error
		)
		for i := range orders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				d, err := s.Deduct(ctx, order(fmt.Sprintf("N%d", i), events.Line{GoodsID: 16, Num: 1}))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				} else if d.Status == db.StatusDeducted {
					accepted++
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%d orders failed, first: %v", len(errs), errs[0])
		}
		if accepted != stock {
			t.Fatalf("accepted %d, want %d", accepted, stock)
		}
		if got := testsvc.Stocks(t, g, 16); got != 0 {
			t.Fatalf("final stock = %d, want 0", got)
		}
		var rows int64
		g.Model(&db.OrderOutcome{}).Count(&rows)
		if rows != orders {
			t.Fatalf("ledger rows = %d, want %d", rows, orders)
		}
	})

	t.Run("opposite-order multi-item orders do not deadlock", func(t *testing.T) {
		const pairs = 30
		g, s := setup(t, 16, 1, 1000, 2, 1000, 3, 1000)
		var (
			start = make(chan struct{})
			wg    sync.WaitGroup
			mu    sync.Mutex
			errs  []error
		)
		for i := range pairs * 2 {
			// The decoder sorts lines, but a strategy must not rely on its
			// caller: half the orders arrive with lines in descending order.
			lines := []events.Line{{GoodsID: 1, Num: 1}, {GoodsID: 2, Num: 1}, {GoodsID: 3, Num: 1}}
			if i%2 == 1 {
				lines = []events.Line{{GoodsID: 3, Num: 1}, {GoodsID: 2, Num: 1}, {GoodsID: 1, Num: 1}}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				d, err := s.Deduct(ctx, order(fmt.Sprintf("X%d", i), lines...))
				if err == nil && d.Status != db.StatusDeducted {
					err = fmt.Errorf("order X%d: %+v", i, d)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("%d orders failed, first: %v", len(errs), errs[0])
		}
		for goods := int64(1); goods <= 3; goods++ {
			if got := testsvc.Stocks(t, g, goods); got != 1000-2*pairs {
				t.Fatalf("goods %d stock = %d, want %d", goods, got, 1000-2*pairs)
			}
		}
	})

	t.Run("concurrent redeliveries of one order deduct once", func(t *testing.T) {
		g, s := setup(t, 16, 16, 100)
		var wg sync.WaitGroup
		start := make(chan struct{})
		payloads := make([][]byte, 10)
		errs := make([]error, 10)
		for i := range payloads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				d, err := s.Deduct(ctx, order("same", events.Line{GoodsID: 16, Num: 7}))
				payloads[i], errs[i] = d.Payload, err
			}()
		}
		close(start)
		wg.Wait()
		for i := range payloads {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if string(payloads[i]) != string(payloads[0]) {
				t.Fatalf("payloads differ:\n%s\n%s", payloads[i], payloads[0])
			}
		}
		if got := testsvc.Stocks(t, g, 16); got != 93 {
			t.Fatalf("stock = %d, want 93: one deduction only", got)
		}
	})
}

func TestLedgerReject(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 4)
	l := db.NewLedger(g, db.Options{})
	ctx := context.Background()
	first, err := l.Reject(ctx, "bad1", events.ReasonInvalidOrder, []events.Line{{GoodsID: 3, Num: 0}})
	if err != nil || first.Status != db.StatusRejected || first.Reason != events.ReasonInvalidOrder {
		t.Fatalf("reject = %+v, %v", first, err)
	}
	again, err := l.Reject(ctx, "bad1", events.ReasonInvalidOrder, nil)
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
