// Package worker runs stockflow's consume → deduct → publish → commit loop.
//
// A Worker runs Consumers members of the consumer group on the orders (and
// cancellations) topic. Each member fetches a micro-batch, decodes every
// message under the configured limits, has the lock strategy (a Deductor)
// decide the orders in database transactions that also write the idempotency
// ledger, publishes the answers with acks=all, and only then commits the
// offsets. A crash anywhere before the commit redelivers the messages; the
// ledger turns a redelivery into a re-publication of the stored outcome, so
// every order has exactly one effect and at least one outcome event.
//
// Bytes that are not an order go to the dead-letter topic; orders that parse but
// break the contract are rejected with reason invalid_order. Failures are
// sorted in one place (transient): those that heal by waiting (a dependency
// down, timeouts, deadlocks, a broker away) are retried with capped backoff on
// the same batch for as long as it takes, and never become rejections or dead
// letters; any other failure gets bounded attempts, then the batch is split
// until the messages that fail on their own are found, and those are parked on
// the dead-letter topic so the partition moves on (see settle.go).
package worker
