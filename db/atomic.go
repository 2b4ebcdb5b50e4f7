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
// is written: the UPDATE itself checks and locks. A line that matches no row
// decides the order: the lines already written are rolled back to a savepoint,
// the rows are read under lock to report what was available, and the rejection
// is recorded in the same transaction. Cost per accepted order: a ledger read,
// one UPDATE per line, one ledger insert; locks are held until COMMIT.
type Atomic struct{ base }

// NewAtomic returns the atomic strategy over g.
func NewAtomic(g *gorm.DB, opts Options) *Atomic {
	return &Atomic{newBase(g, "atomic", opts)}
}

// Deduct decides o; see Pessimistic.Deduct for the contract.
func (a *Atomic) Deduct(ctx context.Context, o events.OrderPlaced) (Decision, error) {
	lines, err := lockOrder(o)
	if err != nil {
		return Decision{}, err
	}
	return transact(ctx, &a.base, "order "+o.OrderID, func(tx *gorm.DB) (Decision, error) {
		if d, ok, err := replay(tx, o.OrderID); err != nil || ok {
			return d, err
		}
		if err := tx.SavePoint("order_lines").Error; err != nil {
			return Decision{}, fmt.Errorf("savepoint: %w", err)
		}
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
				return a.reject(tx, o.OrderID, lines)
			}
			if i == 0 {
				if err := a.inject(tx.Statement.Context, PointWritten); err != nil {
					return Decision{}, err
				}
			}
		}
		return a.record(tx, o.OrderID, StatusDeducted, "", lines, nil)
	})
}

// reject undoes the lines written so far and records the rejection with the
// stock read under lock.
func (a *Atomic) reject(tx *gorm.DB, orderID string, lines []events.Line) (Decision, error) {
	if err := tx.RollbackTo("order_lines").Error; err != nil {
		return Decision{}, fmt.Errorf("rollback to savepoint: %w", err)
	}
	stock, _, err := readStock(tx, goodsOf(lines), true)
	if err != nil {
		return Decision{}, err
	}
	reason := verdict(lines, stock)
	if reason == "" {
		// Stock arrived between the UPDATE and the read: decide again.
		return Decision{}, fmt.Errorf("goods of order %q: %w", orderID, ErrGuard)
	}
	return a.record(tx, orderID, StatusRejected, reason, lines, stock)
}
