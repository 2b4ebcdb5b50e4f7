package worker

import (
	"context"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
)

// The worker's own vocabulary: what it needs from a lock strategy, a ledger
// and Kafka, in small interfaces, and the results it gets back. Adapters for
// the db package live in internal/wire; tests use fakes.

// Decision is how an order was decided: its outcome event, exactly as the
// ledger stores it and as it is (re-)published.
type Decision struct {
	OrderID string
	Type    string // events.TypeDeducted or events.TypeRejected
	Reason  string // set on rejections
	Payload []byte // the outcome event's JSON
	// Replayed is true when the order had been decided before: nothing changed now.
	Replayed bool
}

// Event is one outcome event to publish: its type and its JSON.
type Event struct {
	Type    string
	Payload []byte
}

// Cancellation is what cancelling an order did.
type Cancellation struct {
	OrderID string
	Result  string  // released, nothing, before_order (a metrics label)
	Events  []Event // to publish, in order; the last is the order's stock-released
	// Capped lists the units that could not be given back because the stock
	// would have passed the INT maximum.
	Capped   []events.Line
	Replayed bool
}

// Deductor decides one order under a lock strategy: it deducts every line or
// none, records the decision in the ledger in the same transaction, and returns
// it. A redelivered order returns the first decision and changes nothing. An
// error means nothing was decided; it is never turned into a rejection.
type Deductor interface {
	Deduct(ctx context.Context, o events.OrderPlaced) (Decision, error)
}

// BatchDeductor decides many orders in one go, in the given order, returning one
// decision per order (same index); on error nothing was decided. A Deductor
// that also implements it is fed runs of orders.
type BatchDeductor interface {
	DeductBatch(ctx context.Context, orders []events.OrderPlaced) ([]Decision, error)
}

// Ledger records what needs no stock lock strategy: rejections of invalid
// orders, and cancellations. Both return the first result on redelivery.
// Released returns the stock-released events recorded for the given orders.
type Ledger interface {
	Reject(ctx context.Context, orderID, reason string, lines []events.Line, itemsTotal int) (Decision, error)
	Cancel(ctx context.Context, orderID string) (Cancellation, error)
	Released(ctx context.Context, orderIDs []string) (map[string][]byte, error)
}

// Publisher writes messages and returns once they are acknowledged (acks=all).
type Publisher interface {
	Publish(ctx context.Context, msgs ...kafka.Message) error
}

// Reader is one group member's connection to Kafka; *kafka.Reader is one.
// FetchMessage blocks for the next message of the member's partitions;
// CommitMessages commits, per partition, the offset after the highest message
// given; Close leaves the group.
type Reader interface {
	FetchMessage(ctx context.Context) (kafka.Message, error)
	CommitMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

var _ Reader = (*kafka.Reader)(nil)
