package main

import (
	"fmt"
	"math/rand/v2"

	"github.com/stockflow/stockflow/events"
)

// Goods ids of the workloads. The latency phase has goods of its own where the
// throughput phase uses up stock, so its orders meet the same conditions.
const (
	hotGoods        = 1
	hotLatencyGoods = 2
	spreadGoods     = 10_000 // goods 1..10000, shared by both phases
	spreadStock     = 1_000_000
	multiGoods      = 100 // throughput: goods 1..100; latency: 101..200
	multiLines      = 3
	warmupGoods     = 999_999_001
)

// plan is what one run stocks and sends, and what a correct run must end with.
type plan struct {
	workload string
	// stock is the initial stock of every goods the run uses.
	stock map[int64]int64
	// throughput and latency are the orders of the two phases, in send order.
	throughput, latency []events.OrderPlaced
	// exact maps goods to the units that must be deducted from it (hot: all
	// orders take one unit, so deducted == min(orders, stock)).
	exact map[int64]int64
	// noRejections: stock is ample, every order must be deducted.
	noRejections bool
}

// truncateLatency keeps the first n latency orders, and what a correct run
// must then deduct.
func (p *plan) truncateLatency(n int) {
	if n >= len(p.latency) {
		return
	}
	p.latency = p.latency[:n]
	if want, ok := p.exact[hotLatencyGoods]; ok {
		p.exact[hotLatencyGoods] = min(want, int64(n))
	}
}

// orders returns every order of the plan: warm-ups excluded.
func (p plan) orders() []events.OrderPlaced {
	return append(append([]events.OrderPlaced(nil), p.throughput...), p.latency...)
}

// newPlan builds the stock and orders of workload: n throughput orders, l
// latency orders, drawn from a generator seeded with seed.
func newPlan(workload string, n, l int, seed uint64) (plan, error) {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	p := plan{workload: workload, stock: map[int64]int64{}, exact: map[int64]int64{}}
	one := func(prefix string, i int, lines ...events.Line) events.OrderPlaced {
		return events.OrderPlaced{OrderID: fmt.Sprintf("%s-%06d", prefix, i), Lines: lines}
	}
	switch workload {
	case workloadHot:
		// One goods, stock below demand: the first half is deducted, the rest
		// rejected, all on one row.
		for i := range n {
			p.throughput = append(p.throughput, one("t", i, events.Line{GoodsID: hotGoods, Num: 1}))
		}
		for i := range l {
			p.latency = append(p.latency, one("l", i, events.Line{GoodsID: hotLatencyGoods, Num: 1}))
		}
		p.stock[hotGoods], p.exact[hotGoods] = int64(n/2), int64(n/2)
		if l > 0 {
			p.stock[hotLatencyGoods], p.exact[hotLatencyGoods] = int64(l/2), int64(l/2)
		}
	case workloadSpread:
		// 10,000 goods, ample stock: every order is deducted.
		for g := int64(1); g <= spreadGoods; g++ {
			p.stock[g] = spreadStock
		}
		for i := range n {
			p.throughput = append(p.throughput, one("t", i, events.Line{GoodsID: 1 + rng.Int64N(spreadGoods), Num: 1}))
		}
		for i := range l {
			p.latency = append(p.latency, one("l", i, events.Line{GoodsID: 1 + rng.Int64N(spreadGoods), Num: 1}))
		}
		p.noRejections = true
	case workloadMulti:
		// 3 distinct goods of 100 per order, 1 unit each; each goods holds 80%
		// of its expected demand, so the tail of the run is rejected and
		// all-or-nothing is exercised on rows other orders also lock.
		gen := func(prefix string, count int, base int64) []events.OrderPlaced {
			var out []events.OrderPlaced
			for i := range count {
				picked := map[int64]bool{}
				var lines []events.Line
				for len(lines) < multiLines {
					g := base + 1 + rng.Int64N(multiGoods)
					if !picked[g] {
						picked[g] = true
						lines = append(lines, events.Line{GoodsID: g, Num: 1})
					}
				}
				merged, _ := events.MergeLines(lines)
				out = append(out, one(prefix, i, merged...))
			}
			if count > 0 {
				per := max(int64(count*multiLines*8/10/multiGoods), 1)
				for g := base + 1; g <= base+multiGoods; g++ {
					p.stock[g] = per
				}
			}
			return out
		}
		p.throughput = gen("t", n, 0)
		p.latency = gen("l", l, multiGoods)
	default:
		return p, fmt.Errorf("unknown workload %q", workload)
	}
	return p, nil
}
