package db

import "time"

// Inventory is one goods row. Stocks never goes below zero: every strategy
// guards its write in SQL and the table has a CHECK constraint besides.
type Inventory struct {
	Goods     int64 `gorm:"primaryKey;autoIncrement:false"`
	Stocks    int32
	Version   int64
	UpdatedAt time.Time
}

// TableName keeps the contract's table name.
func (Inventory) TableName() string { return "inventory" }

// Outcome statuses recorded in the ledger.
const (
	StatusDeducted = "deducted"
	StatusRejected = "rejected"
)

// OrderOutcome is the idempotency ledger: one row per decided order, written in
// the same transaction as the stock change. Payload is the outcome event exactly
// as first published.
type OrderOutcome struct {
	OrderID   string `gorm:"primaryKey"`
	Status    string
	Reason    string
	Items     string // JSON of the merged lines
	Payload   []byte
	Strategy  string
	CreatedAt time.Time
}

// TableName names the ledger table.
func (OrderOutcome) TableName() string { return "order_outcomes" }

// Cancellation results recorded in order_cancellations.
const (
	// CancelReleased: the order had been deducted; its lines were given back.
	CancelReleased = "released"
	// CancelNothing: the order had been rejected; nothing to give back.
	CancelNothing = "nothing"
	// CancelBeforeOrder: the order had not arrived; it is recorded as rejected
	// with reason cancelled, which its order-placed event will replay.
	CancelBeforeOrder = "before_order"
)

// OrderCancellation records what cancelling an order did.
type OrderCancellation struct {
	OrderID   string `gorm:"primaryKey"`
	Result    string
	Items     string // JSON of the lines given back
	Payload   []byte // the published event; empty when none
	CreatedAt time.Time
}

// TableName names the cancellations table.
func (OrderCancellation) TableName() string { return "order_cancellations" }
