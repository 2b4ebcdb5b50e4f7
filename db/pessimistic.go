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
		if d, ok, err := replay(tx, o.OrderID); err != nil || ok {
			return d, err
		}
		stock, _, err := readStock(tx, goodsOf(lines), true)
		if err != nil {
			return Decision{}, err
		}
		if err := p.inject(tx.Statement.Context, PointLocked); err != nil {
			return Decision{}, err
		}
		if reason := verdict(lines, stock); reason != "" {
			return p.record(tx, o.OrderID, StatusRejected, reason, lines, stock)
		}
		for i, l := range lines {
			if err := deductGuarded(tx, l.GoodsID, l.Num); err != nil {
				return Decision{}, err
			}
			if i == 0 {
				if err := p.inject(tx.Statement.Context, PointWritten); err != nil {
					return Decision{}, err
				}
			}
		}
		return p.record(tx, o.OrderID, StatusDeducted, "", lines, nil)
	})
}
