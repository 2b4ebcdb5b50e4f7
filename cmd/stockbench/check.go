package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
)

// ledgerRow is one order_outcomes row as the check reads it.
type ledgerRow struct {
	OrderID, Status, Reason, Items string
	Payload                        []byte
}

// outcomeMsg is one message read from the run's outcome topic.
type outcomeMsg struct {
	Key, Type string // Kafka key and "type" header
	Value     []byte
	At        time.Time // when the benchmark consumed it
}

// checkInput is everything the correctness check looks at after a run.
type checkInput struct {
	Plan       plan
	Warmups    []events.OrderPlaced // one unit of warmupGoods each
	FinalStock map[int64]int64
	Ledger     []ledgerRow
	Events     []outcomeMsg
}

// checkResult is the verdict on a run. Duplicates (the same event_id
// delivered more than once) are allowed by the contract and only counted.
type checkResult struct {
	Correct         bool     `json:"correct"`
	Problems        []string `json:"problems,omitempty"`
	Deducted        int      `json:"deducted"`
	Rejected        int      `json:"rejected"`
	Events          int      `json:"events"`
	DuplicateEvents int      `json:"duplicate_events"`
	DuplicateOrders int      `json:"orders_with_duplicates"`
}

// problems collects failures by kind, keeping a few examples of each.
type problems struct {
	order    []string
	count    map[string]int
	examples map[string][]string
}

func (p *problems) add(kind, format string, args ...any) {
	if p.count == nil {
		p.count, p.examples = map[string]int{}, map[string][]string{}
	}
	if p.count[kind] == 0 {
		p.order = append(p.order, kind)
	}
	p.count[kind]++
	if len(p.examples[kind]) < 3 {
		p.examples[kind] = append(p.examples[kind], fmt.Sprintf(format, args...))
	}
}

func (p *problems) list() []string {
	var out []string
	for _, k := range p.order {
		out = append(out, fmt.Sprintf("%s: %d (e.g. %s)", k, p.count[k], strings.Join(p.examples[k], "; ")))
	}
	return out
}

// check verifies a finished run:
//   - exactly one ledger row per order sent, and none for anything else;
//   - every deducted order's ledger lines are its lines; rejections are
//     insufficient_stock (the generated orders are valid and name stocked goods);
//   - for every goods: final stock == initial − units deducted by the ledger,
//     never negative; for hot goods deducted == min(orders, stock); with ample
//     stock nothing is rejected;
//   - every order has at least one outcome event, every event belongs to an
//     order, has event_id <order_id>:<type>, the type header, and is byte for
//     byte the payload the ledger recorded.
func check(in checkInput) checkResult {
	var p problems
	var res checkResult
	expected := map[string][]events.Line{}
	for _, o := range append(in.Plan.orders(), in.Warmups...) {
		expected[o.OrderID] = o.Lines
	}
	initial := map[int64]int64{}
	for g, s := range in.Plan.stock {
		initial[g] = s
	}
	exact := map[int64]int64{}
	for g, s := range in.Plan.exact {
		exact[g] = s
	}
	if len(in.Warmups) > 0 {
		initial[warmupGoods] += int64(len(in.Warmups))
		exact[warmupGoods] += int64(len(in.Warmups))
	}

	// Ledger: one row per order, lines and stock arithmetic.
	ledger := map[string]ledgerRow{}
	deducted := map[int64]int64{}
	for _, r := range in.Ledger {
		if _, dup := ledger[r.OrderID]; dup {
			p.add("ledger rows repeated", "%s", r.OrderID)
			continue
		}
		ledger[r.OrderID] = r
		want, ok := expected[r.OrderID]
		if !ok {
			p.add("ledger rows for orders never sent", "%s", r.OrderID)
			continue
		}
		switch r.Status {
		case db.StatusDeducted:
			res.Deducted++
			var got []events.Line
			if err := json.Unmarshal([]byte(r.Items), &got); err != nil {
				p.add("unreadable ledger items", "%s: %v", r.OrderID, err)
				continue
			}
			if !slices.Equal(got, want) {
				p.add("ledger lines differ from the order", "%s: %v, sent %v", r.OrderID, got, want)
			}
			for _, l := range got {
				deducted[l.GoodsID] += int64(l.Num)
			}
		case db.StatusRejected:
			res.Rejected++
			if r.Reason != events.ReasonInsufficientStock {
				p.add("rejections for another reason than insufficient_stock", "%s: %s", r.OrderID, r.Reason)
			}
		default:
			p.add("ledger rows with an unknown status", "%s: %q", r.OrderID, r.Status)
		}
	}
	for _, id := range sortedKeys(expected) {
		if _, ok := ledger[id]; !ok {
			p.add("orders without a ledger row", "%s", id)
		}
	}
	goods := map[int64]bool{}
	for g := range initial {
		goods[g] = true
	}
	for g := range in.FinalStock {
		goods[g] = true
	}
	for _, g := range sortedKeys(goods) {
		final, ok := in.FinalStock[g]
		switch {
		case !ok:
			p.add("goods rows missing", "goods %d", g)
		case final < 0:
			p.add("negative stock", "goods %d: %d", g, final)
		case final != initial[g]-deducted[g]:
			p.add("stock arithmetic wrong", "goods %d: %d left, initial %d − deducted %d = %d",
				g, final, initial[g], deducted[g], initial[g]-deducted[g])
		}
		if want, ok := exact[g]; ok && deducted[g] != want {
			p.add("deducted units differ from min(demand, stock)", "goods %d: %d deducted, want %d", g, deducted[g], want)
		}
	}
	if in.Plan.noRejections && res.Rejected > 0 {
		p.add("rejections although stock was ample", "%d orders rejected", res.Rejected)
	}

	// Outcome events: at least one per order, duplicates counted.
	res.Events = len(in.Events)
	copies := map[string]int{} // event_id → deliveries
	byOrder := map[string]string{}
	for _, m := range in.Events {
		o, err := events.DecodeOutcome(m.Value)
		if err != nil {
			p.add("undecodable outcome events", "key %s: %v", m.Key, err)
			continue
		}
		if o.OrderID != m.Key || o.Type != m.Type || o.EventID != events.EventID(o.OrderID, o.Type) {
			p.add("outcome events with inconsistent key, header or event_id", "key %s header %s: order %s type %s event_id %s",
				m.Key, m.Type, o.OrderID, o.Type, o.EventID)
		}
		copies[o.EventID]++
		if copies[o.EventID] > 1 {
			res.DuplicateEvents++
			if copies[o.EventID] == 2 {
				res.DuplicateOrders++
			}
			continue
		}
		if prev, ok := byOrder[o.OrderID]; ok && prev != o.Type {
			p.add("orders with contradicting outcomes", "%s: %s and %s", o.OrderID, prev, o.Type)
		}
		byOrder[o.OrderID] = o.Type
		if _, ok := expected[o.OrderID]; !ok {
			p.add("outcome events for orders never sent", "%s", o.OrderID)
			continue
		}
		if r, ok := ledger[o.OrderID]; ok {
			want := events.TypeDeducted
			if r.Status == db.StatusRejected {
				want = events.TypeRejected
			}
			if o.Type != want {
				p.add("outcome event contradicts the ledger", "%s: event %s, ledger %s", o.OrderID, o.Type, r.Status)
			} else if !bytes.Equal(m.Value, r.Payload) {
				p.add("outcome event differs from the ledger payload", "%s", o.OrderID)
			}
		}
	}
	for _, id := range sortedKeys(expected) {
		if _, ok := byOrder[id]; !ok {
			p.add("orders without an outcome event", "%s", id)
		}
	}
	res.Problems = p.list()
	res.Correct = len(res.Problems) == 0
	return res
}

func sortedKeys[K int64 | string, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
