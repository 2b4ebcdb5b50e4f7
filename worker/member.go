package worker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/kafkaconn"
	"go.uber.org/zap"
)

// member is one consumer-group member: a pipeline of goroutines it owns and
// awaits.
//
//	fetch ──▶ schedule ──▶ decide (Lanes lanes) ──▶ publish ──▶ commit
//
// The fetcher reads messages and admits them to the scheduler in offset order
// (it blocks while the scheduler's window is full). Lanes take what may be
// decided now — orders on other goods never wait for each other; orders on
// one goods go in offset order — and decide it under the poison policy. The
// publisher writes the answers as they are decided. The committer commits,
// per partition, up to the first message not yet answered, without holding
// up the next fetch. A crash at any point leaves only messages that were not
// committed, which the ledger turns into replays.
type member struct {
	w       *Worker
	id      int
	log     *zap.Logger
	sched   *scheduler
	pubq    *pubQueue
	offsets *offsets

	commitWake chan struct{}

	parkMu      sync.Mutex
	parkedCause string    // cause of the last parked message
	parkedRun   int       // messages parked in a row for parkedCause, nothing answered between
	heldSince   time.Time // when parking for parkedCause was first held back; zero when not held
}

// consume runs one group member until ctx ends, then drains: the messages in
// hand get at most DrainTimeout to be answered and committed before the
// member leaves the group. It returns an error only if fetching fails.
func (w *Worker) consume(ctx context.Context, id int) error {
	log := w.log.With(zap.Int("consumer", id))
	r := w.cfg.OpenReader(w.readerConfig(log))
	// Closing the reader leaves the group at once, so partitions move to the
	// other pods without waiting for the session timeout.
	defer func() {
		if err := r.Close(); err != nil {
			log.Warn("close reader", zap.Error(err))
		}
	}()
	m := &member{w: w, id: id, log: log, sched: newScheduler(w.cfg.MaxInFlight), pubq: newPubQueue(),
		offsets: newOffsets(), commitWake: make(chan struct{}, 1)}
	defer w.health.clear(fmt.Sprintf("consumer %d ", id))
	log.Info("worker started", zap.String("group", w.cfg.GroupID), zap.String("topic", w.cfg.OrdersTopic),
		zap.String("cancelled_topic", w.cfg.CancelledTopic), zap.Int("lanes", w.cfg.Lanes), zap.Int("batch_size", w.cfg.BatchSize))

	// work outlives ctx by DrainTimeout, so a shutdown does not abandon orders
	// between decision and publication; commits get a moment more.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	commits, stopCommits := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCommits()

	var stages, committer sync.WaitGroup
	stages.Add(w.cfg.Lanes + 1)
	for n := range w.cfg.Lanes {
		go func() { defer stages.Done(); m.lane(work, n) }()
	}
	go func() { defer stages.Done(); m.publisher(work) }()
	committer.Add(1)
	go func() { defer committer.Done(); m.committer(commits, r) }()

	fetchErr := m.fetch(ctx, r)

	// Drain: no new messages; wait for those in hand, at most DrainTimeout.
	deadline := time.NewTimer(w.cfg.DrainTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
drain:
	for !m.sched.idle() {
		select {
		case <-deadline.C:
			log.Warn("drain timed out; messages not yet answered stay uncommitted and are redelivered",
				zap.Duration("drain_timeout", w.cfg.DrainTimeout))
			break drain
		case <-tick.C:
		}
	}
	deadline.Stop()
	tick.Stop()
	stopWork()
	stages.Wait()
	// The committer commits what was settled, then stops.
	stopCommits()
	committer.Wait()
	if fetchErr != nil {
		return fetchErr
	}
	log.Info("worker stopping")
	return nil
}

func (w *Worker) readerConfig(log *zap.Logger) kafka.ReaderConfig {
	rc := kafka.ReaderConfig{
		Brokers:     w.cfg.Brokers,
		GroupID:     w.cfg.GroupID,
		StartOffset: kafka.FirstOffset, // a new group must not skip earlier orders
		// CommitInterval 0: CommitMessages is synchronous and returns its
		// error; the committer calls it off the fetch path.
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
	return rc
}

// fetch reads messages and admits them to the scheduler until ctx ends (nil)
// or a fetch fails in a way no wait can heal (its error). A broker, leader
// or coordinator that goes away surfaces here as an error while kafka-go's
// reader keeps rejoining the group in the background: the member reports it
// (not ready), backs off and fetches again.
func (m *member) fetch(ctx context.Context, r Reader) error {
	name := fmt.Sprintf("consumer %d fetch", m.id)
	// The failure stays reported until a fetch succeeds, or until a fetch
	// has waited fetchHealed for messages without failing: an idle reader
	// that rejoined the group has nothing to return, and is healthy.
	var (
		mu      sync.Mutex
		epoch   int
		failing bool
	)
	for attempt := 1; ; attempt++ {
		var healed *time.Timer
		mu.Lock()
		if failing {
			e := epoch
			healed = time.AfterFunc(fetchHealed, func() {
				mu.Lock()
				defer mu.Unlock()
				if epoch == e && failing {
					failing = false
					m.w.health.set(name, nil)
					m.log.Info("fetching again")
				}
			})
		}
		mu.Unlock()
		msg, err := r.FetchMessage(ctx)
		if healed != nil {
			healed.Stop()
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if fatalFetch(err) {
				return fmt.Errorf("worker: fetch: %w", err)
			}
			mu.Lock()
			epoch++
			failing = true
			m.w.health.set(name, fmt.Errorf("fetch: %w", err))
			mu.Unlock()
			pause := retryPause(m.w.cfg.MinBackoff, m.w.cfg.MaxBackoff, attempt)
			m.log.Warn("fetch failed, will retry", zap.Int("attempt", attempt), zap.Duration("backoff", pause), zap.Error(err))
			if sleep(ctx, pause) != nil {
				return nil
			}
			continue
		}
		mu.Lock()
		if failing {
			epoch++
			failing = false
			m.w.health.set(name, nil)
			m.log.Info("fetching again")
		}
		mu.Unlock()
		attempt = 0
		m.w.cfg.Metrics.fetched(msg.Topic, msg.Partition, msg.Offset, msg.HighWaterMark)
		t := m.w.newTask(msg)
		t.offset = m.offsets.fetched(msg)
		if err := m.sched.admit(ctx, t); err != nil {
			return nil // ctx ended; the message stays uncommitted
		}
	}
}

// fetchHealed is how long a fetch must wait without failing for a member
// that was failing to fetch to count as healthy again.
const fetchHealed = 5 * time.Second

// fatalFetch reports fetch errors that waiting cannot heal: the cluster
// refuses the worker's connection (kafkaconn.Refused: its credentials, an
// untrusted certificate, TLS against a plaintext listener) or its access to
// the topics or the group.
func fatalFetch(err error) bool {
	return kafkaconn.Refused(err) || errors.Is(err, kafka.TopicAuthorizationFailed) ||
		errors.Is(err, kafka.GroupAuthorizationFailed) || errors.Is(err, kafka.ClusterAuthorizationFailed)
}

// newTask decodes msg under the limits into the task that answers it.
func (w *Worker) newTask(msg kafka.Message) *task {
	t := &task{msg: msg}
	if msg.Topic != w.cfg.OrdersTopic {
		c, err := w.dec.OrderCancelled(msg.Value)
		if err != nil {
			t.kind, t.cause = kindUndecodable, err
			return t
		}
		t.kind, t.orderID = kindCancel, c.OrderID
		return t
	}
	order, err := w.dec.OrderPlaced(msg.Value)
	var invalid *events.InvalidError
	switch {
	case errors.As(err, &invalid):
		t.kind, t.invalid, t.orderID = kindInvalid, invalid, invalid.OrderID
	case err != nil:
		t.kind, t.cause = kindUndecodable, err
	default:
		t.kind, t.order, t.orderID = kindOrder, order, order.OrderID
		t.goods = make([]int64, len(order.Lines))
		for i, l := range order.Lines {
			t.goods[i] = l.GoodsID
		}
	}
	return t
}

// committer commits, per partition, up to the first message not yet settled,
// whenever that moved, one commit at a time, so commits never hold up a
// fetch and a slow commit only makes the next one cover more. A failed
// commit is retried (a redelivery is all it costs meanwhile) and reported
// until one succeeds. When ctx ends it commits what is settled, bounded, and
// returns.
func (m *member) committer(ctx context.Context, r Reader) {
	name := fmt.Sprintf("consumer %d commit", m.id)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	commit := func(ctx context.Context) {
		msgs := m.offsets.pending()
		if len(msgs) == 0 {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := r.CommitMessages(cctx, msgs...)
		cancel()
		if err != nil {
			m.w.health.set(name, fmt.Errorf("commit offsets: %w", err))
			m.log.Warn("commit offsets", zap.Int("partitions", len(msgs)), zap.Error(err))
			retry.Reset(time.Second)
			return
		}
		m.offsets.committed(msgs)
		m.w.health.set(name, nil)
	}
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			commit(final)
			cancel()
			return
		case <-m.commitWake:
		case <-retry.C:
		}
		commit(ctx)
		// At most one commit per CommitInterval: each is a write to the
		// group coordinator, and what waits only makes the next one cover
		// more (a crash redelivers it, and the ledger replays it).
		if err := sleep(ctx, m.w.cfg.CommitInterval); err != nil {
			continue // the final commit, above
		}
	}
}

// health is the failure each part of the worker is retrying, by name ("consumer
// 0 lane 3", "consumer 0 publish", "consumer 0 commit"); nil while healthy.
type health struct {
	mu      sync.Mutex
	fails   map[string]error
	onReady func(bool)
}

func (h *health) set(part string, err error) {
	h.mu.Lock()
	if err == nil {
		delete(h.fails, part)
	} else {
		h.fails[part] = err
	}
	ready := len(h.fails) == 0
	h.mu.Unlock()
	h.onReady(ready)
}

// clear forgets every part whose name starts with prefix.
func (h *health) clear(prefix string) {
	h.mu.Lock()
	for k := range h.fails {
		if strings.HasPrefix(k, prefix) {
			delete(h.fails, k)
		}
	}
	ready := len(h.fails) == 0
	h.mu.Unlock()
	h.onReady(ready)
}

func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	parts := make([]string, 0, len(h.fails))
	for k := range h.fails {
		parts = append(parts, k)
	}
	sort.Strings(parts)
	errs := make([]error, len(parts))
	for i, k := range parts {
		errs[i] = fmt.Errorf("%s: %w", k, h.fails[k])
	}
	return errors.Join(errs...)
}
