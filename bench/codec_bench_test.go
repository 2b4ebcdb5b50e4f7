package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/stockflow/stockflow/events"
)

var (
	oneLine    = []byte(`{"order_id":"t-000123","items":[{"goods_id":16,"num":1}]}`)
	threeLines = []byte(`{"order_id":"t-000123","items":[{"goods_id":42,"num":1},{"goods_id":7,"num":2},{"goods_id":99,"num":1}],"placed_at":"2026-11-25T20:00:00Z"}`)
	sink       any
)

func BenchmarkDecodeOrderPlaced(b *testing.B) {
	for _, c := range []struct {
		name string
		msg  []byte
	}{{"1-line", oneLine}, {"3-lines", threeLines}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.msg)))
			for b.Loop() {
				o, err := events.DecodeOrderPlaced(c.msg)
				if err != nil {
					b.Fatal(err)
				}
				sink = o
			}
		})
	}
}

func BenchmarkEncodeOrderPlaced(b *testing.B) {
	o := events.OrderPlaced{OrderID: "t-000123", Lines: []events.Line{{GoodsID: 7, Num: 2}, {GoodsID: 42, Num: 1}, {GoodsID: 99, Num: 1}}}
	b.ReportAllocs()
	for b.Loop() {
		v, err := events.EncodeOrderPlaced(o)
		if err != nil {
			b.Fatal(err)
		}
		sink = v
	}
}

func BenchmarkEncodeOutcome(b *testing.B) {
	lines := []events.Line{{GoodsID: 7, Num: 2}, {GoodsID: 42, Num: 1}, {GoodsID: 99, Num: 1}}
	at := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name  string
		build func(id string) events.Outcome
	}{
		{"deducted", func(id string) events.Outcome { return events.Deducted(id, lines, at) }},
		{"rejected", func(id string) events.Outcome {
			return events.Rejected(id, events.ReasonInsufficientStock, lines, map[int64]int64{7: 1, 42: 0}, at)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				v, err := c.build(fmt.Sprint("t-", i)).Encode()
				if err != nil {
					b.Fatal(err)
				}
				sink = v
			}
		})
	}
}

func BenchmarkDecodeOutcome(b *testing.B) {
	v, err := events.Deducted("t-000123", []events.Line{{GoodsID: 16, Num: 1}}, time.Now()).Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		o, err := events.DecodeOutcome(v)
		if err != nil {
			b.Fatal(err)
		}
		sink = o
	}
}
