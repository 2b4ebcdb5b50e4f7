package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one versioned schema change.
type Migration struct {
	Version int
	Name    string
	SQL     []string // statements, run in order
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("db: read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("db: migration %q is not named NNNN_name.sql", name)
		}
		body, err := fs.ReadFile(migrationFiles, "migrations/"+name)
		if err != nil {
			return nil, fmt.Errorf("db: read migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(name, ".sql"), SQL: splitStatements(string(body))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("db: two migrations with version %d", out[i].Version)
		}
	}
	return out, nil
}

// splitStatements splits a migration on semicolons that end a line, dropping
// comment lines. Migrations keep to that simple form.
func splitStatements(body string) []string {
	var (
		stmts []string
		cur   strings.Builder
	)
	for _, line := range strings.Split(body, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

// Migrate applies every migration not yet recorded in schema_migrations and
// returns the versions it applied. Concurrent callers (several pods starting at
// once) are serialised by a named lock, so each migration runs once.
//
// When nothing is pending, Migrate only reads schema_migrations: a user with
// no DDL rights (the worker's least-privilege user, with SELECT on
// schema_migrations) passes, so MIGRATE=true is safe for it once the schema
// is current. When migrations are pending and the user may not apply them,
// the error wraps ErrMigrateDenied and names them.
func Migrate(ctx context.Context, g *gorm.DB) ([]int, error) {
	migs, err := Migrations()
	if err != nil {
		return nil, err
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, fmt.Errorf("db: migrate: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// GET_LOCK belongs to a session, so the whole run uses one connection.
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("db: migrate: %w", err)
	}
	defer conn.Close()

	// A first look without the lock: pods starting together on a current
	// schema do not queue for it, and need no DDL rights.
	if pending, err := pendingMigrations(ctx, conn, migs); err != nil || len(pending) == 0 {
		return nil, err
	}

	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('stockflow.migrate', 60)").Scan(&got); err != nil {
		return nil, fmt.Errorf("db: migrate: take the migration lock: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		return nil, fmt.Errorf("db: migrate: another process held the migration lock for 60s")
	}
	defer func() {
		// Released on a fresh context: the caller's may be done by now.
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer rcancel()
		_, _ = conn.ExecContext(rctx, "DO RELEASE_LOCK('stockflow.migrate')")
	}()

	// Under the lock: what another process applied meanwhile is done.
	pending, err := pendingMigrations(ctx, conn, migs)
	if err != nil || len(pending) == 0 {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INT          NOT NULL PRIMARY KEY,
  name       VARCHAR(255) NOT NULL,
  applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB`); err != nil {
		return nil, migrateError(pending, "create schema_migrations", err)
	}
	var done []int
	for _, m := range pending {
		// MySQL commits DDL implicitly, so a migration is not atomic: each
		// statement is written to be safe to re-run (IF NOT EXISTS).
		for i, stmt := range m.SQL {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return done, migrateError(pending, fmt.Sprintf("migration %s, statement %d", m.Name, i+1), err)
			}
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", m.Version, m.Name); err != nil {
			return done, migrateError(pending, "record migration "+m.Name, err)
		}
		done = append(done, m.Version)
	}
	return done, nil
}

// pendingMigrations returns the migrations of migs that schema_migrations
// does not record (all of them when the table does not exist yet).
func pendingMigrations(ctx context.Context, conn *sql.Conn, migs []Migration) ([]Migration, error) {
	applied := map[int]bool{}
	rows, err := conn.QueryContext(ctx, "SELECT version FROM schema_migrations")
	var me *mysql.MySQLError
	switch {
	case errors.As(err, &me) && me.Number == errNoSuchTable:
		return migs, nil
	case err != nil:
		return nil, fmt.Errorf("db: migrate: read schema_migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("db: migrate: read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: migrate: read schema_migrations: %w", err)
	}
	var pending []Migration
	for _, m := range migs {
		if !applied[m.Version] {
			pending = append(pending, m)
		}
	}
	return pending, nil
}

// migrateError explains a failed step: a privilege the user lacks becomes
// ErrMigrateDenied, with the pending migrations and what to do.
func migrateError(pending []Migration, step string, err error) error {
	if !accessDenied(err) {
		return fmt.Errorf("db: %s: %w", step, err)
	}
	names := make([]string, len(pending))
	for i, m := range pending {
		names[i] = m.Name
	}
	return fmt.Errorf("%w (%s): %s: %w; apply them first as a user with DDL rights on the database (stockworker migrate as the migration user)",
		ErrMigrateDenied, strings.Join(names, ", "), step, err)
}
