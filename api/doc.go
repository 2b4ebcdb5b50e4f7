// Package api is stockflow's event contract in machine-readable form:
// asyncapi.yaml (AsyncAPI 3.0.0) describes the topics, keys, headers and
// partitioning, and schemas/*.json (JSON Schema draft 2020-12) every payload
// and header set. Both are embedded, so the contract ships with the code that
// checks it.
//
// Validate and ValidateMessage check a payload, or a whole Kafka message, of
// one Kind against its schema and against the rules of the contract that JSON
// Schema cannot state (byte lengths, duplicate member names, the spelling of
// integers, UTF-8, event_id = order_id:type, the order of lines, the key and
// the headers agreeing with the payload). Every schema's description lists the
// rules beyond it. The end-to-end tests run every outcome and dead letter they
// read through ValidateMessage (internal/harness.ContractCheck).
//
// The package does no I/O: the schemas are compiled from the embedded files,
// and references outside them are refused.
package api
