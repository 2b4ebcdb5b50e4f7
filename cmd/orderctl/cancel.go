package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
)

const cancelHelp = `orderctl cancel publishes one order-cancelled event, {"order_id":"..."}, to the
cancelled topic, keyed by ORDER_ID (acks=all). A worker gives back what the order
deducted, once, and publishes stock-released; a cancel that arrives before its order
makes that order a stock-rejected with reason cancelled.

Usage:
  orderctl cancel [flags] ORDER_ID

Examples:
  orderctl cancel A1001
  orderctl cancel -cancelled-topic test.orders.cancelled A1001
`

// runCancel is `orderctl cancel`.
func runCancel(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cancel", cancelHelp, &cfg)
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("cancel", "want exactly one ORDER_ID, for example: orderctl cancel A1001")
	}
	orderID, err := parseOrderID(pos[0])
	if err != nil {
		return usagef("cancel", "%v", err)
	}
	b, err := json.Marshal(events.OrderCancelled{OrderID: orderID})
	if err != nil {
		return fmt.Errorf("encode cancel of %s: %w", orderID, err)
	}
	if err := publish(ctx, cfg.kafka(), kafka.Message{Topic: cfg.CancelledTopic, Key: []byte(orderID), Value: b}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cancelled %s on %s\n", orderID, cfg.CancelledTopic)
	return nil
}
