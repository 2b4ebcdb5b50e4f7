package db

import (
	"context"
	"fmt"

	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// Atomic deducts each line with one conditional UPDATE
//
//	UPDATE inventory SET stocks = stocks - ? ... WHERE goods = ? AND stocks >= ?
//
// in ascending goods id inside the order's transaction. No row is read before it
// is written: the UPDATE itself checks and locks. When the first line matches
// no row, the order is decided there under lock (the pessimistic body): a
// rejection with what was available, or the deduction if stock came back
// meanwhile. When a later line matches none, the attempt is rolled back and
// the order decided again that way in a fresh transaction. Cost per accepted
// order: one UPDATE per line and the ledger insert, between BEGIN and COMMIT;
// locks are held from the first UPDATE to COMMIT.
type Atomic struct{ base }

// NewAtomic returns the atomic strategy over g.
func NewAtomic(g *gorm.DB, opts Options) *Atomic {
	return &Atomic{newBase(g, "atomic", opts)}
}

// Deduct decides o; see Pessimistic.Deduct for the contract.
func (a *Atomic) Deduct(ctx context.Context, o events.OrderPlaced) (Decision, error) {
	return a.deductRows(ctx, o, nil, a.step)
}

func (a *Atomic) step(tx *gorm.DB, orderID string, lines []events.Line) (Decision, error) {
	if err := a.inject(tx.Statement.Context, PointLocked); err != nil {
		return Decision{}, err
	}
	for i, l := range lines {
		res := tx.Exec("UPDATE inventory SET stocks = stocks - ?, version = version + 1 WHERE goods = ? AND stocks >= ?",
			l.Num, l.GoodsID, l.Num)
		if res.Error != nil {
			return Decision{}, fmt.Errorf("deduct goods %d: %w", l.GoodsID, res.Error)
		}
		if res.RowsAffected == 0 {
			if i > 0 {
				// Earlier lines are written: roll them back, decide again.
				return Decision{}, fmt.Errorf("goods %d of order %q: %w", l.GoodsID, orderID, errRecheck)
			}
			// Nothing written yet: decide here, under lock.
			return a.lockDecideWrite(tx, orderID, lines, true)
		}
		if i == 0 {
			if err := a.inject(tx.Statement.Context, PointWritten); err != nil {
				return Decision{}, err
			}
		}
	}
	return a.record(tx, orderID, StatusDeducted, "", lines, nil)
}
