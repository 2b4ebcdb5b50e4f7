package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/events"
)

var fixedTime = time.Date(2026, 11, 25, 22, 31, 5, 0, time.UTC)

func TestFormatOutcome(t *testing.T) {
	lines := []events.Line{{GoodsID: 16, Num: 1}, {GoodsID: 17, Num: 2}}
	tests := []struct {
		name string
		in   events.Outcome
		want string
	}{
		{"deducted", events.Deducted("A1001", lines, fixedTime),
			"22:31:05  A1001  stock-deducted   16×1 17×2"},
		{"rejected", events.Rejected("A1002", events.ReasonInsufficientStock, lines[:1], nil, fixedTime),
			"22:31:05  A1002  stock-rejected   insufficient_stock  16×1 (available 0)"},
		{"rejected, several lines", events.Rejected("A1003", events.ReasonInsufficientStock, lines, map[int64]int64{16: 4}, fixedTime),
			"22:31:05  A1003  stock-rejected   insufficient_stock  16×1 (available 4) 17×2 (available 0)"},
		{"unknown goods", events.Rejected("A1004", events.ReasonUnknownGoods, []events.Line{{GoodsID: 99, Num: 1}}, nil, fixedTime),
			"22:31:05  A1004  stock-rejected   unknown_goods  99×1 (available 0)"},
		{"invalid, no readable line", events.Rejected("A1005", events.ReasonInvalidOrder, nil, nil, fixedTime),
			"22:31:05  A1005  stock-rejected   invalid_order"},
		{"released", events.Released("A1001", lines, fixedTime),
			"22:31:05  A1001  stock-released   16×1 17×2"},
		{"no time, no type", events.Outcome{OrderID: "X"},
			"--:--:--  X  (no type)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatOutcome(tt.in, time.UTC); got != tt.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestFormatOutcomeUsesTheLocation(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	got := formatOutcome(events.Deducted("A1", []events.Line{{GoodsID: 1, Num: 1}}, fixedTime), cet)
	if !strings.HasPrefix(got, "23:31:05  A1") {
		t.Fatalf("got %q", got)
	}
}

func TestFormatOutcomeOfADecodedEvent(t *testing.T) {
	// What watch sees: the bytes a worker published.
	b, err := events.Rejected("A7", events.ReasonInsufficientStock, []events.Line{{GoodsID: 16, Num: 3}}, map[int64]int64{16: 2}, fixedTime).Encode()
	if err != nil {
		t.Fatal(err)
	}
	o, err := events.DecodeOutcome(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := formatOutcome(o, time.UTC), "22:31:05  A7  stock-rejected   insufficient_stock  16×3 (available 2)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestProgressBar(t *testing.T) {
	got := progressBar(512, 1000, 2*time.Second)
	want := "[###############               ] 512/1000 orders  256/s"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if got := progressBar(1000, 1000, time.Second); !strings.HasPrefix(got, "["+strings.Repeat("#", 30)+"]") {
		t.Fatalf("full bar %q", got)
	}
}
