package events

import (
	"errors"
	"fmt"
)

// ErrUndecodable marks input that is not an order at all: not UTF-8, a lone
// surrogate escape, not JSON, not a JSON object, or without a usable order_id. Such input cannot be answered with an
// outcome event (there is no order to key it by) and goes to the dead-letter topic.
var ErrUndecodable = errors.New("events: undecodable message")

// InvalidError reports an order that has a usable order_id but breaks another rule
// of the contract. The order is answered with stock-rejected, reason invalid_order,
// listing the lines that could be read.
type InvalidError struct {
	OrderID string
	// Lines holds the lines that could be read, merged and sorted like a valid
	// order's lines. It may be empty. Only the first Limits.MaxLines lines of
	// the message are read.
	Lines []Line
	// ItemsTotal is the number of lines of the message when Lines comes from
	// only the first of them (too many lines), else 0.
	ItemsTotal int
	Detail     string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("events: invalid order %q: %s", e.OrderID, e.Detail)
}
