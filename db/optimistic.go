package db

import (
	"context"
	"fmt"

	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// Optimistic reads the order's rows without locking, decides, then writes each
// line with a compare-and-set on the row's version
//
//	UPDATE inventory SET stocks = stocks - ?, version = version + 1
//	WHERE goods = ? AND version = ? AND stocks >= ?
//
// requiring one row affected. A conflict (another order changed the row since
// the read) rolls the whole attempt back and retries it in a fresh transaction,
// so the next read sees the new version, with jittered backoff and a bounded
// number of attempts. Exhausting them is a transient error, never a rejection.
// Cost per order without conflict: a ledger read, one read, one UPDATE per line,
// one ledger insert; locks are held only from the first UPDATE to COMMIT. Under
// heavy contention on one goods most attempts conflict: prefer atomic or batch.
type Optimistic struct{ base }

// NewOptimistic returns the optimistic strategy over g.
func NewOptimistic(g *gorm.DB, opts Options) *Optimistic {
	return &Optimistic{newBase(g, "optimistic", opts)}
}

// Deduct decides o; see Pessimistic.Deduct for the contract.
func (p *Optimistic) Deduct(ctx context.Context, o events.OrderPlaced) (Decision, error) {
	return p.deductRows(ctx, o, nil, p.step)
}

func (p *Optimistic) step(tx *gorm.DB, orderID string, lines []events.Line) (Decision, error) {
	stock, version, err := readStock(tx, goodsOf(lines), false)
	if err != nil {
		return Decision{}, err
	}
	if err := p.inject(tx.Statement.Context, PointLocked); err != nil {
		return Decision{}, err
	}
	if reason := verdict(lines, stock); reason != "" {
		// The rejection rests on the rows as read: confirm that none of them
		// changed since, or decide again.
		for _, l := range lines {
			if _, known := version[l.GoodsID]; known {
				if err := casVersion(tx, l.GoodsID, version[l.GoodsID]); err != nil {
					return Decision{}, err
				}
			}
		}
		return p.record(tx, orderID, StatusRejected, reason, lines, stock)
	}
	for i, l := range lines {
		res := tx.Exec("UPDATE inventory SET stocks = stocks - ?, version = version + 1 WHERE goods = ? AND version = ? AND stocks >= ?",
			l.Num, l.GoodsID, version[l.GoodsID], l.Num)
		if res.Error != nil {
			return Decision{}, fmt.Errorf("deduct goods %d: %w", l.GoodsID, res.Error)
		}
		if res.RowsAffected != 1 {
			return Decision{}, fmt.Errorf("goods %d changed since read: %w", l.GoodsID, ErrConflict)
		}
		if i == 0 {
			if err := p.inject(tx.Statement.Context, PointWritten); err != nil {
				return Decision{}, err
			}
		}
	}
	return p.record(tx, orderID, StatusDeducted, "", lines, nil)
}

// casVersion checks, under a row lock held to COMMIT, that goods still has
// version v. RowsAffected counts matched rows (clientFoundRows), so the no-op
// assignment reports 1 when the version is unchanged.
func casVersion(tx *gorm.DB, goods, v int64) error {
	res := tx.Exec("UPDATE inventory SET version = version WHERE goods = ? AND version = ?", goods, v)
	if res.Error != nil {
		return fmt.Errorf("check goods %d: %w", goods, res.Error)
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("goods %d changed since read: %w", goods, ErrConflict)
	}
	return nil
}
