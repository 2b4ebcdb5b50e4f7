package db_test

import (
	"context"
	"testing"

	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/testsvc"
)

func TestBatch(t *testing.T) {
	t.Parallel()
	conformance(t, "batch")
}

func TestBatchDecidesInOffsetOrder(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 4)
	testsvc.Stock(t, g, 1, 5, 2, 1)
	b := db.NewBatch(g, db.Options{})
	ctx := context.Background()

	// Decided before: replayed, not decided again.
	before, err := b.Deduct(ctx, order("old", line(1, 1)))
	if err != nil {
		t.Fatal(err)
	}
	orders := []events.OrderPlaced{
		order("a", line(1, 2)),             // accepted: 4 -> 2
		order("b", line(1, 3)),             // rejected: 2 left
		order("old", line(1, 1)),           // replay of the earlier decision
		order("c", line(1, 1), line(2, 1)), // accepted: 1 -> 1, 2 -> 0
		order("a", line(1, 2)),             // a copy of a: replayed
		order("d", line(2, 1)),             // rejected: 0 left
		order("e", line(3, 1)),             // unknown goods
		order("f", line(1, 1)),             // accepted: the last unit
	}
	ds, err := b.DeductBatch(ctx, orders)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status, reason string
		replayed       bool
	}{
		{db.StatusDeducted, "", false},
		{db.StatusRejected, events.ReasonInsufficientStock, false},
		{db.StatusDeducted, "", true},
		{db.StatusDeducted, "", false},
		{db.StatusDeducted, "", true},
		{db.StatusRejected, events.ReasonInsufficientStock, false},
		{db.StatusRejected, events.ReasonUnknownGoods, false},
		{db.StatusDeducted, "", false},
	}
	for i, w := range want {
		d := ds[i]
		if d.OrderID != orders[i].OrderID || d.Status != w.status || d.Reason != w.reason || d.Replayed != w.replayed {
			t.Errorf("decision %d = %+v, want %+v", i, d, w)
		}
	}
	if string(ds[2].Payload) != string(before.Payload) || string(ds[4].Payload) != string(ds[0].Payload) {
		t.Error("replayed decisions must carry the first payload")
	}
	// b was rejected with the stock at its decision time: 2, after a.
	if o, _ := events.DecodeOutcome(ds[1].Payload); *o.Items[0].Available != 2 {
		t.Errorf("b's available = %d, want 2", *o.Items[0].Available)
	}
	if s1, s2 := testsvc.Stocks(t, g, 1), testsvc.Stocks(t, g, 2); s1 != 0 || s2 != 0 {
		t.Fatalf("stocks = %d, %d, want 0, 0", s1, s2)
	}
	var rows int64
	g.Model(&db.OrderOutcome{}).Count(&rows)
	if rows != 7 {
		t.Fatalf("ledger rows = %d, want 7 (old, a..f)", rows)
	}
}
