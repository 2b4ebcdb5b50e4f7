package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/go-sql-driver/mysql"
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
//     and nothing is rejected or dead-lettered because of it. A batch that keeps
//     timing out is split (smaller transactions may fit the deadline), but a
//     message is never parked for a transient failure.
//   - permanent (anything else: a statement the database refuses for this data,
//     a message the broker refuses, a panic): retrying the same input fails the
//     same way, so it must not stop the partition. The batch gets
//     PoisonAttempts attempts, then it is split in halves, each tried once and
//     split again on failure, until the messages that fail on their own are
//     found; the others are answered normally. A message that still fails
//     after PoisonAttempts attempts of its own, and once more after Probe says
//     the services answer, is parked on the dead-letter topic and its offset is
//     committed with the rest.
//
// Parking is held back when it looks systemic: once parkRun messages in a row
// were parked for the same cause with nothing answered in between, the next
// message failing that way is retried (not ready) for up to Config.ParkHold
// before it is parked, so a misconfiguration the probe cannot see (a missing column, a
// statement timeout) does not drain the backlog into the dead-letter topic
// before an alert on stockflow_poison_total reaches someone.
const parkRun = 3

// member is one group member's settling state, kept across its batches.
type member struct {
	id  int
	log *zap.Logger

	parkedCause string    // cause of the last parked message
	parkedRun   int       // messages parked in a row for parkedCause, nothing answered between
	heldSince   time.Time // when parking for parkedCause was first held back; zero when not held
}

// answered notes that a message was answered: the parked run is broken.
func (m *member) answered() { m.parkedRun, m.heldSince = 0, time.Time{} }

// settle answers or parks every message of batch, in order. It returns how
// many messages from the start of batch are settled: all of them with a nil
// error, and the settled prefix when ctx ends first (the caller commits just
// that prefix; the rest is redelivered).
func (w *Worker) settle(ctx context.Context, m *member, batch []kafka.Message) (int, error) {
	settled := 0
	err := w.settlePart(ctx, m, batch, w.cfg.PoisonAttempts, &settled)
	if err == nil {
		w.setFailure(m.id, nil)
	}
	return settled, err
}

// settlePart retries part until it succeeds; permanent failures count against
// budget (a single message always gets PoisonAttempts), then part is split or,
// if it is one message, parked. *settled grows by each part settled.
func (w *Worker) settlePart(ctx context.Context, m *member, part []kafka.Message, budget int, settled *int) error {
	if len(part) == 1 {
		budget = w.cfg.PoisonAttempts
	}
	split := func(err error, attempt int, why string) error {
		mid := len(part) / 2
		m.log.Warn(why, batchFields(part, zap.Int("attempts", attempt), zap.Error(err))...)
		if err := w.settlePart(ctx, m, part[:mid], 1, settled); err != nil {
			return err
		}
		return w.settlePart(ctx, m, part[mid:], 1, settled)
	}
	permanent, timeouts := 0, 0
	for attempt := 1; ; attempt++ {
		err := w.handleSafely(ctx, part)
		if err == nil {
			if attempt > 1 {
				m.log.Info("batch succeeded after retries", batchFields(part, zap.Int("attempt", attempt))...)
			}
			m.answered()
			*settled += len(part)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		isTransient := transient(err)
		w.setFailure(m.id, err)
		w.cfg.Metrics.retried(isTransient)
		switch {
		case isTransient && errors.Is(err, context.DeadlineExceeded):
			if timeouts++; len(part) > 1 && timeouts >= w.cfg.PoisonAttempts {
				return split(err, attempt, "batch keeps timing out; splitting it into smaller transactions")
			}
		case !isTransient:
			permanent++
		}
		if !isTransient && permanent >= budget {
			if len(part) > 1 {
				return split(err, attempt, "batch keeps failing; splitting it to find the messages that fail on their own")
			}
			// One message that keeps failing. Park it only if it still fails
			// once more while the services answer; otherwise this is an
			// outage that happens to surface as a permanent-looking error:
			// keep waiting, and look again after the next failure.
			if perr := w.probe(ctx); perr != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				err = fmt.Errorf("%w; and the services do not answer, so the message is not parked: %w", err, perr)
			} else {
				attempt++
				last := w.handleSafely(ctx, part)
				switch {
				case last == nil:
					m.answered()
					*settled++
					return nil
				case ctx.Err() != nil:
					return ctx.Err()
				case !transient(last):
					if held := w.holdParking(m, last); held != nil {
						err = held
						break
					}
					if err := w.park(ctx, m, part[0], last, attempt); err != nil {
						return err
					}
					*settled++
					return nil
				default:
					err, isTransient = last, true
				}
			}
			w.setFailure(m.id, err)
			permanent = budget - 1
		}
		pause := retryPause(w.cfg.MinBackoff, w.cfg.MaxBackoff, attempt)
		logf := m.log.Warn
		if !isTransient {
			logf = m.log.Error
		}
		logf("batch failed, will retry", batchFields(part, zap.Int("attempt", attempt),
			zap.Duration("backoff", pause), zap.Bool("transient", isTransient), zap.Error(err))...)
		if err := sleep(ctx, pause); err != nil {
			return err
		}
	}
}

// holdParking returns an error while parking a message that failed with err
// must wait because it looks systemic (see parkRun), and nil when it may go
// ahead.
func (w *Worker) holdParking(m *member, err error) error {
	cause := causeOf(err)
	if cause != m.parkedCause || m.parkedRun < parkRun {
		return nil
	}
	if m.heldSince.IsZero() {
		m.heldSince = time.Now()
	}
	if held := time.Since(m.heldSince); held < w.cfg.ParkHold {
		return fmt.Errorf("%w; %d messages in a row were parked for this cause with nothing answered in between, "+
			"so parking is held back for %v in case it is not the message's fault (held %v)", err, m.parkedRun, w.cfg.ParkHold, held.Round(time.Second))
	}
	return nil
}

// causeOf is what makes two failures "the same cause" for holdParking: the
// MySQL error number, the Kafka error code, a panic, or the innermost error's
// text.
func causeOf(err error) string {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return fmt.Sprintf("mysql %d", me.Number)
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		return fmt.Sprintf("kafka %d", int(ke))
	}
	if errors.Is(err, errPanic) {
		return "panic"
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// park publishes msg to the dead-letter topic with the error and the number of
// attempts, retrying that publish until it is acknowledged or ctx ends. A
// letter the broker refuses as such (the topic's max.message.bytes below ours,
// a record it finds invalid) is sent again without its value, then without its
// key too; only an outage, or a dead-letter topic that takes no message at all,
// keeps it from being parked, and the member then reports not ready.
func (w *Worker) park(ctx context.Context, m *member, msg kafka.Message, cause error, attempts int) error {
	letter := producer.Letter(w.cfg.DLQTopic, msg, producer.KindPoison, cause, attempts)
	for attempt := 1; ; attempt++ {
		err := w.pub.Publish(ctx, letter)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if producer.PerMessage(err) {
			if smaller, ok := producer.Shrink(letter); ok {
				m.log.Warn("the dead-letter topic refused the letter; sending it smaller", msgFields(msg, zap.Error(err))...)
				letter = smaller
				continue
			}
		}
		err = fmt.Errorf("park a poison message on %s: %w", w.cfg.DLQTopic, err)
		w.setFailure(m.id, err)
		pause := retryPause(w.cfg.MinBackoff, w.cfg.MaxBackoff, attempt)
		m.log.Warn("cannot park on the dead-letter topic, will retry", msgFields(msg, zap.Int("attempt", attempt), zap.Duration("backoff", pause), zap.Error(err))...)
		if err := sleep(ctx, pause); err != nil {
			return err
		}
	}
	w.cfg.Metrics.poisoned(msg.Topic)
	if c := causeOf(cause); c == m.parkedCause {
		m.parkedRun++
	} else {
		m.parkedCause, m.parkedRun = c, 1
	}
	m.heldSince = time.Time{}
	m.log.Error("poison message parked on the dead-letter topic; the partition moves on",
		msgFields(msg, zap.ByteString("key", clipBytes(msg.Key, 128)), zap.Int("attempts", attempts), zap.String("dlq", w.cfg.DLQTopic),
			zap.Error(cause))...)
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
