package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/stockflow/stockflow/events"
)

// formatOutcome renders an outcome event on one line, for people:
//
//	22:31:05  A1001  stock-deducted   16×1 17×2
//	22:31:05  A1002  stock-rejected   insufficient_stock  16×1 (available 0)
//
// The time is occurred_at in loc.
func formatOutcome(o events.Outcome, loc *time.Location) string {
	var b strings.Builder
	at := "--:--:--"
	if !o.OccurredAt.IsZero() {
		at = o.OccurredAt.In(loc).Format("15:04:05")
	}
	typ := o.Type
	if typ == "" {
		typ = "(no type)"
	}
	fmt.Fprintf(&b, "%s  %s  %-16s %s", at, o.OrderID, typ, formatOutcomeLines(o))
	return strings.TrimRight(b.String(), " ")
}

func formatOutcomeLines(o events.Outcome) string {
	parts := make([]string, 0, len(o.Items)+1)
	if o.Reason != "" {
		parts = append(parts, o.Reason+" ")
	}
	for _, l := range o.Items {
		p := fmt.Sprintf("%d×%d", l.GoodsID, l.Num)
		if l.Available != nil {
			p += fmt.Sprintf(" (available %d)", *l.Available)
		}
		parts = append(parts, p)
	}
	if len(o.Items) == 0 && o.Reason != "" {
		parts[0] = o.Reason
	}
	return strings.Join(parts, " ")
}
