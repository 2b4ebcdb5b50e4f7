package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/db"
	"gorm.io/gorm"
)

// runDB is one run's own database.
type runDB struct {
	name string
	dsn  string
	g    *gorm.DB
	sql  *sql.DB
}

// createDB creates and migrates a fresh database called name on the server of
// baseDSN.
func createDB(ctx context.Context, baseDSN, name string, maxOpen int) (*runDB, error) {
	cfg, err := mysql.ParseDSN(baseDSN)
	if err != nil {
		return nil, fmt.Errorf("MySQL DSN: %w", err)
	}
	cfg.DBName = name
	dsn := cfg.FormatDSN()
	if err := db.EnsureDatabase(ctx, dsn); err != nil {
		return nil, err
	}
	g, err := db.Open(ctx, dsn, db.PoolOptions{MaxOpen: maxOpen})
	if err != nil {
		return nil, err
	}
	if _, err := db.Migrate(ctx, g); err != nil {
		db.Close(g)
		return nil, err
	}
	s, err := g.DB()
	if err != nil {
		db.Close(g)
		return nil, err
	}
	return &runDB{name: name, dsn: dsn, g: g, sql: s}, nil
}

// drop drops the database and closes the pool.
func (d *runDB) drop(ctx context.Context) error {
	_, err := d.sql.ExecContext(ctx, "DROP DATABASE `"+d.name+"`")
	if err != nil {
		err = fmt.Errorf("drop database %s: %w", d.name, err)
	}
	db.Close(d.g)
	return err
}

func (d *runDB) close() { db.Close(d.g) }

// stock sets the initial stock of goods, 1000 rows per statement.
func (d *runDB) stock(ctx context.Context, stock map[int64]int64) error {
	goods := sortedKeys(stock)
	for start := 0; start < len(goods); start += 1000 {
		part := goods[start:min(start+1000, len(goods))]
		var b strings.Builder
		args := make([]any, 0, 2*len(part))
		b.WriteString("INSERT INTO inventory (goods, stocks) VALUES ")
		for i, g := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?,?)")
			args = append(args, g, stock[g])
		}
		b.WriteString(" ON DUPLICATE KEY UPDATE stocks = VALUES(stocks)")
		if _, err := d.sql.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("stock %d goods: %w", len(part), err)
		}
	}
	return nil
}

// stocks returns every goods row's stock.
func (d *runDB) stocks(ctx context.Context) (map[int64]int64, error) {
	rows, err := d.sql.QueryContext(ctx, "SELECT goods, stocks FROM inventory")
	if err != nil {
		return nil, fmt.Errorf("read stock: %w", err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var g, s int64
		if err := rows.Scan(&g, &s); err != nil {
			return nil, fmt.Errorf("read stock: %w", err)
		}
		out[g] = s
	}
	return out, rows.Err()
}

// ledger returns every order_outcomes row.
func (d *runDB) ledger(ctx context.Context) ([]ledgerRow, error) {
	rows, err := d.sql.QueryContext(ctx, "SELECT order_id, status, reason, items, payload FROM order_outcomes")
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	defer rows.Close()
	var out []ledgerRow
	for rows.Next() {
		var r ledgerRow
		var reason, items sql.NullString
		if err := rows.Scan(&r.OrderID, &r.Status, &reason, &items, &r.Payload); err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		r.Reason, r.Items = reason.String, items.String
		out = append(out, r)
	}
	return out, rows.Err()
}

// txCounters are the server-wide transaction counters. They count every
// client of the server, so concurrent work elsewhere inflates them.
type txCounters struct{ Commit, Rollback int64 }

func (d *runDB) txCounters(ctx context.Context) (txCounters, error) {
	rows, err := d.sql.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_commit', 'Com_rollback')")
	if err != nil {
		return txCounters{}, fmt.Errorf("read Com_commit: %w", err)
	}
	defer rows.Close()
	var c txCounters
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return c, fmt.Errorf("read Com_commit: %w", err)
		}
		switch strings.ToLower(name) {
		case "com_commit":
			c.Commit = v
		case "com_rollback":
			c.Rollback = v
		}
	}
	return c, rows.Err()
}

// dbLimitResult is the reference rate of the hot row without Kafka.
type dbLimitResult struct {
	Updates      int     `json:"updates"`
	Seconds      float64 `json:"seconds"`
	Conns        int     `json:"conns"`
	UpdatesPerS  float64 `json:"updates_per_s"`
	Statement    string  `json:"statement"`
	Correct      bool    `json:"correct"`
	FinalStock   int64   `json:"final_stock"`
	InitialStock int64   `json:"initial_stock"`
	Error        string  `json:"error,omitempty"`
}

const dbLimitStatement = "UPDATE inventory SET stocks = stocks - 1 WHERE goods = ? AND stocks >= 1"

// measureDBLimit runs the hot-row guarded UPDATE in autocommit from conns
// goroutines for d and returns the rate of successful updates. The stock is
// checked afterwards: initial − updates.
func measureDBLimit(ctx context.Context, rdb *runDB, conns int, d time.Duration) (dbLimitResult, error) {
	const initial = 2_000_000_000
	res := dbLimitResult{Conns: conns, Statement: dbLimitStatement, InitialStock: initial}
	if err := rdb.stock(ctx, map[int64]int64{hotGoods: initial}); err != nil {
		return res, err
	}
	counts := make([]int, conns)
	errs := make(chan error, conns)
	stop := time.Now().Add(d)
	start := time.Now()
	for i := range conns {
		go func() {
			for time.Now().Before(stop) {
				r, err := rdb.sql.ExecContext(ctx, dbLimitStatement, hotGoods)
				if err != nil {
					errs <- fmt.Errorf("db-limit update: %w", err)
					return
				}
				if n, _ := r.RowsAffected(); n == 1 {
					counts[i]++
				}
			}
			errs <- nil
		}()
	}
	var firstErr error
	for range conns {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	elapsed := time.Since(start)
	if firstErr != nil {
		return res, firstErr
	}
	for _, c := range counts {
		res.Updates += c
	}
	res.Seconds = elapsed.Seconds()
	res.UpdatesPerS = rate(res.Updates, elapsed)
	stocks, err := rdb.stocks(ctx)
	if err != nil {
		return res, err
	}
	res.FinalStock = stocks[hotGoods]
	res.Correct = res.FinalStock == initial-int64(res.Updates)
	return res, nil
}
