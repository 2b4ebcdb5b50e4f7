package db

import (
	"context"
	"sync"

	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// Mutex serialises each goods with an in-process mutex (one per goods, taken in
// ascending goods id and released by defer on every path) around the order's
// transaction. Its supported topology is ONE worker process: the mutexes protect
// nothing across pods. Its writes are still guarded in SQL (stocks >= ?), so two
// pods run by mistake cannot oversell; they only lose the mutex's serialisation
// and fall back to guard failures and retries. Cost per order: a ledger read,
// one plain read, one UPDATE per line, one ledger insert.
type Mutex struct {
	base
	locks *keyedMutex
}

// NewMutex returns the mutex strategy over g.
func NewMutex(g *gorm.DB, opts Options) *Mutex {
	return &Mutex{base: newBase(g, "mutex", opts), locks: newKeyedMutex()}
}

// Deduct decides o; see Pessimistic.Deduct for the contract.
func (m *Mutex) Deduct(ctx context.Context, o events.OrderPlaced) (Decision, error) {
	hold := func(ctx context.Context, goods []int64) (context.Context, func(error) error, error) {
		unlock, err := m.locks.lock(ctx, goods)
		if err != nil {
			return nil, nil, err
		}
		return ctx, func(err error) error { unlock(); return err }, nil
	}
	return m.deductRows(ctx, o, hold, func(tx *gorm.DB, orderID string, lines []events.Line) (Decision, error) {
		return m.lockDecideWrite(tx, orderID, lines, false)
	})
}

// keyedMutex is one mutex per key, created on demand and dropped when no one
// holds or waits for it, so the map does not grow with the catalogue.
type keyedMutex struct {
	mu      sync.Mutex
	entries map[int64]*keyEntry
}

type keyEntry struct {
	ch   chan struct{} // holds a token while locked
	refs int           // holders and waiters
}

func newKeyedMutex() *keyedMutex { return &keyedMutex{entries: map[int64]*keyEntry{}} }

// lock takes the mutexes of keys (ascending, no duplicates) in order and returns
// the function that releases them all. If ctx ends first, nothing stays held.
func (k *keyedMutex) lock(ctx context.Context, keys []int64) (unlock func(), err error) {
	held := make([]int64, 0, len(keys))
	release := func() {
		for i := len(held) - 1; i >= 0; i-- {
			k.release(held[i])
		}
	}
	for _, key := range keys {
		e := k.acquireRef(key)
		select {
		case e.ch <- struct{}{}:
			held = append(held, key)
		case <-ctx.Done():
			k.dropRef(key)
			release()
			return nil, ctx.Err()
		}
	}
	return release, nil
}

func (k *keyedMutex) acquireRef(key int64) *keyEntry {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.entries[key]
	if !ok {
		e = &keyEntry{ch: make(chan struct{}, 1)}
		k.entries[key] = e
	}
	e.refs++
	return e
}

func (k *keyedMutex) release(key int64) {
	k.mu.Lock()
	e := k.entries[key]
	k.mu.Unlock()
	<-e.ch
	k.dropRef(key)
}

func (k *keyedMutex) dropRef(key int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.entries[key]
	if e.refs--; e.refs == 0 {
		delete(k.entries, key)
	}
}

// size is the number of live entries (for tests).
func (k *keyedMutex) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.entries)
}
