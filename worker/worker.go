package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/producer"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
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
	// BatchSize bounds the orders a batch strategy decides in one
	// transaction (a run of orders on one goods, or of ready orders on many).
	// Default 1024.
	BatchSize int
	// BatchWait, when set, is how long a lane of a batch strategy waits for a
	// run to fill before it starts a transaction that is not full. Default 0:
	// under load runs fill by themselves while the previous transaction runs.
	BatchWait time.Duration
	// Consumers is the number of group members this worker runs, each with its
	// own reader and pipeline, so one process works on several partitions at
	// once. Default 1.
	Consumers int
	// Lanes is the number of decisions one member takes at once: orders on
	// different goods are decided concurrently, orders sharing a goods in
	// offset order. 1 decides one at a time. Default 1; stockworker sizes it
	// to DB_MAX_OPEN.
	Lanes int
	// MaxInFlight bounds the messages a member holds between fetch and
	// commit; fetching waits while it is reached. Default the larger of
	// 4 × BatchSize and 64 × Lanes.
	MaxInFlight int
	// CommitInterval is the least time between two offset commits of a
	// member. Committing less often costs nothing but the redelivery of what
	// was answered since the last commit, should the member crash. Default
	// 100ms.
	CommitInterval time.Duration
	// Transient classifies a decision's failure: true heals by waiting (it
	// is retried without end and never parked), false does not (the poison
	// policy). Required: the strategy's package knows its errors (db.Transient).
	Transient func(error) bool
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
	case c.Transient == nil:
		return errors.New("worker: Config.Transient is required (db.Transient for the db strategies)")
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
	if c.BatchWait < 0 {
		c.BatchWait = 0
	}
	if c.Consumers <= 0 {
		c.Consumers = 1
	}
	if c.Lanes <= 0 {
		c.Lanes = 1
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = max(4*c.BatchSize, 64*c.Lanes)
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = 100 * time.Millisecond
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
	health *health
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
		log:    log.With(zap.String("strategy", cfg.Strategy)),
		health: &health{fails: map[string]error{}, onReady: cfg.Metrics.setReady}}, nil
}

// Ready returns nil while the worker is making progress, and the failures it
// is retrying (a dependency down, a message that keeps failing, offset
// commits failing), each named by the part of the worker that meets it,
// otherwise.
func (w *Worker) Ready() error { return w.health.err() }

// Run joins the consumer group (Consumers members) and processes messages until
// ctx is cancelled, then finishes the messages in hand (within DrainTimeout),
// commits them, leaves the group and returns nil. It returns an error only if
// a group reader fails for good; the other members then stop too.
func (w *Worker) Run(ctx context.Context) error {
	w.cfg.Metrics.setReady(true)
	g, gctx := errgroup.WithContext(ctx)
	for i := range w.cfg.Consumers {
		g.Go(func() error { return w.consume(gctx, i) })
	}
	return g.Wait()
}

func (w *Worker) transient(err error) bool {
	var pe *publishError
	if errors.As(err, &pe) {
		return !producer.PerMessage(pe.err)
	}
	if errors.Is(err, errPanic) {
		return false
	}
	return w.cfg.Transient(err)
}

func (w *Worker) probe(ctx context.Context) error {
	if w.cfg.Probe == nil {
		return nil
	}
	return w.cfg.Probe(ctx)
}

// retryPause is the capped exponential backoff with jitter for attempt n.
func retryPause(lo, hi time.Duration, n int) time.Duration {
	d := lo << min(n-1, 20)
	if d <= 0 || d > hi {
		d = hi
	}
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func clipBytes(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return b[:n]
}

func msgFields(m kafka.Message, more ...zap.Field) []zap.Field {
	return append([]zap.Field{zap.String("topic", m.Topic), zap.Int("partition", m.Partition), zap.Int64("offset", m.Offset)}, more...)
}
