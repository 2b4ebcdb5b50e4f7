// Package events defines stockflow's public event contract: the order-placed and
// order-cancelled payloads it consumes, the stock-* outcome events it publishes,
// decoding with validation, and deterministic encoding of outcomes.
//
// The package does no I/O. Both the worker and tools such as orderctl import it,
// so the JSON shapes live in exactly one place.
//
// Decoding sorts every input into one of three kinds, as DESIGN.md requires:
//
//   - a valid order: returned with its lines merged (same goods summed) and
//     sorted by ascending goods id, the order in which rows are locked;
//   - an order that names a usable order_id but is otherwise defective: an
//     *InvalidError, which the worker answers with stock-rejected/invalid_order;
//   - anything else (not JSON, not an object, no usable order_id): an error that
//     wraps ErrUndecodable, which the worker sends to the dead-letter topic.
package events
