package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/stockflow/stockflow/events"
	"gorm.io/gorm"
)

// Decision is what the ledger holds for one order: its outcome and the outcome
// event exactly as it is (re-)published.
type Decision struct {
	OrderID string
	Status  string // StatusDeducted or StatusRejected
	Reason  string // set on rejections
	Payload []byte // the outcome event's JSON
	// Replayed is true when the order had been decided before: nothing changed now.
	Replayed bool
}

// EventType is the outcome event type of the decision.
func (d Decision) EventType() string {
	if d.Status == StatusDeducted {
		return events.TypeDeducted
	}
	return events.TypeRejected
}

// Options tune every strategy. The zero value gives the documented defaults.
type Options struct {
	// MaxAttempts bounds the transactions tried for one order before
	// ErrRetriesExhausted is returned. Default 10.
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the jittered exponential pause between
	// attempts. Defaults 2ms and 250ms.
	BaseBackoff, MaxBackoff time.Duration
	// TxTimeout is the deadline of one attempt (one transaction). Default 10s.
	TxTimeout time.Duration
	// Now stamps occurred_at. Default time.Now.
	Now func() time.Time
	// Inject, when set, is called at named points inside every attempt's
	// transaction ("locked": rows read or locked, nothing written yet;
	// "written": the first stock row written, the ledger not yet). An error it
	// returns fails the attempt as if the database had. For fault-injection
	// tests; leave it nil in production.
	Inject func(ctx context.Context, point string) error
	// OnRetry, when set, is called with the error of every attempt that is
	// retried (for metrics; see RetryCause).
	OnRetry func(strategy string, err error)
	// RedisPrefix is the lock-key prefix of the redis strategy (the key of
	// goods 16 is RedisPrefix+"16"). Default "stockflow:goods:". Give every
	// deployment (and every test) sharing one Redis its own.
	RedisPrefix string
}

// Injection points passed to Options.Inject.
const (
	PointLocked  = "locked"
	PointWritten = "written"
)

// inject calls the fault-injection hook, if any.
func (b *base) inject(ctx context.Context, point string) error {
	if b.opts.Inject == nil {
		return nil
	}
	return b.opts.Inject(ctx, point)
}

func (o Options) withDefaults() Options {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 10
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 2 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 250 * time.Millisecond
	}
	if o.TxTimeout <= 0 {
		o.TxTimeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// base is what every strategy shares: the pool, the options, and the retrying
// transaction runner.
type base struct {
	db   *gorm.DB
	opts Options
	name string
}

func newBase(g *gorm.DB, name string, opts Options) base {
	return base{db: g, opts: opts.withDefaults(), name: name}
}

// Name is the strategy's LOCK_STRATEGY name.
func (b *base) Name() string { return b.name }

// transact runs fn in a transaction, retrying the retryable failures in a fresh
// transaction with jittered exponential backoff. Each attempt has its own
// deadline under ctx. fn must use only the tx it is given.
func transact[T any](ctx context.Context, b *base, what string, fn func(tx *gorm.DB) (T, error)) (T, error) {
	var (
		zero T
		last error
	)
	for attempt := 1; attempt <= b.opts.MaxAttempts; attempt++ {
		v, err := attemptTx(ctx, b, fn)
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil {
			return zero, fmt.Errorf("%s %s: %w", b.name, what, ctx.Err())
		}
		if !retryable(err) {
			return zero, fmt.Errorf("%s %s: %w", b.name, what, err)
		}
		last = err
		if b.opts.OnRetry != nil {
			b.opts.OnRetry(b.name, err)
		}
		if err := sleep(ctx, backoff(b.opts.BaseBackoff, b.opts.MaxBackoff, attempt)); err != nil {
			return zero, fmt.Errorf("%s %s: %w", b.name, what, err)
		}
	}
	return zero, fmt.Errorf("%s %s: %w after %d attempts: %w", b.name, what, ErrRetriesExhausted, b.opts.MaxAttempts, last)
}

func attemptTx[T any](ctx context.Context, b *base, fn func(tx *gorm.DB) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.TxTimeout)
	defer cancel()
	var v T
	// gorm commits when the callback returns nil and rolls back otherwise
	// (and on panic); a failed COMMIT is returned as the error.
	err := b.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		v, err = fn(tx)
		return err
	})
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		// The attempt's deadline (or the caller's cancel) closed the
		// transaction under a statement, which may then report only that
		// the transaction is done: keep the cause visible to Transient.
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return v, err
}

// backoff is the pause before the attempt after attempt n: full jitter over a
// capped exponential.
func backoff(base, ceiling time.Duration, n int) time.Duration {
	d := base << min(n-1, 20)
	if d <= 0 || d > ceiling {
		d = ceiling
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// replay returns the stored decision for orderID, if there is one.
func replay(tx *gorm.DB, orderID string) (Decision, bool, error) {
	known, err := replayAll(tx, []string{orderID})
	if err != nil {
		return Decision{}, false, err
	}
	for _, d := range known {
		return d, true, nil // the one row the ledger has for orderID
	}
	return Decision{}, false, nil
}

// replayAll returns the stored decisions of the given orders (no duplicates),
// keyed by order id. Plain SQL and a hand-written scan: it runs once per
// order (once per run for batch), where gorm's reflection showed in profiles.
func replayAll(tx *gorm.DB, orderIDs []string) (map[string]Decision, error) {
	known := make(map[string]Decision, len(orderIDs))
	for chunk := range slices.Chunk(orderIDs, 1000) {
		var rows *sql.Rows
		var err error
		if len(chunk) == 1 {
			rows, err = tx.Raw("SELECT order_id, status, reason, payload FROM order_outcomes WHERE order_id = ?", chunk[0]).Rows()
		} else {
			rows, err = tx.Raw("SELECT order_id, status, reason, payload FROM order_outcomes WHERE order_id IN ?", chunk).Rows()
		}
		if err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		for rows.Next() {
			var d Decision
			if err := rows.Scan(&d.OrderID, &d.Status, &d.Reason, &d.Payload); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read ledger: %w", err)
			}
			d.Replayed = true
			known[d.OrderID] = d
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
	}
	return known, nil
}

// insertOutcomes inserts ledger rows with multi-row INSERTs of at most 500
// rows, in plain SQL.
func insertOutcomes(tx *gorm.DB, rows []OrderOutcome) error {
	for chunk := range slices.Chunk(rows, 500) {
		var sb strings.Builder
		sb.WriteString("INSERT INTO order_outcomes (order_id, status, reason, items, payload, strategy, created_at) VALUES ")
		args := make([]any, 0, 7*len(chunk))
		for i, r := range chunk {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString("(?,?,?,?,?,?,?)")
			args = append(args, r.OrderID, r.Status, r.Reason, r.Items, r.Payload, r.Strategy, r.CreatedAt)
		}
		if err := tx.Exec(sb.String(), args...).Error; err != nil {
			return fmt.Errorf("write ledger: %w", err)
		}
	}
	return nil
}

// record builds the outcome event and inserts the ledger row in tx. A concurrent
// attempt that recorded the same order first makes the insert fail with 1062,
// which rolls this attempt back and retries it as a replay.
func (b *base) record(tx *gorm.DB, orderID, status, reason string, lines []events.Line, available map[int64]int64) (Decision, error) {
	return b.recordEvent(tx, orderID, status, reason, lines, available, 0)
}

// recordEvent is record with the items_total of an invalid order's rejection.
func (b *base) recordEvent(tx *gorm.DB, orderID, status, reason string, lines []events.Line, available map[int64]int64, itemsTotal int) (Decision, error) {
	row, d, err := b.outcomeEvent(orderID, status, reason, lines, available, itemsTotal)
	if err != nil {
		return Decision{}, err
	}
	if err := insertOutcomes(tx, []OrderOutcome{row}); err != nil {
		return Decision{}, err
	}
	return d, nil
}

// outcome builds the outcome event of a decision and its ledger row.
func (b *base) outcome(orderID, status, reason string, lines []events.Line, available map[int64]int64) (OrderOutcome, Decision, error) {
	return b.outcomeEvent(orderID, status, reason, lines, available, 0)
}

func (b *base) outcomeEvent(orderID, status, reason string, lines []events.Line, available map[int64]int64, itemsTotal int) (OrderOutcome, Decision, error) {
	at := b.opts.Now()
	var ev events.Outcome
	if status == StatusDeducted {
		ev = events.Deducted(orderID, lines, at)
	} else {
		ev = events.Rejected(orderID, reason, lines, available, at).WithItemsTotal(itemsTotal)
	}
	payload, err := ev.Encode()
	if err != nil {
		return OrderOutcome{}, Decision{}, err
	}
	items, err := json.Marshal(lines)
	if err != nil {
		return OrderOutcome{}, Decision{}, fmt.Errorf("encode lines: %w", err)
	}
	row := OrderOutcome{OrderID: orderID, Status: status, Reason: reason, Items: string(items), Payload: payload, Strategy: b.name, CreatedAt: at}
	return row, Decision{OrderID: orderID, Status: status, Reason: reason, Payload: payload}, nil
}

// lockOrder returns o's lines merged and sorted by ascending goods id. The
// decoder already does this; strategies do not rely on their caller for the
// lock order that keeps multi-item orders free of deadlocks.
func lockOrder(o events.OrderPlaced) ([]events.Line, error) {
	lines, overflow := events.MergeLines(o.Lines)
	if overflow || len(lines) == 0 {
		return nil, fmt.Errorf("order %q: lines %v are not a valid order", o.OrderID, o.Lines)
	}
	return lines, nil
}

// goodsRow is one locked or read inventory row.
type goodsRow struct {
	Goods   int64
	Stocks  int64
	Version int64
}

// readStock reads the rows of goods (ascending) in tx, with FOR UPDATE when
// lock is set. InnoDB walks a primary-key IN list in ascending key order, so the
// row locks are taken in ascending goods id. Missing goods are absent from the
// returned maps.
func readStock(tx *gorm.DB, goods []int64, lock bool) (stock, version map[int64]int64, err error) {
	q := "SELECT goods, stocks, version FROM inventory WHERE goods IN ? ORDER BY goods"
	if lock {
		q += " FOR UPDATE"
	}
	var rows []goodsRow
	if err := tx.Raw(q, goods).Scan(&rows).Error; err != nil {
		return nil, nil, fmt.Errorf("read goods %v: %w", goods, err)
	}
	stock = make(map[int64]int64, len(rows))
	version = make(map[int64]int64, len(rows))
	for _, r := range rows {
		stock[r.Goods], version[r.Goods] = r.Stocks, r.Version
	}
	return stock, version, nil
}

func goodsOf(lines []events.Line) []int64 {
	ids := make([]int64, len(lines))
	for i, l := range lines {
		ids[i] = l.GoodsID
	}
	return ids
}

// verdict decides an order against the stock of its goods. stock holds the
// goods that exist; a missing key is unknown goods. Unknown goods take precedence
// over insufficient stock.
func verdict(lines []events.Line, stock map[int64]int64) (reason string) {
	for _, l := range lines {
		if _, ok := stock[l.GoodsID]; !ok {
			return events.ReasonUnknownGoods
		}
	}
	for _, l := range lines {
		if stock[l.GoodsID] < int64(l.Num) {
			return events.ReasonInsufficientStock
		}
	}
	return ""
}

// deductGuarded subtracts num from goods only if enough stock is there, and
// reports ErrGuard when the guard matched no row. The guard is what keeps stock
// non-negative even if the strategy's own serialisation was bypassed.
func deductGuarded(tx *gorm.DB, goods int64, num int32) error {
	res := tx.Exec("UPDATE inventory SET stocks = stocks - ?, version = version + 1 WHERE goods = ? AND stocks >= ?", num, goods, num)
	if res.Error != nil {
		return fmt.Errorf("deduct goods %d: %w", goods, res.Error)
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("deduct goods %d: %w", goods, ErrGuard)
	}
	return nil
}
