package db

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestKeyedMutexExcludesAndForgets(t *testing.T) {
	k := newKeyedMutex()
	ctx := context.Background()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		inside  = map[int64]int{}
		overlap bool
	)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := []int64{int64(i % 3), 10}
			unlock, err := k.lock(ctx, keys)
			if err != nil {
				t.Error(err)
				return
			}
			defer unlock()
			mu.Lock()
			inside[10]++
			overlap = overlap || inside[10] > 1
			mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			mu.Lock()
			inside[10]--
			mu.Unlock()
		}()
	}
	wg.Wait()
	if overlap {
		t.Fatal("two holders of key 10 at once")
	}
	if n := k.size(); n != 0 {
		t.Fatalf("%d entries left after every lock was released", n)
	}
}

func TestKeyedMutexHonoursContext(t *testing.T) {
	k := newKeyedMutex()
	unlock, err := k.lock(context.Background(), []int64{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, []int64{0, 2}); err == nil {
		t.Fatal("locked a held key")
	}
	// The waiter gave key 0 back when it gave up.
	unlock()
	if n := k.size(); n != 0 {
		t.Fatalf("%d entries left", n)
	}
}
