package db

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// Cancellation is what cancelling an order did.
type Cancellation struct {
	OrderID string
	Result  string // CancelReleased, CancelNothing or CancelBeforeOrder
	// Event is the outcome event to publish: stock-released (CancelReleased), the
	// stock-rejected/cancelled decision (CancelBeforeOrder), or nil.
	Event     []byte
	EventType string
	// Replayed is true when the order had been cancelled before: nothing changed now.
	Replayed bool
}

// Cancel gives back what the order deducted, once, in one transaction with the
// record of the cancellation. A cancel of a rejected order changes no stock. A
// cancel that arrives before its order records the order as rejected with reason
// cancelled, so the later order-placed event replays that rejection. A
// redelivered cancel returns the first result and changes nothing.
func (l *Ledger) Cancel(ctx context.Context, orderID string) (Cancellation, error) {
	return transact(ctx, &l.base, "cancel order "+orderID, func(tx *gorm.DB) (Cancellation, error) {
		var done []OrderCancellation
		if err := tx.Where("order_id = ?", orderID).Limit(1).Find(&done).Error; err != nil {
			return Cancellation{}, fmt.Errorf("read cancellations: %w", err)
		}
		if len(done) == 1 {
			return l.replayCancel(tx, done[0])
		}
		// Lock the order's ledger row (if any): a concurrent decision of the
		// same order either committed before (and is seen) or conflicts with
		// the tombstone insert below (1062, retried).
		var rows []OrderOutcome
		if err := tx.Raw("SELECT order_id, status, reason, items, payload FROM order_outcomes WHERE order_id = ? FOR UPDATE", orderID).
			Scan(&rows).Error; err != nil {
			return Cancellation{}, fmt.Errorf("read ledger: %w", err)
		}
		switch {
		case len(rows) == 0:
			d, err := l.record(tx, orderID, StatusRejected, events.ReasonCancelled, nil, nil)
			if err != nil {
				return Cancellation{}, err
			}
			return l.recordCancel(tx, orderID, CancelBeforeOrder, nil, d.Payload, events.TypeRejected)
		case rows[0].Status != StatusDeducted:
			return l.recordCancel(tx, orderID, CancelNothing, nil, nil, "")
		}
		var lines []events.Line
		if err := json.Unmarshal([]byte(rows[0].Items), &lines); err != nil {
			return Cancellation{}, fmt.Errorf("ledger lines of %q: %w", orderID, err)
		}
		slices.SortFunc(lines, func(a, b events.Line) int { return cmp.Compare(a.GoodsID, b.GoodsID) })
		if _, _, err := readStock(tx, goodsOf(lines), true); err != nil {
			return Cancellation{}, err
		}
		for _, ln := range lines {
			res := tx.Exec("UPDATE inventory SET stocks = stocks + ?, version = version + 1 WHERE goods = ?", ln.Num, ln.GoodsID)
			if res.Error != nil {
				return Cancellation{}, fmt.Errorf("release goods %d: %w", ln.GoodsID, res.Error)
			}
			// A goods row deleted since the deduction has nowhere to go back to;
			// the release event still lists what the order held.
		}
		payload, err := events.Released(orderID, lines, l.opts.Now()).Encode()
		if err != nil {
			return Cancellation{}, err
		}
		return l.recordCancel(tx, orderID, CancelReleased, lines, payload, events.TypeReleased)
	})
}

func (l *Ledger) recordCancel(tx *gorm.DB, orderID, result string, lines []events.Line, payload []byte, eventType string) (Cancellation, error) {
	if lines == nil {
		lines = []events.Line{}
	}
	items, err := json.Marshal(lines)
	if err != nil {
		return Cancellation{}, fmt.Errorf("encode lines: %w", err)
	}
	row := OrderCancellation{OrderID: orderID, Result: result, Items: string(items), Payload: payload, CreatedAt: l.opts.Now()}
	if row.Payload == nil {
		row.Payload = []byte{}
	}
	if err := tx.Create(&row).Error; err != nil {
		return Cancellation{}, fmt.Errorf("write cancellation: %w", err)
	}
	return Cancellation{OrderID: orderID, Result: result, Event: payload, EventType: eventType}, nil
}

func (l *Ledger) replayCancel(tx *gorm.DB, c OrderCancellation) (Cancellation, error) {
	out := Cancellation{OrderID: c.OrderID, Result: c.Result, Replayed: true}
	switch c.Result {
	case CancelReleased:
		out.Event, out.EventType = c.Payload, events.TypeReleased
	case CancelBeforeOrder:
		// The rejection recorded then is the order's decision.
		d, ok, err := replay(tx, c.OrderID)
		if err != nil {
			return Cancellation{}, err
		}
		if ok {
			out.Event, out.EventType = d.Payload, d.EventType()
		}
	}
	return out, nil
}
