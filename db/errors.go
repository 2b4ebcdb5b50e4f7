package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"net"

	"github.com/go-sql-driver/mysql"
)

// ErrRetriesExhausted is returned when an order could not be decided within the
// configured number of attempts. It is transient: try again later.
var ErrRetriesExhausted = errors.New("db: retries exhausted")

// ErrGuard reports a conditional stock UPDATE that matched no row although the
// strategy believed the stock sufficient: another writer got there first. The
// attempt is rolled back and retried.
var ErrGuard = errors.New("db: stock guard matched no row")

// ErrConflict reports an optimistic compare-and-set that lost: the row changed
// since it was read. The attempt is rolled back and retried in a new transaction.
var ErrConflict = errors.New("db: row changed since read")

// ErrLock reports a lock that could not be taken (Redis unreachable, or held by
// others for too long). It is transient: nothing was written.
var ErrLock = errors.New("db: lock not acquired")

// MySQL error numbers that roll an attempt back and retry it.
const (
	errDeadlock         = 1213 // whole transaction rolled back
	errLockWaitTimeout  = 1205 // only the statement rolled back; we roll back the rest
	errSnapshotConflict = 1020 // MariaDB innodb_snapshot_isolation: record changed
	errDuplicateKey     = 1062 // a concurrent attempt recorded the same order first

	errUnknownSystemVariable = 1193
)

// retryable reports whether an attempt that failed with err should be retried at
// once in a new transaction. This is the one place that decides it.
func retryable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case errDeadlock, errLockWaitTimeout, errSnapshotConflict, errDuplicateKey:
			return true
		}
		return false
	}
	return errors.Is(err, ErrGuard) || errors.Is(err, ErrConflict)
}

// Transient reports whether err is worth retrying later (the database is down or
// busy) rather than a defect. Context cancellation is not transient: the caller
// is stopping.
func Transient(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return false
	case retryable(err), errors.Is(err, ErrRetriesExhausted), errors.Is(err, ErrLock), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// RetryCause names why an attempt was retried, for metrics: deadlock,
// lock_wait_timeout, snapshot_conflict, duplicate, conflict, guard, or other.
func RetryCause(err error) string {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case errDeadlock:
			return "deadlock"
		case errLockWaitTimeout:
			return "lock_wait_timeout"
		case errSnapshotConflict:
			return "snapshot_conflict"
		case errDuplicateKey:
			return "duplicate"
		}
	}
	switch {
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrGuard):
		return "guard"
	}
	return "other"
}
