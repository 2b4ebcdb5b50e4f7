package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/producer"
	"go.uber.org/zap"
)

// Deductor decides one order under a lock strategy: it deducts every line or
// none, records the decision in the ledger in the same transaction, and returns
// it. A redelivered order returns the first decision and changes nothing. An
// error means nothing was decided; it is retried, never turned into a rejection.
type Deductor interface {
	Deduct(ctx context.Context, o events.OrderPlaced) (db.Decision, error)
}

// BatchDeductor decides many orders in one go, in the given order, returning one
// decision per order (same index); on error nothing was decided. A Deductor
// that also implements it is fed whole micro-batches.
type BatchDeductor interface {
	DeductBatch(ctx context.Context, orders []events.OrderPlaced) ([]db.Decision, error)
}

// Rejecter records a rejection that needs no stock lock (an invalid order), or
// returns the decision already recorded for the order.
type Rejecter interface {
	Reject(ctx context.Context, orderID, reason string, lines []events.Line) (db.Decision, error)
}

// Publisher writes messages and returns once they are acknowledged (acks=all).
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafka.Message) error
}

var (
	_ Deductor      = (*db.Pessimistic)(nil)
	_ BatchDeductor = (*db.Batch)(nil)
	_ Rejecter      = (*db.Ledger)(nil)
	_ Publisher     = (*producer.Publisher)(nil)
)

// Config configures a Worker. Brokers, GroupID and the topics are required.
type Config struct {
	Brokers     []string
	GroupID     string
	OrdersTopic string
	EventsTopic string
	DLQTopic    string
	// Strategy names the lock strategy in logs.
	Strategy string
	// MinBackoff and MaxBackoff bound the pause between retries of a message
	// that failed transiently. Defaults 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// DrainTimeout bounds how long the message in hand may still take after
	// Run's ctx is cancelled. Default 10s.
	DrainTimeout time.Duration
	// BatchSize and BatchWait bound a micro-batch: after the first message the
	// worker waits at most BatchWait for up to BatchSize messages, decides them,
	// publishes their outcomes in one write and commits once. Defaults 256 and
	// 5ms; BatchSize 1 handles messages one by one.
	BatchSize int
	BatchWait time.Duration
	// Metrics, when set, counts what the worker does.
	Metrics *Metrics
}

// Validate reports the first missing or inconsistent setting.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("worker: no Kafka brokers configured")
	case c.GroupID == "":
		return errors.New("worker: GROUP_ID is empty")
	case c.OrdersTopic == "" || c.EventsTopic == "" || c.DLQTopic == "":
		return errors.New("worker: ORDERS_TOPIC, EVENTS_TOPIC and DLQ_TOPIC must all be set")
	case c.OrdersTopic == c.EventsTopic || c.OrdersTopic == c.DLQTopic:
		return fmt.Errorf("worker: ORDERS_TOPIC %q must differ from EVENTS_TOPIC and DLQ_TOPIC", c.OrdersTopic)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 256
	}
	if c.BatchWait <= 0 {
		c.BatchWait = 5 * time.Millisecond
	}
	return c
}

// Worker consumes orders and answers each one. Create it with New; Run it once.
type Worker struct {
	cfg    Config
	deduct Deductor
	reject Rejecter
	pub    Publisher
	log    *zap.Logger
}

// New returns a Worker. It does not connect to anything until Run.
func New(cfg Config, d Deductor, r Rejecter, pub Publisher, log *zap.Logger) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Worker{cfg: cfg.withDefaults(), deduct: d, reject: r, pub: pub, log: log}, nil
}

// Run joins the consumer group and processes orders until ctx is cancelled, then
// finishes the message in hand (within DrainTimeout), commits it, leaves the
// group and returns nil. It returns an error only if the group reader fails for
// good.
func (w *Worker) Run(ctx context.Context) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     w.cfg.Brokers,
		GroupID:     w.cfg.GroupID,
		Topic:       w.cfg.OrdersTopic,
		StartOffset: kafka.FirstOffset, // a new group must not skip earlier orders
		// CommitInterval 0: CommitMessages is synchronous and returns its error.
		CommitInterval: 0,
		MinBytes:       1,
		MaxBytes:       10 << 20,
		MaxWait:        250 * time.Millisecond,
		// Rebalances should not wait long for a member that went away.
		SessionTimeout:    10 * time.Second,
		RebalanceTimeout:  10 * time.Second,
		HeartbeatInterval: time.Second,
		ErrorLogger:       kafka.LoggerFunc(w.log.Sugar().Named("kafka").Warnf),
	})
	// Closing the reader leaves the group at once, so partitions move to the
	// other pods without waiting for the session timeout.
	defer func() {
		if err := r.Close(); err != nil {
			w.log.Warn("close reader", zap.Error(err))
		}
	}()

	// Work on a message in hand may outlive ctx by DrainTimeout, so a shutdown
	// does not abandon an order halfway between decision and publication.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopDrain := context.AfterFunc(ctx, func() { time.AfterFunc(w.cfg.DrainTimeout, cancelWork) })
	defer stopDrain()

	w.log.Info("worker started", zap.String("group", w.cfg.GroupID), zap.String("topic", w.cfg.OrdersTopic),
		zap.String("strategy", w.cfg.Strategy), zap.Int("batch_size", w.cfg.BatchSize))
	for {
		batch, err := w.fetchBatch(ctx, r)
		if err != nil {
			if ctx.Err() != nil {
				w.log.Info("worker stopping")
				return nil
			}
			return fmt.Errorf("worker: fetch from %s: %w", w.cfg.OrdersTopic, err)
		}
		if err := w.process(work, batch); err != nil {
			// Only cancellation ends process without success; the offsets stay
			// uncommitted and the orders are redelivered to whoever owns them next.
			w.log.Warn("batch left uncommitted", batchFields(batch, zap.Error(err))...)
			return nil
		}
		if err := r.CommitMessages(work, batch...); err != nil {
			if work.Err() != nil {
				return nil
			}
			// A failed commit only means a redelivery, which the ledger absorbs.
			w.log.Warn("commit offsets", batchFields(batch, zap.Error(err))...)
		}
	}
}

// fetchBatch blocks for one message, then collects more for at most BatchWait,
// up to BatchSize. A message not taken stays queued in the reader.
func (w *Worker) fetchBatch(ctx context.Context, r *kafka.Reader) ([]kafka.Message, error) {
	m, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := []kafka.Message{m}
	if w.cfg.BatchSize == 1 {
		return batch, nil
	}
	wctx, cancel := context.WithTimeout(ctx, w.cfg.BatchWait)
	defer cancel()
	for len(batch) < w.cfg.BatchSize {
		m, err := r.FetchMessage(wctx)
		if err != nil {
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// process handles batch until it succeeds, retrying transient failures with
// capped exponential backoff. A retry decides nothing twice: decided orders
// replay from the ledger. It returns an error only when ctx ends first.
func (w *Worker) process(ctx context.Context, batch []kafka.Message) error {
	for attempt := 1; ; attempt++ {
		err := w.handleOrdersPlaced(ctx, batch)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pause := retryPause(w.cfg.MinBackoff, w.cfg.MaxBackoff, attempt)
		w.log.Warn("batch failed, will retry", batchFields(batch, zap.Int("attempt", attempt),
			zap.Duration("backoff", pause), zap.Bool("transient", db.Transient(err)), zap.Error(err))...)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// handleOrdersPlaced answers a batch of order-placed messages: each gets a dead
// letter, an invalid_order rejection, or the strategy's decision. The answers
// are published together, in offset order, with acks=all.
func (w *Worker) handleOrdersPlaced(ctx context.Context, batch []kafka.Message) error {
	out := make([]kafka.Message, len(batch))
	decided := make([]*db.Decision, len(batch))
	var (
		orders []events.OrderPlaced
		at     []int // batch index of each order
	)
	for i, m := range batch {
		order, err := events.DecodeOrderPlaced(m.Value)
		var invalid *events.InvalidError
		switch {
		case errors.As(err, &invalid):
			d, err := w.reject.Reject(ctx, invalid.OrderID, events.ReasonInvalidOrder, invalid.Lines)
			if err != nil {
				return fmt.Errorf("reject invalid order %q: %w", invalid.OrderID, err)
			}
			w.log.Info("invalid order", msgFields(m, zap.String("order_id", invalid.OrderID), zap.String("detail", invalid.Detail))...)
			decided[i] = &d
		case err != nil:
			w.log.Warn("dead letter", msgFields(m, zap.NamedError("cause", err))...)
			out[i] = producer.DeadLetter(w.cfg.DLQTopic, m, err)
		default:
			orders, at = append(orders, order), append(at, i)
		}
	}
	if len(orders) > 0 {
		ds, err := w.deductAll(ctx, orders)
		if err != nil {
			return err
		}
		for j, d := range ds {
			decided[at[j]] = &d
		}
	}
	for i, d := range decided {
		if d != nil {
			out[i] = producer.Outcome(w.cfg.EventsTopic, d.OrderID, d.EventType(), d.Payload)
		}
	}
	if err := w.pub.Publish(ctx, out...); err != nil {
		return fmt.Errorf("publish %d answers: %w", len(out), err)
	}
	for i, d := range decided {
		if d == nil {
			w.cfg.Metrics.answered("dead_letter", false)
			continue
		}
		w.cfg.Metrics.answered(d.Status, d.Replayed)
		w.log.Debug("order answered", msgFields(batch[i], zap.String("order_id", d.OrderID), zap.String("outcome", d.EventType()),
			zap.String("reason", d.Reason), zap.Bool("replayed", d.Replayed))...)
	}
	return nil
}

// deductAll decides orders in order: in one call when the strategy decides
// batches, else one by one.
func (w *Worker) deductAll(ctx context.Context, orders []events.OrderPlaced) ([]db.Decision, error) {
	if b, ok := w.deduct.(BatchDeductor); ok {
		ds, err := b.DeductBatch(ctx, orders)
		if err != nil {
			return nil, fmt.Errorf("deduct batch of %d orders: %w", len(orders), err)
		}
		return ds, nil
	}
	ds := make([]db.Decision, len(orders))
	for i, o := range orders {
		d, err := w.deduct.Deduct(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("deduct order %q: %w", o.OrderID, err)
		}
		ds[i] = d
	}
	return ds, nil
}

func msgFields(m kafka.Message, more ...zap.Field) []zap.Field {
	return append([]zap.Field{zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset)}, more...)
}

func batchFields(batch []kafka.Message, more ...zap.Field) []zap.Field {
	first := batch[0]
	return append([]zap.Field{zap.String("topic", first.Topic), zap.Int("partition", first.Partition),
		zap.Int64("offset", first.Offset), zap.Int("batch", len(batch))}, more...)
}

// retryPause is the capped exponential backoff with jitter for attempt n.
func retryPause(lo, hi time.Duration, n int) time.Duration {
	d := lo << min(n-1, 20)
	if d <= 0 || d > hi {
		d = hi
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
