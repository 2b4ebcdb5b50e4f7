package events

import "time"

// Outcome event types, also sent as the Kafka header "type".
const (
	TypeDeducted = "stock-deducted"
	TypeRejected = "stock-rejected"
	TypeReleased = "stock-released"
)

// Rejection reasons.
const (
	ReasonInsufficientStock = "insufficient_stock"
	ReasonUnknownGoods      = "unknown_goods"
	ReasonInvalidOrder      = "invalid_order"
	ReasonCancelled         = "cancelled"
)

// Line is one line of an order: a quantity of one goods.
type Line struct {
	GoodsID int64 `json:"goods_id"`
	Num     int32 `json:"num"`
}

// OrderPlaced is a decoded and validated order-placed event. Its Lines are merged
// (one line per goods) and sorted by ascending GoodsID.
type OrderPlaced struct {
	OrderID  string     `json:"order_id"`
	Lines    []Line     `json:"items"`
	PlacedAt *time.Time `json:"placed_at,omitempty"`
}

// OrderCancelled is a decoded order-cancelled event.
type OrderCancelled struct {
	OrderID string `json:"order_id"`
}

// OutcomeLine is one line of an outcome event. Available is set on rejections
// only: the stock of that goods when the order was decided (0 for unknown goods).
type OutcomeLine struct {
	GoodsID   int64  `json:"goods_id"`
	Num       int32  `json:"num"`
	Available *int64 `json:"available,omitempty"`
}

// Outcome is a stock-deducted, stock-rejected or stock-released event.
type Outcome struct {
	Type    string        `json:"type"`
	EventID string        `json:"event_id"`
	OrderID string        `json:"order_id"`
	Reason  string        `json:"reason,omitempty"`
	Items   []OutcomeLine `json:"items"`
	// ItemsTotal is set on an invalid_order rejection whose items list only
	// the first lines of a longer order: how many lines the order had.
	ItemsTotal int       `json:"items_total,omitempty"`
	OccurredAt time.Time `json:"occurred_at"`
}
