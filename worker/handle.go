package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/producer"
	"go.uber.org/zap"
)

// answers are the messages a batch publishes, in order, with what to record
// once they are acknowledged.
type answers struct {
	out  []kafka.Message
	done []func() // metrics and logs, once the answers are published
	// last is the type of the last outcome event queued per order id, and
	// placed the order ids of the batch's orders that got a decision.
	last   map[string]string
	placed []string
}

func (a *answers) outcome(topic, orderID, eventType string, payload []byte) {
	a.out = append(a.out, producer.Outcome(topic, orderID, eventType, payload))
	if a.last == nil {
		a.last = map[string]string{}
	}
	a.last[orderID] = eventType
}

// handle answers a batch: runs of order-placed messages are decided together,
// cancellations one by one, in the order they arrived. The answers are
// published together, in that order, with acks=all. Then every order of the
// batch that has been cancelled gets its stock-released again, after its own
// answer, unless this batch already published it there: the last event of a
// cancelled order is always its release, also when its order-placed is
// redelivered after the cancel or decided concurrently with it by another
// member.
func (w *Worker) handle(ctx context.Context, batch []kafka.Message) error {
	var a answers
	for start := 0; start < len(batch); {
		end := start + 1
		for end < len(batch) && batch[end].Topic == batch[start].Topic {
			end++
		}
		run := batch[start:end]
		var err error
		if run[0].Topic == w.cfg.OrdersTopic {
			err = w.handleOrdersPlaced(ctx, run, &a)
		} else {
			err = w.handleOrdersCancelled(ctx, run, &a)
		}
		if err != nil {
			return err
		}
		start = end
	}
	if err := w.publish(ctx, a.out); err != nil {
		return err
	}
	if err := w.republishReleases(ctx, &a); err != nil {
		return err
	}
	for _, f := range a.done {
		f()
	}
	return nil
}

func (w *Worker) publish(ctx context.Context, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := w.pub.Publish(ctx, msgs...); err != nil {
		return &publishError{fmt.Errorf("publish %d answers: %w", len(msgs), err)}
	}
	return nil
}

// republishReleases publishes, after the batch's answers were acknowledged,
// the stock-released event of every order of the batch that has one and whose
// last answer in the batch was not already it. Reading the cancellations only
// after the acknowledgement closes the race with a cancel decided by another
// member: either its release is committed by now and is re-published here, or
// it commits later and is published (by that member) after this batch's
// answers.
func (w *Worker) republishReleases(ctx context.Context, a *answers) error {
	if len(a.placed) == 0 {
		return nil
	}
	released, err := w.ledger.Released(ctx, a.placed)
	if err != nil {
		return err
	}
	var again []kafka.Message
	for _, id := range a.placed {
		payload, ok := released[id]
		if !ok || a.last[id] == events.TypeReleased {
			continue
		}
		a.last[id] = events.TypeReleased
		again = append(again, producer.Outcome(w.cfg.EventsTopic, id, events.TypeReleased, payload))
	}
	return w.publish(ctx, again)
}

// handleOrdersPlaced answers order-placed messages: each gets a dead letter, an
// invalid_order rejection, or the strategy's decision. Decisions are taken in
// offset order: valid orders are decided together (one call of a batch
// strategy), but an invalid order whose id is among the valid ones waiting is
// recorded only after they are decided, so which copy of an order decides it
// never depends on where a batch starts or ends.
func (w *Worker) handleOrdersPlaced(ctx context.Context, batch []kafka.Message, a *answers) error {
	decided := make([]*db.Decision, len(batch))
	undecodable := make([]error, len(batch))
	var (
		orders  []events.OrderPlaced
		at      []int // batch index of each order
		waiting = map[string]bool{}
	)
	flush := func() error {
		if len(orders) == 0 {
			return nil
		}
		ds, err := w.deductAll(ctx, orders)
		if err != nil {
			return err
		}
		for j, d := range ds {
			decided[at[j]] = &d
		}
		orders, at = orders[:0], at[:0]
		clear(waiting)
		return nil
	}
	for i, m := range batch {
		order, err := w.dec.OrderPlaced(m.Value)
		var invalid *events.InvalidError
		switch {
		case errors.As(err, &invalid):
			if waiting[invalid.OrderID] {
				if err := flush(); err != nil {
					return err
				}
			}
			d, err := w.ledger.Reject(ctx, invalid.OrderID, events.ReasonInvalidOrder, invalid.Lines, invalid.ItemsTotal)
			if err != nil {
				return fmt.Errorf("reject invalid order %q: %w", invalid.OrderID, err)
			}
			w.log.Info("invalid order", msgFields(m, zap.String("order_id", invalid.OrderID), zap.String("detail", invalid.Detail))...)
			decided[i] = &d
		case err != nil:
			undecodable[i] = err
		default:
			orders, at = append(orders, order), append(at, i)
			waiting[order.OrderID] = true
		}
	}
	if err := flush(); err != nil {
		return err
	}
	for i, d := range decided {
		m := batch[i]
		if d == nil {
			cause := undecodable[i]
			a.out = append(a.out, producer.DeadLetter(w.cfg.DLQTopic, m, cause))
			a.done = append(a.done, func() {
				w.cfg.Metrics.deadLetter(m.Topic)
				w.log.Warn("dead letter", msgFields(m, zap.NamedError("cause", cause))...)
			})
			continue
		}
		a.outcome(w.cfg.EventsTopic, d.OrderID, d.EventType(), d.Payload)
		a.placed = append(a.placed, d.OrderID)
		a.done = append(a.done, func() {
			w.cfg.Metrics.answered(d.Status, d.Replayed)
			w.log.Debug("order answered", msgFields(m, zap.String("order_id", d.OrderID), zap.String("outcome", d.EventType()),
				zap.String("reason", d.Reason), zap.Bool("replayed", d.Replayed))...)
		})
	}
	return nil
}

// handleOrdersCancelled gives back what each cancelled order deducted, once,
// and answers every cancel.
func (w *Worker) handleOrdersCancelled(ctx context.Context, batch []kafka.Message, a *answers) error {
	for _, m := range batch {
		c, err := w.dec.OrderCancelled(m.Value)
		if err != nil {
			a.out = append(a.out, producer.DeadLetter(w.cfg.DLQTopic, m, err))
			a.done = append(a.done, func() {
				w.cfg.Metrics.deadLetter(m.Topic)
				w.log.Warn("dead letter", msgFields(m, zap.NamedError("cause", err))...)
			})
			continue
		}
		res, err := w.ledger.Cancel(ctx, c.OrderID)
		if err != nil {
			return fmt.Errorf("cancel order %q: %w", c.OrderID, err)
		}
		for _, ev := range res.Events {
			a.outcome(w.cfg.EventsTopic, res.OrderID, ev.Type, ev.Payload)
		}
		a.done = append(a.done, func() {
			w.cfg.Metrics.cancelled(res.Result, res.Replayed)
			w.log.Info("order cancelled", msgFields(m, zap.String("order_id", res.OrderID), zap.String("result", res.Result),
				zap.Bool("replayed", res.Replayed))...)
			if len(res.Capped) > 0 {
				w.log.Warn("stock given back was capped at the INT maximum", msgFields(m, zap.String("order_id", res.OrderID),
					zap.Any("units_not_given_back", res.Capped))...)
			}
		})
	}
	return nil
}

// deductAll decides orders in order: in one call when the strategy decides
// batches, else one by one.
func (w *Worker) deductAll(ctx context.Context, orders []events.OrderPlaced) ([]db.Decision, error) {
	if b, ok := w.deduct.(BatchDeductor); ok {
		start := time.Now()
		ds, err := b.DeductBatch(ctx, orders)
		if err != nil {
			return nil, fmt.Errorf("deduct batch of %d orders: %w", len(orders), err)
		}
		w.cfg.Metrics.deducted(w.cfg.Strategy, time.Since(start))
		return ds, nil
	}
	ds := make([]db.Decision, len(orders))
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
