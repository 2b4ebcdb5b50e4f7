package main

import (
	"reflect"
	"slices"
	"testing"

	"github.com/stockflow/stockflow/events"
)

func TestPlans(t *testing.T) {
	hot := mustPlan(t, workloadHot, 1000, 300)
	if hot.stock[hotGoods] != 500 || hot.exact[hotGoods] != 500 || hot.stock[hotLatencyGoods] != 150 {
		t.Errorf("hot stock %v exact %v", hot.stock, hot.exact)
	}
	if len(hot.throughput) != 1000 || len(hot.latency) != 300 {
		t.Errorf("hot orders %d + %d", len(hot.throughput), len(hot.latency))
	}

	spread := mustPlan(t, workloadSpread, 1000, 100)
	if len(spread.stock) != spreadGoods || !spread.noRejections {
		t.Errorf("spread: %d goods stocked, noRejections %v", len(spread.stock), spread.noRejections)
	}
	for _, o := range spread.orders() {
		if g := o.Lines[0].GoodsID; g < 1 || g > spreadGoods || len(o.Lines) != 1 {
			t.Fatalf("spread order %+v", o)
		}
	}

	multi := mustPlan(t, workloadMulti, 1000, 100)
	for i, o := range multi.orders() {
		merged, _ := events.MergeLines(o.Lines)
		if len(o.Lines) != multiLines || !slices.Equal(merged, o.Lines) {
			t.Fatalf("multi order %+v: want 3 distinct goods, sorted", o)
		}
		lo, hi := int64(1), int64(multiGoods)
		if i >= 1000 {
			lo, hi = multiGoods+1, 2*multiGoods
		}
		for _, l := range o.Lines {
			if l.GoodsID < lo || l.GoodsID > hi {
				t.Fatalf("multi order %d uses goods %d outside %d..%d", i, l.GoodsID, lo, hi)
			}
		}
	}
	if multi.stock[1] != 24 || multi.stock[101] != 2 { // 80% of 1000×3/100, of 100×3/100
		t.Errorf("multi stock %d, %d", multi.stock[1], multi.stock[101])
	}

	again := mustPlan(t, workloadMulti, 1000, 100)
	if !reflect.DeepEqual(multi, again) {
		t.Error("the same seed made different orders")
	}
	if _, err := newPlan("cold", 1, 1, 1); err == nil {
		t.Error("unknown workload accepted")
	}
}

func TestWarmupOrdersCoverEveryPartition(t *testing.T) {
	for _, n := range []int{1, 6, 12} {
		w := warmupOrders(n)
		if len(w) != n {
			t.Errorf("%d partitions: %d warm-up orders", n, len(w))
		}
	}
}
