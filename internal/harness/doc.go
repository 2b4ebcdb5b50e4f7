// Package harness is the one place the tests, orderctl's demo and stockbench
// get their test and tool plumbing from:
//
//   - Tail reads a topic without a consumer group (one kafka.Reader per
//     partition) from its start or from its current end; WithCheck makes it
//     check every message, and ContractCheck is the check of the event
//     contract (package api) for the outcome and dead-letter topics;
//   - StartWorkers runs stockworker processes with a clean environment, a
//     known HTTP port each and their output captured, and stops them;
//   - WaitAssigned waits until a consumer group owns every partition;
//   - Kafka carries the brokers and the security (TLS, SASL: package
//     kafkaconn) the Kafka functions above connect with; the package
//     functions of the same names connect in plaintext;
//   - ParseMetrics reads a /metrics page with expfmt;
//   - Unique names and Preflight checks of the local services.
//
// It imports no testing package, so commands use it as well as tests;
// internal/testsvc adapts it to testing.TB.
//
// Every blocking call takes a context, every goroutine the package starts is
// owned by a value with an idempotent Close or Stop that waits for it, and the
// doc comment of each says who closes what and what a cancelled context does.
package harness
