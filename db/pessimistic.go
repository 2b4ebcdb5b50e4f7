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
	return p.deductRows(ctx, o, nil, func(tx *gorm.DB, orderID string, lines []events.Line) (Decision, error) {
		return p.lockDecideWrite(tx, orderID, lines, true)
	})
}
