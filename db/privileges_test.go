package db_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/internal/testsvc"
)

// A user without DDL rights passes EnsureDatabase and Migrate when the
// database exists and the schema is current: nothing is created, altered or
// locked. With migrations pending it gets ErrMigrateDenied naming them.
func TestMigrateWithoutDDLRights(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	worker := testsvc.MySQLUser(t, testsvc.DatabaseDSN(t), testsvc.UserOptions{Grants: testsvc.WorkerGrants})
	if err := db.EnsureDatabase(ctx, worker); err != nil {
		t.Fatalf("EnsureDatabase as the worker's user on an existing database: %v", err)
	}
	g, err := db.Open(ctx, worker, db.PoolOptions{MaxOpen: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(g)
	if applied, err := db.Migrate(ctx, g); err != nil || len(applied) != 0 {
		t.Fatalf("Migrate as the worker's user on a current schema: applied %v, %v", applied, err)
	}

	noDDL := testsvc.MySQLUser(t, testsvc.EmptyDatabaseDSN(t), testsvc.UserOptions{Grants: []string{"SELECT, INSERT, UPDATE ON {db}.*"}})
	if err := db.EnsureDatabase(ctx, noDDL); err != nil {
		t.Fatalf("EnsureDatabase on an existing, empty database: %v", err)
	}
	g2, err := db.Open(ctx, noDDL, db.PoolOptions{MaxOpen: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(g2)
	_, err = db.Migrate(ctx, g2)
	if !errors.Is(err, db.ErrMigrateDenied) {
		t.Fatalf("Migrate without DDL rights, migrations pending: %v, want ErrMigrateDenied", err)
	}
	migs, _ := db.Migrations()
	for _, m := range migs {
		if !strings.Contains(err.Error(), m.Name) {
			t.Errorf("the error does not name %s: %v", m.Name, err)
		}
	}
}
