package events

import (
	"errors"
	"fmt"
	"math"
)

// Defaults of Limits: the contract's bounds.
const (
	// MaxOrderIDBytes is the default (and the contract's) longest order_id.
	MaxOrderIDBytes = 128
	// MaxLines is the default (and the contract's) most lines of one order.
	MaxLines = 100
	// DefaultMaxMessageBytes is the default largest order-placed message: two
	// orders of the contract's largest shape fit many times over, and decoding
	// a message this size costs well under a millisecond.
	DefaultMaxMessageBytes = 64 << 10
	// OrderIDColumnBytes is the width of the ledger's order_id column, the
	// highest MaxOrderIDBytes may be set to.
	OrderIDColumnBytes = 255
)

// Limits bound what one message may hold. The decoder enforces them before any
// database work: an order that breaks one is rejected as invalid_order, and an
// order_id beyond MaxOrderIDBytes is no usable order_id (a dead letter). The
// zero value of a field means its default.
type Limits struct {
	// MaxMessageBytes bounds the raw order-placed message. Default 65,536.
	MaxMessageBytes int
	// MaxLines bounds the lines (array entries of items) of an order.
	// Default 100.
	MaxLines int
	// MaxNum bounds num, per line and summed per goods. Default 2,147,483,647
	// (int32, the stock column's range).
	MaxNum int32
	// MaxOrderIDBytes bounds order_id, in bytes. Default 128; at most 255.
	MaxOrderIDBytes int
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits { return Limits{}.withDefaults() }

func (l Limits) withDefaults() Limits {
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if l.MaxLines <= 0 {
		l.MaxLines = MaxLines
	}
	if l.MaxNum <= 0 {
		l.MaxNum = math.MaxInt32
	}
	if l.MaxOrderIDBytes <= 0 {
		l.MaxOrderIDBytes = MaxOrderIDBytes
	}
	return l
}

// Validate reports limits that cannot be honoured (negative, or an order_id
// wider than the ledger column).
func (l Limits) Validate() error {
	var errs []error
	if l.MaxMessageBytes < 0 {
		errs = append(errs, fmt.Errorf("MAX_MESSAGE_BYTES must be positive, got %d", l.MaxMessageBytes))
	}
	if l.MaxLines < 0 {
		errs = append(errs, fmt.Errorf("MAX_LINES must be positive, got %d", l.MaxLines))
	}
	if l.MaxNum < 0 {
		errs = append(errs, fmt.Errorf("MAX_NUM must be positive, got %d", l.MaxNum))
	}
	if l.MaxOrderIDBytes < 0 || l.MaxOrderIDBytes > OrderIDColumnBytes {
		errs = append(errs, fmt.Errorf("MAX_ORDER_ID_BYTES must be in 1..%d (the ledger column), got %d", OrderIDColumnBytes, l.MaxOrderIDBytes))
	}
	return errors.Join(errs...)
}
