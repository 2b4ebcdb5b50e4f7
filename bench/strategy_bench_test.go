package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/testsvc"
	"gorm.io/gorm"
)

// hotStock is enough stock for any b.N: every order in these benchmarks is
// deducted, so the numbers are the accept path.
const hotStock = 2_000_000_000

var goodsSeq atomic.Int64

// reserveGoods returns the first of n goods ids no other benchmark uses.
func reserveGoods(n int64) int64 { return goodsSeq.Add(n) - n + 1 }

// freshGoods stocks a goods id no other benchmark uses.
func freshGoods(b *testing.B, g *gorm.DB, stock int64) int64 {
	b.Helper()
	id := reserveGoods(1)
	testsvc.Stock(b, g, id, stock)
	return id
}

func newStrategy(b *testing.B, name string, g *gorm.DB) db.Strategy {
	b.Helper()
	var s db.Strategy
	var err error
	if name == "redis" {
		// Lock keys of its own: other benchmarks and tests share the Redis.
		s, err = db.NewStrategy(name, g, testsvc.Redis(b), db.Options{RedisPrefix: testsvc.Unique("sfbench:") + ":"})
	} else {
		s, err = db.NewStrategy(name, g, nil, db.Options{})
	}
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkDeduct is one order of one unit at a time on one hot goods: the
// cost of one transaction of each strategy with no contention (the worker
// decides a consumer's orders one after the other).
func BenchmarkDeduct(b *testing.B) {
	g := testsvc.Database(b, 16)
	ctx := context.Background()
	for _, name := range db.StrategyNames() {
		b.Run("hot/"+name, func(b *testing.B) {
			s := newStrategy(b, name, g)
			goods := freshGoods(b, g, hotStock)
			prefix := testsvc.Unique("d")
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				d, err := s.Deduct(ctx, events.OrderPlaced{OrderID: fmt.Sprintf("%s-%d", prefix, i), Lines: []events.Line{{GoodsID: goods, Num: 1}}})
				if err != nil || d.Status != db.StatusDeducted {
					b.Fatalf("order %d: %+v, %v", i, d, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
		})
	}
}

// BenchmarkDeductParallel is the same from 4 goroutines at once: the hot
// row's lock serialises them, so this approaches the row's limit plus each
// strategy's retries.
func BenchmarkDeductParallel(b *testing.B) {
	g := testsvc.Database(b, 32)
	ctx := context.Background()
	for _, workload := range []string{"hot", "spread"} {
		for _, name := range db.StrategyNames() {
			b.Run(workload+"/"+name, func(b *testing.B) {
				s := newStrategy(b, name, g)
				// hot: every order on one goods; spread: 1,000 goods, so
				// the 16 goroutines rarely meet on a row.
				first, n := freshGoods(b, g, hotStock), int64(1)
				if workload == "spread" {
					n = 1000
					first = reserveGoods(n)
					pairs := make([]int64, 0, 2*n)
					for i := range n {
						pairs = append(pairs, first+i, hotStock)
					}
					stockMany(b, g, pairs)
				}
				prefix := testsvc.Unique("p")
				var seq atomic.Int64
				b.SetParallelism(8) // 8 × GOMAXPROCS goroutines
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := seq.Add(1)
						o := events.OrderPlaced{OrderID: fmt.Sprintf("%s-%d", prefix, i), Lines: []events.Line{{GoodsID: first + i%n, Num: 1}}}
						for attempt := 1; ; attempt++ {
							d, err := s.Deduct(ctx, o)
							if err == nil && d.Status == db.StatusDeducted {
								break
							}
							// Under contention some strategies give up with a transient
							// error; the worker would retry the order, so do we.
							if err == nil || !db.Transient(err) || attempt == 100 {
								b.Errorf("order %s: %+v, %v", o.OrderID, d, err)
								return
							}
							time.Sleep(time.Millisecond)
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
			})
		}
	}
}

// BenchmarkDeductBatch is one db.Batch transaction of 256 one-unit orders, on
// one hot goods and spread over 10,000 goods: what the batch strategy costs
// per micro-batch, without Kafka.
func BenchmarkDeductBatch(b *testing.B) {
	const size = 256
	g := testsvc.Database(b, 16)
	ctx := context.Background()
	s := db.NewBatch(g, db.Options{})
	for _, c := range []struct {
		name  string
		goods int64 // goods ids used: base+1 .. base+goods
	}{{"hot-256", 1}, {"spread-256", 10_000}} {
		b.Run(c.name, func(b *testing.B) {
			base := reserveGoods(c.goods) - 1
			for start := int64(1); start <= c.goods; start += 1000 {
				var pairs []int64
				for id := start; id < start+1000 && id <= c.goods; id++ {
					pairs = append(pairs, base+id, hotStock)
				}
				stockMany(b, g, pairs)
			}
			prefix := testsvc.Unique("b")
			orders := make([]events.OrderPlaced, size)
			round := 0
			b.ReportAllocs()
			for b.Loop() {
				round++
				for i := range orders {
					goods := base + 1 + int64((round*size+i)%int(c.goods))
					orders[i] = events.OrderPlaced{OrderID: fmt.Sprintf("%s-%d-%d", prefix, round, i), Lines: []events.Line{{GoodsID: goods, Num: 1}}}
				}
				ds, err := s.DeductBatch(ctx, orders)
				if err != nil {
					b.Fatal(err)
				}
				if ds[size-1].Status != db.StatusDeducted {
					b.Fatalf("last order: %+v", ds[size-1])
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "orders/s")
		})
	}
}

// stockMany stocks goods, stocks pairs in one statement.
func stockMany(b *testing.B, g *gorm.DB, pairs []int64) {
	b.Helper()
	if len(pairs) == 0 {
		return
	}
	q := "INSERT INTO inventory (goods, stocks) VALUES "
	args := make([]any, 0, len(pairs))
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			q += ","
		}
		q += "(?,?)"
		args = append(args, pairs[i], pairs[i+1])
	}
	if err := g.Exec(q, args...).Error; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkHotRowUpdate is the db-limit reference of cmd/stockbench: the
// guarded UPDATE of one row in autocommit, sequential and from 4 goroutines.
func BenchmarkHotRowUpdate(b *testing.B) {
	g := testsvc.Database(b, 8)
	sqlDB, err := g.DB()
	if err != nil {
		b.Fatal(err)
	}
	const q = "UPDATE inventory SET stocks = stocks - 1 WHERE goods = ? AND stocks >= 1"
	b.Run("sequential", func(b *testing.B) {
		goods := freshGoods(b, g, hotStock)
		for b.Loop() {
			if _, err := sqlDB.Exec(q, goods); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
	b.Run("parallel-4", func(b *testing.B) {
		goods := freshGoods(b, g, hotStock)
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := sqlDB.Exec(q, goods); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
}
