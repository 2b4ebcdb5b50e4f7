package worker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/producer"
	"github.com/stockflow/stockflow/worker"
	"go.uber.org/zap/zaptest"
)

// These tests run the worker loop in-process against fakes of its four
// dependencies (Reader, Deductor, Ledger, Publisher), to pin down what the
// real services make hard to provoke on demand: which failures commit, which
// park, what readiness says meanwhile, and what a cancel drains. goleak
// (TestMain) checks that every goroutine ends.

// fakeReader serves msgs (one partition) to one member and records commits.
type fakeReader struct {
	mu        sync.Mutex
	msgs      []kafka.Message
	next      int
	committed int64 // offset after the highest committed message; -1 none
	commits   int
	closed    bool
	more      chan struct{}
}

func newFakeReader(values ...string) *fakeReader {
	r := &fakeReader{committed: -1, more: make(chan struct{}, 1)}
	r.add(values...)
	return r
}

func (r *fakeReader) add(values ...string) {
	r.mu.Lock()
	for _, v := range values {
		r.msgs = append(r.msgs, kafka.Message{Topic: "orders", Partition: 0, Offset: int64(len(r.msgs)),
			Key: []byte("k" + strconv.Itoa(len(r.msgs))), Value: []byte(v), HighWaterMark: int64(len(r.msgs) + 1)})
	}
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
}

func (r *fakeReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	for {
		r.mu.Lock()
		if r.next < len(r.msgs) {
			m := r.msgs[r.next]
			r.next++
			r.mu.Unlock()
			return m, nil
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return kafka.Message{}, ctx.Err()
		case <-r.more:
		}
	}
}

func (r *fakeReader) CommitMessages(_ context.Context, msgs ...kafka.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		r.committed = max(r.committed, m.Offset+1)
	}
	r.commits++
	return nil
}

func (r *fakeReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func (r *fakeReader) committedOffset() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.committed
}

// fakeDeductor decides by calling decide, which the test sets.
type fakeDeductor struct {
	decide func(ctx context.Context, o events.OrderPlaced) (worker.Decision, error)
}

func (d *fakeDeductor) Deduct(ctx context.Context, o events.OrderPlaced) (worker.Decision, error) {
	return d.decide(ctx, o)
}

func deducted(o events.OrderPlaced) worker.Decision {
	b, _ := events.Deducted(o.OrderID, o.Lines, time.Unix(0, 0)).Encode()
	return worker.Decision{OrderID: o.OrderID, Type: events.TypeDeducted, Payload: b}
}

// fakeLedger records rejections and answers cancels with a release of nothing.
type fakeLedger struct {
	mu        sync.Mutex
	cancelled map[string][]byte
}

func (l *fakeLedger) Reject(_ context.Context, orderID, reason string, lines []events.Line, total int) (worker.Decision, error) {
	b, _ := events.Rejected(orderID, reason, lines, nil, time.Unix(0, 0)).WithItemsTotal(total).Encode()
	return worker.Decision{OrderID: orderID, Type: events.TypeRejected, Reason: reason, Payload: b}, nil
}

func (l *fakeLedger) Cancel(_ context.Context, orderID string) (worker.Cancellation, error) {
	b, _ := events.Released(orderID, nil, time.Unix(0, 0)).Encode()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancelled == nil {
		l.cancelled = map[string][]byte{}
	}
	l.cancelled[orderID] = b
	return worker.Cancellation{OrderID: orderID, Result: "nothing", Events: []worker.Event{{Type: events.TypeReleased, Payload: b}}}, nil
}

func (l *fakeLedger) Released(_ context.Context, ids []string) (map[string][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]byte{}
	for _, id := range ids {
		if b, ok := l.cancelled[id]; ok {
			out[id] = b
		}
	}
	return out, nil
}

// fakePublisher records what it publishes; fail, when set, decides per call.
type fakePublisher struct {
	mu   sync.Mutex
	msgs []kafka.Message
	fail func(msgs []kafka.Message) error
}

// Publish records msgs unless fail refuses them. A kafka.WriteErrors from fail
// is a partial write, as kafka-go's writer reports one: the messages without
// an error are recorded.
func (p *fakePublisher) Publish(_ context.Context, msgs ...kafka.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		if err := p.fail(msgs); err != nil {
			var werrs kafka.WriteErrors
			if errors.As(err, &werrs) && len(werrs) == len(msgs) {
				for i, e := range werrs {
					if e == nil {
						p.msgs = append(p.msgs, msgs[i])
					}
				}
			}
			return err
		}
	}
	p.msgs = append(p.msgs, msgs...)
	return nil
}

func (p *fakePublisher) published() []kafka.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]kafka.Message(nil), p.msgs...)
}

// loop is one in-process worker over the fakes.
type loop struct {
	t       *testing.T
	r       *fakeReader
	d       *fakeDeductor
	l       *fakeLedger
	p       *fakePublisher
	pub     worker.Publisher // when set, what the worker publishes with (wrapping p)
	w       *worker.Worker
	reg     *prometheus.Registry
	cfg     worker.Config
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

func newLoop(t *testing.T, r *fakeReader) *loop {
	return &loop{t: t, r: r, l: &fakeLedger{}, p: &fakePublisher{},
		d: &fakeDeductor{decide: func(_ context.Context, o events.OrderPlaced) (worker.Decision, error) { return deducted(o), nil }},
		cfg: worker.Config{Brokers: []string{"fake:9092"}, GroupID: "g", OrdersTopic: "orders", CancelledTopic: "cancels",
			EventsTopic: "events", DLQTopic: "dlq", MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Transient: db.Transient,
			BatchSize: 64, BatchWait: 2 * time.Millisecond, PoisonAttempts: 3, DrainTimeout: 2 * time.Second}}
}

func (lp *loop) start() {
	lp.t.Helper()
	lp.reg = prometheus.NewRegistry()
	lp.cfg.Metrics = worker.NewMetrics(lp.reg)
	if lp.cfg.OpenReader == nil {
		lp.cfg.OpenReader = func(kafka.ReaderConfig) worker.Reader { return lp.r }
	}
	var pub worker.Publisher = lp.p
	if lp.pub != nil {
		pub = lp.pub
	}
	w, err := worker.New(lp.cfg, lp.d, lp.l, pub, zaptest.NewLogger(lp.t))
	if err != nil {
		lp.t.Fatal(err)
	}
	lp.w = w
	ctx, cancel := context.WithCancel(context.Background())
	lp.cancel, lp.done = cancel, make(chan error, 1)
	go func() { lp.done <- w.Run(ctx) }()
	lp.t.Cleanup(lp.stop)
}

// stop cancels Run and requires it to return nil within 10s.
func (lp *loop) stop() {
	lp.t.Helper()
	if lp.stopped {
		return
	}
	lp.stopped = true
	lp.cancel()
	select {
	case err := <-lp.done:
		if err != nil {
			lp.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		lp.t.Fatal("Run did not return within 10s of cancel")
	}
}

// eventually polls cond every millisecond for at most 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func orderJSON(id string) string {
	return fmt.Sprintf(`{"order_id":%q,"items":[{"goods_id":1,"num":1}]}`, id)
}

func byTopic(msgs []kafka.Message, topic string) []kafka.Message {
	var out []kafka.Message
	for _, m := range msgs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

var errTooLong = &mysql.MySQLError{Number: 1406, Message: "Data too long for column 'items'"}

func TestPublishFailureCommitsNothing(t *testing.T) {
	r := newFakeReader(orderJSON("A"), orderJSON("B"))
	lp := newLoop(t, r)
	var calls int
	var mu sync.Mutex
	lp.p.fail = func([]kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return fmt.Errorf("dial: %w", kafka.LeaderNotAvailable) // a cluster fault: transient
	}
	lp.start()
	eventually(t, "several publish attempts", func() bool { mu.Lock(); defer mu.Unlock(); return calls >= 5 })
	if lp.w.Ready() == nil {
		t.Error("ready while every publish fails")
	}
	lp.stop()
	if c := r.committedOffset(); c != -1 {
		t.Fatalf("committed up to %d although no answer was published", c)
	}
	if dlq := byTopic(lp.p.published(), "dlq"); len(dlq) != 0 {
		t.Fatalf("an outage moved %d messages to the DLQ", len(dlq))
	}
	if got := metricValue(t, lp.reg, "stockflow_batch_retries_total", map[string]string{"transient": "true"}); got < 5 {
		t.Errorf("transient retries counted %v", got)
	}
}

// A partition of the events topic without a leader holds up only the answers
// bound for it: kafka-go reports which messages failed, the others' tasks are
// completed, and answers decided while the failed ones wait go out as they
// come. The held answer's offset (and so everything after it on its source
// partition) is committed only once it is published.
func TestAnswersFlowWhileOnePartitionHasNoLeader(t *testing.T) {
	r := newFakeReader(orderJSON("a"), orderJSON("b"), orderJSON("c"))
	lp := newLoop(t, r)
	var mu sync.Mutex
	down, failures := true, 0
	lp.p.fail = func(msgs []kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if !down {
			return nil
		}
		werrs := make(kafka.WriteErrors, len(msgs))
		failed := false
		for i, m := range msgs {
			if string(m.Key) == "a" {
				werrs[i], failed = kafka.NotLeaderForPartition, true
			}
		}
		if !failed {
			return nil
		}
		failures++
		return werrs
	}
	published := func(id string) bool {
		return slices.ContainsFunc(byTopic(lp.p.published(), "events"), func(m kafka.Message) bool { return string(m.Key) == id })
	}
	lp.start()
	eventually(t, "b and c answered while a's partition has no leader", func() bool { return published("b") && published("c") })
	eventually(t, "a's answer retried", func() bool { mu.Lock(); defer mu.Unlock(); return failures >= 3 })
	r.add(orderJSON("d"))
	eventually(t, "d answered while a's partition has no leader", func() bool { return published("d") })
	if published("a") {
		t.Fatal("a published while its partition had no leader")
	}
	if c := r.committedOffset(); c != -1 {
		t.Fatalf("committed up to %d while the answer at offset 0 was not published", c)
	}
	if lp.w.Ready() == nil {
		t.Error("ready while an answer cannot be published")
	}
	mu.Lock()
	down = false
	mu.Unlock()
	eventually(t, "all committed once a's partition has a leader", func() bool { return r.committedOffset() == 4 })
	if !published("a") {
		t.Fatal("a committed but never published")
	}
	eventually(t, "ready again", func() bool { return lp.w.Ready() == nil })
	if dlq := byTopic(lp.p.published(), "dlq"); len(dlq) != 0 {
		t.Fatalf("a leader election moved %d messages to the DLQ", len(dlq))
	}
	// What was written is not written again: only a's answer was retried.
	for _, id := range []string{"a", "b", "c", "d"} {
		n := 0
		for _, m := range byTopic(lp.p.published(), "events") {
			if string(m.Key) == id {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s's answer published %d times, want once", id, n)
		}
	}
}

// partitionedPublisher is a fakePublisher that tells partitions, as
// producer.Publisher does: keys in zero go to partition 0, the rest to 1.
type partitionedPublisher struct {
	*fakePublisher
	zero map[string]bool
}

func (p partitionedPublisher) Partition(m kafka.Message) (int, bool) {
	if p.zero[string(m.Key)] {
		return 0, true
	}
	return 1, true
}

// With a publisher that tells partitions, an answer decided while answers of
// its partition are held joins them without a write of its own (a write that
// carried it would wait for that partition), and goes out with them.
func TestAnswersForAHeldPartitionWaitWithoutAWrite(t *testing.T) {
	r := newFakeReader(orderJSON("a"), orderJSON("b"))
	lp := newLoop(t, r)
	pp := partitionedPublisher{fakePublisher: lp.p, zero: map[string]bool{"a": true, "e": true}}
	var mu sync.Mutex
	down := true
	var writes [][]string // the answer keys of every write while a's partition is down
	lp.p.fail = func(msgs []kafka.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if !down {
			return nil
		}
		var keys []string
		werrs := make(kafka.WriteErrors, len(msgs))
		failed := false
		for i, m := range msgs {
			keys = append(keys, string(m.Key))
			if p, _ := pp.Partition(m); p == 0 {
				werrs[i], failed = kafka.NotLeaderForPartition, true
			}
		}
		writes = append(writes, keys)
		if !failed {
			return nil
		}
		return werrs
	}
	lp.pub = pp
	lp.start()
	answered := func(id string) bool {
		return slices.ContainsFunc(byTopic(lp.p.published(), "events"), func(m kafka.Message) bool { return string(m.Key) == id })
	}
	eventually(t, "b answered while a's partition has no leader", func() bool { return answered("b") })
	// e is bound for a's partition, d for the other.
	r.add(orderJSON("e"), orderJSON("d"))
	eventually(t, "d answered", func() bool { return answered("d") })
	eventually(t, "e tried with a", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(writes, func(keys []string) bool { return slices.Contains(keys, "e") })
	})
	mu.Lock()
	for _, keys := range writes {
		if slices.Contains(keys, "e") && !slices.Contains(keys, "a") {
			t.Errorf("a write carried e without the held a: %v", keys)
		}
	}
	down = false
	mu.Unlock()
	eventually(t, "all committed", func() bool { return r.committedOffset() == 4 })
	if !answered("a") || !answered("e") {
		t.Fatal("a or e committed without its answer")
	}
}

// One order the database refuses on every attempt (1406) is found by
// splitting, parked with its error and attempts, and the rest is answered and
// committed; readiness comes back.
func TestPoisonMessageIsParkedAndThePartitionMovesOn(t *testing.T) {
	values := []string{orderJSON("a"), orderJSON("b"), orderJSON("poison"), `not json`, orderJSON("c"), orderJSON("d")}
	r := newFakeReader(values...)
	lp := newLoop(t, r)
	var mu sync.Mutex
	attempts := 0
	lp.d.decide = func(_ context.Context, o events.OrderPlaced) (worker.Decision, error) {
		if o.OrderID == "poison" {
			mu.Lock()
			attempts++
			mu.Unlock()
			return worker.Decision{}, fmt.Errorf("write ledger: %w", errTooLong)
		}
		return deducted(o), nil
	}
	var readiness []bool
	lp.start()
	eventually(t, "the whole partition committed", func() bool {
		readiness = append(readiness, lp.w.Ready() == nil)
		return r.committedOffset() == int64(len(values))
	})
	out := lp.p.published()
	dlq := byTopic(out, "dlq")
	if len(dlq) != 2 {
		t.Fatalf("dead letters = %d, want the poison and the garbage", len(dlq))
	}
	var parked kafka.Message
	for _, m := range dlq {
		if kind, _ := producer.Header(m, producer.HeaderKind); kind == producer.KindPoison {
			parked = m
		}
	}
	if string(parked.Value) != orderJSON("poison") || string(parked.Key) != "k2" {
		t.Fatalf("parked %q (key %q), want the poison order", parked.Value, parked.Key)
	}
	if e, _ := producer.Header(parked, producer.HeaderError); e == "" || !strings.Contains(e, "1406") {
		t.Errorf("error header %q does not carry the cause", e)
	}
	if a, _ := producer.Header(parked, producer.HeaderAttempts); a != "4" {
		t.Errorf("attempts header %q, want 4 (PoisonAttempts, then one more once the services answered)", a)
	}
	if o, _ := producer.Header(parked, producer.HeaderSourceOffset); o != "2" {
		t.Errorf("source-offset %q, want 2", o)
	}
	answered := map[string]bool{}
	for _, m := range byTopic(out, "events") {
		answered[string(m.Key)] = true
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		if !answered[id] {
			t.Errorf("order %s not answered", id)
		}
	}
	if answered["poison"] {
		t.Error("the poison order was answered")
	}
	if lp.w.Ready() != nil {
		t.Errorf("not ready after parking: %v", lp.w.Ready())
	}
	if !strings.Contains(fmt.Sprint(readiness), "false") {
		t.Error("readiness never dropped while the poison was retried")
	}
	if got := metricValue(t, lp.reg, "stockflow_poison_total", map[string]string{"topic": "orders"}); got != 1 {
		t.Errorf("stockflow_poison_total = %v, want 1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	// PoisonAttempts on its own, then one more once the probe passed.
	if attempts != 4 {
		t.Errorf("the poison was tried %d times, want 4", attempts)
	}
}

// A transient failure, however long, is retried and never parked.
func TestTransientFailureIsNeverParked(t *testing.T) {
	r := newFakeReader(orderJSON("slow"))
	lp := newLoop(t, r)
	var mu sync.Mutex
	failures := 0
	lp.d.decide = func(_ context.Context, o events.OrderPlaced) (worker.Decision, error) {
		mu.Lock()
		defer mu.Unlock()
		if failures < 20 { // many times PoisonAttempts
			failures++
			return worker.Decision{}, &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}
		}
		return deducted(o), nil
	}
	lp.start()
	eventually(t, "the order committed", func() bool { return r.committedOffset() == 1 })
	if dlq := byTopic(lp.p.published(), "dlq"); len(dlq) != 0 {
		t.Fatalf("a transient failure parked %d messages", len(dlq))
	}
	if ev := byTopic(lp.p.published(), "events"); len(ev) != 1 {
		t.Fatalf("answers = %d, want 1", len(ev))
	}
}

// While the services do not answer, a message that fails permanently is not
// parked: an outage must not move good orders to the DLQ.
func TestNothingIsParkedWhileTheServicesDoNotAnswer(t *testing.T) {
	r := newFakeReader(orderJSON("x"))
	lp := newLoop(t, r)
	lp.d.decide = func(context.Context, events.OrderPlaced) (worker.Decision, error) {
		return worker.Decision{}, &mysql.MySQLError{Number: 1146, Message: "Table 'inventory' doesn't exist"}
	}
	var mu sync.Mutex
	probes, healthy := 0, false
	lp.cfg.Probe = func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		probes++
		if healthy {
			return nil
		}
		return errors.New("table inventory is missing")
	}
	lp.start()
	eventually(t, "several probes", func() bool { mu.Lock(); defer mu.Unlock(); return probes >= 3 })
	if dlq := byTopic(lp.p.published(), "dlq"); len(dlq) != 0 || r.committedOffset() != -1 {
		t.Fatalf("parked %d, committed %d while the services did not answer", len(dlq), r.committedOffset())
	}
	if err := lp.w.Ready(); err == nil || !strings.Contains(err.Error(), "services do not answer") {
		t.Errorf("readiness = %v", err)
	}
	mu.Lock()
	healthy = true
	mu.Unlock()
	eventually(t, "the message parked once the services answer", func() bool { return r.committedOffset() == 1 })
	if dlq := byTopic(lp.p.published(), "dlq"); len(dlq) != 1 {
		t.Fatalf("dead letters = %d, want 1", len(dlq))
	}
}

// A panic triggered by one message is isolated like any poison.
func TestPanicIsIsolated(t *testing.T) {
	r := newFakeReader(orderJSON("ok1"), orderJSON("boom"), orderJSON("ok2"))
	lp := newLoop(t, r)
	lp.d.decide = func(_ context.Context, o events.OrderPlaced) (worker.Decision, error) {
		if o.OrderID == "boom" {
			panic("defect")
		}
		return deducted(o), nil
	}
	lp.start()
	eventually(t, "all committed", func() bool { return r.committedOffset() == 3 })
	dlq := byTopic(lp.p.published(), "dlq")
	if len(dlq) != 1 || string(dlq[0].Value) != orderJSON("boom") {
		t.Fatalf("dead letters = %v", dlq)
	}
	if e, _ := producer.Header(dlq[0], producer.HeaderError); !strings.Contains(e, "panic") {
		t.Errorf("error header %q", e)
	}
}

// An answer the broker refuses as too large isolates its message; the other
// answers of the batch are published.
func TestMessageTheBrokerRefusesIsIsolated(t *testing.T) {
	r := newFakeReader(orderJSON("a"), orderJSON("huge"), orderJSON("b"))
	lp := newLoop(t, r)
	lp.p.fail = func(msgs []kafka.Message) error {
		for _, m := range msgs {
			if m.Topic == "events" && string(m.Key) == "huge" {
				return kafka.MessageTooLargeError{Message: m}
			}
		}
		return nil
	}
	lp.start()
	eventually(t, "all committed", func() bool { return r.committedOffset() == 3 })
	if n := len(byTopic(lp.p.published(), "events")); n != 2 {
		t.Fatalf("answers = %d, want 2", n)
	}
	if dlq := byTopic(lp.p.published(), "dlq"); len(dlq) != 1 || string(dlq[0].Key) != "k1" {
		t.Fatalf("dead letters = %v", dlq)
	}
}

// Cancelling Run while a batch is being decided lets it finish within
// DrainTimeout: its answers are published and committed, nothing is left half
// done.
func TestCancelDrainsTheBatchInHand(t *testing.T) {
	r := newFakeReader(orderJSON("inflight"))
	lp := newLoop(t, r)
	entered, release := make(chan struct{}), make(chan struct{})
	lp.d.decide = func(ctx context.Context, o events.OrderPlaced) (worker.Decision, error) {
		close(entered)
		select {
		case <-release:
			return deducted(o), nil
		case <-ctx.Done():
			return worker.Decision{}, ctx.Err()
		}
	}
	lp.start()
	<-entered
	lp.cancel()
	time.Sleep(50 * time.Millisecond) // still within DrainTimeout
	close(release)
	lp.stop()
	if r.committedOffset() != 1 || len(byTopic(lp.p.published(), "events")) != 1 {
		t.Fatalf("committed %d, answers %d: the batch in hand was not drained", r.committedOffset(), len(byTopic(lp.p.published(), "events")))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		t.Error("the reader was not closed (the member did not leave the group)")
	}
}

// A batch still stuck when DrainTimeout passes is abandoned uncommitted.
func TestDrainIsBounded(t *testing.T) {
	r := newFakeReader(orderJSON("stuck"))
	lp := newLoop(t, r)
	lp.cfg.DrainTimeout = 100 * time.Millisecond
	entered := make(chan struct{})
	lp.d.decide = func(ctx context.Context, _ events.OrderPlaced) (worker.Decision, error) {
		close(entered)
		<-ctx.Done()
		return worker.Decision{}, ctx.Err()
	}
	lp.start()
	<-entered
	start := time.Now()
	lp.stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Run took %v after cancel", took)
	}
	if r.committedOffset() != -1 {
		t.Fatal("committed a batch that was never answered")
	}
}

// A redelivered order of a cancelled order is followed by its release again,
// so the release stays its last event.
func TestReleaseFollowsARedeliveredOrder(t *testing.T) {
	r := newFakeReader(orderJSON("X"))
	lp := newLoop(t, r)
	lp.l.Cancel(context.Background(), "X") //nolint:errcheck // the fake cannot fail
	lp.start()
	eventually(t, "committed", func() bool { return r.committedOffset() == 1 })
	ev := byTopic(lp.p.published(), "events")
	if len(ev) != 2 {
		t.Fatalf("events = %d, want the decision and the release", len(ev))
	}
	if typ, _ := producer.Header(ev[1], producer.HeaderType); typ != events.TypeReleased {
		t.Fatalf("last event of X is %s, want %s", typ, events.TypeReleased)
	}
}

// A message is parked only if it still fails once more after the probe says
// the services answer: a failure that ends as the services come back parks
// nothing.
func TestFinalAttemptAfterTheProbeSavesAMessage(t *testing.T) {
	r := newFakeReader(orderJSON("y"))
	lp := newLoop(t, r)
	var mu sync.Mutex
	probed := false
	lp.d.decide = func(_ context.Context, o events.OrderPlaced) (worker.Decision, error) {
		mu.Lock()
		defer mu.Unlock()
		if !probed {
			return worker.Decision{}, &mysql.MySQLError{Number: 1146, Message: "Table 'inventory' doesn't exist"}
		}
		return deducted(o), nil
	}
	lp.cfg.Probe = func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		probed = true
		return nil
	}
	lp.start()
	eventually(t, "committed", func() bool { return r.committedOffset() == 1 })
	if dlq := byTopic(lp.p.published(), "dlq"); len(dlq) != 0 {
		t.Fatalf("parked %d messages that succeeded on the final attempt", len(dlq))
	}
	if ev := byTopic(lp.p.published(), "events"); len(ev) != 1 {
		t.Fatalf("answers = %d, want 1", len(ev))
	}
}

// A dead-letter topic that refuses the letter as too large gets it without
// its value: the partition still moves on.
func TestParkShrinksALetterTheDLQRefuses(t *testing.T) {
	r := newFakeReader(orderJSON("poison"), orderJSON("ok"))
	lp := newLoop(t, r)
	lp.d.decide = func(_ context.Context, o events.OrderPlaced) (worker.Decision, error) {
		if o.OrderID == "poison" {
			return worker.Decision{}, errTooLong
		}
		return deducted(o), nil
	}
	lp.p.fail = func(msgs []kafka.Message) error {
		for _, m := range msgs {
			if m.Topic == "dlq" && len(m.Value) > 0 {
				return kafka.WriteErrors{kafka.MessageSizeTooLarge}
			}
		}
		return nil
	}
	lp.start()
	eventually(t, "all committed", func() bool { return r.committedOffset() == 2 })
	dlq := byTopic(lp.p.published(), "dlq")
	if len(dlq) != 1 || len(dlq[0].Value) != 0 || string(dlq[0].Key) != "k0" {
		t.Fatalf("dead letters = %+v", dlq)
	}
	if v, _ := producer.Header(dlq[0], producer.HeaderTruncatedValue); v != strconv.Itoa(len(orderJSON("poison"))) {
		t.Errorf("truncated-value-bytes = %q", v)
	}
}

// When message after message is parked for one cause and nothing else is
// answered, parking is held back (not ready) for ParkHold: a systemic fault
// the probe cannot see does not drain the backlog into the DLQ at once.
func TestSystemicParkingIsHeldBack(t *testing.T) {
	r := newFakeReader(orderJSON("p1"), orderJSON("p2"), orderJSON("p3"), orderJSON("p4"), orderJSON("p5"))
	lp := newLoop(t, r)
	lp.cfg.BatchSize = 1
	lp.cfg.ParkHold = time.Second
	lp.d.decide = func(context.Context, events.OrderPlaced) (worker.Decision, error) {
		return worker.Decision{}, &mysql.MySQLError{Number: 1054, Message: "Unknown column 'x' in 'field list'"}
	}
	lp.start()
	eventually(t, "three parked", func() bool { return r.committedOffset() == 3 })
	heldAt := time.Now()
	eventually(t, "the hold reported", func() bool { err := lp.w.Ready(); return err != nil && strings.Contains(err.Error(), "held back") })
	eventually(t, "the fourth parked after the hold", func() bool { return r.committedOffset() == 4 })
	// The hold began after the third was parked, so the fourth cannot be
	// parked sooner than ParkHold after it (less however late we saw it).
	if took := time.Since(heldAt); took < 300*time.Millisecond {
		t.Fatalf("the fourth message was parked %v after the third: not held", took)
	}
	if got := metricValue(t, lp.reg, "stockflow_poison_total", nil); got < 4 {
		t.Fatalf("poison_total = %v", got)
	}
}

// A drain that ends while a split batch is being settled commits the part
// already answered: it is not answered again, and the poison is not parked twice.
func TestDrainCommitsTheSettledPrefix(t *testing.T) {
	r := newFakeReader(orderJSON("a"), orderJSON("stuck"))
	lp := newLoop(t, r)
	lp.cfg.DrainTimeout = 100 * time.Millisecond
	lp.cfg.PoisonAttempts = 2
	var mu sync.Mutex
	tries := 0
	lp.d.decide = func(ctx context.Context, o events.OrderPlaced) (worker.Decision, error) {
		if o.OrderID != "stuck" {
			return deducted(o), nil
		}
		mu.Lock()
		tries++
		mu.Unlock()
		return worker.Decision{}, errTooLong
	}
	lp.cfg.Probe = func(context.Context) error { return errors.New("services down") } // never parks
	lp.start()
	eventually(t, "the split reached the stuck order alone", func() bool { mu.Lock(); defer mu.Unlock(); return tries >= 5 })
	lp.stop()
	if c := r.committedOffset(); c != 1 {
		t.Fatalf("committed up to %d; want 1 (the answered prefix)", c)
	}
}

// failingReader fails its first fetches as a reader does while its broker is
// away, then serves its messages.
type failingReader struct {
	*fakeReader
	mu    sync.Mutex
	fails int
	err   error
}

func (r *failingReader) FetchMessage(ctx context.Context) (kafka.Message, error) {
	r.mu.Lock()
	if r.fails > 0 {
		r.fails--
		r.mu.Unlock()
		return kafka.Message{}, r.err
	}
	r.mu.Unlock()
	return r.fakeReader.FetchMessage(ctx)
}

// A broker away fails fetches for a while: the member reports it, backs off
// and goes on; it does not stop the worker.
func TestFetchFailuresAreRiddenOut(t *testing.T) {
	r := &failingReader{fakeReader: newFakeReader(orderJSON("after")), fails: 5,
		err: fmt.Errorf("failed to dial: failed to open connection to 127.0.0.1:39092: %w", errors.New("connection refused"))}
	lp := newLoop(t, r.fakeReader)
	lp.cfg.OpenReader = func(kafka.ReaderConfig) worker.Reader { return r }
	lp.start() // its cleanup requires Run to return nil: a broker away is not fatal
	eventually(t, "the order answered after the fetch failures", func() bool { return r.committedOffset() == 1 })
	if err := lp.w.Ready(); err != nil {
		t.Errorf("not ready once fetching works again: %v", err)
	}
}

// Credentials the cluster refuses cannot heal by waiting: Run returns the error.
func TestFetchAuthFailureIsFatal(t *testing.T) {
	r := &failingReader{fakeReader: newFakeReader(), fails: 1, err: kafka.SASLAuthenticationFailed}
	lp := newLoop(t, r.fakeReader)
	lp.cfg.OpenReader = func(kafka.ReaderConfig) worker.Reader { return r }
	w, err := worker.New(lp.cfg, lp.d, lp.l, lp.p, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, kafka.SASLAuthenticationFailed) {
			t.Fatalf("Run = %v, want the authentication failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop on an authentication failure")
	}
}

// An idle member whose fetches failed for a while is ready again once a fetch
// waits without failing: there is simply nothing to read.
func TestIdleMemberIsReadyAgainAfterFetchFailures(t *testing.T) {
	r := &failingReader{fakeReader: newFakeReader(), fails: 3, err: errors.New("failed to dial: connection refused")}
	lp := newLoop(t, r.fakeReader)
	lp.cfg.OpenReader = func(kafka.ReaderConfig) worker.Reader { return r }
	lp.cfg.MinBackoff = 100 * time.Millisecond
	lp.start()
	eventually(t, "the fetch failure reported", func() bool {
		err := lp.w.Ready()
		return err != nil && strings.Contains(err.Error(), "fetch")
	})
	deadline := time.Now().Add(15 * time.Second)
	for lp.w.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still not ready 15s after the failures stopped: %v", lp.w.Ready())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
