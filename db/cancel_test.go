package db_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math"
	"testing"

	"github.com/go-sql-driver/mysql"
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
	if first.Result != db.CancelReleased || len(first.Events) != 1 || first.Events[0].Type != events.TypeReleased {
		t.Fatalf("cancel = %+v", first)
	}
	o, err := events.DecodeOutcome(first.Events[0].Payload)
	if err != nil || o.EventID != "A:stock-released" || len(o.Items) != 2 || o.Items[0].GoodsID != 1 || o.Items[1].Num != 3 {
		t.Fatalf("released event = %s (%v)", first.Events[0].Payload, err)
	}
	if s1, s2 := testsvc.Stocks(t, g, 1), testsvc.Stocks(t, g, 2); s1 != 10 || s2 != 10 {
		t.Fatalf("stocks = %d, %d, want 10, 10", s1, s2)
	}
	again, err := l.Cancel(ctx, "A")
	if err != nil || !again.Replayed || len(again.Events) != 1 || string(again.Events[0].Payload) != string(first.Events[0].Payload) {
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
	l := db.NewLedger(g, db.Options{})
	c, err := l.Cancel(ctx, "R")
	if err != nil || c.Result != db.CancelNothing || len(c.Events) != 1 {
		t.Fatalf("cancel = %+v, %v", c, err)
	}
	// Every cancel gets an answer: a release of nothing.
	o, err := events.DecodeOutcome(c.Events[0].Payload)
	if err != nil || o.Type != events.TypeReleased || o.OrderID != "R" || len(o.Items) != 0 {
		t.Fatalf("answer to the cancel = %s, %v", c.Events[0].Payload, err)
	}
	again, err := l.Cancel(ctx, "R")
	if err != nil || !again.Replayed || len(again.Events) != 1 || string(again.Events[0].Payload) != string(c.Events[0].Payload) {
		t.Fatalf("replayed cancel = %+v, %v", again, err)
	}
	if s := testsvc.Stocks(t, g, 1); s != 1 {
		t.Fatalf("stock = %d, want 1", s)
	}
}

// A cancel before its order answers with the order's rejection and then its
// release, and replays both, in that order.
func TestCancelBeforeOrderAnswersRejectionThenRelease(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 4)
	ctx := context.Background()
	l := db.NewLedger(g, db.Options{})
	for i, replayed := range []bool{false, true} {
		c, err := l.Cancel(ctx, "early")
		if err != nil || c.Result != db.CancelBeforeOrder || c.Replayed != replayed || len(c.Events) != 2 ||
			c.Events[0].Type != events.TypeRejected || c.Events[1].Type != events.TypeReleased {
			t.Fatalf("cancel %d = %+v, %v", i, c, err)
		}
		if o, err := events.DecodeOutcome(c.Events[0].Payload); err != nil || o.Reason != events.ReasonCancelled {
			t.Fatalf("first event = %s", c.Events[0].Payload)
		}
	}
	got, err := l.Released(ctx, []string{"early", "other"})
	if err != nil || len(got) != 1 || got["early"] == nil {
		t.Fatalf("Released = %v, %v", got, err)
	}
}

// Giving stock back onto a row restocked near the INT maximum since the
// deduction caps the stock there instead of failing on every attempt (1264).
func TestReleaseNearTheIntMaximumCaps(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 4)
	testsvc.Stock(t, g, 1, 100)
	ctx := context.Background()
	if d, err := db.NewAtomic(g, db.Options{}).Deduct(ctx, order("big", line(1, 60))); err != nil || d.Status != db.StatusDeducted {
		t.Fatalf("deduct = %+v, %v", d, err)
	}
	testsvc.Stock(t, g, 1, math.MaxInt32-10)
	c, err := db.NewLedger(g, db.Options{}).Cancel(ctx, "big")
	if err != nil || c.Result != db.CancelReleased {
		t.Fatalf("cancel = %+v, %v", c, err)
	}
	if len(c.Capped) != 1 || c.Capped[0] != line(1, 50) {
		t.Fatalf("capped = %v, want 50 units of goods 1", c.Capped)
	}
	if s := testsvc.Stocks(t, g, 1); s != math.MaxInt32 {
		t.Fatalf("stock = %d, want %d", s, math.MaxInt32)
	}
	if o, err := events.DecodeOutcome(c.Events[0].Payload); err != nil || len(o.Items) != 1 || o.Items[0].Num != 10 {
		t.Fatalf("the release must list what was given back (10): %s", c.Events[0].Payload)
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

// Migration 0003 upgrades a ledger written under the old PAD SPACE collation
// in place: its rows stay, and from then on ids that differ only in trailing
// spaces are two orders.
func TestByteExactIDMigrationUpgradesInPlace(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 4)
	for _, q := range []string{
		"ALTER TABLE order_outcomes MODIFY order_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, MODIFY items TEXT NOT NULL",
		"ALTER TABLE order_cancellations MODIFY order_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, MODIFY items TEXT NOT NULL",
		"DELETE FROM schema_migrations WHERE version = 3",
	} {
		if err := g.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	testsvc.Stock(t, g, 1, 10)
	ctx := context.Background()
	s := db.NewPessimistic(g, db.Options{})
	if d, err := s.Deduct(ctx, order("TS1", line(1, 1))); err != nil || d.Status != db.StatusDeducted {
		t.Fatalf("deduct = %+v, %v", d, err)
	}
	// The old schema's defect, for the record: the padded id is the same key.
	var n int64
	if err := g.Raw("SELECT COUNT(*) FROM order_outcomes WHERE order_id = 'TS1 '").Scan(&n).Error; err != nil || n != 1 {
		t.Fatalf("before the migration, %q matched %d rows (%v); want TS1's (PAD SPACE)", "TS1 ", n, err)
	}
	applied, err := db.Migrate(ctx, g)
	if err != nil || len(applied) != 1 || applied[0] != 3 {
		t.Fatalf("migrate = %v, %v", applied, err)
	}
	if d, err := s.Deduct(ctx, order("TS1", line(1, 1))); err != nil || !d.Replayed {
		t.Fatalf("TS1 after the migration = %+v, %v; want its old decision", d, err)
	}
	if d, err := s.Deduct(ctx, order("TS1 ", line(1, 1))); err != nil || d.Replayed || d.OrderID != "TS1 " {
		t.Fatalf("%q after the migration = %+v, %v; want an order of its own", "TS1 ", d, err)
	}
	if st := testsvc.Stocks(t, g, 1); st != 8 {
		t.Fatalf("stock = %d, want 8", st)
	}
}

func TestTransientClassification(t *testing.T) {
	state := func(s string) [5]byte { var b [5]byte; copy(b[:], s); return b }
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&mysql.MySQLError{Number: 1213}, true},
		{&mysql.MySQLError{Number: 1969, SQLState: state("70100")}, true},
		{&mysql.MySQLError{Number: 9999, SQLState: state("08S01")}, true},
		{&mysql.MySQLError{Number: 1406, SQLState: state("22001")}, false},
		{&mysql.MySQLError{Number: 1264, SQLState: state("22003")}, false},
		{&mysql.MySQLError{Number: 1146, SQLState: state("42S02")}, false},
		{fmt.Errorf("x: %w after 10 attempts: %w", db.ErrRetriesExhausted, &mysql.MySQLError{Number: 1062}), false},
		{fmt.Errorf("x: %w after 10 attempts: %w", db.ErrRetriesExhausted, &mysql.MySQLError{Number: 1213}), true},
		{fmt.Errorf("x: %w after 10 attempts: %w", db.ErrRetriesExhausted, db.ErrConflict), true},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{fmt.Errorf("commit: %w", sql.ErrTxDone), true},
	} {
		if got := db.Transient(c.err); got != c.want {
			t.Errorf("Transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
