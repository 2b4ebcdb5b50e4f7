package db_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/internal/testsvc"
)

func TestRedis(t *testing.T) {
	t.Parallel()
	conformance(t, "redis")
}

// A lock that expires while its transaction is still running must not let a
// lost update through: the slow order's work is cut off at the lock's expiry
// and retried, the fast order goes ahead, and the stock ends exact.
func TestRedisLockExpiresDuringSlowTransaction(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 4)
	testsvc.Stock(t, g, 16, 10)
	var slowOnce sync.Once
	slowStarted := make(chan struct{})
	s := db.NewRedis(g, testsvc.Redis(t), db.Options{Inject: func(ctx context.Context, point string) error {
		if point != db.PointWritten {
			return nil
		}
		var slow bool
		slowOnce.Do(func() { slow = true })
		if !slow {
			return nil
		}
		close(slowStarted)
		select { // far longer than the lock's expiry
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
			return nil
		}
	}}, db.RedisOptions{Prefix: testsvc.Unique("sf:test:"), Expiry: 400 * time.Millisecond})

	ctx := context.Background()
	start := time.Now()
	var (
		wg       sync.WaitGroup
		slowErr  error
		slowDone time.Time
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, slowErr = s.Deduct(ctx, order("slow", line(16, 1)))
		slowDone = time.Now()
	}()
	<-slowStarted
	// The slow order holds the lock and has written inside its transaction.
	fast, err := decide(ctx, s, order("fast", line(16, 3)))
	wg.Wait()
	if err != nil || fast.Status != db.StatusDeducted {
		t.Fatalf("fast order: %+v, %v", fast, err)
	}
	if !errors.Is(slowErr, db.ErrLock) || !db.Transient(slowErr) {
		t.Fatalf("slow order: err = %v, want a transient ErrLock", slowErr)
	}
	// ErrLock here means the work outlived the lock: the fast order could take
	// the lock while the slow transaction was still open.
	if slowDone.Sub(start) > 3*time.Second {
		t.Fatalf("the slow order ran %v: it was not cut off at the lock's expiry", slowDone.Sub(start))
	}
	// The redelivery of the slow order now decides it.
	if d, err := decide(ctx, s, order("slow", line(16, 1))); err != nil || d.Status != db.StatusDeducted {
		t.Fatalf("slow order retried: %+v, %v", d, err)
	}
	if got := testsvc.Stocks(t, g, 16); got != 6 {
		t.Fatalf("stock = %d, want 6", got)
	}
}

// With Redis unreachable the order fails transiently and nothing is written.
func TestRedisUnavailable(t *testing.T) {
	t.Parallel()
	g := testsvc.Database(t, 2)
	testsvc.Stock(t, g, 16, 10)
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer dead.Close()
	s := db.NewRedis(g, dead, db.Options{}, db.RedisOptions{AcquireTimeout: 500 * time.Millisecond})
	_, err := s.Deduct(context.Background(), order("R", line(16, 1)))
	if !errors.Is(err, db.ErrLock) || !db.Transient(err) {
		t.Fatalf("err = %v, want a transient ErrLock", err)
	}
	if got := testsvc.Stocks(t, g, 16); got != 10 {
		t.Fatalf("stock = %d, want 10", got)
	}
}
