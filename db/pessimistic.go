package db

import (
	"context"
	"fmt"

	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// Pessimistic serialises each goods row with SELECT ... FOR UPDATE inside the
// order's transaction. Rows are locked one at a time in ascending goods id, so
// two multi-item orders can never wait on each other in a cycle. Cost per order:
// one round trip per line to lock, one per line to write, one ledger insert; the
// row locks are held until COMMIT.
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
	return p.transact(ctx, "order "+o.OrderID, func(tx *gorm.DB) (Decision, error) {
		if d, ok, err := replay(tx, o.OrderID); err != nil || ok {
			return d, err
		}
		stock := make(map[int64]int64, len(lines))
		for _, l := range lines { // ascending goods id: the lock order
			var rows []Inventory
			if err := tx.Raw("SELECT goods, stocks FROM inventory WHERE goods = ? FOR UPDATE", l.GoodsID).
				Scan(&rows).Error; err != nil {
				return Decision{}, fmt.Errorf("lock goods %d: %w", l.GoodsID, err)
			}
			if len(rows) == 1 {
				stock[l.GoodsID] = int64(rows[0].Stocks)
			}
		}
		if reason := verdict(lines, stock); reason != "" {
			return p.record(tx, o.OrderID, StatusRejected, reason, lines, stock)
		}
		for _, l := range lines {
			if err := deductGuarded(tx, l.GoodsID, l.Num); err != nil {
				return Decision{}, err
			}
		}
		return p.record(tx, o.OrderID, StatusDeducted, "", lines, nil)
	})
}
