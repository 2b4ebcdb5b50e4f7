package db

import (
	"context"

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
// returns the decision already recorded for it.
func (l *Ledger) Reject(ctx context.Context, orderID, reason string, lines []events.Line) (Decision, error) {
	return transact(ctx, &l.base, "reject order "+orderID, func(tx *gorm.DB) (Decision, error) {
		if d, ok, err := replay(tx, orderID); err != nil || ok {
			return d, err
		}
		return l.record(tx, orderID, StatusRejected, reason, lines, nil)
	})
}

// Lookup returns the recorded decision for orderID, if any.
func (l *Ledger) Lookup(ctx context.Context, orderID string) (Decision, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, l.opts.TxTimeout)
	defer cancel()
	return replay(l.db.WithContext(ctx), orderID)
}
