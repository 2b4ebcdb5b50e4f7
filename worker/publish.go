package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/producer"
	"go.uber.org/zap"
)

// pubQueue holds decided tasks until the publisher takes them, in the order
// they were decided.
type pubQueue struct {
	mu    sync.Mutex
	tasks []*task
	wake  chan struct{}
}

func newPubQueue() *pubQueue { return &pubQueue{wake: make(chan struct{}, 1)} }

func (q *pubQueue) put(ts ...*task) {
	q.mu.Lock()
	q.tasks = append(q.tasks, ts...)
	q.mu.Unlock()
	signal(q.wake)
}

// takeUntil returns every queued task (at most most), blocking until there is
// one, or until due fires (with nothing; a nil due never does); ok is false
// when ctx ended.
func (q *pubQueue) takeUntil(ctx context.Context, most int, due <-chan time.Time) (ts []*task, ok bool) {
	for {
		q.mu.Lock()
		if n := min(len(q.tasks), most); n > 0 {
			out := q.tasks[:n:n]
			q.tasks = q.tasks[n:]
			more := len(q.tasks) > 0
			q.mu.Unlock()
			if more {
				signal(q.wake)
			}
			return out, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-due:
			return nil, true
		case <-q.wake:
		}
	}
}

// maxPublish bounds the tasks one write carries.
const maxPublish = 4096

// publishRetryCap bounds the pause before answers that failed to publish are
// tried again: a retry costs one produce request, and answers should follow a
// partition's new leader within a second or two of its election.
const publishRetryCap = 2 * time.Second

// publisher publishes decided tasks' answers with acks=all, as they come, many
// tasks per write. Then it re-publishes the stock-released event of every
// cancelled order among them (see republishReleases), marks them published
// (their successors of the same order id may go, their offsets may be
// committed) and runs their metrics and logs. It returns when ctx ends.
//
// Tasks whose answers could not be written (a partition without a leader, a
// broker away) are held and tried again with backoff, while answers decided
// meanwhile go out as they come: a fault of one partition of the events topic
// does not hold up the answers bound for the others. New answers bound for a
// partition with held answers are held with them without a write (a write
// that carries one waits for that partition's attempts). Held tasks stay
// unpublished, so their offsets are not committed and their successors of
// the same order id wait; when ctx ends first they are redelivered.
func (m *member) publisher(ctx context.Context) {
	name := fmt.Sprintf("consumer %d publish", m.id)
	finder, _ := m.w.pub.(partitionFinder)
	if finder != nil {
		// Have the events topic's partition count read before it is
		// needed: the first failure should already divert.
		finder.Partition(kafka.Message{Topic: m.w.cfg.EventsTopic, Key: []byte{}})
	}
	var (
		held    []*task     // answers that failed, tried again when retry fires
		retry   *time.Timer // nil while nothing is held
		attempt int         // failed writes in a row of the held tasks
		// The partitions the held answers are bound for, when the publisher
		// can tell: new answers bound for one of them join the held ones
		// without a write, which would wait for that partition's attempts.
		blocked map[topicPartition]bool
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		var due <-chan time.Time
		if retry != nil {
			due = retry.C
		}
		ts, ok := m.pubq.takeUntil(ctx, maxPublish, due)
		if !ok {
			return // unpublished tasks stay uncommitted and are redelivered
		}
		if retry != nil && (len(ts) == 0 || timerFired(retry)) {
			// Their turn: held answers first, in the order they were decided.
			ts = append(held, ts...)
			held, retry, blocked = nil, nil, nil
		} else if len(blocked) > 0 {
			var later []*task
			ts, later = splitBound(ts, blocked, finder)
			held = append(held, later...)
		}
		if len(ts) == 0 {
			continue
		}
		failed, err := m.publishTasks(ctx, ts)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			if held == nil {
				attempt = 0
				m.w.health.set(name, nil)
			}
			continue
		}
		held = append(held, failed...)
		blocked = boundFor(held, finder)
		attempt++
		m.w.health.set(name, err)
		m.w.cfg.Metrics.retried(true)
		pause := retryPause(m.w.cfg.MinBackoff, min(m.w.cfg.MaxBackoff, publishRetryCap), attempt)
		m.log.Warn("publish failed, will retry; answers decided meanwhile are published as they come",
			taskFields(failed, zap.Int("attempt", attempt), zap.Int("held", len(held)), zap.Duration("backoff", pause), zap.Error(err))...)
		if retry == nil {
			retry = time.NewTimer(pause)
		}
	}
}

// partitionFinder is a Publisher that can tell the partition a message is
// written to (producer.Publisher); ok is false when it cannot.
type partitionFinder interface {
	Partition(msg kafka.Message) (partition int, ok bool)
}

type topicPartition struct {
	topic     string
	partition int
}

// boundFor returns the partitions the answers of ts are bound for, as far as
// finder knows them (nil without a finder).
func boundFor(ts []*task, finder partitionFinder) map[topicPartition]bool {
	if finder == nil {
		return nil
	}
	out := map[topicPartition]bool{}
	for _, t := range ts {
		for _, a := range t.answers {
			if p, ok := finder.Partition(a); ok {
				out[topicPartition{a.Topic, p}] = true
			}
		}
	}
	return out
}

// splitBound splits ts into the tasks with no answer bound for a partition in
// blocked, and the others; each keeps its order.
func splitBound(ts []*task, blocked map[topicPartition]bool, finder partitionFinder) (free, bound []*task) {
	for _, t := range ts {
		if slices.ContainsFunc(t.answers, func(a kafka.Message) bool {
			p, ok := finder.Partition(a)
			return ok && blocked[topicPartition{a.Topic, p}]
		}) {
			bound = append(bound, t)
		} else {
			free = append(free, t)
		}
	}
	return free, bound
}

// timerFired reports whether t has fired, consuming its tick.
func timerFired(t *time.Timer) bool {
	select {
	case <-t.C:
		return true
	default:
		return false
	}
}

// publishTasks publishes ts once and completes the tasks whose answers were
// all written. It returns the tasks not written and why, when that can heal
// by waiting (a broker, leader or coordinator away). A message the broker
// refuses as such is found by splitting the tasks not written; its task is
// parked instead (a dead letter of its source message), and a dead letter the
// broker refuses is sent smaller (producer.Shrink).
func (m *member) publishTasks(ctx context.Context, ts []*task) ([]*task, error) {
	for {
		failed, err := m.publishOnce(ctx, ts)
		if err == nil || ctx.Err() != nil || !producer.PerMessage(err) {
			return failed, err
		}
		if len(failed) > 1 {
			mid := len(failed) / 2
			held1, err1 := m.publishTasks(ctx, failed[:mid])
			held2, err2 := m.publishTasks(ctx, failed[mid:])
			return append(held1, held2...), errors.Join(err1, err2)
		}
		t := failed[0]
		if t.parked || t.kind == kindUndecodable {
			smaller, ok := producer.Shrink(t.answers[0])
			if !ok {
				// Nothing left to drop: hold it like a transient failure.
				return failed, err
			}
			m.log.Warn("the dead-letter topic refused the letter; sending it smaller", msgFields(t.msg, zap.Error(err))...)
			t.answers[0] = smaller
		} else {
			// The broker refuses this task's answer itself: park its
			// message rather than retry what cannot succeed.
			m.park(t, err, 1)
		}
		ts = failed
	}
}

// publishOnce publishes the answers of ts in one write, then the releases of
// the tasks written, and completes those. It returns the tasks not written
// (all of ts unless the broker said, message by message, which failed) and
// the error.
func (m *member) publishOnce(ctx context.Context, ts []*task) ([]*task, error) {
	var out []kafka.Message
	ends := make([]int, len(ts)) // ts[i]'s answers end at out[ends[i]]
	for i, t := range ts {
		out = append(out, t.answers...)
		ends[i] = len(out)
	}
	written, failed := ts, []*task(nil)
	err := m.w.publish(ctx, out)
	if err != nil {
		var werrs kafka.WriteErrors
		if !errors.As(err, &werrs) || len(werrs) != len(out) {
			return ts, err
		}
		written, failed = nil, nil
		begin := 0
		for i, t := range ts {
			if slices.ContainsFunc(werrs[begin:ends[i]], func(e error) bool { return e != nil }) {
				failed = append(failed, t)
			} else {
				written = append(written, t)
			}
			begin = ends[i]
		}
	}
	if len(failed) == 0 {
		err = nil // every message was written after all
	}
	if len(written) > 0 {
		if rerr := m.republishReleases(ctx, written); rerr != nil {
			// The written answers go again with the rest: a duplicate, never
			// a release lost. Not %w: a release the broker refuses must not
			// park an order whose answer is out (PerMessage); it is retried.
			return ts, fmt.Errorf("re-publish the releases of %d answered orders: %v", len(written), rerr)
		}
		m.completed(written)
	}
	return failed, err
}

// completed marks ts published: their successors of the same order id may
// go, their offsets may be committed, their metrics and logs run.
func (m *member) completed(ts []*task) {
	for _, t := range ts {
		for _, f := range t.done {
			f()
		}
		m.sched.published(t)
		if m.offsets.settled(t.msg, t.offset) {
			signal(m.commitWake)
		}
	}
}

// republishReleases publishes, after the answers of ts were acknowledged,
// the stock-released event of every order placed among them that has one and
// whose last answer here was not already it. Reading the cancellations only
// after the acknowledgement closes the race with a cancel decided by another
// member: either its release is committed by now and is re-published here, or
// it commits later and is published (by that member) after these answers.
func (m *member) republishReleases(ctx context.Context, ts []*task) error {
	last := map[string]string{} // the type of the last outcome published per order id
	var placed []string
	for _, t := range ts {
		for _, a := range t.answers {
			if a.Topic == m.w.cfg.EventsTopic {
				if typ, ok := producer.Header(a, producer.HeaderType); ok {
					last[string(a.Key)] = typ
				}
			}
		}
		placed = append(placed, t.decided...)
	}
	if len(placed) == 0 {
		return nil
	}
	released, err := m.w.ledger.Released(ctx, placed)
	if err != nil {
		return fmt.Errorf("look up releases to re-publish: %w", err)
	}
	var again []kafka.Message
	for _, id := range placed {
		payload, ok := released[id]
		if !ok || last[id] == events.TypeReleased {
			continue
		}
		last[id] = events.TypeReleased
		again = append(again, producer.Outcome(m.w.cfg.EventsTopic, id, events.TypeReleased, payload))
	}
	return m.w.publish(ctx, again)
}

// publish writes msgs with acks=all.
func (w *Worker) publish(ctx context.Context, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := w.pub.Publish(ctx, msgs...); err != nil {
		return &publishError{fmt.Errorf("publish %d answers: %w", len(msgs), err)}
	}
	return nil
}

// publishError marks a failure to publish answers.
type publishError struct{ err error }

func (e *publishError) Error() string { return e.err.Error() }
func (e *publishError) Unwrap() error { return e.err }
