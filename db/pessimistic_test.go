package db_test

import (
	"testing"

	"github.com/stockflow/stockflow/db"
	"gorm.io/gorm"
)

var _ deductor = (*db.Pessimistic)(nil)

func TestPessimistic(t *testing.T) {
	conformance(t, func(g *gorm.DB) deductor { return db.NewPessimistic(g, db.Options{}) })
}
