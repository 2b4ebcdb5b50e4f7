package worker

import (
	"context"
	"fmt"
	"sync"

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

// take returns every queued task (at most most), blocking until there is one
// or ctx ends (nil then).
func (q *pubQueue) take(ctx context.Context, most int) []*task {
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
			return out
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		}
	}
}

// publisher publishes decided tasks' answers with acks=all, as they come, many
// tasks per write. Then it re-publishes the stock-released event of every
// cancelled order among them (see republishReleases), marks them published
// (their successors of the same order id may go, their offsets may be
// committed) and runs their metrics and logs. It returns when ctx ends.
func (m *member) publisher(ctx context.Context) {
	for {
		ts := m.pubq.take(ctx, 4096)
		if ts == nil {
			return
		}
		if err := m.publishTasks(ctx, ts); err != nil {
			return // ctx ended: unpublished tasks stay uncommitted and are redelivered
		}
	}
}

// publishTasks publishes ts until it succeeds. A transient failure (a broker,
// leader or coordinator away) is retried with backoff for as long as it takes.
// A message the broker refuses as such is found by splitting ts; its task is
// parked instead (a dead letter of its source message), and a dead letter the
// broker refuses is sent smaller (producer.Shrink). It returns an error only
// when ctx ends first.
func (m *member) publishTasks(ctx context.Context, ts []*task) error {
	name := fmt.Sprintf("consumer %d publish", m.id)
	for attempt := 1; ; attempt++ {
		err := m.publishOnce(ctx, ts)
		if err == nil {
			m.w.health.set(name, nil)
			for _, t := range ts {
				for _, f := range t.done {
					f()
				}
				m.sched.published(t)
				if m.offsets.settled(t.msg, t.offset) {
					signal(m.commitWake)
				}
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if producer.PerMessage(err) {
			if len(ts) > 1 {
				mid := len(ts) / 2
				if err := m.publishTasks(ctx, ts[:mid]); err != nil {
					return err
				}
				return m.publishTasks(ctx, ts[mid:])
			}
			t := ts[0]
			if t.parked || t.kind == kindUndecodable {
				if smaller, ok := producer.Shrink(t.answers[0]); ok {
					m.log.Warn("the dead-letter topic refused the letter; sending it smaller", msgFields(t.msg, zap.Error(err))...)
					t.answers[0] = smaller
					continue
				}
			} else {
				// The broker refuses this task's answer itself: park its
				// message rather than retry what cannot succeed.
				m.park(t, err, attempt)
				continue
			}
		}
		m.w.health.set(name, err)
		m.w.cfg.Metrics.retried(true)
		pause := retryPause(m.w.cfg.MinBackoff, m.w.cfg.MaxBackoff, attempt)
		m.log.Warn("publish failed, will retry", taskFields(ts, zap.Int("attempt", attempt), zap.Duration("backoff", pause), zap.Error(err))...)
		if err := sleep(ctx, pause); err != nil {
			return err
		}
	}
}

// publishOnce publishes the answers of ts in one write, then their releases.
func (m *member) publishOnce(ctx context.Context, ts []*task) error {
	var out []kafka.Message
	last := map[string]string{} // the type of the last outcome queued per order id
	var placed []string
	for _, t := range ts {
		out = append(out, t.answers...)
		for _, a := range t.answers {
			if a.Topic == m.w.cfg.EventsTopic {
				if typ, ok := producer.Header(a, producer.HeaderType); ok {
					last[string(a.Key)] = typ
				}
			}
		}
		placed = append(placed, t.decided...)
	}
	if err := m.w.publish(ctx, out); err != nil {
		return err
	}
	return m.republishReleases(ctx, placed, last)
}

// republishReleases publishes, after the answers were acknowledged, the
// stock-released event of every order in placed that has one and whose last
// answer here was not already it. Reading the cancellations only after the
// acknowledgement closes the race with a cancel decided by another member:
// either its release is committed by now and is re-published here, or it
// commits later and is published (by that member) after these answers.
func (m *member) republishReleases(ctx context.Context, placed []string, last map[string]string) error {
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
