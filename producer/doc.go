// Package producer publishes to Kafka: outcome events, dead letters and, for
// tools and tests, orders. Every write waits for acks=all, so a nil error means
// the broker has the message durably; callers commit offsets only after that.
//
// kafka-go has no idempotent producer: a retried write can duplicate a message.
// Outcome events carry a deterministic event_id so consumers can dedupe.
package producer
