package main

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var hundred []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	orig := slices.Clone(hundred)
	cases := []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample p50", []time.Duration{7}, 50, 7},
		{"one sample p99", []time.Duration{7}, 99, 7},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"tiny p is the min", hundred, 0.001, time.Millisecond},
		{"p50 of 4 is the 2nd", []time.Duration{40, 10, 30, 20}, 50, 20},
		{"p99 of 4 is the max", []time.Duration{40, 10, 30, 20}, 99, 40},
		{"p75 of 4 is the 3rd", []time.Duration{40, 10, 30, 20}, 75, 30},
	}
	for _, c := range cases {
		if got := percentile(c.samples, c.p); got != c.want {
			t.Errorf("%s: percentile(p%v) = %v, want %v", c.name, c.p, got, c.want)
		}
	}
	if !slices.Equal(hundred, orig) {
		t.Error("percentile sorted its input in place")
	}
}

func TestRatio(t *testing.T) {
	if r := ratio(20000, 2000); r == nil || *r != 10 {
		t.Errorf("ratio(20000, 2000) = %v, want 10", r)
	}
	for _, c := range [][2]float64{{0, 5}, {5, 0}, {-1, 5}, {math.NaN(), 1}, {1, math.Inf(1)}} {
		if r := ratio(c[0], c[1]); r != nil {
			t.Errorf("ratio(%v, %v) = %v, want nil (not a number to print)", c[0], c[1], *r)
		}
	}
	if got := fmtRatio(nil); got != "-" {
		t.Errorf("fmtRatio(nil) = %q", got)
	}
	for v, want := range map[float64]string{0.043: "0.04×", 9.87: "9.87×", 12.34: "12.3×", 123.4: "123×"} {
		if got := fmtRatio(&v); got != want {
			t.Errorf("fmtRatio(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestComputeRatios(t *testing.T) {
	res := &results{
		DBLimit: &dbLimitResult{UpdatesPerS: 10000, Correct: true},
		Runs: []*runResult{
			{Strategy: seedStyle, Workload: "hot", Workers: 1, OrdersPerS: 200, Correct: true},
			{Strategy: "batch", Workload: "hot", Workers: 1, OrdersPerS: 25000, Correct: true},
			{Strategy: "batch", Workload: "hot", Workers: 2, OrdersPerS: 30000, Correct: true}, // no seed-style/hot/2
			{Strategy: "atomic", Workload: "hot", Workers: 1, OrdersPerS: 2000, Correct: false},
		},
	}
	computeRatios(res)
	b1, b2, bad := res.Runs[1], res.Runs[2], res.Runs[3]
	if b1.VsSeedStyle == nil || *b1.VsSeedStyle != 125 || b1.VsDBLimit == nil || *b1.VsDBLimit != 2.5 {
		t.Errorf("batch/hot/1 ratios = %v, %v; want 125 and 2.5", b1.VsSeedStyle, b1.VsDBLimit)
	}
	if b2.VsSeedStyle != nil || b2.VsDBLimit == nil || *b2.VsDBLimit != 3 {
		t.Errorf("batch/hot/2 ratios = %v, %v; want none and 3", b2.VsSeedStyle, b2.VsDBLimit)
	}
	if bad.VsSeedStyle != nil || bad.VsDBLimit != nil {
		t.Error("a failed run got ratios")
	}
	if s := res.Runs[0]; s.VsSeedStyle == nil || *s.VsSeedStyle != 1 {
		t.Errorf("seed-style's ratio to itself = %v, want 1", s.VsSeedStyle)
	}
}
