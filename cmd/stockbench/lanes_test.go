package main

import (
	"io"
	"slices"
	"testing"
)

// The default lanes are resolved as stockworker resolves LANES=0
// (cmd/stockworker TestLanesDefaultToThePool): DB_MAX_OPEN / CONSUMERS, at
// least 1, and 1 for batch; seed-style is pinned to 1.
func TestDefaultLanesOf(t *testing.T) {
	for _, c := range []struct {
		name     string
		o        options
		strategy string
		want     int
	}{
		{"worker defaults 16 / 2", options{}, "atomic", 8},
		{"batch", options{}, "batch", 1},
		{"seed-style", options{}, seedStyle, 1},
		{"-db-max-open", options{DBMaxOpen: 5}, "pessimistic", 2},
		{"-db-max-open below CONSUMERS", options{DBMaxOpen: 1}, "optimistic", 1},
		{"CONSUMERS=1", options{WorkerEnv: []string{"CONSUMERS=1"}}, "redis", 16},
		{"CONSUMERS=3", options{WorkerEnv: []string{"CONSUMERS=3"}}, "mutex", 5},
		{"DB_MAX_OPEN in -worker-env wins", options{DBMaxOpen: 4, WorkerEnv: []string{"DB_MAX_OPEN=32"}}, "atomic", 16},
		{"batch with a big pool", options{DBMaxOpen: 64}, "batch", 1},
	} {
		if got := defaultLanesOf(c.o, c.strategy); got != c.want {
			t.Errorf("%s: defaultLanesOf(%s) = %d, want %d", c.name, c.strategy, got, c.want)
		}
	}
}

// A requested count and the default that come to the same number run once.
func TestLanesForDedup(t *testing.T) {
	for _, c := range []struct {
		lanes    []int
		o        options
		strategy string
		want     []lanesSetting
	}{
		{[]int{1, 0}, options{}, "atomic", []lanesSetting{{1, false}, {8, true}}},
		{[]int{1, 0}, options{}, "batch", []lanesSetting{{1, true}}},
		{[]int{1, 0}, options{}, seedStyle, []lanesSetting{{1, true}}},
		{[]int{4, 16}, options{}, seedStyle, []lanesSetting{{1, true}}},
		{[]int{1, 8, 0}, options{}, "pessimistic", []lanesSetting{{1, false}, {8, true}}},
		{[]int{16, 0}, options{}, "batch", []lanesSetting{{1, true}, {16, false}}},
		{[]int{1, 0}, options{DBMaxOpen: 2}, "optimistic", []lanesSetting{{1, true}}},
		{[]int{4}, options{}, "redis", []lanesSetting{{4, false}}},
	} {
		c.o.Lanes = c.lanes
		if got := lanesFor(c.o, c.strategy); !slices.Equal(got, c.want) {
			t.Errorf("lanesFor(-lanes %v, %s) = %v, want %v", c.lanes, c.strategy, got, c.want)
		}
	}
}

func specNames(b *bench) (run, skipped []string) {
	specs, sk := b.specs()
	for _, s := range specs {
		run = append(run, s.name())
	}
	for _, r := range sk {
		skipped = append(skipped, r.Name)
	}
	return run, skipped
}

// The full matrix: lanes=1 is the baseline with one worker process; batch
// and seed-style, whose default is 1, run once per worker count.
func TestSpecsLanes(t *testing.T) {
	o, err := parseOptions([]string{"-workloads", "hot", "-strategies", "seed-style,mutex,atomic,batch"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	run, skipped := specNames(&bench{o: o})
	want := []string{
		"seed-style/hot/1/lanes=1", "seed-style/hot/2/lanes=1",
		"mutex/hot/1/lanes=1", "mutex/hot/1/lanes=8",
		"atomic/hot/1/lanes=1", "atomic/hot/1/lanes=8", "atomic/hot/2/lanes=8",
		"batch/hot/1/lanes=1", "batch/hot/2/lanes=1",
	}
	if !slices.Equal(run, want) {
		t.Errorf("runs\n%v\nwant\n%v", run, want)
	}
	if !slices.Equal(skipped, []string{"mutex/hot/2/lanes=8"}) {
		t.Errorf("skipped %v", skipped)
	}
	specs, sk := (&bench{o: o}).specs()
	for _, s := range specs {
		if s.Lanes.Lanes == 1 && !s.Lanes.Default && s.Workers != 1 {
			t.Errorf("%s: the lanes=1 baseline with %d workers", s.name(), s.Workers)
		}
		if r := s.result(); r.Lanes != s.Lanes.Lanes || r.LanesDefault != s.Lanes.Default || r.Name != s.name() {
			t.Errorf("%s: result %+v", s.name(), r)
		}
	}
	if sk[0].Lanes != 8 || !sk[0].LanesDefault || sk[0].Skipped == "" {
		t.Errorf("skipped row %+v", sk[0])
	}
}

// Given alone, lanes=1 is not a baseline: it runs with every worker count.
func TestSpecsOneLaneOnly(t *testing.T) {
	o, err := parseOptions([]string{"-workloads", "spread", "-strategies", "pessimistic", "-lanes", "1"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	run, _ := specNames(&bench{o: o})
	if want := []string{"pessimistic/spread/1/lanes=1", "pessimistic/spread/2/lanes=1"}; !slices.Equal(run, want) {
		t.Errorf("runs %v, want %v", run, want)
	}
	o, err = parseOptions([]string{"-workloads", "spread", "-strategies", "pessimistic", "-lanes", "1,4"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	run, _ = specNames(&bench{o: o})
	if want := []string{"pessimistic/spread/1/lanes=1", "pessimistic/spread/1/lanes=4", "pessimistic/spread/2/lanes=4"}; !slices.Equal(run, want) {
		t.Errorf("runs %v, want %v", run, want)
	}
}

// -short keeps its six runs, each at the default lanes (1 for both).
func TestSpecsShort(t *testing.T) {
	o, err := parseOptions([]string{"-short"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	specs, skipped := (&bench{o: o}).specs()
	if len(specs) != 6 || len(skipped) != 0 {
		t.Fatalf("%d runs, %d skipped; want 6 and 0", len(specs), len(skipped))
	}
	for _, s := range specs {
		if s.Lanes != (lanesSetting{Lanes: 1, Default: true}) {
			t.Errorf("%s: lanes %+v", s.name(), s.Lanes)
		}
	}
}
