package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"github.com/stockflow/stockflow/events"
	"golang.org/x/sync/errgroup"
	"os"
	"strings"
	"sync/atomic"
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
	// CPU per successful UPDATE; its worker figure is the benchmark's own
	// process, the client here. nil when /proc could not be read.
	CPU   *cpuUse `json:"cpu,omitempty"`
	Error string  `json:"error,omitempty"`
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
	n, elapsed, cpu, err := hammer(ctx, rdb.dsn, conns, d, func(int64) (bool, error) {
		r, err := rdb.sql.ExecContext(ctx, dbLimitStatement, hotGoods)
		if err != nil {
			return false, fmt.Errorf("db-limit update: %w", err)
		}
		k, _ := r.RowsAffected()
		return k == 1, nil
	})
	if err != nil {
		return res, err
	}
	res.Updates, res.CPU = n, cpu
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

// orderLimitResult is the reference rate of one-order transactions without
// Kafka: what the database server gives the row-at-a-time strategies at best.
type orderLimitResult struct {
	Orders     int      `json:"orders"`
	Seconds    float64  `json:"seconds"`
	Conns      int      `json:"conns"`
	Goods      int      `json:"goods"`
	OrdersPerS float64  `json:"orders_per_s"`
	Statements []string `json:"statements"`
	Correct    bool     `json:"correct"`
	StockTaken int64    `json:"stock_taken"`
	LedgerRows int64    `json:"ledger_rows"`
	CPU        *cpuUse  `json:"cpu,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// orderLimitStatements are an accepted one-line order's transaction as the
// atomic strategy writes it, between BEGIN and COMMIT, sent with the plain
// driver (no gorm, no worker, no Kafka).
var orderLimitStatements = []string{
	"UPDATE inventory SET stocks = stocks - ?, version = version + 1 WHERE goods = ? AND stocks >= ?",
	"INSERT INTO order_outcomes (order_id, status, reason, items, payload, strategy, created_at) VALUES (?, ?, '', ?, ?, ?, ?)",
}

const (
	orderLimitGoods = 1000          // spread: the goroutines rarely meet on a row
	orderLimitFirst = 1_000_000_000 // goods ids of its own, away from the warm-up and db-limit rows
)

// measureOrderLimit decides one-unit orders on orderLimitGoods goods from conns
// goroutines for d, each order one transaction of orderLimitStatements with its
// ledger row, and returns the rate. Afterwards the stock taken and the ledger
// rows must both equal the orders counted.
func measureOrderLimit(ctx context.Context, rdb *runDB, conns int, d time.Duration) (orderLimitResult, error) {
	const initial = 1_000_000_000
	res := orderLimitResult{Conns: conns, Goods: orderLimitGoods, Statements: orderLimitStatements}
	stock := make(map[int64]int64, orderLimitGoods)
	for i := range int64(orderLimitGoods) {
		stock[orderLimitFirst+i] = initial
	}
	if err := rdb.stock(ctx, stock); err != nil {
		return res, err
	}
	n, elapsed, cpu, err := hammer(ctx, rdb.dsn, conns, d, func(i int64) (bool, error) {
		return true, limitOrder(ctx, rdb.sql, i)
	})
	if err != nil {
		return res, err
	}
	res.Orders, res.CPU = n, cpu
	res.Seconds = elapsed.Seconds()
	res.OrdersPerS = rate(res.Orders, elapsed)
	err = rdb.sql.QueryRowContext(ctx,
		"SELECT (SELECT ? * ? - SUM(stocks) FROM inventory WHERE goods BETWEEN ? AND ?), (SELECT COUNT(*) FROM order_outcomes WHERE strategy = 'order-limit')",
		int64(orderLimitGoods), int64(initial), orderLimitFirst, orderLimitFirst+orderLimitGoods-1).Scan(&res.StockTaken, &res.LedgerRows)
	if err != nil {
		return res, fmt.Errorf("order-limit check: %w", err)
	}
	res.Correct = res.StockTaken == int64(res.Orders) && res.LedgerRows == int64(res.Orders)
	return res, nil
}

// limitOrder is one order of the order-limit measurement: its stock row and
// its ledger row in one transaction. An order that finds no stock is an error:
// the stock is far above what a measurement can take.
func limitOrder(ctx context.Context, s *sql.DB, n int64) (err error) {
	id := fmt.Sprintf("order-limit-%d", n)
	goods := orderLimitFirst + n%orderLimitGoods
	lines := []events.Line{{GoodsID: goods, Num: 1}}
	at := time.Now().UTC()
	payload, err := events.Deducted(id, lines, at).Encode()
	if err != nil {
		return err
	}
	items, err := json.Marshal(lines)
	if err != nil {
		return err
	}
	tx, err := s.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("order-limit begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback() //nolint:errcheck // the error that made us roll back is the one to report
		}
	}()
	r, err := tx.ExecContext(ctx, orderLimitStatements[0], 1, goods, 1)
	if err != nil {
		return fmt.Errorf("order-limit update: %w", err)
	}
	if k, _ := r.RowsAffected(); k != 1 {
		return fmt.Errorf("order-limit: goods %d has no stock left", goods)
	}
	if _, err = tx.ExecContext(ctx, orderLimitStatements[1], id, "deducted", string(items), payload, "order-limit", at); err != nil {
		return fmt.Errorf("order-limit ledger row: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("order-limit commit: %w", err)
	}
	return nil
}

// hammer calls op from conns goroutines until d has passed, each call with a
// number of its own (1, 2, ...), and returns how many calls counted (op's
// true) and how long they took, with the CPU per counted call of this
// process (the client) and of the database server of dsn when it runs on
// this machine (nil when /proc cannot be read). The first error stops it.
func hammer(ctx context.Context, dsn string, conns int, d time.Duration, op func(i int64) (bool, error)) (int, time.Duration, *cpuUse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	self := []int{os.Getpid()}
	meter, cpuErr := newCPUMeter(dsn, nil)
	var cpu0 cpuSample
	if cpuErr == nil {
		cpu0, cpuErr = meter.sample(self)
	}
	var seq, counted atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	stop := time.Now().Add(d)
	start := time.Now()
	for range conns {
		g.Go(func() error {
			for gctx.Err() == nil && time.Now().Before(stop) {
				ok, err := op(seq.Add(1))
				if err != nil {
					return err
				}
				if ok {
					counted.Add(1)
				}
			}
			return nil
		})
	}
	err := g.Wait()
	elapsed := time.Since(start)
	if err != nil {
		return 0, elapsed, nil, err
	}
	n := int(counted.Load())
	var cpu *cpuUse
	if cpuErr == nil {
		if cpu1, err := meter.sample(self); err == nil {
			cpu = meter.use(cpu0, cpu1, n)
		}
	}
	return n, elapsed, cpu, nil
}
