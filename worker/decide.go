package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/producer"
	"go.uber.org/zap"
)

// The poison policy. Every failure to decide is one of two kinds, decided by
// transient:
//
//   - transient (a dependency down, a timeout, a deadlock, a lock wait): it
//     heals by waiting. The work is retried with capped exponential backoff for
//     as long as it takes, the lane reports not ready, and nothing is rejected
//     or dead-lettered because of it. Only the work and the tasks that depend on
//     it wait: other goods flow on in the other lanes. A run of orders that
//     keeps timing out is split (smaller transactions may fit the deadline),
//     but a message is never parked for a transient failure.
//   - permanent (anything else: a statement the database refuses for this data,
//     a panic): retrying the same input fails the same way, so it must not stop
//     the partition. The work gets PoisonAttempts attempts; a run is then split
//     in halves, each tried once and split again on failure, until the orders
//     that fail on their own are found. A message that still fails after
//     PoisonAttempts attempts of its own, and once more after Probe says the
//     services answer, is parked on the dead-letter topic; its offset is
//     committed with the rest.
//
// Parking is held back when it looks systemic: once parkRun messages in a row
// were parked for the same cause with nothing answered in between, the next
// message failing that way is retried (not ready) for up to Config.ParkHold
// before it is parked, so a misconfiguration the probe cannot see (a missing
// column, a statement timeout) does not drain the backlog into the dead-letter
// topic before an alert on stockflow_poison_total reaches someone.
const parkRun = 3

// lane decides the work the scheduler hands it, one unit at a time, until ctx
// ends.
func (m *member) lane(ctx context.Context, n int) {
	group := 1
	if _, ok := m.w.deduct.(BatchDeductor); ok {
		group = m.w.cfg.BatchSize
	}
	name := fmt.Sprintf("consumer %d lane %d", m.id, n)
	for {
		work := m.sched.take(ctx, group)
		if work == nil {
			return
		}
		if group > 1 && len(work) < group && m.w.cfg.BatchWait > 0 {
			// Not full: a moment for more of the same goods to arrive.
			// (They join the next run if they come later.)
			_ = sleep(ctx, m.w.cfg.BatchWait)
		}
		if err := m.settle(ctx, name, work, m.w.cfg.PoisonAttempts); err != nil {
			return // ctx ended: the work stays unpublished and is redelivered
		}
	}
}

// settle decides work until it succeeds, splitting and parking under the
// poison policy, and hands every decided task to the publisher in order. It
// returns an error only when ctx ends first.
func (m *member) settle(ctx context.Context, lane string, work []*task, budget int) error {
	if len(work) == 1 {
		budget = m.w.cfg.PoisonAttempts
	}
	split := func(err error, attempt int, why string) error {
		mid := len(work) / 2
		m.log.Warn(why, taskFields(work, zap.Int("attempts", attempt), zap.Error(err))...)
		if err := m.settle(ctx, lane, work[:mid], 1); err != nil {
			return err
		}
		return m.settle(ctx, lane, work[mid:], 1)
	}
	permanent, timeouts := 0, 0
	for attempt := 1; ; attempt++ {
		err := m.decideSafely(ctx, work)
		if err == nil {
			if attempt > 1 {
				m.log.Info("decided after retries", taskFields(work, zap.Int("attempt", attempt))...)
			}
			m.answered()
			m.w.health.set(lane, nil)
			m.hand(work)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		isTransient := m.w.transient(err)
		m.w.health.set(lane, err)
		m.w.cfg.Metrics.retried(isTransient)
		switch {
		case isTransient && errors.Is(err, context.DeadlineExceeded):
			if timeouts++; len(work) > 1 && timeouts >= m.w.cfg.PoisonAttempts {
				return split(err, attempt, "run keeps timing out; splitting it into smaller transactions")
			}
		case !isTransient:
			permanent++
		}
		if !isTransient && permanent >= budget {
			if len(work) > 1 {
				return split(err, attempt, "run keeps failing; splitting it to find the orders that fail on their own")
			}
			// One message that keeps failing. Park it only if it still fails
			// once more while the services answer; otherwise this is an
			// outage that happens to surface as a permanent-looking error:
			// keep waiting, and look again after the next failure.
			if perr := m.w.probe(ctx); perr != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				err = fmt.Errorf("%w; and the services do not answer, so the message is not parked: %w", err, perr)
			} else {
				attempt++
				last := m.decideSafely(ctx, work)
				switch {
				case last == nil:
					m.answered()
					m.w.health.set(lane, nil)
					m.hand(work)
					return nil
				case ctx.Err() != nil:
					return ctx.Err()
				case !m.w.transient(last):
					if held := m.holdParking(last); held != nil {
						err = held
						break
					}
					m.park(work[0], last, attempt)
					m.w.health.set(lane, nil)
					m.hand(work)
					return nil
				default:
					err, isTransient = last, true
				}
			}
			m.w.health.set(lane, err)
			permanent = budget - 1
		}
		pause := retryPause(m.w.cfg.MinBackoff, m.w.cfg.MaxBackoff, attempt)
		logf := m.log.Warn
		if !isTransient {
			logf = m.log.Error
		}
		logf("decision failed, will retry", taskFields(work, zap.Int("attempt", attempt),
			zap.Duration("backoff", pause), zap.Bool("transient", isTransient), zap.Error(err))...)
		if err := sleep(ctx, pause); err != nil {
			return err
		}
	}
}

// hand marks work decided (its successors on the same goods may go) and
// queues it for publishing, in order.
func (m *member) hand(work []*task) {
	for _, t := range work {
		m.sched.decided(t)
	}
	m.pubq.put(work...)
}

// decideSafely is decide with a panic turned into a permanent error, so that
// a defect triggered by one message is isolated like any other poison instead
// of crashing the process into a restart loop on the same message.
func (m *member) decideSafely(ctx context.Context, work []*task) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", errPanic, r, debug.Stack())
		}
	}()
	return m.decide(ctx, work)
}

var errPanic = errors.New("worker: panic while deciding")

// decide answers work: a run of valid orders through the strategy, any other
// task alone. On success every task holds its answers; on error none is
// decided (an order the strategy already decided replays on the next try).
func (m *member) decide(ctx context.Context, work []*task) error {
	w := m.w
	for _, t := range work {
		t.answers, t.decided, t.done, t.parked = nil, nil, nil, false
	}
	t := work[0]
	switch t.kind {
	case kindUndecodable:
		t.answers = []kafka.Message{producer.DeadLetter(w.cfg.DLQTopic, t.msg, t.cause)}
		t.done = []func(){func() {
			w.cfg.Metrics.deadLetter(t.msg.Topic)
			m.log.Warn("dead letter", msgFields(t.msg, zap.NamedError("cause", t.cause))...)
		}}
		return nil
	case kindInvalid:
		inv := t.invalid
		d, err := w.ledger.Reject(ctx, inv.OrderID, events.ReasonInvalidOrder, inv.Lines, inv.ItemsTotal)
		if err != nil {
			return fmt.Errorf("reject invalid order %q: %w", inv.OrderID, err)
		}
		m.answer(t, d)
		m.log.Info("invalid order", msgFields(t.msg, zap.String("order_id", inv.OrderID), zap.String("detail", inv.Detail))...)
		return nil
	case kindCancel:
		res, err := w.ledger.Cancel(ctx, t.orderID)
		if err != nil {
			return fmt.Errorf("cancel order %q: %w", t.orderID, err)
		}
		for _, ev := range res.Events {
			t.answers = append(t.answers, producer.Outcome(w.cfg.EventsTopic, res.OrderID, ev.Type, ev.Payload))
		}
		t.done = []func(){func() {
			w.cfg.Metrics.cancelled(res.Result, res.Replayed)
			m.log.Info("order cancelled", msgFields(t.msg, zap.String("order_id", res.OrderID), zap.String("result", res.Result),
				zap.Bool("replayed", res.Replayed))...)
			if len(res.Capped) > 0 {
				m.log.Warn("stock given back was capped at the INT maximum", msgFields(t.msg, zap.String("order_id", res.OrderID),
					zap.Any("units_not_given_back", res.Capped))...)
			}
		}}
		return nil
	}
	orders := make([]events.OrderPlaced, len(work))
	for i, t := range work {
		orders[i] = t.order
	}
	ds, err := m.deductAll(ctx, orders)
	if err != nil {
		return err
	}
	for i, d := range ds {
		m.answer(work[i], d)
	}
	return nil
}

// answer sets t's answer to decision d.
func (m *member) answer(t *task, d Decision) {
	w := m.w
	t.answers = []kafka.Message{producer.Outcome(w.cfg.EventsTopic, d.OrderID, d.Type, d.Payload)}
	t.decided = []string{d.OrderID}
	t.done = []func(){func() {
		w.cfg.Metrics.answered(d.Type, d.Replayed)
		m.log.Debug("order answered", msgFields(t.msg, zap.String("order_id", d.OrderID), zap.String("outcome", d.Type),
			zap.String("reason", d.Reason), zap.Bool("replayed", d.Replayed))...)
	}}
}

// deductAll decides orders in order: in one call when the strategy decides
// batches, else one by one.
func (m *member) deductAll(ctx context.Context, orders []events.OrderPlaced) ([]Decision, error) {
	w := m.w
	if b, ok := w.deduct.(BatchDeductor); ok {
		start := time.Now()
		ds, err := b.DeductBatch(ctx, orders)
		if err != nil {
			return nil, fmt.Errorf("deduct batch of %d orders: %w", len(orders), err)
		}
		w.cfg.Metrics.deducted(w.cfg.Strategy, time.Since(start))
		w.cfg.Metrics.batch(len(orders))
		return ds, nil
	}
	ds := make([]Decision, len(orders))
	for i, o := range orders {
		start := time.Now()
		d, err := w.deduct.Deduct(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("deduct order %q: %w", o.OrderID, err)
		}
		w.cfg.Metrics.deducted(w.cfg.Strategy, time.Since(start))
		ds[i] = d
	}
	return ds, nil
}

// park makes t's answer the dead letter of its message.
func (m *member) park(t *task, cause error, attempts int) {
	t.answers = []kafka.Message{producer.Letter(m.w.cfg.DLQTopic, t.msg, producer.KindPoison, cause, attempts)}
	t.decided, t.parked = nil, true
	m.parkMu.Lock()
	defer m.parkMu.Unlock()
	c := causeOf(cause)
	if c == m.parkedCause {
		m.parkedRun++
	} else {
		m.parkedCause, m.parkedRun = c, 1
	}
	m.heldSince = time.Time{}
	t.done = []func(){func() {
		m.w.cfg.Metrics.poisoned(t.msg.Topic)
		m.log.Error("poison message parked on the dead-letter topic; the partition moves on",
			msgFields(t.msg, zap.ByteString("key", clipBytes(t.msg.Key, 128)), zap.Int("attempts", attempts),
				zap.String("dlq", m.w.cfg.DLQTopic), zap.Error(cause))...)
	}}
}

// answered notes that a message was answered: the parked run is broken.
func (m *member) answered() {
	m.parkMu.Lock()
	defer m.parkMu.Unlock()
	m.parkedRun, m.heldSince = 0, time.Time{}
}

// holdParking returns an error while parking a message that failed with err
// must wait because it looks systemic (see parkRun), and nil when it may go
// ahead.
func (m *member) holdParking(err error) error {
	m.parkMu.Lock()
	defer m.parkMu.Unlock()
	cause := causeOf(err)
	if cause != m.parkedCause || m.parkedRun < parkRun {
		return nil
	}
	if m.heldSince.IsZero() {
		m.heldSince = time.Now()
	}
	if held := time.Since(m.heldSince); held < m.w.cfg.ParkHold {
		return fmt.Errorf("%w; %d messages in a row were parked for this cause with nothing answered in between, "+
			"so parking is held back for %v in case it is not the message's fault (held %v)", err, m.parkedRun, m.w.cfg.ParkHold, held.Round(time.Second))
	}
	return nil
}

// causeOf is what makes two failures "the same cause" for holdParking: the
// MySQL error number, the Kafka error code, a panic, or the innermost error's
// text.
func causeOf(err error) string {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return fmt.Sprintf("mysql %d", me.Number)
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		return fmt.Sprintf("kafka %d", int(ke))
	}
	if errors.Is(err, errPanic) {
		return "panic"
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

func taskFields(work []*task, more ...zap.Field) []zap.Field {
	first := work[0].msg
	return append([]zap.Field{zap.String("topic", first.Topic), zap.Int("partition", first.Partition),
		zap.Int64("offset", first.Offset), zap.Int("orders", len(work))}, more...)
}
