package testsvc

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// Redis returns a client of the real Redis, closed when the test ends.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	addr := RedisAddr()
	Require(t, "Redis", addr)
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}
