package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// error means nothing was decided; it is never turned into a rejection.
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
// Released returns the stock-released events recorded for the given orders.
type Ledger interface {
	Reject(ctx context.Context, orderID, reason string, lines []events.Line, itemsTotal int) (db.Decision, error)
	Cancel(ctx context.Context, orderID string) (db.Cancellation, error)
	Released(ctx context.Context, orderIDs []string) (map[string][]byte, error)
}

// Publisher writes messages and returns once they are acknowledged (acks=all).
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafka.Message) error
}

// Reader is one group member's connection to Kafka; *kafka.Reader is one.
// FetchMessage blocks for the next message of the member's partitions;
// CommitMessages commits, per partition, the offset after the highest message
// given; Close leaves the group.
type Reader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

var (
	_ Deductor      = (*db.Pessimistic)(nil)
	_ BatchDeductor = (*db.Batch)(nil)
	_ Ledger        = (*db.Ledger)(nil)
	_ Publisher     = (*producer.Publisher)(nil)
	_ Reader        = (*kafka.Reader)(nil)
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
	// Limits bound what one message may hold (events.Limits; zero fields
	// take their defaults). They are enforced before any database work.
	Limits events.Limits
	// PoisonAttempts bounds the attempts at a batch that fails with an error
	// that is not transient, and again at a message that still fails on its
	// own once the batch is split; such a message is then parked on DLQTopic.
	// Transient failures never count. Default 6 (about three seconds of
	// backoff from MinBackoff 100ms).
	PoisonAttempts int
	// ParkHold bounds how long parking is held back when it looks systemic
	// (three messages in a row parked for one cause, nothing answered in
	// between; see settle.go). Default 1m.
	ParkHold time.Duration
	// Probe, when set, checks that the services answer (see db.Ledger.Probe).
	// A message is parked only while it succeeds: a failure that hits every
	// message alike is an outage, retried until it passes, never a reason to
	// move good orders to the dead-letter topic.
	Probe func(ctx context.Context) error
	// OpenReader opens a member's Reader. Default kafka.NewReader; tests
	// replace it.
	OpenReader func(kafka.ReaderConfig) Reader
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
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("worker: %w", err)
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
	if c.PoisonAttempts <= 0 {
		c.PoisonAttempts = 6
	}
	if c.ParkHold <= 0 {
		c.ParkHold = time.Minute
	}
	if c.OpenReader == nil {
		c.OpenReader = func(rc kafka.ReaderConfig) Reader { return kafka.NewReader(rc) }
	}
	return c
}

// Worker consumes orders and cancellations and answers each one. Create it with
// New; Run it once.
type Worker struct {
	cfg    Config
	dec    *events.Decoder
	deduct Deductor
	ledger Ledger
	pub    Publisher
	log    *zap.Logger

	mu       sync.Mutex
	failures []error // per consumer: the failure being retried, nil while healthy
	commits  []error // per consumer: the last offset commit's failure, nil once one succeeds
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
	return &Worker{cfg: cfg, dec: events.NewDecoder(cfg.Limits), deduct: d, ledger: l, pub: pub,
		log: log.With(zap.String("strategy", cfg.Strategy)), failures: make([]error, cfg.Consumers), commits: make([]error, cfg.Consumers)}, nil
}

// Ready returns nil while the worker is making progress, and the failures it
// is retrying (a dependency down, a message that keeps failing, offset
// commits failing) otherwise.
func (w *Worker) Ready() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(append(slices.Clone(w.failures), w.commits...)...)
}

func (w *Worker) setFailure(consumer int, err error) {
	w.mu.Lock()
	w.failures[consumer] = err
	w.mu.Unlock()
	w.cfg.Metrics.setReady(w.Ready() == nil)
}

func (w *Worker) setCommitFailure(consumer int, err error) {
	w.mu.Lock()
	w.commits[consumer] = err
	w.mu.Unlock()
	w.cfg.Metrics.setReady(w.Ready() == nil)
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

// consume is one group member's loop: fetch a batch, settle it (every message
// answered or parked), commit.
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
	r := w.cfg.OpenReader(rc)
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

	m := &member{id: id, log: log}
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
		settled, err := w.settle(work, m, batch)
		if err != nil {
			// Only cancellation ends settle early. The settled prefix (a split
			// batch settles in order) is committed on a fresh bounded context;
			// the rest stays uncommitted and is redelivered to whoever owns
			// the partitions next.
			if settled > 0 {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(work), 5*time.Second)
				if cerr := w.commit(cctx, r, batch[:settled]); cerr != nil {
					log.Warn("commit the settled part of the batch", batchFields(batch, zap.Error(cerr))...)
				}
				cancel()
			}
			log.Warn("batch left uncommitted", batchFields(batch[min(settled, len(batch)-1):], zap.Int("settled", settled), zap.Error(err))...)
			return nil
		}
		if err := w.commit(work, r, batch); err != nil {
			if work.Err() != nil {
				return nil
			}
			// A failed commit only means a redelivery, which the ledger
			// absorbs; the member reports it until a commit succeeds.
			w.setCommitFailure(id, fmt.Errorf("commit offsets: %w", err))
			log.Warn("commit offsets", batchFields(batch, zap.Error(err))...)
			continue
		}
		w.setCommitFailure(id, nil)
	}
}

// commit commits the batch's offsets, bounded in time.
func (w *Worker) commit(ctx context.Context, r Reader, batch []kafka.Message) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return r.CommitMessages(ctx, batch...)
}

// fetchBatch blocks for one message, then collects more for at most BatchWait,
// up to BatchSize. A message not taken stays queued in the reader.
func (w *Worker) fetchBatch(ctx context.Context, r Reader) ([]kafka.Message, error) {
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

func msgFields(m kafka.Message, more ...zap.Field) []zap.Field {
	return append([]zap.Field{zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset)}, more...)
}

func batchFields(batch []kafka.Message, more ...zap.Field) []zap.Field {
	first := batch[0]
	return append([]zap.Field{zap.String("topic", first.Topic), zap.Int("partition", first.Partition),
		zap.Int64("offset", first.Offset), zap.Int("batch", len(batch))}, more...)
}
