package db

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// Event is one outcome event to publish: its type and its JSON, as stored.
type Event struct {
	Type    string
	Payload []byte
}

// Cancellation is what cancelling an order did.
type Cancellation struct {
	OrderID string
	Result  string // CancelReleased, CancelNothing or CancelBeforeOrder
	// Events are the outcome events to publish, in order. The last is always
	// the order's stock-released (its items are what was given back, empty
	// when nothing was); CancelBeforeOrder publishes the order's
	// stock-rejected/cancelled decision before it.
	Events []Event
	// Capped lists, per goods, the units that could not be given back because
	// the stock would have passed the INT maximum (the stock is left at it);
	// the release event lists only what was given back.
	Capped []events.Line
	// Replayed is true when the order had been cancelled before: nothing changed now.
	Replayed bool
}

// Cancel gives back what the order deducted, once, in one transaction with the
// record of the cancellation. A cancel of a rejected order changes no stock. A
// cancel that arrives before its order records the order as rejected with reason
// cancelled, so the later order-placed event replays that rejection. Every
// cancel answers with stock-released (see Cancellation.Events). A redelivered
// cancel returns the first result and changes nothing.
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
			c, err := l.recordCancel(tx, orderID, CancelBeforeOrder, nil)
			c.Events = append([]Event{{Type: events.TypeRejected, Payload: d.Payload}}, c.Events...)
			return c, err
		case rows[0].Status != StatusDeducted:
			return l.recordCancel(tx, orderID, CancelNothing, nil)
		}
		var lines []events.Line
		if err := json.Unmarshal([]byte(rows[0].Items), &lines); err != nil {
			return Cancellation{}, fmt.Errorf("ledger lines of %q: %w", orderID, err)
		}
		slices.SortFunc(lines, func(a, b events.Line) int { return cmp.Compare(a.GoodsID, b.GoodsID) })
		stock, _, err := readStock(tx, goodsOf(lines), true)
		if err != nil {
			return Cancellation{}, err
		}
		var capped, given []events.Line
		for _, ln := range lines {
			// The sum is computed in 64 bits and capped at the column's
			// maximum: a release onto a row restocked near it since the
			// deduction must not fail (1264) on every attempt.
			res := tx.Exec("UPDATE inventory SET stocks = LEAST(stocks + ?, ?), version = version + 1 WHERE goods = ?",
				ln.Num, math.MaxInt32, ln.GoodsID)
			if res.Error != nil {
				return Cancellation{}, fmt.Errorf("release goods %d: %w", ln.GoodsID, res.Error)
			}
			back := ln
			if s, ok := stock[ln.GoodsID]; ok && s+int64(ln.Num) > math.MaxInt32 {
				lost := int32(s + int64(ln.Num) - math.MaxInt32)
				capped = append(capped, events.Line{GoodsID: ln.GoodsID, Num: lost})
				back.Num -= lost
			}
			if back.Num > 0 {
				given = append(given, back)
			}
			// A goods row deleted since the deduction has nowhere to go back to;
			// the release event still lists what the order held.
		}
		c, err := l.recordCancel(tx, orderID, CancelReleased, given)
		c.Capped = capped
		return c, err
	})
}

// recordCancel builds the stock-released event of lines (what was given back)
// and records the cancellation with it.
func (l *Ledger) recordCancel(tx *gorm.DB, orderID, result string, lines []events.Line) (Cancellation, error) {
	if lines == nil {
		lines = []events.Line{}
	}
	at := l.opts.Now()
	payload, err := events.Released(orderID, lines, at).Encode()
	if err != nil {
		return Cancellation{}, err
	}
	items, err := json.Marshal(lines)
	if err != nil {
		return Cancellation{}, fmt.Errorf("encode lines: %w", err)
	}
	row := OrderCancellation{OrderID: orderID, Result: result, Items: string(items), Payload: payload, CreatedAt: at}
	if err := tx.Create(&row).Error; err != nil {
		return Cancellation{}, fmt.Errorf("write cancellation: %w", err)
	}
	return Cancellation{OrderID: orderID, Result: result, Events: []Event{{Type: events.TypeReleased, Payload: payload}}}, nil
}

func (l *Ledger) replayCancel(tx *gorm.DB, c OrderCancellation) (Cancellation, error) {
	out := Cancellation{OrderID: c.OrderID, Result: c.Result, Replayed: true}
	if c.Result == CancelBeforeOrder {
		// The rejection recorded then is the order's decision.
		d, ok, err := replay(tx, c.OrderID)
		if err != nil {
			return Cancellation{}, err
		}
		if ok {
			out.Events = append(out.Events, Event{Type: d.EventType(), Payload: d.Payload})
		}
	}
	out.Events = append(out.Events, Event{Type: events.TypeReleased, Payload: releasedPayload(c)})
	return out, nil
}

// releasedPayload is the stored stock-released event of a cancellation. Rows
// written before every cancel was answered hold none (or, for a cancel before
// its order, the rejection): their release is rebuilt from the row, the same
// bytes every time.
func releasedPayload(c OrderCancellation) []byte {
	if o, err := events.DecodeOutcome(c.Payload); err == nil && o.Type == events.TypeReleased {
		return c.Payload
	}
	var lines []events.Line
	if c.Result == CancelReleased {
		_ = json.Unmarshal([]byte(c.Items), &lines)
	}
	if lines == nil {
		lines = []events.Line{}
	}
	b, err := events.Released(c.OrderID, lines, c.CreatedAt.Truncate(time.Microsecond)).Encode()
	if err != nil {
		return c.Payload
	}
	return b
}

// Released returns the stock-released events recorded for the given orders,
// keyed by order id: what the worker re-publishes after an order's own
// (re-)published decision, so that the last event of a cancelled order is
// always its release, also when its order-placed is redelivered after the
// cancel or decided concurrently with it.
func (l *Ledger) Released(ctx context.Context, orderIDs []string) (map[string][]byte, error) {
	if len(orderIDs) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.TxTimeout)
	defer cancel()
	var rows []OrderCancellation
	for chunk := range slices.Chunk(uniq(orderIDs), 500) {
		var part []OrderCancellation
		if err := l.db.WithContext(ctx).Where("order_id IN ?", chunk).Find(&part).Error; err != nil {
			return nil, fmt.Errorf("ledger: read cancellations: %w", err)
		}
		rows = append(rows, part...)
	}
	out := make(map[string][]byte, len(rows))
	for _, r := range rows {
		out[r.OrderID] = releasedPayload(r)
	}
	return out, nil
}
