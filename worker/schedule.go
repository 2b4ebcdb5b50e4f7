package worker

import (
	"cmp"
	"container/heap"
	"context"
	"slices"
	"sync"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
)

// taskKind says what a fetched message is and so how it is decided.
type taskKind int

const (
	kindOrder       taskKind = iota // a valid order-placed: the strategy decides it
	kindInvalid                     // an order-placed that breaks the contract: rejected as invalid_order
	kindUndecodable                 // not an order at all: a dead letter, nothing to decide
	kindCancel                      // an order-cancelled: the ledger gives back what it deducted
)

// taskState is how far a task has come. The order matters: a later state
// implies every earlier one.
type taskState int

const (
	statePending   taskState = iota // admitted, waiting for its predecessors or a lane
	stateRunning                    // taken by a lane
	stateDecided                    // its decision is committed in the database
	statePublished                  // its answers are acknowledged (or it was parked)
)

// task is one fetched message on its way through a member's pipeline: fetch →
// schedule → decide → publish → commit.
type task struct {
	seq  uint64 // admission order; offset order within a partition
	msg  kafka.Message
	kind taskKind

	order   events.OrderPlaced   // kindOrder
	invalid *events.InvalidError // kindInvalid
	cause   error                // kindUndecodable
	orderID string               // every kind but kindUndecodable
	goods   []int64              // kindOrder: the goods it locks, ascending

	// Scheduling, guarded by the scheduler's mutex. A task may be decided once
	// every earlier task sharing one of its goods is decided (FIFO per goods:
	// who gets the last item is decided by arrival), and every earlier task of
	// its order id is published (its answers follow theirs).
	state       taskState
	preds       []dep
	waiting     int     // preds not yet in the state they need
	onDecided   []*task // successors waiting for this task to be decided
	onPublished []*task // successors waiting for this task to be published

	// Results, written by the lane that decides it and read by the publisher.
	answers []kafka.Message // outcome events (or the dead letter), in order
	decided []string        // order ids whose releases must follow these answers
	done    []func()        // metrics and logs, once the answers are acknowledged
	parked  bool            // its message went to the dead-letter topic instead
	offset  *offsetEntry    // its place in the commit tracker
}

// dep is one edge of the scheduling graph: t needs p to reach state need.
type dep struct {
	p    *task
	need taskState
}

// scheduler admits a member's tasks in offset order and hands them to lanes as
// soon as they may be decided. It holds at most window tasks that are not yet
// published; admit blocks while it is full.
type scheduler struct {
	mu     sync.Mutex
	window int
	seq    uint64
	live   int              // admitted, not yet published
	ready  []*task          // may be decided now, in admission order
	goods  map[int64]*task  // last admitted task naming each goods, while not decided
	orders map[string]*task // last admitted task of each order id, while not published
	wake   chan struct{}    // a lane may find work (buffered 1)
	room   chan struct{}    // admit may find room (buffered 1)
	closed bool
}

func newScheduler(window int) *scheduler {
	return &scheduler{window: window, goods: map[int64]*task{}, orders: map[string]*task{},
		wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// admit adds t behind every task admitted before it, blocking while the
// window is full. It returns ctx's error if ctx ends first.
func (s *scheduler) admit(ctx context.Context, t *task) error {
	for {
		s.mu.Lock()
		if s.live < s.window {
			break
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.room:
		}
	}
	defer s.mu.Unlock()
	s.seq++
	t.seq = s.seq
	s.live++
	add := func(p *task, need taskState) {
		if p == nil || p.state >= need {
			return
		}
		t.preds = append(t.preds, dep{p, need})
		t.waiting++
		if need == stateDecided {
			p.onDecided = append(p.onDecided, t)
		} else {
			p.onPublished = append(p.onPublished, t)
		}
	}
	for _, g := range t.goods {
		add(s.goods[g], stateDecided)
		s.goods[g] = t
	}
	if t.orderID != "" {
		add(s.orders[t.orderID], statePublished)
		s.orders[t.orderID] = t
	}
	if t.waiting == 0 {
		s.ready = append(s.ready, t)
		signal(s.wake)
	}
	return nil
}

// take returns the next work for a lane, blocking until there is some or ctx
// ends (nil then). With group > 1, a run of valid orders is returned: the
// ready ones first, then, in admission order, every later order whose
// predecessors are all decided or in the run — the chain of orders on one hot
// goods becomes one transaction of the batch strategy instead of a queue of
// transactions fighting over its row lock. Other kinds come alone.
func (s *scheduler) take(ctx context.Context, group int) []*task {
	for {
		s.mu.Lock()
		if len(s.ready) > 0 {
			run := s.takeLocked(group)
			more := len(s.ready) > 0
			s.mu.Unlock()
			if more {
				signal(s.wake) // another lane may take the rest
			}
			return run
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		}
	}
}

func (s *scheduler) takeLocked(group int) []*task {
	first := s.ready[0]
	if group <= 1 || first.kind != kindOrder {
		s.ready = s.ready[1:]
		first.state = stateRunning
		return []*task{first}
	}
	in := map[*task]bool{}
	var run []*task
	rest := s.ready[:0]
	for _, t := range s.ready {
		if t.kind == kindOrder && len(run) < group {
			in[t] = true
			run = append(run, t)
			t.state = stateRunning
		} else {
			rest = append(rest, t)
		}
	}
	s.ready = rest
	// Extend with successors whose every predecessor is satisfied or in the
	// run, smallest admission number first, so the run stays in offset order
	// per goods.
	var cand taskHeap
	seen := map[*task]bool{}
	push := func(t *task) {
		for _, n := range append(t.onDecided, t.onPublished...) {
			if !seen[n] && n.state == statePending && n.kind == kindOrder {
				seen[n] = true
				heap.Push(&cand, n)
			}
		}
	}
	for _, t := range run {
		push(t)
	}
	for cand.Len() > 0 && len(run) < group {
		n := heap.Pop(&cand).(*task)
		ok := true
		for _, d := range n.preds {
			if d.p.state < d.need && !in[d.p] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		in[n] = true
		n.state = stateRunning
		run = append(run, n)
		push(n)
	}
	// The run is decided in admission order.
	sortBySeq(run)
	return run
}

// decided records that t's decision is committed: successors waiting only for
// that may be taken.
func (s *scheduler) decided(t *task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(t, stateDecided)
}

// published records that t's answers are acknowledged (or it was parked): it
// leaves the window.
func (s *scheduler) published(t *task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.state < stateDecided {
		s.advance(t, stateDecided)
	}
	s.advance(t, statePublished)
	s.live--
	signal(s.room)
}

func (s *scheduler) advance(t *task, to taskState) {
	t.state = to
	var next []*task
	if to == stateDecided {
		next, t.onDecided = t.onDecided, nil
		for _, g := range t.goods {
			if s.goods[g] == t {
				delete(s.goods, g)
			}
		}
	} else {
		next, t.onPublished = t.onPublished, nil
		if s.orders[t.orderID] == t {
			delete(s.orders, t.orderID)
		}
	}
	woke := false
	for _, n := range next {
		// A successor taken into a batch run is already running: nothing to release.
		if n.waiting--; n.waiting == 0 && n.state == statePending {
			s.insertReady(n)
			woke = true
		}
	}
	if woke {
		signal(s.wake)
	}
}

// insertReady keeps ready in admission order, so older work goes first.
func (s *scheduler) insertReady(t *task) {
	i := len(s.ready)
	for i > 0 && s.ready[i-1].seq > t.seq {
		i--
	}
	s.ready = append(s.ready, nil)
	copy(s.ready[i+1:], s.ready[i:])
	s.ready[i] = t
}

// idle reports whether every admitted task is published.
func (s *scheduler) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live == 0
}

type taskHeap []*task

func (h taskHeap) Len() int           { return len(h) }
func (h taskHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h taskHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *taskHeap) Push(x any)        { *h = append(*h, x.(*task)) }
func (h *taskHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

func sortBySeq(ts []*task) {
	slices.SortFunc(ts, func(a, b *task) int { return cmp.Compare(a.seq, b.seq) })
}
