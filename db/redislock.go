package db

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	goredislib "github.com/redis/go-redis/v9"
	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// RedisOptions tune the redis strategy's locks. The zero value gives the
// documented defaults.
type RedisOptions struct {
	// Prefix of the lock keys; the key of goods 16 is Prefix+"16". Default
	// "stockflow:goods:".
	Prefix string
	// Expiry of a lock. It must outlast the work done under it; Deduct bounds
	// that work by the lock's validity. Default 3 × Options.TxTimeout.
	Expiry time.Duration
	// AcquireTimeout bounds the wait for all of an order's locks. Default 10s.
	AcquireTimeout time.Duration
}

// Redis serialises each goods with a redsync lock (one per goods, taken in
// ascending goods id with LockContext) held until after COMMIT. The database
// write is fenced as well: every UPDATE is conditional (stocks >= ?), relative
// (stocks = stocks - ?) and the decision is re-checked under the transaction's
// own row locks, so a lock that expires mid-transaction costs serialisation,
// never a lost update or an oversell. Redis unavailable is a transient error
// (ErrLock): nothing is written. Cost per order: one Redis round trip per goods
// to lock and one to unlock, plus the pessimistic transaction.
type Redis struct {
	base
	rs    *redsync.Redsync
	ropts RedisOptions
}

// NewRedis returns the redis strategy over g and client.
func NewRedis(g *gorm.DB, client goredislib.UniversalClient, opts Options, ropts RedisOptions) *Redis {
	b := newBase(g, "redis", opts)
	if ropts.Prefix == "" {
		ropts.Prefix = "stockflow:goods:"
	}
	if ropts.Expiry <= 0 {
		ropts.Expiry = 3 * b.opts.TxTimeout
	}
	if ropts.AcquireTimeout <= 0 {
		ropts.AcquireTimeout = 10 * time.Second
	}
	return &Redis{base: b, rs: redsync.New(goredis.NewPool(client)), ropts: ropts}
}

// Deduct decides o; see Pessimistic.Deduct for the contract.
func (r *Redis) Deduct(ctx context.Context, o events.OrderPlaced) (Decision, error) {
	hold := func(ctx context.Context, goods []int64) (context.Context, func(error) error, error) {
		mutexes, err := r.lock(ctx, goods)
		if err != nil {
			return nil, nil, err
		}
		// The work under the locks ends before the first of them expires.
		until := mutexes[0].Until()
		for _, m := range mutexes[1:] {
			if m.Until().Before(until) {
				until = m.Until()
			}
		}
		wctx, cancel := context.WithDeadline(ctx, until)
		return wctx, func(err error) error {
			outlived := err != nil && ctx.Err() == nil && wctx.Err() != nil
			cancel()
			r.unlock(mutexes)
			if outlived {
				return fmt.Errorf("redis order %s: work outlived the lock: %w", o.OrderID, ErrLock)
			}
			return err
		}, nil
	}
	// FOR UPDATE costs little under the Redis lock (no one else waits) and
	// keeps the decision right if the lock has expired.
	return r.deductRows(ctx, o, hold, func(tx *gorm.DB, orderID string, lines []events.Line) (Decision, error) {
		return r.lockDecideWrite(tx, orderID, lines, true)
	})
}

// lock takes the goods' locks in ascending order; on failure it releases what it
// took and returns an error wrapping ErrLock (or ctx's error).
func (r *Redis) lock(ctx context.Context, goods []int64) ([]*redsync.Mutex, error) {
	actx, cancel := context.WithTimeout(ctx, r.ropts.AcquireTimeout)
	defer cancel()
	held := make([]*redsync.Mutex, 0, len(goods))
	for _, g := range goods {
		m := r.rs.NewMutex(r.ropts.Prefix+strconv.FormatInt(g, 10),
			redsync.WithExpiry(r.ropts.Expiry),
			// Tries are bounded by AcquireTimeout, not by count.
			redsync.WithTries(1<<20),
			redsync.WithRetryDelayFunc(func(int) time.Duration { return time.Duration(1+rand.IntN(10)) * time.Millisecond }),
		)
		if err := m.LockContext(actx); err != nil {
			r.unlock(held)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("lock goods %d: %w: %w", g, ErrLock, err)
		}
		held = append(held, m)
	}
	return held, nil
}

// unlock releases the locks in reverse order, on a fresh bounded context so a
// cancelled order still frees them. A failed unlock (Redis gone, or the lock
// already expired: ErrLockAlreadyExpired) costs nothing the database did not
// fence; the key expires by itself.
func (r *Redis) unlock(held []*redsync.Mutex) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for i := len(held) - 1; i >= 0; i-- {
		_, _ = held[i].UnlockContext(ctx)
	}
}

// ProbeRedis takes and releases one lock under prefix with the commands the
// redis strategy uses (SET NX PX, and EVALSHA, or EVAL on NOSCRIPT, of
// redsync's release script). A nil answer means client's credentials and
// ACL allow the strategy's work on keys of prefix. The key is prefix+"probe-"
// and a random suffix, so probes of several processes never meet.
func ProbeRedis(ctx context.Context, client goredislib.UniversalClient, prefix string) error {
	m := redsync.New(goredis.NewPool(client)).NewMutex(
		prefix+"probe-"+strconv.FormatUint(rand.Uint64(), 36),
		redsync.WithExpiry(5*time.Second), redsync.WithTries(1))
	if err := m.TryLockContext(ctx); err != nil {
		return fmt.Errorf("redis: take a lock: %w", err)
	}
	if _, err := m.UnlockContext(ctx); err != nil {
		return fmt.Errorf("redis: release a lock: %w", err)
	}
	return nil
}
