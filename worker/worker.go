package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/producer"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
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

// Ledger records what needs no stock lock strategy: rejections of invalid
// orders, and cancellations. Both return the first result on redelivery.
type Ledger interface {
	Reject(ctx context.Context, orderID, reason string, lines []events.Line) (db.Decision, error)
	Cancel(ctx context.Context, orderID string) (db.Cancellation, error)
}

// Publisher writes messages and returns once they are acknowledged (acks=all).
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafka.Message) error
}

var (
	_ Deductor      = (*db.Pessimistic)(nil)
	_ BatchDeductor = (*db.Batch)(nil)
	_ Ledger        = (*db.Ledger)(nil)
	_ Publisher     = (*producer.Publisher)(nil)
)

// Config configures a Worker. Brokers, GroupID, OrdersTopic, EventsTopic and
// DLQTopic are required.
type Config struct {
	Brokers     []string
	GroupID     string
	OrdersTopic string
	// CancelledTopic, when set, is consumed in the same group: each
	// order-cancelled event gives back what its order deducted.
	CancelledTopic string
	EventsTopic    string
	DLQTopic       string
	// Strategy names the lock strategy in logs and metrics.
	Strategy string
	// MinBackoff and MaxBackoff bound the pause between retries of a batch
	// that failed. Defaults 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// DrainTimeout bounds how long the batch in hand may still take after
	// Run's ctx is cancelled. Default 10s.
	DrainTimeout time.Duration
	// BatchSize and BatchWait bound a micro-batch: after the first message the
	// worker waits at most BatchWait for up to BatchSize messages, decides them,
	// publishes their answers in one write and commits once. Defaults 1024 and
	// 5ms; BatchSize 1 handles messages one by one.
	BatchSize int
	BatchWait time.Duration
	// Consumers is the number of group members this worker runs, each with its
	// own reader and loop, so one process works on several partitions at once.
	// Default 1.
	Consumers int
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
	case c.OrdersTopic == c.EventsTopic || c.OrdersTopic == c.DLQTopic || c.OrdersTopic == c.CancelledTopic:
		return fmt.Errorf("worker: ORDERS_TOPIC %q must differ from CANCELLED_TOPIC, EVENTS_TOPIC and DLQ_TOPIC", c.OrdersTopic)
	case c.CancelledTopic != "" && (c.CancelledTopic == c.EventsTopic || c.CancelledTopic == c.DLQTopic):
		return fmt.Errorf("worker: CANCELLED_TOPIC %q must differ from EVENTS_TOPIC and DLQ_TOPIC", c.CancelledTopic)
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
		c.BatchSize = 1024
	}
	if c.BatchWait <= 0 {
		c.BatchWait = 5 * time.Millisecond
	}
	if c.Consumers <= 0 {
		c.Consumers = 1
	}
	return c
}

// Worker consumes orders and cancellations and answers each one. Create it with
// New; Run it once.
type Worker struct {
	cfg    Config
	deduct Deductor
	ledger Ledger
	pub    Publisher
	log    *zap.Logger

	mu       sync.Mutex
	failures []error // per consumer: the failure being retried, nil while healthy
}

// New returns a Worker. It does not connect to anything until Run.
func New(cfg Config, d Deductor, l Ledger, pub Publisher, log *zap.Logger) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	return &Worker{cfg: cfg, deduct: d, ledger: l, pub: pub, log: log.With(zap.String("strategy", cfg.Strategy)),
		failures: make([]error, cfg.Consumers)}, nil
}

// Ready returns nil while the worker is making progress, and the failure it is
// retrying (a dependency down, retries exhausted) otherwise.
func (w *Worker) Ready() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.failures...)
}

func (w *Worker) setFailure(consumer int, err error) {
	w.mu.Lock()
	w.failures[consumer] = err
	ready := errors.Join(w.failures...) == nil
	w.mu.Unlock()
	w.cfg.Metrics.setReady(ready)
}

// Run joins the consumer group (Consumers members) and processes messages until
// ctx is cancelled, then finishes the batches in hand (within DrainTimeout),
// commits them, leaves the group and returns nil. It returns an error only if a
// group reader fails for good; the other members then stop too.
func (w *Worker) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for i := range w.cfg.Consumers {
		g.Go(func() error { return w.consume(gctx, i) })
	}
	return g.Wait()
}

// consume is one group member's loop: fetch a batch, process it, commit.
func (w *Worker) consume(ctx context.Context, id int) error {
	log := w.log.With(zap.Int("consumer", id))
	rc := kafka.ReaderConfig{
		Brokers:     w.cfg.Brokers,
		GroupID:     w.cfg.GroupID,
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
		ErrorLogger:       kafka.LoggerFunc(log.Sugar().Named("kafka").Warnf),
	}
	if w.cfg.CancelledTopic != "" {
		rc.GroupTopics = []string{w.cfg.OrdersTopic, w.cfg.CancelledTopic}
	} else {
		rc.Topic = w.cfg.OrdersTopic
	}
	r := kafka.NewReader(rc)
	// Closing the reader leaves the group at once, so partitions move to the
	// other pods without waiting for the session timeout.
	defer func() {
		if err := r.Close(); err != nil {
			log.Warn("close reader", zap.Error(err))
		}
	}()

	// Work on the batch in hand may outlive ctx by DrainTimeout, so a shutdown
	// does not abandon orders between decision and publication.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopDrain := context.AfterFunc(ctx, func() { time.AfterFunc(w.cfg.DrainTimeout, cancelWork) })
	defer stopDrain()

	w.setFailure(id, nil)
	log.Info("worker started", zap.String("group", w.cfg.GroupID), zap.String("topic", w.cfg.OrdersTopic),
		zap.String("cancelled_topic", w.cfg.CancelledTopic), zap.Int("batch_size", w.cfg.BatchSize))
	for {
		batch, err := w.fetchBatch(ctx, r)
		if err != nil {
			if ctx.Err() != nil {
				log.Info("worker stopping")
				return nil
			}
			return fmt.Errorf("worker: fetch: %w", err)
		}
		if err := w.process(work, id, log, batch); err != nil {
			// Only cancellation ends process without success; the offsets stay
			// uncommitted and the messages are redelivered to whoever owns them next.
			log.Warn("batch left uncommitted", batchFields(batch, zap.Error(err))...)
			return nil
		}
		if err := w.commit(work, r, batch); err != nil {
			if work.Err() != nil {
				return nil
			}
			// A failed commit only means a redelivery, which the ledger absorbs.
			log.Warn("commit offsets", batchFields(batch, zap.Error(err))...)
		}
	}
}

// commit commits the batch's offsets, bounded in time.
func (w *Worker) commit(ctx context.Context, r *kafka.Reader, batch []kafka.Message) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.CommitMessages(ctx, batch...)
}

// fetchBatch blocks for one message, then collects more for at most BatchWait,
// up to BatchSize. A message not taken stays queued in the reader.
func (w *Worker) fetchBatch(ctx context.Context, r *kafka.Reader) ([]kafka.Message, error) {
	m, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := []kafka.Message{m}
	if w.cfg.BatchSize > 1 {
		wctx, cancel := context.WithTimeout(ctx, w.cfg.BatchWait)
		defer cancel()
		for len(batch) < w.cfg.BatchSize {
			m, err := r.FetchMessage(wctx)
			if err != nil {
				break
			}
			batch = append(batch, m)
		}
	}
	for _, m := range batch {
		w.cfg.Metrics.fetched(m.Topic, m.Partition, m.Offset, m.HighWaterMark)
	}
	w.cfg.Metrics.batch(len(batch))
	return batch, nil
}

// process handles batch until it succeeds, retrying failures with capped
// exponential backoff; while it retries the worker reports not ready. A retry
// decides nothing twice: decided orders replay from the ledger. It returns an
// error only when ctx ends first.
func (w *Worker) process(ctx context.Context, id int, log *zap.Logger, batch []kafka.Message) error {
	for attempt := 1; ; attempt++ {
		err := w.handle(ctx, batch)
		if err == nil {
			if attempt > 1 {
				log.Info("batch succeeded after retries", batchFields(batch, zap.Int("attempt", attempt))...)
			}
			w.setFailure(id, nil)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		transient := db.Transient(err)
		w.setFailure(id, err)
		w.cfg.Metrics.retried(transient)
		pause := retryPause(w.cfg.MinBackoff, w.cfg.MaxBackoff, attempt)
		logf := log.Warn
		if !transient {
			// Not a known transient failure: a defect or an unexpected database
			// state. It is still retried (dropping the batch would lose orders),
			// but loudly.
			logf = log.Error
		}
		logf("batch failed, will retry", batchFields(batch, zap.Int("attempt", attempt),
			zap.Duration("backoff", pause), zap.Bool("transient", transient), zap.Error(err))...)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// handle answers a batch: runs of order-placed messages are decided together,
// cancellations one by one, in the order they arrived. The answers are
// published together, in that order, with acks=all.
func (w *Worker) handle(ctx context.Context, batch []kafka.Message) error {
	var out []kafka.Message
	var done []func() // metrics and logs, once the answers are published
	for start := 0; start < len(batch); {
		end := start + 1
		for end < len(batch) && batch[end].Topic == batch[start].Topic {
			end++
		}
		run := batch[start:end]
		var (
			msgs []kafka.Message
			fin  []func()
			err  error
		)
		if run[0].Topic == w.cfg.OrdersTopic {
			msgs, fin, err = w.handleOrdersPlaced(ctx, run)
		} else {
			msgs, fin, err = w.handleOrdersCancelled(ctx, run)
		}
		if err != nil {
			return err
		}
		out, done = append(out, msgs...), append(done, fin...)
		start = end
	}
	if len(out) > 0 {
		if err := w.pub.Publish(ctx, out...); err != nil {
			return fmt.Errorf("publish %d answers: %w", len(out), err)
		}
	}
	for _, f := range done {
		f()
	}
	return nil
}

// handleOrdersPlaced answers order-placed messages: each gets a dead letter, an
// invalid_order rejection, or the strategy's decision.
func (w *Worker) handleOrdersPlaced(ctx context.Context, batch []kafka.Message) ([]kafka.Message, []func(), error) {
	out := make([]kafka.Message, len(batch))
	decided := make([]*db.Decision, len(batch))
	undecodable := make([]error, len(batch))
	var (
		orders []events.OrderPlaced
		at     []int // batch index of each order
	)
	for i, m := range batch {
		order, err := events.DecodeOrderPlaced(m.Value)
		var invalid *events.InvalidError
		switch {
		case errors.As(err, &invalid):
			d, err := w.ledger.Reject(ctx, invalid.OrderID, events.ReasonInvalidOrder, invalid.Lines)
			if err != nil {
				return nil, nil, fmt.Errorf("reject invalid order %q: %w", invalid.OrderID, err)
			}
			w.log.Info("invalid order", msgFields(m, zap.String("order_id", invalid.OrderID), zap.String("detail", invalid.Detail))...)
			decided[i] = &d
		case err != nil:
			out[i], undecodable[i] = producer.DeadLetter(w.cfg.DLQTopic, m, err), err
		default:
			orders, at = append(orders, order), append(at, i)
		}
	}
	if len(orders) > 0 {
		ds, err := w.deductAll(ctx, orders)
		if err != nil {
			return nil, nil, err
		}
		for j, d := range ds {
			decided[at[j]] = &d
		}
	}
	done := make([]func(), len(batch))
	for i, d := range decided {
		m := batch[i]
		if d == nil {
			cause := undecodable[i]
			done[i] = func() {
				w.cfg.Metrics.deadLetter(m.Topic)
				w.log.Warn("dead letter", msgFields(m, zap.NamedError("cause", cause))...)
			}
			continue
		}
		out[i] = producer.Outcome(w.cfg.EventsTopic, d.OrderID, d.EventType(), d.Payload)
		done[i] = func() {
			w.cfg.Metrics.answered(d.Status, d.Replayed)
			w.log.Debug("order answered", msgFields(m, zap.String("order_id", d.OrderID), zap.String("outcome", d.EventType()),
				zap.String("reason", d.Reason), zap.Bool("replayed", d.Replayed))...)
		}
	}
	return out, done, nil
}

// handleOrdersCancelled gives back what each cancelled order deducted, once.
func (w *Worker) handleOrdersCancelled(ctx context.Context, batch []kafka.Message) ([]kafka.Message, []func(), error) {
	var (
		out  []kafka.Message
		done []func()
	)
	for _, m := range batch {
		c, err := events.DecodeOrderCancelled(m.Value)
		if err != nil {
			out = append(out, producer.DeadLetter(w.cfg.DLQTopic, m, err))
			done = append(done, func() {
				w.cfg.Metrics.deadLetter(m.Topic)
				w.log.Warn("dead letter", msgFields(m, zap.NamedError("cause", err))...)
			})
			continue
		}
		res, err := w.ledger.Cancel(ctx, c.OrderID)
		if err != nil {
			return nil, nil, fmt.Errorf("cancel order %q: %w", c.OrderID, err)
		}
		if res.Event != nil {
			out = append(out, producer.Outcome(w.cfg.EventsTopic, res.OrderID, res.EventType, res.Event))
		}
		done = append(done, func() {
			w.cfg.Metrics.cancelled(res.Result, res.Replayed)
			w.log.Info("order cancelled", msgFields(m, zap.String("order_id", res.OrderID), zap.String("result", res.Result),
				zap.Bool("replayed", res.Replayed))...)
		})
	}
	return out, done, nil
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
