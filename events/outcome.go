package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// EventID is the deterministic id of an outcome: "<order_id>:<type>". Consumers
// dedupe on it, since Kafka delivery of outcomes is at least once.
func EventID(orderID, typ string) string { return orderID + ":" + typ }

// Deducted builds the stock-deducted outcome for lines.
func Deducted(orderID string, lines []Line, at time.Time) Outcome {
	return newOutcome(TypeDeducted, orderID, "", outcomeLines(lines, nil), at)
}

// Released builds the stock-released outcome for the lines given back.
func Released(orderID string, lines []Line, at time.Time) Outcome {
	return newOutcome(TypeReleased, orderID, "", outcomeLines(lines, nil), at)
}

// Rejected builds a stock-rejected outcome. available maps goods id to the stock
// at decision time; goods missing from it are reported with 0 available.
func Rejected(orderID, reason string, lines []Line, available map[int64]int64, at time.Time) Outcome {
	if available == nil {
		available = map[int64]int64{}
	}
	return newOutcome(TypeRejected, orderID, reason, outcomeLines(lines, available), at)
}

// WithItemsTotal returns o stating that its items are the first of an order
// of total lines (0: all of them are listed).
func (o Outcome) WithItemsTotal(total int) Outcome {
	o.ItemsTotal = total
	return o
}

func newOutcome(typ, orderID, reason string, items []OutcomeLine, at time.Time) Outcome {
	return Outcome{
		Type:       typ,
		EventID:    EventID(orderID, typ),
		OrderID:    orderID,
		Reason:     reason,
		Items:      items,
		OccurredAt: at.UTC(),
	}
}

func outcomeLines(lines []Line, available map[int64]int64) []OutcomeLine {
	out := make([]OutcomeLine, len(lines))
	for i, l := range lines {
		out[i] = OutcomeLine{GoodsID: l.GoodsID, Num: l.Num}
		if available != nil {
			a := available[l.GoodsID]
			out[i].Available = &a
		}
	}
	return out
}

// Encode returns the JSON of the outcome. The bytes are stored in the ledger with
// the decision, so a re-published outcome is byte-for-byte the first one.
func (o Outcome) Encode() ([]byte, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("events: encode %s: %w", o.EventID, err)
	}
	return b, nil
}

// DecodeOutcome parses an outcome event, as consumers of stock.events do.
func DecodeOutcome(b []byte) (Outcome, error) {
	var o Outcome
	if err := json.Unmarshal(b, &o); err != nil {
		return Outcome{}, fmt.Errorf("events: decode outcome: %w", err)
	}
	return o, nil
}
