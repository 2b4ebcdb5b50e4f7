// Package db owns stockflow's MySQL/MariaDB side: the gorm models, the versioned
// migrations, the idempotency ledger, and the lock strategies that deduct stock.
//
// Every transaction lives here; callers never see a *gorm.DB transaction. A
// strategy's Deduct runs the whole decision for one order in one transaction:
// it replays the ledger first (an order already decided returns the stored
// outcome, byte for byte, and changes nothing), locks or guards the order's goods
// rows in ascending goods id, decides all lines together (all or nothing), writes
// the stock changes and the ledger row, and commits. Deadlocks (1213), lock-wait
// timeouts (1205), snapshot conflicts (1020) and a concurrent ledger insert for the
// same order (1062) roll the attempt back and retry it in a fresh transaction with
// jittered backoff, a bounded number of times. Anything still failing is returned
// as a transient error: the caller retries later and never turns it into a
// rejection.
package db
