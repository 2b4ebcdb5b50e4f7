package db

import (
	"context"
	"fmt"
	"strings"

	goredislib "github.com/redis/go-redis/v9"
	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// Strategy is what every lock strategy offers: deciding one order.
type Strategy interface {
	Deduct(ctx context.Context, o events.OrderPlaced) (Decision, error)
	Name() string
}

var (
	_ Strategy = (*Mutex)(nil)
	_ Strategy = (*Pessimistic)(nil)
	_ Strategy = (*Optimistic)(nil)
	_ Strategy = (*Redis)(nil)
	_ Strategy = (*Atomic)(nil)
	_ Strategy = (*Batch)(nil)
)

// StrategyNames lists the LOCK_STRATEGY values.
func StrategyNames() []string {
	return []string{"mutex", "pessimistic", "optimistic", "redis", "atomic", "batch"}
}

// NewStrategy builds the strategy called name. client is needed by "redis" only.
func NewStrategy(name string, g *gorm.DB, client goredislib.UniversalClient, opts Options) (Strategy, error) {
	switch name {
	case "mutex":
		return NewMutex(g, opts), nil
	case "pessimistic":
		return NewPessimistic(g, opts), nil
	case "optimistic":
		return NewOptimistic(g, opts), nil
	case "atomic":
		return NewAtomic(g, opts), nil
	case "batch":
		return NewBatch(g, opts), nil
	case "redis":
		if client == nil {
			return nil, fmt.Errorf("db: the redis strategy needs a Redis client (REDIS_ADDR)")
		}
		return NewRedis(g, client, opts, RedisOptions{Prefix: opts.RedisPrefix}), nil
	}
	return nil, fmt.Errorf("db: LOCK_STRATEGY %q is not one of: %s", name, strings.Join(StrategyNames(), ", "))
}
