package db

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	gormmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// PoolOptions sizes the connection pool. Keep pods × MaxOpen below the server's
// max_connections.
type PoolOptions struct {
	MaxOpen     int           // default 16
	MaxIdle     int           // default MaxOpen
	MaxLifetime time.Duration // default 5m; keep it below the server's wait_timeout
}

// Open connects to the database named in dsn and checks that it answers.
//
// The DSN is normalised for stockflow: parseTime (timestamps), clientFoundRows
// (RowsAffected counts matched rows, which the conditional UPDATEs rely on) and
// interpolateParams (one round trip per statement, no server-side prepares) are
// switched on, and every session runs at READ COMMITTED. The strategies rely on
// row locks and conditional writes, never on a snapshot, and READ COMMITTED
// keeps a retried statement from re-reading a stale snapshot (and MariaDB's
// innodb_snapshot_isolation from failing locking reads with 1020). Errors never
// include the password.
func Open(ctx context.Context, dsn string, pool PoolOptions) (*gorm.DB, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("db: parse MYSQL_DSN %s: %w", RedactDSN(dsn), err)
	}
	cfg.ParseTime = true
	cfg.ClientFoundRows = true
	cfg.InterpolateParams = true
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if pool.MaxOpen <= 0 {
		pool.MaxOpen = 16
	}
	if pool.MaxIdle <= 0 {
		pool.MaxIdle = pool.MaxOpen
	}
	if pool.MaxLifetime <= 0 {
		pool.MaxLifetime = 5 * time.Minute
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// MySQL 8 and MariaDB 11.1+ name the session variable transaction_isolation;
	// MariaDB 10.x knows only tx_isolation.
	var sqlDB *sql.DB
	for _, name := range []string{"transaction_isolation", "tx_isolation"} {
		c := *cfg
		c.Params = maps.Clone(cfg.Params)
		if c.Params == nil {
			c.Params = map[string]string{}
		}
		c.Params[name] = "'READ-COMMITTED'"
		connector, err := mysql.NewConnector(&c)
		if err != nil {
			return nil, fmt.Errorf("db: %s: %w", RedactDSN(dsn), err)
		}
		sqlDB = sql.OpenDB(connector)
		err = sqlDB.PingContext(pingCtx)
		if err == nil {
			break
		}
		sqlDB.Close()
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == errUnknownSystemVariable {
			continue
		}
		return nil, fmt.Errorf("db: connect %s: %w", RedactDSN(dsn), err)
	}
	sqlDB.SetMaxOpenConns(pool.MaxOpen)
	sqlDB.SetMaxIdleConns(pool.MaxIdle)
	sqlDB.SetConnMaxLifetime(pool.MaxLifetime)

	g, err := gorm.Open(gormmysql.New(gormmysql.Config{Conn: sqlDB}), &gorm.Config{
		// Every write runs in an explicit transaction of ours.
		SkipDefaultTransaction: true,
		Logger:                 logger.Discard,
	})
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("db: open %s: %w", RedactDSN(dsn), err)
	}
	return g, nil
}

// Close closes the pool behind g.
func Close(g *gorm.DB) error {
	sqlDB, err := g.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// EnsureDatabase creates the database named in dsn if it does not exist yet.
// It first connects to that database: when it exists, nothing else is done,
// so a user without the right to create databases (the worker's
// least-privilege user) passes. Only an unknown database (1049) is created.
func EnsureDatabase(ctx context.Context, dsn string) error {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("db: parse MYSQL_DSN %s: %w", RedactDSN(dsn), err)
	}
	name := cfg.DBName
	if name == "" {
		return fmt.Errorf("db: MYSQL_DSN %s names no database", RedactDSN(dsn))
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err = ping(ctx, cfg)
	var me *mysql.MySQLError
	if err == nil || !errors.As(err, &me) || me.Number != errUnknownDatabase {
		if err != nil {
			return fmt.Errorf("db: connect %s: %w", RedactDSN(dsn), err)
		}
		return nil
	}
	cfg.DBName = ""
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("db: %s: %w", RedactDSN(dsn), err)
	}
	sqlDB := sql.OpenDB(connector)
	defer sqlDB.Close()
	q := "CREATE DATABASE IF NOT EXISTS `" + escapeIdent(name) + "` CHARACTER SET utf8mb4"
	if _, err := sqlDB.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("db: create database %q on %s: %w", name, RedactDSN(dsn), err)
	}
	return nil
}

// ping connects once with cfg and closes the connection.
func ping(ctx context.Context, cfg *mysql.Config) error {
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	sqlDB := sql.OpenDB(connector)
	defer sqlDB.Close()
	return sqlDB.PingContext(ctx)
}

// UseTLS returns dsn with its connections encrypted by t: t is registered
// with the driver (mysql.RegisterTLSConfig) under a name of its own, and the
// returned DSN names it (tls=stockflow-…), so every pool and connection made
// from it — Open, EnsureDatabase — uses t. Leave t.ServerName empty: the
// driver then checks the server's certificate against the DSN's host.
//
// dsn must not ask for an unverified or optional connection
// (tls=skip-verify, tls=preferred) or none (tls=false): t verifies the
// server, and a DSN that says otherwise is a contradiction, refused.
func UseTLS(dsn string, t *tls.Config) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("db: parse MYSQL_DSN %s: %w", RedactDSN(dsn), err)
	}
	switch strings.ToLower(cfg.TLSConfig) {
	case "", "true":
	default:
		return "", fmt.Errorf("db: MYSQL_DSN says tls=%s, but a verified TLS connection is configured (MYSQL_TLS_*): drop the tls parameter from the DSN", cfg.TLSConfig)
	}
	if cfg.AllowFallbackToPlaintext {
		return "", errors.New("db: MYSQL_DSN says allowFallbackToPlaintext=true, but a verified TLS connection is configured (MYSQL_TLS_*): anyone in between could then force plaintext; drop the parameter")
	}
	// One name per configuration: t's address, which the registry keeps alive.
	name := "stockflow-" + strings.TrimPrefix(fmt.Sprintf("%p", t), "0x")
	if err := mysql.RegisterTLSConfig(name, t); err != nil {
		return "", fmt.Errorf("db: register the TLS configuration: %w", err)
	}
	cfg.TLS = nil
	cfg.TLSConfig = name
	return cfg.FormatDSN(), nil
}

func escapeIdent(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			out = append(out, '`')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// RedactDSN returns dsn with its password replaced, for logs and errors.
func RedactDSN(dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "<unparsable DSN>"
	}
	if cfg.Passwd != "" {
		cfg.Passwd = "xxxxx"
	}
	return cfg.FormatDSN()
}
