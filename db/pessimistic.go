package db

import (
	"context"

	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// Pessimistic serialises each goods row with SELECT ... FOR UPDATE inside the
// order's transaction. The order's rows are locked by one statement in ascending
// goods id, so two multi-item orders can never wait on each other in a cycle.
// Cost per order: a ledger read, one locking read, one UPDATE per line, one
// ledger insert; the row locks are held until COMMIT.
type Pessimistic struct{ base }

// NewPessimistic returns the pessimistic strategy over g.
func NewPessimistic(g *gorm.DB, opts Options) *Pessimistic {
	return &Pessimistic{newBase(g, "pessimistic", opts)}
}

// Deduct decides o: deducts every line or none, records the decision, and
// returns it. A redelivered order returns its first decision and changes nothing.
// Errors are transient (see Transient) or ctx's; they never mean a rejection.
func (p *Pessimistic) Deduct(ctx context.Context, o events.OrderPlaced) (Decision, error) {
	lines, err := lockOrder(o)
	if err != nil {
		return Decision{}, err
	}
	return transact(ctx, &p.base, "order "+o.OrderID, func(tx *gorm.DB) (Decision, error) {
		return p.readDecideWrite(tx, o.OrderID, lines, true)
	})
}

// readDecideWrite is the body shared by the strategies that read the order's
// rows before writing them: replay the ledger, read the rows (FOR UPDATE when
// lock is set; pessimistic and redis lock, mutex relies on its guard), decide
// all lines together, write each line with a guarded UPDATE, record the decision.
func (b *base) readDecideWrite(tx *gorm.DB, orderID string, lines []events.Line, lock bool) (Decision, error) {
	if d, ok, err := replay(tx, orderID); err != nil || ok {
		return d, err
	}
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
