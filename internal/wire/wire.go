// Package wire adapts the db package to the worker's interfaces: the worker
// speaks its own vocabulary (worker.Decision, worker.Cancellation) and knows
// nothing of db, and db never imports worker; this is the one place that
// knows both. cmd/stockworker, the tests and the benchmarks wire through it.
package wire

import (
	"context"

	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/worker"
)

// Deductor returns s as a worker.Deductor; a strategy that decides batches
// (db.Batch) is also a worker.BatchDeductor.
func Deductor(s db.Strategy) worker.Deductor {
	if b, ok := s.(*db.Batch); ok {
		return batch{strategy{s}, b}
	}
	return strategy{s}
}

// Ledger returns l as a worker.Ledger.
func Ledger(l *db.Ledger) worker.Ledger { return ledger{l} }

// Options are the db options the worker's metrics need: db retries counted by
// cause.
func Options(m *worker.Metrics, opts db.Options) db.Options {
	opts.OnRetry = func(strategy string, err error) { m.DBRetry(strategy, db.RetryCause(err)) }
	return opts
}

// Transient is db.Transient, the worker's Config.Transient for the db strategies.
func Transient(err error) bool { return db.Transient(err) }

type strategy struct{ s db.Strategy }

func (a strategy) Deduct(ctx context.Context, o events.OrderPlaced) (worker.Decision, error) {
	d, err := a.s.Deduct(ctx, o)
	return decision(d), err
}

type batch struct {
	strategy
	b *db.Batch
}

func (a batch) DeductBatch(ctx context.Context, orders []events.OrderPlaced) ([]worker.Decision, error) {
	ds, err := a.b.DeductBatch(ctx, orders)
	if err != nil {
		return nil, err
	}
	out := make([]worker.Decision, len(ds))
	for i, d := range ds {
		out[i] = decision(d)
	}
	return out, nil
}

type ledger struct{ l *db.Ledger }

func (a ledger) Reject(ctx context.Context, orderID, reason string, lines []events.Line, itemsTotal int) (worker.Decision, error) {
	d, err := a.l.Reject(ctx, orderID, reason, lines, itemsTotal)
	return decision(d), err
}

func (a ledger) Cancel(ctx context.Context, orderID string) (worker.Cancellation, error) {
	c, err := a.l.Cancel(ctx, orderID)
	if err != nil {
		return worker.Cancellation{}, err
	}
	out := worker.Cancellation{OrderID: c.OrderID, Result: c.Result, Capped: c.Capped, Replayed: c.Replayed}
	for _, e := range c.Events {
		out.Events = append(out.Events, worker.Event{Type: e.Type, Payload: e.Payload})
	}
	return out, nil
}

func (a ledger) Released(ctx context.Context, orderIDs []string) (map[string][]byte, error) {
	return a.l.Released(ctx, orderIDs)
}

func decision(d db.Decision) worker.Decision {
	return worker.Decision{OrderID: d.OrderID, Type: d.EventType(), Reason: d.Reason, Payload: d.Payload, Replayed: d.Replayed}
}

var (
	_ worker.BatchDeductor = batch{}
	_ worker.Ledger        = ledger{}
)
