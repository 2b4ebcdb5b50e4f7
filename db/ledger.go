package db

import (
	"context"
	"fmt"

	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// Ledger answers orders without touching stock: it records rejections that need
// no lock (invalid orders) and looks decisions up.
type Ledger struct{ base }

// NewLedger returns a Ledger over g.
func NewLedger(g *gorm.DB, opts Options) *Ledger {
	return &Ledger{newBase(g, "ledger", opts)}
}

// Reject records a rejection for orderID with the given reason and lines, or
// returns the decision already recorded for it. itemsTotal, when not 0, says
// that lines are only the first of an order of that many lines (the event
// carries it as items_total).
func (l *Ledger) Reject(ctx context.Context, orderID, reason string, lines []events.Line, itemsTotal int) (Decision, error) {
	return transact(ctx, &l.base, "reject order "+orderID, func(tx *gorm.DB) (Decision, error) {
		if d, ok, err := replay(tx, orderID); err != nil || ok {
			return d, err
		}
		return l.recordEvent(tx, orderID, StatusRejected, reason, lines, nil, itemsTotal)
	})
}

// Probe checks that the database takes the statements every decision needs:
// it reads each of stockflow's tables and writes a row to each inside one
// transaction that is always rolled back, so nothing changes. A nil answer
// means the services answer; the worker asks before it parks a message that
// keeps failing, so that a dropped table or a revoked privilege (which fails
// every message alike) is reported as an outage instead of filling the
// dead-letter topic with good orders.
func (l *Ledger) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.TxTimeout)
	defer cancel()
	tx := l.db.WithContext(ctx).Begin()
	if tx.Error != nil {
		return fmt.Errorf("db: probe: begin: %w", tx.Error)
	}
	defer tx.Rollback()
	const probeID = "\x00stockflow-probe"
	for _, q := range []string{
		"SELECT goods FROM inventory LIMIT 1",
		"SELECT order_id FROM order_outcomes LIMIT 1",
		"SELECT order_id FROM order_cancellations LIMIT 1",
	} {
		if err := tx.Exec(q).Error; err != nil {
			return fmt.Errorf("db: probe: %s: %w", q, err)
		}
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"UPDATE inventory SET version = version WHERE goods = ?", []any{int64(-1)}},
		{"INSERT INTO order_outcomes (order_id, status, items, payload) VALUES (?, 'probe', '[]', '') ON DUPLICATE KEY UPDATE status = status", []any{probeID}},
		{"INSERT INTO order_cancellations (order_id, result, items, payload) VALUES (?, 'probe', '[]', '') ON DUPLICATE KEY UPDATE result = result", []any{probeID}},
	} {
		if err := tx.Exec(q.sql, q.args...).Error; err != nil {
			return fmt.Errorf("db: probe: %s: %w", q.sql, err)
		}
	}
	return nil
}

// Lookup returns the recorded decision for orderID, if any.
func (l *Ledger) Lookup(ctx context.Context, orderID string) (Decision, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opts.TxTimeout)
	defer cancel()
	return replay(l.db.WithContext(ctx), orderID)
}
