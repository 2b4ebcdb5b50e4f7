// Package testsvc connects tests to the real services that scripts/services.sh
// starts: MariaDB, Redis and Kafka. Each helper gives the test its own database,
// topics or group, so tests can run in parallel and leave nothing behind.
// StartWorkers runs stockworker processes for a test and stops them when it
// ends. The plumbing underneath (reading a topic without a group, processes,
// names, preflight checks) is internal/harness; testsvc adapts it to
// testing.TB.
//
// When a service does not answer, the test is skipped with a hint, except under
// CI=true, where a missing service is a failure.
package testsvc

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/internal/harness"
	"gorm.io/gorm"
)

// Env returns the environment variable or its default.
func Env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// MySQLDSN is the server the tests use (TEST_MYSQL_DSN, else MYSQL_DSN, else the
// default of DESIGN.md). The database part is replaced per test.
func MySQLDSN() string {
	return Env("TEST_MYSQL_DSN", Env("MYSQL_DSN", "root@tcp(127.0.0.1:3306)/stockflow?parseTime=true"))
}

// KafkaBrokers is the real broker the integration tests use.
func KafkaBrokers() []string {
	return strings.Split(Env("TEST_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
}

// RedisAddr is the real Redis the tests use.
func RedisAddr() string { return Env("TEST_REDIS_ADDR", Env("REDIS_ADDR", "127.0.0.1:6379")) }

// Require checks that addr accepts connections (harness.Preflight); when it
// does not, the test fails under CI=true and is skipped otherwise, with the
// command that starts the service.
func Require(t testing.TB, service, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := harness.Preflight(ctx, harness.Service{Name: service, Addr: addr})
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(err)
	}
	t.Skip(err)
}

// Unique returns a short random name with the given prefix (harness.Unique).
func Unique(prefix string) string { return harness.Unique(prefix) }

// DatabaseDSN creates a fresh, migrated database for the test, drops it when the
// test ends, and returns its DSN.
func DatabaseDSN(t testing.TB) string {
	t.Helper()
	return newDatabase(t, true)
}

// EmptyDatabaseDSN creates a fresh database without tables (no migration
// applied) for the test, drops it when the test ends, and returns its DSN.
func EmptyDatabaseDSN(t testing.TB) string {
	t.Helper()
	return newDatabase(t, false)
}

func newDatabase(t testing.TB, migrate bool) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(MySQLDSN())
	if err != nil {
		t.Fatalf("TEST_MYSQL_DSN: %v", err)
	}
	Require(t, "MariaDB", cfg.Addr)
	cfg.DBName = Unique("sf_test_")
	dsn := cfg.FormatDSN()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.EnsureDatabase(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	if migrate {
		g, err := db.Open(ctx, dsn, db.PoolOptions{MaxOpen: 2})
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.Migrate(ctx, g)
		db.Close(g)
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if os.Getenv("TEST_KEEP_DB") != "" {
			t.Logf("kept database %s", cfg.DBName)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		g, err := db.Open(ctx, dsn, db.PoolOptions{MaxOpen: 1})
		if err != nil {
			t.Errorf("drop test database: %v", err)
			return
		}
		defer db.Close(g)
		if err := g.WithContext(ctx).Exec("DROP DATABASE `" + cfg.DBName + "`").Error; err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return dsn
}

// Database returns a pool on a fresh, migrated database for the test.
func Database(t testing.TB, maxOpen int) *gorm.DB {
	t.Helper()
	dsn := DatabaseDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := db.Open(ctx, dsn, db.PoolOptions{MaxOpen: maxOpen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(g) })
	return g
}

// Stock sets the stock of each goods (goods, stocks pairs).
func Stock(t testing.TB, g *gorm.DB, pairs ...int64) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := g.Exec("INSERT INTO inventory (goods, stocks) VALUES (?, ?) ON DUPLICATE KEY UPDATE stocks = VALUES(stocks)",
			pairs[i], pairs[i+1]).Error; err != nil {
			t.Fatalf("stock goods %d: %v", pairs[i], err)
		}
	}
}

// Stocks returns the stock of goods, or -1 when the row does not exist.
func Stocks(t testing.TB, g *gorm.DB, goods int64) int64 {
	t.Helper()
	var rows []db.Inventory
	if err := g.Where("goods = ?", goods).Find(&rows).Error; err != nil {
		t.Fatalf("read goods %d: %v", goods, err)
	}
	if len(rows) == 0 {
		return -1
	}
	return int64(rows[0].Stocks)
}

// Open returns a pool on dsn with extra DSN parameters (for example session
// variables such as innodb_snapshot_isolation), closed when the test ends.
func Open(t testing.TB, dsn string, maxOpen int, params map[string]string) *gorm.DB {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range params {
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := db.Open(ctx, cfg.FormatDSN(), db.PoolOptions{MaxOpen: maxOpen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(g) })
	return g
}
