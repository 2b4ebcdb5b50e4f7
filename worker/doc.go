// Package worker runs stockflow's fetch → schedule → decide → publish → commit
// pipeline.
//
// A Worker runs Consumers members of the consumer group on the orders (and
// cancellations) topic. Each member is a pipeline of goroutines it owns
// (member.go): the fetcher decodes every message under the configured limits
// and admits it to the scheduler (schedule.go), which releases an order for
// decision once every earlier order sharing one of its goods is decided and
// every earlier message of its order id is published; Lanes lanes decide what
// is released (decide.go) through the lock strategy, in database transactions
// that also write the idempotency ledger; the publisher (publish.go) writes the
// answers with acks=all as they are decided; the committer (offsets.go) commits
// each partition up to its first message not yet answered. A crash anywhere
// before the commit redelivers the messages; the ledger turns a redelivery
// into a re-publication of the stored outcome, so every order has exactly one
// effect and at least one outcome event.
//
// Bytes that are not an order go to the dead-letter topic; orders that parse but
// break the contract are rejected with reason invalid_order. Failures are
// sorted in one place (Worker.transient): those that heal by waiting (a
// dependency down, timeouts, deadlocks, a broker away) are retried with capped
// backoff for as long as it takes, and never become rejections or dead
// letters; any other failure gets bounded attempts, and the message that fails
// on its own is parked on the dead-letter topic so the partition moves on (the
// poison policy, decide.go).
package worker
