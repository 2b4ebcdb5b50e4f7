package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/db"
)

// The grants of stockflow's two database users, as README's "Secure MySQL
// and Redis" gives them; "{db}" stands for the database. The worker's are
// table by table, so the tables must exist (migrated) when they are granted.
var (
	// MigrateGrants: DDL on the database, for `stockworker migrate`.
	MigrateGrants = []string{"SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES ON {db}.*"}
	// WorkerGrants: what the worker needs and nothing else.
	WorkerGrants = []string{
		"SELECT, INSERT, UPDATE ON {db}.inventory",
		"SELECT, INSERT, UPDATE ON {db}.order_outcomes",
		"SELECT, INSERT, UPDATE ON {db}.order_cancellations",
		"SELECT ON {db}.schema_migrations",
	}
)

// UserOptions shape a user made by MySQLUser.
type UserOptions struct {
	// Grants are GRANT clauses, "PRIVILEGES ON object", with {db} for the
	// database of the DSN.
	Grants []string
	// RequireSSL creates the user REQUIRE SSL: the server refuses it any
	// connection without TLS.
	RequireSSL bool
	// Password is the user's password; default a random one.
	Password string
}

// MySQLUser creates a database user of its own for the test, with opts'
// grants on the database of dsn (a DSN of DatabaseDSN, whose user may grant:
// root), drops it when the test ends, and returns a DSN for it on that
// database (its password is the DSN's).
func MySQLUser(t testing.TB, dsn string, opts UserOptions) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := Unique("sfu_")
	if opts.Password == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		opts.Password = "pw-" + hex.EncodeToString(b[:])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := db.Open(ctx, dsn, db.PoolOptions{MaxOpen: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(g)
	user := "'" + name + "'@'%'"
	create := "CREATE USER " + user + " IDENTIFIED BY '" + strings.ReplaceAll(opts.Password, "'", "''") + "'"
	if opts.RequireSSL {
		create += " REQUIRE SSL"
	}
	if err := g.WithContext(ctx).Exec(create).Error; err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	t.Cleanup(func() {
		if os.Getenv("TEST_KEEP_DB") != "" {
			t.Logf("kept user %s", name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		g, err := db.Open(ctx, dsn, db.PoolOptions{MaxOpen: 1})
		if err != nil {
			t.Errorf("drop user %s: %v", name, err)
			return
		}
		defer db.Close(g)
		if err := g.WithContext(ctx).Exec("DROP USER IF EXISTS " + user).Error; err != nil {
			t.Errorf("drop user %s: %v", name, err)
		}
	})
	for _, grant := range opts.Grants {
		q := "GRANT " + strings.ReplaceAll(grant, "{db}", "`"+cfg.DBName+"`") + " TO " + user
		if err := g.WithContext(ctx).Exec(q).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	cfg.User, cfg.Passwd = name, opts.Password
	return cfg.FormatDSN()
}

// MySQLServerCA returns the CA file of the test MariaDB's TLS certificate
// (@@ssl_ca; scripts/services.sh starts it with TLS offered, not required),
// for MYSQL_TLS_CA_FILE. A server without TLS, or a CA file this process
// cannot read, skips the test, except under CI=true for the first.
func MySQLServerCA(t testing.TB) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	Require(t, "MariaDB", cfg.Addr)
	g := Open(t, MySQLDSN(), 1, nil)
	var have, ca string
	if err := g.Raw("SELECT @@have_ssl, COALESCE(@@ssl_ca, '')").Row().Scan(&have, &ca); err != nil {
		t.Fatal(err)
	}
	if have != "YES" || ca == "" {
		msg := fmt.Sprintf("MariaDB has no TLS (have_ssl=%s, ssl_ca=%q): restart it once with scripts/services.sh down mariadb && scripts/services.sh up mariadb", have, ca)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if _, err := os.Stat(ca); err != nil {
		t.Skipf("the server's CA file is not readable here: %v", err)
	}
	return ca
}
