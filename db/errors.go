package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"

	"github.com/go-sql-driver/mysql"
)

// ErrRetriesExhausted is returned when an order could not be decided within the
// configured number of attempts. It wraps the last attempt's error, which
// decides whether it is transient (see Transient).
var ErrRetriesExhausted = errors.New("db: retries exhausted")

// ErrGuard reports a conditional stock UPDATE that matched no row although the
// strategy believed the stock sufficient: another writer got there first. The
// attempt is rolled back and retried.
var ErrGuard = errors.New("db: stock guard matched no row")

// ErrConflict reports an optimistic compare-and-set that lost: the row changed
// since it was read. The attempt is rolled back and retried in a new transaction.
var ErrConflict = errors.New("db: row changed since read")

// ErrMigrateDenied reports migrations that are pending while the database
// user may not apply them (no DDL rights, as the worker's least-privilege
// user): they must be applied by the migration user (`stockworker migrate`)
// first. It never heals by waiting.
var ErrMigrateDenied = errors.New("db: migrations are pending and this user may not apply them")

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
	errUnknownDatabase       = 1049
	errNoSuchTable           = 1146
)

// MySQL error numbers of a statement the user has no privilege for.
var accessDeniedErrors = map[uint16]bool{
	1044: true, // access denied to database (CREATE DATABASE)
	1142: true, // command denied for a table (CREATE, ALTER, DROP, ...)
	1143: true, // command denied for a column
	1227: true, // a privilege such as SUPER is needed
	1370: true, // command denied for a routine
}

// accessDenied reports whether err is the server refusing a statement for
// lack of a privilege.
func accessDenied(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && accessDeniedErrors[me.Number]
}

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

// MySQL error numbers that mean the server is busy, going away or failing
// over: waiting heals them.
var transientServerErrors = map[uint16]bool{
	errDeadlock:         true,
	errLockWaitTimeout:  true,
	errSnapshotConflict: true,
	1021:                true, // disk full
	1040:                true, // too many connections
	1047:                true, // MariaDB Galera: node not ready (WSREP)
	1114:                true, // table is full
	1203:                true, // user has too many active connections
	1226:                true, // user exceeded a resource limit
	1412:                true, // table definition changed (online DDL)
	1053:                true, // server shutdown in progress
	1077:                true, // normal shutdown
	1079:                true, // shutdown complete
	1152:                true, // aborted connection
	1158:                true, // network read error
	1159:                true, // network read timeout
	1160:                true, // network write error
	1161:                true, // network write timeout
	1180:                true, // got error during COMMIT
	1181:                true, // got error during ROLLBACK
	1290:                true, // --read-only (a replica being promoted)
	1317:                true, // query execution was interrupted
	1836:                true, // read-only mode
	1927:                true, // MariaDB: connection was killed
	1969:                true, // MariaDB: max_statement_time exceeded
	3024:                true, // MySQL: max_execution_time exceeded
	4031:                true, // MySQL: disconnected for inactivity
}

// Transient reports whether err heals by waiting: the database (or Redis) is
// down, busy, failing over or contended, or the attempt timed out. Anything
// else — a statement the server refuses for this data (1406 data too long, 1264
// out of range, a duplicate key that retries did not resolve, a missing table)
// — is permanent: retrying the same input fails the same way, so the worker
// isolates the message that causes it instead of retrying it forever. Context
// cancellation is neither: the caller is stopping.
//
// This is the one place that decides it. Retries exhausted count as transient
// when their last cause does (deadlocks, conflicts, guards: contention that
// passes), permanent when it does not (a duplicate key on every attempt means
// the ledger and the caller disagree about the order's identity).
func Transient(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.Canceled):
		return false
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return transientServerErrors[me.Number] || transientState(me.SQLState)
	}
	switch {
	case errors.Is(err, ErrGuard), errors.Is(err, ErrConflict), errors.Is(err, ErrLock),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, driver.ErrBadConn), errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, sql.ErrConnDone), errors.Is(err, sql.ErrTxDone),
		// The connection broke mid-packet (a server restart or a proxy).
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, mysql.ErrPktSync),
		errors.Is(err, mysql.ErrPktSyncMul), errors.Is(err, mysql.ErrMalformPkt), errors.Is(err, mysql.ErrBusyBuffer):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// transientState reports SQLSTATEs that heal by waiting, whatever the error
// number: connection exceptions (class 08), serialization failures (40001),
// a query interrupted or timed out (70100, HYT00).
func transientState(state [5]byte) bool {
	s := string(state[:])
	return s[:2] == "08" || s == "40001" || s == "70100" || s == "HYT00"
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
