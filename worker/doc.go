// Package worker runs stockflow's consume → deduct → publish → commit loop.
//
// A Worker is one member of the consumer group on the orders topic. For every
// message it decodes the order, has the lock strategy (a Deductor) decide it in
// one database transaction that also writes the idempotency ledger, publishes the
// outcome event with acks=all, and only then commits the message's offset. A crash
// anywhere before the commit redelivers the message; the ledger turns the
// redelivery into a re-publication of the stored outcome, so every order has
// exactly one effect and at least one outcome event.
//
// Bytes that are not an order go to the dead-letter topic; orders that parse but
// break the contract are rejected with reason invalid_order. Transient failures
// (database, Redis or Kafka unavailable, retries exhausted) are retried with
// capped exponential backoff on the same message; they never become rejections
// and never move the offset.
package worker
