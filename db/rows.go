package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// The skeleton the five row-at-a-time strategies share (mutex, pessimistic,
// optimistic, redis, atomic): the order's lines merged and in lock order
// (ascending goods id, no deadlocks between multi-item orders), an optional
// guard held around the transaction (an in-process mutex, Redis locks), and a
// retried transaction around the strategy's own step — the one thing each
// strategy writes itself.
//
// The first attempt does not read the ledger: a redelivered order is rare,
// and the ledger insert that ends every step fails with a duplicate key (1062)
// when the order was decided before, which rolls the attempt back (nothing it
// wrote stays) and retries it with the read, as a replay. That saves a round
// trip per order on the path every order takes.

// step decides one order in tx and writes it: the stock rows and the ledger
// row. lines are merged, in ascending goods id.
type step func(tx *gorm.DB, orderID string, lines []events.Line) (Decision, error)

// guard is taken before an order's transaction and released after it ends
// (COMMIT or ROLLBACK). It may bound the work by a deadline of its own (the
// returned ctx), and turn the work's error into its own (release).
type guard func(ctx context.Context, goods []int64) (work context.Context, release func(err error) error, err error)

// errRecheck makes deductRows run the order again through the pessimistic
// body in a fresh transaction: the strategy's fast step met a line it could
// not write and leaves the decision (rejection, or a retry when stock came
// back) to a read under lock.
var errRecheck = errors.New("db: decide again under lock")

// deductRows decides o with step under the skeleton's rules; see above.
func (b *base) deductRows(ctx context.Context, o events.OrderPlaced, g guard, s step) (Decision, error) {
	lines, err := lockOrder(o)
	if err != nil {
		return Decision{}, err
	}
	release := func(err error) error { return err }
	if g != nil {
		var gerr error
		if ctx, release, gerr = g(ctx, goodsOf(lines)); gerr != nil {
			return Decision{}, fmt.Errorf("%s order %s: %w", b.name, o.OrderID, gerr)
		}
	}
	d, err := b.decideRows(ctx, o.OrderID, lines, s)
	return d, release(err)
}

func (b *base) decideRows(ctx context.Context, orderID string, lines []events.Line, s step) (Decision, error) {
	what := "order " + orderID
	fresh := true
	d, err := transact(ctx, b, what, func(tx *gorm.DB) (Decision, error) {
		if !fresh {
			if d, ok, err := replay(tx, orderID); err != nil || ok {
				return d, err
			}
		}
		fresh = false
		return s(tx, orderID, lines)
	})
	if !errors.Is(err, errRecheck) {
		return d, err
	}
	return transact(ctx, b, what, func(tx *gorm.DB) (Decision, error) {
		if d, ok, err := replay(tx, orderID); err != nil || ok {
			return d, err
		}
		return b.lockDecideWrite(tx, orderID, lines, true)
	})
}

// lockDecideWrite is the body of the strategies that read the order's rows
// before writing them: read the rows (FOR UPDATE when lock is set; pessimistic
// and redis lock, mutex relies on its guard and the SQL guard), decide all
// lines together, write each line with a guarded UPDATE, record the decision.
func (b *base) lockDecideWrite(tx *gorm.DB, orderID string, lines []events.Line, lock bool) (Decision, error) {
	stock, _, err := readStock(tx, goodsOf(lines), lock)
	if err != nil {
		return Decision{}, err
	}
	if err := b.inject(tx.Statement.Context, PointLocked); err != nil {
		return Decision{}, err
	}
	if reason := verdict(lines, stock); reason != "" {
		return b.record(tx, orderID, StatusRejected, reason, lines, stock)
	}
	for i, l := range lines {
		if err := deductGuarded(tx, l.GoodsID, l.Num); err != nil {
			return Decision{}, err
		}
		if i == 0 {
			if err := b.inject(tx.Statement.Context, PointWritten); err != nil {
				return Decision{}, err
			}
		}
	}
	return b.record(tx, orderID, StatusDeducted, "", lines, nil)
}
