package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/producer"
	"go.uber.org/zap"
)

// The poison policy. Every failure of a batch is one of two kinds, decided by
// transient:
//
//   - transient (a dependency down, a timeout, a deadlock, a lock wait, a broker
//     or leader away): it heals by waiting. The batch is retried with capped
//     exponential backoff for as long as it takes, the member reports not ready,
//     and nothing is rejected or dead-lettered because of it.
//   - permanent (anything else: a statement the database refuses for this data,
//     a message the broker refuses, a panic): retrying the same input fails the
//     same way, so it must not stop the partition. The batch gets
//     PoisonAttempts attempts, then it is split in halves, each tried once and
//     split again on failure, until the messages that fail on their own are
//     found; the others are answered normally. A message that still fails
//     after PoisonAttempts attempts of its own, while Probe says the services
//     answer, is parked on the dead-letter topic and its offset is committed
//     with the rest.

// settle answers or parks every message of batch. It returns nil once done,
// and an error only when ctx ends first (the caller then commits nothing).
func (w *Worker) settle(ctx context.Context, id int, log *zap.Logger, batch []kafka.Message) error {
	return w.settlePart(ctx, id, log, batch, w.cfg.PoisonAttempts)
}

// settlePart retries part until it succeeds; permanent failures count against
// budget (a single message always gets PoisonAttempts), then part is split or,
// if it is one message, parked.
func (w *Worker) settlePart(ctx context.Context, id int, log *zap.Logger, part []kafka.Message, budget int) error {
	if len(part) == 1 {
		budget = w.cfg.PoisonAttempts
	}
	permanent := 0
	for attempt := 1; ; attempt++ {
		err := w.handleSafely(ctx, part)
		if err == nil {
			if attempt > 1 {
				log.Info("batch succeeded after retries", batchFields(part, zap.Int("attempt", attempt))...)
			}
			w.setFailure(id, nil)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		isTransient := transient(err)
		w.setFailure(id, err)
		w.cfg.Metrics.retried(isTransient)
		if !isTransient {
			permanent++
		}
		if !isTransient && permanent >= budget {
			if len(part) > 1 {
				mid := len(part) / 2
				log.Warn("batch keeps failing; splitting it to find the messages that fail on their own",
					batchFields(part, zap.Int("attempts", attempt), zap.Error(err))...)
				if err := w.settlePart(ctx, id, log, part[:mid], 1); err != nil {
					return err
				}
				return w.settlePart(ctx, id, log, part[mid:], 1)
			}
			// One message that keeps failing. Park it only if it still fails
			// once more while the services answer; otherwise this is an
			// outage that happens to surface as a permanent-looking error:
			// keep waiting, and look again after the next failure.
			perr := w.probe(ctx)
			if perr == nil {
				attempt++
				last := w.handleSafely(ctx, part)
				switch {
				case last == nil:
					w.setFailure(id, nil)
					return nil
				case ctx.Err() != nil:
					return ctx.Err()
				case !transient(last):
					return w.park(ctx, id, log, part[0], last, attempt)
				}
				err, isTransient = last, true
			} else {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				err = fmt.Errorf("%w; and the services do not answer, so the message is not parked: %w", err, perr)
			}
			w.setFailure(id, err)
			permanent = budget - 1
		}
		pause := retryPause(w.cfg.MinBackoff, w.cfg.MaxBackoff, attempt)
		logf := log.Warn
		if !isTransient {
			logf = log.Error
		}
		logf("batch failed, will retry", batchFields(part, zap.Int("attempt", attempt),
			zap.Duration("backoff", pause), zap.Bool("transient", isTransient), zap.Error(err))...)
		if err := sleep(ctx, pause); err != nil {
			return err
		}
	}
}

// park publishes m to the dead-letter topic with the error and the number of
// attempts, retrying that publish (only an outage can fail it: the letter fits
// the broker's limit) until it is acknowledged or ctx ends.
func (w *Worker) park(ctx context.Context, id int, log *zap.Logger, m kafka.Message, cause error, attempts int) error {
	letter := producer.Letter(w.cfg.DLQTopic, m, producer.KindPoison, cause, attempts)
	for attempt := 1; ; attempt++ {
		err := w.pub.Publish(ctx, letter)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = fmt.Errorf("park a poison message on %s: %w", w.cfg.DLQTopic, err)
		w.setFailure(id, err)
		pause := retryPause(w.cfg.MinBackoff, w.cfg.MaxBackoff, attempt)
		log.Warn("dead-letter topic unavailable, will retry", msgFields(m, zap.Int("attempt", attempt), zap.Duration("backoff", pause), zap.Error(err))...)
		if err := sleep(ctx, pause); err != nil {
			return err
		}
	}
	w.cfg.Metrics.poisoned(m.Topic)
	log.Error("poison message parked on the dead-letter topic; the partition moves on",
		msgFields(m, zap.ByteString("key", clipBytes(m.Key, 128)), zap.Int("attempts", attempts), zap.String("dlq", w.cfg.DLQTopic),
			zap.Error(cause))...)
	w.setFailure(id, nil)
	return nil
}

func (w *Worker) probe(ctx context.Context) error {
	if w.cfg.Probe == nil {
		return nil
	}
	return w.cfg.Probe(ctx)
}

// handleSafely is handle with a panic turned into a permanent error, so that a
// defect triggered by one message is isolated like any other poison instead
// of crashing the process into a restart loop on the same message.
func (w *Worker) handleSafely(ctx context.Context, batch []kafka.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", errPanic, r, debug.Stack())
		}
	}()
	return w.handle(ctx, batch)
}

var errPanic = errors.New("worker: panic while handling a batch")

// publishError marks a failure to publish answers.
type publishError struct{ err error }

func (e *publishError) Error() string { return e.err.Error() }
func (e *publishError) Unwrap() error { return e.err }

// transient reports whether err heals by waiting. A publish heals unless one
// message itself is at fault (producer.PerMessage); every other failure is
// classified by db.Transient, the one place that knows database errors.
func transient(err error) bool {
	var pe *publishError
	if errors.As(err, &pe) {
		return !producer.PerMessage(pe.err)
	}
	if errors.Is(err, errPanic) {
		return false
	}
	return db.Transient(err)
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
