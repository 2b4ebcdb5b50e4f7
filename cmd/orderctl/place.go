package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/producer"
)

const placeHelp = `orderctl place publishes one order-placed event to the orders topic, keyed by
ORDER_ID, and returns once Kafka acknowledged it (acks=all). Each GOODS:NUM is one
line of the order; lines of the same goods are added up.

Usage:
  orderctl place [flags] ORDER_ID GOODS:NUM...

Examples:
  orderctl place A1001 16:1                # one of goods 16
  orderctl place A1002 16:1 17:2 -wait     # and print its outcome once a worker decided it
  orderctl place -orders-topic test.orders.placed A1003 16:5
`

// runPlace is `orderctl place`.
func runPlace(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("place", placeHelp, &cfg)
	wait := fs.Bool("wait", false, "after placing, wait for the order's outcome on the events topic and print it")
	timeout := fs.Duration("timeout", 30*time.Second, "with -wait: how long to wait for the outcome")
	pos, err := fs.parse(args, stdout)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usagef("place", "want ORDER_ID GOODS:NUM..., for example: orderctl place A1001 16:1")
	}
	if *timeout <= 0 {
		return usagef("place", "-timeout must be positive, got %v", *timeout)
	}
	orderID, err := parseOrderID(pos[0])
	if err != nil {
		return usagef("place", "%v", err)
	}
	lines, err := parseLines(pos[1:])
	if err != nil {
		return usagef("place", "%v", err)
	}
	order := events.OrderPlaced{OrderID: orderID, Lines: lines}
	msg, err := orderMessage(cfg.OrdersTopic, order)
	if err != nil {
		return err
	}

	var outcomes *harness.Tail
	if *wait {
		// Resolve the end of the events topic before publishing, so the outcome
		// cannot slip in between.
		outcomes, err = openTail(ctx, cfg.kafka(), cfg.EventsTopic, false)
		if err != nil {
			return err
		}
		defer outcomes.Close()
	}

	if err := publish(ctx, cfg.kafka(), msg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "placed %s on %s: %s\n", orderID, cfg.OrdersTopic, formatLines(lines))
	if !*wait {
		return nil
	}

	o, err := awaitOutcome(ctx, outcomes, orderID, *timeout)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("no outcome for %s on %s within %v (is a stockworker running on %s?)",
				orderID, cfg.EventsTopic, *timeout, cfg.OrdersTopic)
		}
		return err
	}
	fmt.Fprintln(stdout, formatOutcome(o, time.Local))
	return nil
}

// orderMessage encodes order as the orders topic's message, keyed by order_id.
// The payload is decoded again, so orderctl never publishes an order the
// worker would not accept.
func orderMessage(topic string, order events.OrderPlaced) (kafka.Message, error) {
	b, err := events.EncodeOrderPlaced(order)
	if err != nil {
		return kafka.Message{}, err
	}
	if _, err := events.DecodeOrderPlaced(b); err != nil {
		return kafka.Message{}, fmt.Errorf("refusing to publish an order the worker would reject: %w", err)
	}
	return kafka.Message{Topic: topic, Key: []byte(order.OrderID), Value: b}, nil
}

// publish writes msgs with acks=all through a Publisher of its own.
func publish(ctx context.Context, k harness.Kafka, msgs ...kafka.Message) error {
	pub := producer.New(k.Brokers, producer.Options{Security: k.Security})
	defer pub.Close()
	ctx, cancel := context.WithTimeout(ctx, kafkaTimeout)
	defer cancel()
	return explainPublish(pub.Publish(ctx, msgs...), k.Brokers, msgs)
}

// explainPublish adds the usual cause to a publish error: the topic is missing
// (orderctl creates no topics; a stockworker does at start).
func explainPublish(err error, brokers []string, msgs []kafka.Message) error {
	if err == nil || len(msgs) == 0 {
		return err
	}
	unknown := errors.Is(err, kafka.UnknownTopicOrPartition)
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			unknown = unknown || errors.Is(e, kafka.UnknownTopicOrPartition)
		}
	}
	if unknown {
		return fmt.Errorf("topic %s does not exist on %v (a stockworker creates it at start): %w", msgs[0].Topic, brokers, err)
	}
	return err
}

// awaitOutcome returns the first stock-deducted or stock-rejected event of
// orderID read from t within timeout.
func awaitOutcome(ctx context.Context, t *harness.Tail, orderID string, timeout time.Duration) (events.Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		m, err := t.Next(ctx)
		if err != nil {
			return events.Outcome{}, err
		}
		if string(m.Key) != orderID {
			continue
		}
		o, err := events.DecodeOutcome(m.Value)
		if err != nil || o.OrderID != orderID {
			continue
		}
		if o.Type == events.TypeDeducted || o.Type == events.TypeRejected {
			return o, nil
		}
	}
}
