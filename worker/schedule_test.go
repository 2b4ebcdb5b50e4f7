package worker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

func orderTask(id string, goods ...int64) *task {
	return &task{kind: kindOrder, orderID: id, goods: goods}
}

func ids(ts []*task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.orderID)
	}
	return out
}

// takeNow takes without blocking (nil when nothing is ready).
func takeNow(s *scheduler, group int) []*task {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	return s.take(ctx, group)
}

func admit(t *testing.T, s *scheduler, ts ...*task) {
	t.Helper()
	for _, x := range ts {
		if err := s.admit(context.Background(), x); err != nil {
			t.Fatal(err)
		}
	}
}

// Orders on different goods are ready at once; orders sharing a goods wait
// for the earlier one to be decided, in offset order; a multi-item order waits
// for every earlier order sharing any of its goods.
func TestSchedulerOrdersPerGoods(t *testing.T) {
	s := newScheduler(100)
	a, b, c, d := orderTask("a", 1), orderTask("b", 2), orderTask("c", 1), orderTask("d", 1, 2)
	admit(t, s, a, b, c, d)
	var got []string
	for w := takeNow(s, 1); w != nil; w = takeNow(s, 1) {
		got = append(got, ids(w)...)
	}
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("ready at first: %v, want a and b", got)
	}
	s.decided(a)
	if w := takeNow(s, 1); !slices.Equal(ids(w), []string{"c"}) {
		t.Fatalf("after a: %v, want c", ids(w))
	}
	s.decided(b)
	if w := takeNow(s, 1); w != nil {
		t.Fatalf("d ran before c was decided: %v", ids(w))
	}
	s.decided(c)
	if w := takeNow(s, 1); !slices.Equal(ids(w), []string{"d"}) {
		t.Fatalf("after c: %v, want d", ids(w))
	}
}

// An order's later events wait until its earlier answers are published, not
// just decided, so they reach the outcome topic in order.
func TestSchedulerOrdersPerOrderIDUntilPublished(t *testing.T) {
	s := newScheduler(100)
	placed := orderTask("X", 1)
	cancel := &task{kind: kindCancel, orderID: "X"}
	other := orderTask("Y", 1)
	admit(t, s, placed, cancel, other)
	if w := takeNow(s, 1); !slices.Equal(ids(w), []string{"X"}) {
		t.Fatalf("first: %v", ids(w))
	}
	s.decided(placed)
	if w := takeNow(s, 1); !slices.Equal(ids(w), []string{"Y"}) {
		t.Fatalf("after X decided: %v, want only Y (the cancel waits for X's answer)", ids(w))
	}
	s.published(placed)
	if w := takeNow(s, 1); len(w) != 1 || w[0] != cancel {
		t.Fatalf("after X published: %v, want the cancel", ids(w))
	}
}

// A batch strategy gets the whole chain of one hot goods in one run, in
// offset order, with the ready orders on other goods.
func TestSchedulerRunsAChainInOneTransaction(t *testing.T) {
	s := newScheduler(100)
	var all []*task
	for i := range 10 {
		all = append(all, orderTask(string(rune('a'+i)), 7))
	}
	side := orderTask("z", 9)
	multi := orderTask("m", 7, 8)
	admit(t, s, all...)
	admit(t, s, side, multi)
	run := takeNow(s, 100)
	want := append(ids(all), "z", "m")
	if !slices.Equal(ids(run), want) {
		t.Fatalf("run = %v, want %v", ids(run), want)
	}
	if w := takeNow(s, 100); w != nil {
		t.Fatalf("more work while the run is running: %v", ids(w))
	}
	// A run is bounded.
	s2 := newScheduler(100)
	admit(t, s2, orderTask("a", 1), orderTask("b", 1), orderTask("c", 1))
	if run := takeNow(s2, 2); !slices.Equal(ids(run), []string{"a", "b"}) {
		t.Fatalf("bounded run = %v", ids(run))
	}
}

// The window bounds what is held: admit blocks until something is published.
func TestSchedulerWindow(t *testing.T) {
	s := newScheduler(2)
	a, b := orderTask("a", 1), orderTask("b", 2)
	admit(t, s, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := s.admit(ctx, orderTask("c", 3)); err == nil {
		t.Fatal("admitted past the window")
	}
	done := make(chan error, 1)
	go func() { done <- s.admit(context.Background(), orderTask("d", 4)) }()
	s.published(a)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("admit did not resume after a task left the window")
	}
	if s.idle() {
		t.Fatal("idle with tasks in hand")
	}
}

func TestOffsetsCommitUpToTheFirstUnsettled(t *testing.T) {
	o := newOffsets()
	msg := func(p int, off int64) kafka.Message { return kafka.Message{Topic: "t", Partition: p, Offset: off} }
	e := map[int64]*offsetEntry{}
	for off := int64(10); off < 14; off++ {
		e[off] = o.fetched(msg(0, off))
	}
	other := o.fetched(msg(1, 5))
	if o.settled(msg(0, 12), e[12]) || len(o.pending()) != 0 {
		t.Fatal("committable past an unsettled offset")
	}
	if !o.settled(msg(0, 10), e[10]) {
		t.Fatal("settling the head did not advance")
	}
	if p := o.pending(); len(p) != 1 || p[0].Offset != 10 {
		t.Fatalf("pending = %+v, want partition 0 at 10 (commits 11)", p)
	}
	o.settled(msg(0, 11), e[11])
	o.settled(msg(1, 5), other)
	p := o.pending()
	slices.SortFunc(p, func(a, b kafka.Message) int { return a.Partition - b.Partition })
	if len(p) != 2 || p[0].Offset != 12 || p[1].Offset != 5 {
		t.Fatalf("pending = %+v, want 0@12 (10..12 settled) and 1@5", p)
	}
	o.committed(p)
	if len(o.pending()) != 0 {
		t.Fatal("pending after commit")
	}
	// Offsets fetched again after a rebalance never move the commit back.
	again := o.fetched(msg(0, 11))
	o.settled(msg(0, 11), again)
	if len(o.pending()) != 0 {
		t.Fatal("a re-fetched lower offset made a commit pending")
	}
}
