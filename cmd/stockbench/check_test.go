package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
)

// simulate decides the plan's orders in order, the way a correct worker
// would, and returns the check input it leaves behind.
func simulate(t *testing.T, p plan, warmups []events.OrderPlaced) checkInput {
	t.Helper()
	stock := map[int64]int64{warmupGoods: int64(len(warmups))}
	for g, s := range p.stock {
		stock[g] = s
	}
	in := checkInput{Plan: p, Warmups: warmups}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, o := range append(p.orders(), warmups...) {
		ok := true
		for _, l := range o.Lines {
			ok = ok && stock[l.GoodsID] >= int64(l.Num)
		}
		var ev events.Outcome
		status, reason := db.StatusDeducted, ""
		if ok {
			for _, l := range o.Lines {
				stock[l.GoodsID] -= int64(l.Num)
			}
			ev = events.Deducted(o.OrderID, o.Lines, at)
		} else {
			avail := map[int64]int64{}
			for _, l := range o.Lines {
				avail[l.GoodsID] = stock[l.GoodsID]
			}
			status, reason = db.StatusRejected, events.ReasonInsufficientStock
			ev = events.Rejected(o.OrderID, reason, o.Lines, avail, at)
		}
		payload, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		items, _ := json.Marshal(o.Lines)
		in.Ledger = append(in.Ledger, ledgerRow{OrderID: o.OrderID, Status: status, Reason: reason, Items: string(items), Payload: payload})
		in.Events = append(in.Events, outcomeMsg{Key: o.OrderID, Type: ev.Type, Value: payload, At: at})
	}
	in.FinalStock = stock
	return in
}

func mustPlan(t *testing.T, workload string, n, l int) plan {
	t.Helper()
	p, err := newPlan(workload, n, l, 1)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckAcceptsCorrectRuns(t *testing.T) {
	for _, w := range allWorkloads {
		in := simulate(t, mustPlan(t, w, 300, 50), warmupOrders(6))
		res := check(in)
		if !res.Correct {
			t.Errorf("%s: a correct run was judged wrong: %v", w, res.Problems)
		}
		if res.Deducted+res.Rejected != 356 || res.Events != 356 {
			t.Errorf("%s: %d deducted + %d rejected, %d events; want 356", w, res.Deducted, res.Rejected, res.Events)
		}
		if w == workloadHot && res.Deducted != 150+25+6 {
			t.Errorf("hot: %d deducted, want %d", res.Deducted, 150+25+6)
		}
	}
}

func TestCheckCountsDuplicatesWithoutFailing(t *testing.T) {
	in := simulate(t, mustPlan(t, workloadHot, 20, 0), nil)
	in.Events = append(in.Events, in.Events[3], in.Events[3], in.Events[7])
	res := check(in)
	if !res.Correct || res.DuplicateEvents != 3 || res.DuplicateOrders != 2 {
		t.Errorf("duplicates: correct %v, %d duplicate events over %d orders; want true, 3, 2 (%v)",
			res.Correct, res.DuplicateEvents, res.DuplicateOrders, res.Problems)
	}
}

func TestCheckFindsWrongRuns(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(in *checkInput)
		want   string
	}{
		{"lost outcome", func(in *checkInput) { in.Events = in.Events[1:] }, "orders without an outcome event"},
		{"lost ledger row", func(in *checkInput) { in.Ledger = in.Ledger[1:] }, "orders without a ledger row"},
		{"oversold", func(in *checkInput) { in.FinalStock[hotGoods] = -1 }, "negative stock"},
		{"lost update", func(in *checkInput) { in.FinalStock[hotGoods]++ }, "stock arithmetic wrong"},
		{"foreign event", func(in *checkInput) {
			e := in.Events[0]
			e.Key = "zz-1"
			in.Events = append(in.Events, e)
		}, "inconsistent key"},
		{"payload differs from ledger", func(in *checkInput) {
			in.Ledger[0].Payload = append([]byte(nil), in.Ledger[0].Payload...)
			in.Ledger[0].Payload[len(in.Ledger[0].Payload)-2] = ' '
		}, "differs from the ledger payload"},
		{"contradicting outcome", func(in *checkInput) {
			o := in.Plan.throughput[0]
			ev, _ := events.Rejected(o.OrderID, events.ReasonInsufficientStock, o.Lines, nil, time.Now()).Encode()
			in.Events = append(in.Events, outcomeMsg{Key: o.OrderID, Type: events.TypeRejected, Value: ev})
		}, "contradicting outcomes"},
		{"rejected although stock remained", func(in *checkInput) {
			// The first order rejected instead of deducted: one unit too many left.
			in.Ledger[0].Status, in.Ledger[0].Reason = db.StatusRejected, events.ReasonInsufficientStock
			in.FinalStock[hotGoods]++
		}, "min(demand, stock)"},
	}
	for _, c := range cases {
		in := simulate(t, mustPlan(t, workloadHot, 40, 10), warmupOrders(3))
		c.mutate(&in)
		res := check(in)
		if res.Correct || !strings.Contains(strings.Join(res.Problems, "\n"), c.want) {
			t.Errorf("%s: correct %v, problems %v; want one about %q", c.name, res.Correct, res.Problems, c.want)
		}
	}
}

func TestCheckSpreadMustNotReject(t *testing.T) {
	in := simulate(t, mustPlan(t, workloadSpread, 50, 0), nil)
	in.Ledger[0].Status, in.Ledger[0].Reason = db.StatusRejected, events.ReasonInsufficientStock
	g := in.Plan.throughput[0].Lines[0].GoodsID
	in.FinalStock[g]++
	res := check(in)
	if res.Correct || !strings.Contains(strings.Join(res.Problems, "\n"), "stock was ample") {
		t.Errorf("problems %v", res.Problems)
	}
}
