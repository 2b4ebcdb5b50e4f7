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
	_ Deductor  = (*db.Pessimistic)(nil)
	_ Rejecter  = (*db.Ledger)(nil)
	_ Publisher = (*producer.Publisher)(nil)
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
		zap.String("strategy", w.cfg.Strategy))
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				w.log.Info("worker stopping")
				return nil
			}
			return fmt.Errorf("worker: fetch from %s: %w", w.cfg.OrdersTopic, err)
		}
		if err := w.process(work, m); err != nil {
			// Only cancellation ends process without success; the offset stays
			// uncommitted and the order is redelivered to whoever owns it next.
			w.log.Warn("message left uncommitted", msgFields(m, zap.Error(err))...)
			return nil
		}
		if err := r.CommitMessages(work, m); err != nil {
			if work.Err() != nil {
				return nil
			}
			// A failed commit only means a redelivery, which the ledger absorbs.
			w.log.Warn("commit offset", msgFields(m, zap.Error(err))...)
		}
	}
}

// process handles m until it succeeds, retrying transient failures with capped
// exponential backoff. It returns an error only when ctx ends first.
func (w *Worker) process(ctx context.Context, m kafka.Message) error {
	for attempt := 1; ; attempt++ {
		err := w.handleOrderPlaced(ctx, m)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pause := retryPause(w.cfg.MinBackoff, w.cfg.MaxBackoff, attempt)
		w.log.Warn("order failed, will retry", msgFields(m, zap.Int("attempt", attempt),
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

// handleOrderPlaced answers one order-placed message: a dead letter, an
// invalid_order rejection, or the strategy's decision, published with acks=all.
func (w *Worker) handleOrderPlaced(ctx context.Context, m kafka.Message) error {
	order, err := events.DecodeOrderPlaced(m.Value)
	var (
		invalid *events.InvalidError
		d       db.Decision
	)
	switch {
	case errors.As(err, &invalid):
		d, err = w.reject.Reject(ctx, invalid.OrderID, events.ReasonInvalidOrder, invalid.Lines)
		if err != nil {
			return fmt.Errorf("reject invalid order %q: %w", invalid.OrderID, err)
		}
		w.log.Info("invalid order", msgFields(m, zap.String("order_id", invalid.OrderID), zap.String("detail", invalid.Detail))...)
	case err != nil:
		if err := w.pub.Publish(ctx, producer.DeadLetter(w.cfg.DLQTopic, m, err)); err != nil {
			return fmt.Errorf("dead-letter: %w", err)
		}
		w.log.Warn("dead letter", msgFields(m, zap.NamedError("cause", err))...)
		w.cfg.Metrics.answered("dead_letter", false)
		return nil
	default:
		d, err = w.deduct.Deduct(ctx, order)
		if err != nil {
			return fmt.Errorf("deduct order %q: %w", order.OrderID, err)
		}
	}
	if err := w.pub.Publish(ctx, producer.Outcome(w.cfg.EventsTopic, d.OrderID, d.EventType(), d.Payload)); err != nil {
		return fmt.Errorf("publish outcome of %q: %w", d.OrderID, err)
	}
	w.cfg.Metrics.answered(d.Status, d.Replayed)
	w.log.Debug("order answered", msgFields(m, zap.String("order_id", d.OrderID), zap.String("outcome", d.EventType()),
		zap.String("reason", d.Reason), zap.Bool("replayed", d.Replayed))...)
	return nil
}

func msgFields(m kafka.Message, more ...zap.Field) []zap.Field {
	return append([]zap.Field{zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset)}, more...)
}

// retryPause is the capped exponential backoff with jitter for attempt n.
func retryPause(lo, hi time.Duration, n int) time.Duration {
	d := lo << min(n-1, 20)
	if d <= 0 || d > hi {
		d = hi
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
