package main

import (
	"context"
	"testing"
	"time"

	"github.com/stockflow/stockflow/db"
	"gorm.io/gorm"
)

func openDSN(t *testing.T, dsn string) *gorm.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := db.Open(ctx, dsn, db.PoolOptions{MaxOpen: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(g) })
	return g
}
