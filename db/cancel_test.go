package db_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/testsvc"
)

func TestCancelGivesBackOnce(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 8)
	testsvc.Stock(t, g, 1, 10, 2, 10)
	ctx := context.Background()
	s := db.NewAtomic(g, db.Options{})
	l := db.NewLedger(g, db.Options{})
	if d, err := s.Deduct(ctx, order("A", line(2, 3), line(1, 2))); err != nil || d.Status != db.StatusDeducted {
		t.Fatalf("deduct = %+v, %v", d, err)
	}

	// Ten redeliveries of the cancel at once: one release.
	var first db.Cancellation
	_, errs := race(10, func(i int) (db.Decision, error) {
		c, err := l.Cancel(ctx, "A")
		if err == nil && !c.Replayed {
			first = c
		}
		return db.Decision{}, err
	})
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	if first.Result != db.CancelReleased || first.EventType != events.TypeReleased {
		t.Fatalf("cancel = %+v", first)
	}
	o, err := events.DecodeOutcome(first.Event)
	if err != nil || o.EventID != "A:stock-released" || len(o.Items) != 2 || o.Items[0].GoodsID != 1 || o.Items[1].Num != 3 {
		t.Fatalf("released event = %s (%v)", first.Event, err)
	}
	if s1, s2 := testsvc.Stocks(t, g, 1), testsvc.Stocks(t, g, 2); s1 != 10 || s2 != 10 {
		t.Fatalf("stocks = %d, %d, want 10, 10", s1, s2)
	}
	again, err := l.Cancel(ctx, "A")
	if err != nil || !again.Replayed || string(again.Event) != string(first.Event) {
		t.Fatalf("replayed cancel = %+v, %v", again, err)
	}
	// The order itself still replays as deducted: its decision is history.
	if d, err := s.Deduct(ctx, order("A", line(2, 3), line(1, 2))); err != nil || !d.Replayed || d.Status != db.StatusDeducted {
		t.Fatalf("order after cancel = %+v, %v", d, err)
	}
	if s1 := testsvc.Stocks(t, g, 1); s1 != 10 {
		t.Fatalf("stock = %d after replaying the order, want 10", s1)
	}
}

func TestCancelRejectedOrderChangesNothing(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 4)
	testsvc.Stock(t, g, 1, 1)
	ctx := context.Background()
	if d, err := db.NewPessimistic(g, db.Options{}).Deduct(ctx, order("R", line(1, 5))); err != nil || d.Status != db.StatusRejected {
		t.Fatalf("deduct = %+v, %v", d, err)
	}
	c, err := db.NewLedger(g, db.Options{}).Cancel(ctx, "R")
	if err != nil || c.Result != db.CancelNothing || c.Event != nil {
		t.Fatalf("cancel = %+v, %v", c, err)
	}
	if s := testsvc.Stocks(t, g, 1); s != 1 {
		t.Fatalf("stock = %d, want 1", s)
	}
}

// A cancel racing its own order: whichever commits first, the stock ends as if
// the order never happened, and both answers agree.
func TestCancelRacingItsOrder(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 16)
	testsvc.Stock(t, g, 1, 1000)
	ctx := context.Background()
	s := db.NewPessimistic(g, db.Options{})
	l := db.NewLedger(g, db.Options{})
	const n = 40
	_, errs := race(2*n, func(i int) (db.Decision, error) {
		id := fmt.Sprintf("O%d", i/2)
		if i%2 == 0 {
			return decide(ctx, s, order(id, line(1, 1)))
		}
		_, err := l.Cancel(ctx, id)
		return db.Decision{}, err
	})
	if len(errs) > 0 {
		t.Fatal(errs[0])
	}
	if st := testsvc.Stocks(t, g, 1); st != 1000 {
		t.Fatalf("stock = %d, want 1000: every order was cancelled", st)
	}
}
