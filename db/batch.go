package db

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// Batch decides many orders in one transaction, the answer to hot goods: row
// locking caps a single goods at a few thousand transactions a second, but one
// transaction can decide hundreds of orders.
//
// In one transaction it reads the ledger for the whole batch, locks every goods
// the undecided orders name once (one SELECT ... FOR UPDATE, ascending goods id),
// walks the orders in the given (offset) order accepting each one while its
// stock lasts, writes each changed goods row once (one guarded multi-row UPDATE),
// inserts every ledger row in one statement and commits once. An order repeated
// within the batch is decided once and replayed for its later copies. Cost per
// batch: four statements and one COMMIT, whatever its size; the row locks are
// held for the whole batch.
type Batch struct{ base }

// NewBatch returns the batch strategy over g.
func NewBatch(g *gorm.DB, opts Options) *Batch {
	return &Batch{newBase(g, "batch", opts)}
}

// Deduct decides one order as a batch of one.
func (b *Batch) Deduct(ctx context.Context, o events.OrderPlaced) (Decision, error) {
	ds, err := b.DeductBatch(ctx, []events.OrderPlaced{o})
	if err != nil {
		return Decision{}, err
	}
	return ds[0], nil
}

// DeductBatch decides orders, in order, in one transaction and returns one
// decision per order (same index). Either every order is decided and recorded
// or, on error, none is.
func (b *Batch) DeductBatch(ctx context.Context, orders []events.OrderPlaced) ([]Decision, error) {
	if len(orders) == 0 {
		return nil, nil
	}
	lines := make([][]events.Line, len(orders))
	ids := make([]string, len(orders))
	for i, o := range orders {
		l, err := lockOrder(o)
		if err != nil {
			return nil, err
		}
		lines[i], ids[i] = l, o.OrderID
	}
	what := fmt.Sprintf("batch of %d orders from %s", len(orders), orders[0].OrderID)
	return transact(ctx, &b.base, what, func(tx *gorm.DB) ([]Decision, error) {
		return b.decide(tx, ids, lines)
	})
}

func (b *Batch) decide(tx *gorm.DB, ids []string, lines [][]events.Line) ([]Decision, error) {
	known, err := replayAll(tx, uniq(ids))
	if err != nil {
		return nil, err
	}

	goodsSet := map[int64]bool{}
	for i, id := range ids {
		if _, done := known[id]; !done {
			for _, l := range lines[i] {
				goodsSet[l.GoodsID] = true
			}
		}
	}
	stock := map[int64]int64{}
	if len(goodsSet) > 0 {
		var err error
		if stock, _, err = readStock(tx, slices.Sorted(maps.Keys(goodsSet)), true); err != nil {
			return nil, err
		}
	}
	if err := b.inject(tx.Statement.Context, PointLocked); err != nil {
		return nil, err
	}

	initial := maps.Clone(stock)
	decisions := make([]Decision, len(ids))
	var rows []OrderOutcome
	for i, id := range ids {
		if d, done := known[id]; done {
			decisions[i] = d
			continue
		}
		status, reason := StatusDeducted, verdict(lines[i], stock)
		var available map[int64]int64
		if reason != "" {
			status, available = StatusRejected, stock
		}
		row, d, err := b.outcome(id, status, reason, lines[i], available)
		if err != nil {
			return nil, err
		}
		if reason == "" {
			for _, l := range lines[i] {
				stock[l.GoodsID] -= int64(l.Num)
			}
		}
		rows = append(rows, row)
		decisions[i] = d
		d.Replayed = true
		known[id] = d // a later copy in this batch replays this decision
	}

	if err := b.writeStock(tx, initial, stock); err != nil {
		return nil, err
	}
	if err := insertOutcomes(tx, rows); err != nil {
		return nil, err
	}
	return decisions, nil
}

// writeStock writes every goods whose stock changed from before to after, once,
// in guarded multi-row UPDATEs of at most 500 rows.
func (b *Batch) writeStock(tx *gorm.DB, before, after map[int64]int64) error {
	var changed []int64
	for g, s := range after {
		if s != before[g] {
			changed = append(changed, g)
		}
	}
	slices.Sort(changed)
	for len(changed) > 0 {
		chunk := changed[:min(len(changed), 500)]
		changed = changed[len(chunk):]
		var (
			sb   strings.Builder
			args []any
		)
		// SET stocks = stocks - CASE goods WHEN g THEN d ... END, guarded by
		// WHERE stocks >= the same CASE: the row lock makes it hold, the guard
		// makes sure of it.
		delta := func() {
			sb.WriteString("CASE goods")
			for _, g := range chunk {
				sb.WriteString(" WHEN ? THEN ?")
				args = append(args, g, before[g]-after[g])
			}
			sb.WriteString(" END")
		}
		sb.WriteString("UPDATE inventory SET stocks = stocks - ")
		delta()
		sb.WriteString(", version = version + 1 WHERE goods IN ? AND stocks >= ")
		args = append(args, chunk)
		delta()
		res := tx.Exec(sb.String(), args...)
		if res.Error != nil {
			return fmt.Errorf("write %d goods: %w", len(chunk), res.Error)
		}
		if res.RowsAffected != int64(len(chunk)) {
			return fmt.Errorf("write %d goods, %d matched: %w", len(chunk), res.RowsAffected, ErrGuard)
		}
		if err := b.inject(tx.Statement.Context, PointWritten); err != nil {
			return err
		}
	}
	return nil
}

func uniq(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
