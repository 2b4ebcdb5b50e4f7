package producer

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// Header names used on published messages.
const (
	HeaderType            = "type"
	HeaderError           = "error"
	HeaderSourceTopic     = "source-topic"
	HeaderSourcePartition = "source-partition"
	HeaderSourceOffset    = "source-offset"
)

// Options tune a Publisher. The zero value gives the documented defaults.
type Options struct {
	// BatchTimeout is how long the writer waits to fill a batch. kafka-go's
	// default of 1s would add a second to every synchronous write; every
	// Publish call hands over all its messages at once, so little waiting is
	// needed. Default 500µs.
	BatchTimeout time.Duration
	// WriteTimeout bounds one produce request. Default 10s.
	WriteTimeout time.Duration
}

// Publisher writes messages to any topic (each message names its own) with
// acks=all, keyed by the message key through a hash balancer, so one order's
// events always land on one partition. It is safe for concurrent use.
type Publisher struct {
	w         *kafka.Writer
	transport *kafka.Transport
}

// New returns a Publisher for brokers.
func New(brokers []string, opts Options) *Publisher {
	if opts.BatchTimeout <= 0 {
		opts.BatchTimeout = 500 * time.Microsecond
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	transport := &kafka.Transport{Dial: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	return &Publisher{transport: transport, w: &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: opts.BatchTimeout,
		WriteTimeout: opts.WriteTimeout,
		ReadTimeout:  opts.WriteTimeout,
		// Topics are created by EnsureTopics; a typo must fail, not create one.
		AllowAutoTopicCreation: false,
		Transport:              transport,
	}}
}

// Publish writes msgs and returns once the broker acknowledged all of them
// (acks=all), or the first error. Cancelling ctx abandons the write; the
// messages may or may not have been written.
func (p *Publisher) Publish(ctx context.Context, msgs ...kafka.Message) error {
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("producer: publish %d message(s): %w", len(msgs), err)
	}
	return nil
}

// Close flushes and closes the writer and its connections. It is safe to call
// more than once.
func (p *Publisher) Close() error {
	err := p.w.Close()
	p.transport.CloseIdleConnections()
	return err
}

// Outcome is the message for an outcome event: keyed by order_id, with the
// event type in the "type" header.
func Outcome(topic, orderID, eventType string, payload []byte) kafka.Message {
	return kafka.Message{
		Topic:   topic,
		Key:     []byte(orderID),
		Value:   payload,
		Headers: []kafka.Header{{Key: HeaderType, Value: []byte(eventType)}},
	}
}

// DeadLetter is the message that parks src on the dead-letter topic: the
// original key and value, with the error and the source position in headers.
func DeadLetter(topic string, src kafka.Message, cause error) kafka.Message {
	return kafka.Message{
		Topic: topic,
		Key:   src.Key,
		Value: src.Value,
		Headers: []kafka.Header{
			{Key: HeaderError, Value: []byte(cause.Error())},
			{Key: HeaderSourceTopic, Value: []byte(src.Topic)},
			{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(src.Partition))},
			{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
		},
	}
}
