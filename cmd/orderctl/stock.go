package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/internal/mysqlconf"
	"gorm.io/gorm"
)

const stockHelp = `orderctl stock sets and reads the stock of goods in the inventory database
(MYSQL_DSN).

Usage:
  orderctl stock set [flags] GOODS=N...   set the stock of goods (insert or overwrite)
  orderctl stock get [flags] GOODS...     show the stock of goods
  orderctl stock list [flags]             list the stocked goods by goods id

Examples:
  orderctl stock set 16=10 17=5
  orderctl stock get 16 17
  orderctl stock list -limit 20

Run 'orderctl help stock set' (get, list) for the flags.
`

const stockSetHelp = `orderctl stock set sets the stock of each goods to N, inserting the goods if it is
new (INSERT ... ON DUPLICATE KEY UPDATE), all goods in one statement. It creates the
database and applies the migrations first if needed, so it works on a fresh machine
before any worker ran. Overwriting bumps the row's version, so an optimistic worker
that read the old stock retries instead of deciding on it.

Database user: SELECT, INSERT and UPDATE on inventory (the version bump reads the
row) and SELECT on schema_migrations, so the worker's least-privilege user
(stockflow) is enough once the schema is current; on a database that does not exist
yet or has migrations pending it needs the migration user (stockflow_migrate, DDL
rights), as 'stockworker migrate' does. Never root in production.

Usage:
  orderctl stock set [flags] GOODS=N...

Examples:
  orderctl stock set 16=10
  orderctl stock set 16=10 17=5 18=0
  MYSQL_DSN='stockflow:secret@tcp(db:3306)/stockflow?parseTime=true' orderctl stock set 16=100
  MYSQL_DSN_FILE=/run/secrets/worker-dsn MYSQL_TLS_CA_FILE=/etc/stockflow/mysql-ca.pem orderctl stock set 16=100
`

const stockGetHelp = `orderctl stock get shows the stock of each goods. A goods that is not in the
inventory is reported, and the command then exits 1.

Database user: SELECT on inventory; the worker's user (stockflow) is enough.

Usage:
  orderctl stock get [flags] GOODS...

Examples:
  orderctl stock get 16
  orderctl stock get 16 17 18
`

const stockListHelp = `orderctl stock list lists the stocked goods in ascending goods id.

Database user: SELECT on inventory; the worker's user (stockflow) is enough.

Usage:
  orderctl stock list [flags]

Examples:
  orderctl stock list
  orderctl stock list -limit 0     # every goods
`

// runStock is `orderctl stock` alone: the command line names no set, get or
// list (main dispatches those directly), so it shows the help or says so.
func runStock(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("stock", "want set, get or list, for example: orderctl stock get 16")
	}
	switch args[0] {
	case "set":
		return runStockSet(ctx, cfg, args[1:], stdout, stderr)
	case "get":
		return runStockGet(ctx, cfg, args[1:], stdout, stderr)
	case "list":
		return runStockList(ctx, cfg, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, stockHelp)
		return flag.ErrHelp
	}
	return usagef("stock", "unknown stock command %q: want set, get or list", args[0])
}

// runStockSet is `orderctl stock set`.
func runStockSet(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stock set", stockSetHelp, &cfg)
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	stocks, err := parseStockArgs(pos)
	if err != nil {
		return usagef("stock set", "%v", err)
	}
	g, err := openInventory(ctx, cfg.mysql(), true)
	if err != nil {
		return err
	}
	defer db.Close(g)
	if err := setStock(ctx, g, stocks); err != nil {
		return err
	}
	for _, s := range stocks {
		fmt.Fprintf(stdout, "goods %d: stock %d\n", s.Goods, s.Stocks)
	}
	return nil
}

// runStockGet is `orderctl stock get`.
func runStockGet(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stock get", stockGetHelp, &cfg)
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("stock get", "name at least one GOODS, for example: orderctl stock get 16")
	}
	var (
		ids  []int64
		errs []error
	)
	for _, a := range pos {
		g, err := parseGoods(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ids = append(ids, g)
	}
	if err := errors.Join(errs...); err != nil {
		return usagef("stock get", "%v", err)
	}
	g, err := openInventory(ctx, cfg.mysql(), false)
	if err != nil {
		return err
	}
	defer db.Close(g)

	qctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	var rows []db.Inventory
	if err := g.WithContext(qctx).Where("goods IN ?", ids).Order("goods").Find(&rows).Error; err != nil {
		return inventoryError(cfg.MySQLDSN, err)
	}
	found := map[int64]db.Inventory{}
	for _, r := range rows {
		found[r.Goods] = r
	}
	var shown []db.Inventory
	var missing []string
	for _, id := range ids {
		if r, ok := found[id]; ok {
			shown = append(shown, r)
		} else {
			missing = append(missing, fmt.Sprint(id))
		}
	}
	if len(shown) > 0 {
		printInventory(stdout, shown)
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("goods %s does not exist (stock it with: orderctl stock set %s=N)", missing[0], missing[0])
	default:
		return fmt.Errorf("goods %s do not exist (stock them with: orderctl stock set GOODS=N...)", strings.Join(missing, ", "))
	}
}

// runStockList is `orderctl stock list`.
func runStockList(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("stock list", stockListHelp, &cfg)
	limit := fs.Int("limit", 50, "most goods shown (0: all)")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("stock list", "unexpected argument %q", pos[0])
	}
	if *limit < 0 {
		return usagef("stock list", "-limit must be ≥ 0, got %d", *limit)
	}
	g, err := openInventory(ctx, cfg.mysql(), false)
	if err != nil {
		return err
	}
	defer db.Close(g)

	qctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	var total int64
	if err := g.WithContext(qctx).Model(&db.Inventory{}).Count(&total).Error; err != nil {
		return inventoryError(cfg.MySQLDSN, err)
	}
	q := g.WithContext(qctx).Order("goods")
	if *limit > 0 {
		q = q.Limit(*limit)
	}
	var rows []db.Inventory
	if err := q.Find(&rows).Error; err != nil {
		return inventoryError(cfg.MySQLDSN, err)
	}
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no goods stocked (stock some with: orderctl stock set 16=10)")
		return nil
	}
	printInventory(stdout, rows)
	if int64(len(rows)) < total {
		fmt.Fprintf(stdout, "(%d of %d goods; -limit 0 shows all)\n", len(rows), total)
	}
	return nil
}

func printInventory(w io.Writer, rows []db.Inventory) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "goods\tstock\tversion\t updated\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%d\t%d\t %s\t\n", r.Goods, r.Stocks, r.Version, r.UpdatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	tw.Flush()
}

// openInventory opens the database of s (with its TLS). With create, it
// first creates the database if missing and applies the migrations, as
// stockworker does at start.
func openInventory(ctx context.Context, s mysqlconf.Settings, create bool) (*gorm.DB, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	dsn, err := s.ConnectDSN()
	if err != nil {
		return nil, err
	}
	if create {
		if err := db.EnsureDatabase(ctx, dsn); err != nil {
			return nil, err
		}
	}
	g, err := db.Open(ctx, dsn, db.PoolOptions{MaxOpen: 2})
	if err != nil {
		return nil, inventoryError(s.DSN, err)
	}
	if create {
		if _, err := db.Migrate(ctx, g); err != nil {
			db.Close(g)
			return nil, err
		}
	}
	return g, nil
}

// setStock upserts every goods in one statement. The version is bumped on an
// overwrite: the optimistic strategy compares versions, and a stock it read
// before the overwrite must not be decided on.
func setStock(ctx context.Context, g *gorm.DB, stocks []stockArg) error {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	values := make([]string, len(stocks))
	params := make([]any, 0, 2*len(stocks))
	for i, s := range stocks {
		values[i] = "(?, ?)"
		params = append(params, s.Goods, s.Stocks)
	}
	q := "INSERT INTO inventory (goods, stocks) VALUES " + strings.Join(values, ", ") +
		" ON DUPLICATE KEY UPDATE stocks = VALUES(stocks), version = version + 1"
	if err := g.WithContext(ctx).Exec(q, params...).Error; err != nil {
		return fmt.Errorf("set stock: %w", err)
	}
	return nil
}

// MySQL error numbers that have a better explanation than the server's.
const (
	errBadDB        = 1049 // unknown database
	errNoSuchTable  = 1146
	errAccessDenied = 1045
)

// inventoryError explains the usual first-run failures: no database, no
// tables. The DSN is never shown with its password.
func inventoryError(dsn string, err error) error {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return err
	}
	name := "(none)"
	if cfg, perr := mysql.ParseDSN(dsn); perr == nil {
		name = cfg.DBName
	}
	switch me.Number {
	case errBadDB:
		return fmt.Errorf("database %q does not exist on %s (orderctl stock set creates it, so does a stockworker)", name, db.RedactDSN(dsn))
	case errNoSuchTable:
		return fmt.Errorf("database %q has no inventory table (orderctl stock set or stockworker migrate creates it)", name)
	case errAccessDenied:
		return fmt.Errorf("access denied to %s: check the user and password of MYSQL_DSN or MYSQL_DSN_FILE, and MYSQL_TLS_CA_FILE for a user created REQUIRE SSL", db.RedactDSN(dsn))
	}
	return err
}
