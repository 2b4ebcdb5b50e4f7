package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/internal/mysqlconf"
	"github.com/stockflow/stockflow/internal/secretenv"
	"github.com/stockflow/stockflow/internal/tlsconf"
	"go.uber.org/zap"
)

// defaultMySQLDSN is the local development database of scripts/services.sh.
const defaultMySQLDSN = mysqlconf.DefaultDSN

// secureSettings declares the settings of the connections' security — the
// MySQL DSN and TLS files, the Redis credentials and TLS, the pprof address —
// on fs, and returns the function that completes them once fs is parsed.
//
// Secrets (the DSN's password, REDIS_PASSWORD) come from the environment or
// from a file named by the variable with _FILE appended, as Kubernetes mounts
// a Secret; never from a flag, which every user of the machine can read in
// the process list. -mysql-dsn stays for a DSN without a password (the local
// development database) and refuses one with a password.
func (c *config) secureSettings(fs *flag.FlagSet, getenv func(string) string,
	str func(p *string, name, env, def, help string), boolean func(p *bool, name, env string, def bool, help string),
) (finish func() error) {
	var dsnFlag string
	// The flag's default is not the environment's DSN: -help prints defaults.
	fs.StringVar(&dsnFlag, "mysql-dsn", "", "go-sql-driver DSN of the inventory database (default "+defaultMySQLDSN+"); this flag refuses a DSN with a password: put that in MYSQL_DSN or MYSQL_DSN_FILE [MYSQL_DSN]")
	str(&c.MySQLTLS.CA, "mysql-tls-ca-file", "MYSQL_TLS_CA_FILE", "", "PEM file of the CA that signed MySQL's certificate: connect with TLS, verifying the certificate and the DSN's host name (tls=true in the DSN verifies against the system's roots)")
	str(&c.MySQLTLS.Cert, "mysql-tls-cert-file", "MYSQL_TLS_CERT_FILE", "", "PEM client certificate for MySQL (with MYSQL_TLS_KEY_FILE), for a user created REQUIRE X509")
	str(&c.MySQLTLS.Key, "mysql-tls-key-file", "MYSQL_TLS_KEY_FILE", "", "PEM key of MYSQL_TLS_CERT_FILE")
	str(&c.RedisUsername, "redis-username", "REDIS_USERNAME", "", "Redis ACL user of the redis strategy (empty: the default user); its password is REDIS_PASSWORD or REDIS_PASSWORD_FILE, environment only")
	boolean(&c.RedisTLS, "redis-tls", "REDIS_TLS", false, "connect to Redis with TLS, verifying its certificate and the host name of REDIS_ADDR")
	str(&c.RedisTLSCA, "redis-tls-ca-file", "REDIS_TLS_CA_FILE", "", "PEM file of the CA that signed Redis' certificate (REDIS_TLS=true; empty: the system's roots)")
	str(&c.PprofAddr, "pprof-addr", "PPROF_ADDR", "", "address of net/http/pprof's /debug/pprof/, a listener of its own (never HTTP_ADDR); empty disables")

	// Read now, as every other setting is: -help stops before finish runs,
	// and what it reads is the list of stockworker's variables.
	dsnEnv, redisPWEnv := mysqlconf.LookupDSN(getenv), secretenv.Lookup(getenv, "REDIS_PASSWORD")

	return func() error {
		var errs []error
		dsn, err := dsnEnv.Value()
		if err != nil {
			errs = append(errs, err)
		}
		switch {
		case dsnFlag != "":
			if err := mysqlconf.CheckFlagDSN(dsnFlag); err != nil {
				errs = append(errs, err)
			}
			c.MySQLDSN = dsnFlag
		case dsn != "":
			c.MySQLDSN = dsn
		default:
			c.MySQLDSN = defaultMySQLDSN
		}
		// The DSN parses and the TLS files load now, so a wrong one is a
		// configuration error (exit 2).
		if err := c.mysql().Check(); err != nil {
			errs = append(errs, err)
		}
		if c.RedisPassword, err = redisPWEnv.Value(); err != nil {
			errs = append(errs, err)
		}
		if c.RedisTLSCA != "" && !c.RedisTLS {
			errs = append(errs, errors.New("REDIS_TLS_CA_FILE is set but REDIS_TLS is not true"))
		}
		if c.RedisTLS {
			if _, err := (tlsconf.Files{CA: c.RedisTLSCA}).Config(); err != nil {
				errs = append(errs, fmt.Errorf("REDIS_TLS_CA_FILE: %w", err))
			}
		}
		if c.PprofAddr != "" && c.PprofAddr == c.HTTPAddr {
			errs = append(errs, fmt.Errorf("PPROF_ADDR must not be HTTP_ADDR (%s): profiles are served on a listener of their own", c.HTTPAddr))
		}
		return errors.Join(errs...)
	}
}

// mysqlDSN is the DSN the worker connects with: MYSQL_DSN, with the TLS of
// MYSQL_TLS_* when they are set (db.UseTLS).
func (c config) mysqlDSN() (string, error) { return c.mysql().ConnectDSN() }

// mysql is the MySQL connection as configured: MYSQL_DSN (or its file or
// the flag) and MYSQL_TLS_*.
func (c config) mysql() mysqlconf.Settings {
	return mysqlconf.Settings{DSN: c.MySQLDSN, TLS: c.MySQLTLS}
}

// redisOptions are the redis strategy's client options.
func (c config) redisOptions() (*redis.Options, error) {
	o := &redis.Options{Addr: c.RedisAddr, Username: c.RedisUsername, Password: c.RedisPassword, DialTimeout: 2 * time.Second}
	if c.RedisTLS {
		t, err := (tlsconf.Files{CA: c.RedisTLSCA}).Config()
		if err != nil {
			return nil, fmt.Errorf("REDIS_TLS_CA_FILE: %w", err)
		}
		o.TLSConfig = t
	}
	return o, nil
}

// checkRedis asks Redis, before the worker starts, whether the strategy's
// credentials and ACL allow its work (db.ProbeRedis). Refused credentials
// (NOAUTH, WRONGPASS) or a command or key the ACL denies (NOPERM) never heal
// by waiting: they stop the worker with one clear error, instead of every
// order retrying a lock forever like an outage. Redis not answering does
// heal: it is logged, and orders wait for it (not ready meanwhile).
func checkRedis(ctx context.Context, rdb *redis.Client, cfg config, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := db.ProbeRedis(ctx, rdb, cfg.RedisPrefix)
	user := cfg.RedisUsername
	if user == "" {
		user = "default"
	}
	switch {
	case err == nil:
		return nil
	case redis.IsAuthError(err):
		return fmt.Errorf("redis %s refused the credentials of user %q (REDIS_USERNAME, REDIS_PASSWORD or REDIS_PASSWORD_FILE): %w", cfg.RedisAddr, user, err)
	case redis.IsPermissionError(err):
		return fmt.Errorf("redis %s: user %q may not lock keys %s* (its ACL needs ~%s* and SET, EVAL, EVALSHA, GET, DEL, PEXPIRE): %w",
			cfg.RedisAddr, user, cfg.RedisPrefix, cfg.RedisPrefix, err)
	}
	log.Warn("redis does not answer yet; orders wait for it", zap.String("redis", cfg.RedisAddr), zap.Error(err))
	return nil
}

// mysqlTLSMode says how the connection to MySQL is secured, for the log.
func (c config) mysqlTLSMode() string { return c.mysql().TLSMode() }
