package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// From says where a Tail starts reading.
type From int

const (
	// FromStart reads every message the topic holds, then what comes.
	FromStart From = iota
	// FromEnd reads only what is published after OpenTail returns.
	FromEnd
)

// Tail reads every partition of one topic without a consumer group: nothing is
// committed and no group is joined, so it disturbs no one. It runs one
// kafka.Reader and one goroutine per partition. Messages of different
// partitions interleave; one partition's arrive in order (one order's events
// share a partition, as they are keyed by order_id).
//
// Next and NextAt may be called from any goroutine; Close may be called at any
// time, also while a Next is blocked, and more than once. The caller that
// opened a Tail closes it.
type Tail struct {
	topic   string
	readers []*kafka.Reader
	msgs    chan received
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// failed is closed, and err set before, when the first reader fails.
	failOnce sync.Once
	failed   chan struct{}
	err      error

	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error

	check Check // run by NextAt on every message (WithCheck); nil: none
}

// received is a message and when its reader goroutine got it from the broker.
type received struct {
	msg kafka.Message
	at  time.Time
}

// OpenTail starts reading topic from its start or from its current end. The
// end offsets are resolved before OpenTail returns, so with FromEnd a caller
// can publish and then wait for the answer without a race: everything
// published after OpenTail returns is seen, nothing published before.
//
// ctx bounds the opening only (metadata and offsets, at most 30s); the readers
// run until Close. A missing topic is an error wrapping
// kafka.UnknownTopicOrPartition. Options (WithCheck) apply in order.
func OpenTail(ctx context.Context, brokers []string, topic string, from From, opts ...TailOption) (*Tail, error) {
	return Kafka{Brokers: brokers}.OpenTail(ctx, topic, from, opts...)
}

// OpenTail is the package's OpenTail on k: its readers connect with
// k.Security.
func (k Kafka) OpenTail(ctx context.Context, topic string, from From, opts ...TailOption) (*Tail, error) {
	brokers := k.Brokers
	var starts map[int]int64
	switch from {
	case FromEnd:
		ends, err := k.EndOffsets(ctx, topic)
		if err != nil {
			return nil, err
		}
		starts = ends
	case FromStart:
		ctx, cancel := context.WithTimeout(ctx, adminTimeout)
		defer cancel()
		client, transport := k.newClient()
		defer transport.CloseIdleConnections()
		ids, err := partitions(ctx, client, brokers, topic)
		if err != nil {
			return nil, err
		}
		starts = make(map[int]int64, len(ids))
		for _, id := range ids {
			starts[id] = kafka.FirstOffset
		}
	default:
		return nil, fmt.Errorf("open tail of %s: unknown From %d", topic, from)
	}

	rctx, cancel := context.WithCancel(context.Background())
	t := &Tail{topic: topic, msgs: make(chan received), cancel: cancel, failed: make(chan struct{}), closed: make(chan struct{})}
	for _, opt := range opts {
		opt(t)
	}
	for partition, offset := range starts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   brokers,
			Dialer:    k.Security.Dialer(),
			Topic:     topic,
			Partition: partition,
			// MinBytes 1 and a short MaxWait: a message is handed over as soon
			// as it is there, so arrival times include little of our waiting.
			MinBytes: 1,
			MaxBytes: 10 << 20,
			MaxWait:  100 * time.Millisecond,
			// No lag reporting: its goroutine is not awaited by Reader.Close.
			ReadLagInterval: -1,
		})
		if err := r.SetOffset(offset); err != nil {
			_ = r.Close()
			_ = t.Close()
			return nil, fmt.Errorf("read %s partition %d from offset %d: %w", topic, partition, offset, err)
		}
		t.readers = append(t.readers, r)
		t.wg.Add(1)
		go t.read(rctx, r, partition)
	}
	return t, nil
}

// read is one partition's goroutine: it hands every message over with the
// time it arrived, until ctx ends or the reader fails.
func (t *Tail) read(ctx context.Context, r *kafka.Reader, partition int) {
	defer t.wg.Done()
	for {
		m, err := r.ReadMessage(ctx)
		at := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				t.fail(fmt.Errorf("read %s partition %d: %w", t.topic, partition, err))
			}
			return
		}
		select {
		case t.msgs <- received{msg: m, at: at}:
		case <-ctx.Done():
			return
		}
	}
}

// fail records the first reader failure; later ones are dropped.
func (t *Tail) fail(err error) {
	t.failOnce.Do(func() {
		t.err = err
		close(t.failed)
	})
}

// Next returns the next message of any partition. It returns context.Cause(ctx)
// when ctx ends first, ErrClosed after Close, and the first reader failure
// once one failed (then on every later call).
func (t *Tail) Next(ctx context.Context) (kafka.Message, error) {
	m, _, err := t.NextAt(ctx)
	return m, err
}

// NextAt is Next, and also returns when the message arrived: when its reader
// goroutine received it from the broker, not when NextAt was called. With a
// Check (WithCheck), a message that fails it comes with a *CheckError; the
// next call goes on with the next message.
func (t *Tail) NextAt(ctx context.Context) (kafka.Message, time.Time, error) {
	select {
	case <-t.closed:
		return kafka.Message{}, time.Time{}, ErrClosed
	case <-t.failed:
		return kafka.Message{}, time.Time{}, t.err
	default:
	}
	select {
	case r := <-t.msgs:
		if t.check != nil {
			if err := t.check(r.msg); err != nil {
				return r.msg, r.at, &CheckError{Message: r.msg, Err: err}
			}
		}
		return r.msg, r.at, nil
	case <-t.failed:
		return kafka.Message{}, time.Time{}, t.err
	case <-t.closed:
		return kafka.Message{}, time.Time{}, ErrClosed
	case <-ctx.Done():
		return kafka.Message{}, time.Time{}, context.Cause(ctx)
	}
}

// Close stops every reader goroutine, waits for them, then closes the readers.
// It is idempotent: later calls return the first call's result.
func (t *Tail) Close() error {
	t.closeOnce.Do(func() {
		close(t.closed)
		t.cancel()
		t.wg.Wait()
		var errs []error
		for _, r := range t.readers {
			if err := r.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close reader of %s: %w", t.topic, err))
			}
		}
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}
