package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
	"unicode/utf8"
)

// DecodeOrderPlaced decodes and validates an order-placed payload.
//
// It returns an error wrapping ErrUndecodable when b is not an order at all, and an
// *InvalidError when b names a usable order_id but breaks another rule. Unknown
// fields are ignored.
func DecodeOrderPlaced(b []byte) (OrderPlaced, error) {
	fields, orderID, err := decodeEnvelope(b)
	if err != nil {
		return OrderPlaced{}, err
	}
	invalid := func(lines []Line, format string, args ...any) (OrderPlaced, error) {
		return OrderPlaced{}, &InvalidError{OrderID: orderID, Lines: lines, Detail: fmt.Sprintf(format, args...)}
	}

	rawItems, ok := fields["items"]
	if !ok || isNull(rawItems) {
		return invalid(nil, "items missing")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(rawItems, &items); err != nil {
		return invalid(nil, "items is not an array")
	}

	var (
		read    []Line // every line whose goods_id and num could be read
		problem string // the first defect found, if any
	)
	for i, raw := range items {
		l, err := decodeLine(raw)
		if err != nil {
			if problem == "" {
				problem = fmt.Sprintf("items[%d]: %v", i, err)
			}
			continue
		}
		read = append(read, l)
		switch {
		case problem != "":
		case l.GoodsID <= 0:
			problem = fmt.Sprintf("items[%d]: goods_id must be > 0, got %d", i, l.GoodsID)
		case l.Num < 1:
			problem = fmt.Sprintf("items[%d]: num must be >= 1, got %d", i, l.Num)
		}
	}
	lines, overflow := MergeLines(read)
	switch {
	case problem != "":
		return invalid(lines, "%s", problem)
	case len(items) == 0:
		return invalid(lines, "items is empty")
	case len(items) > MaxLines:
		return invalid(lines, "%d items, at most %d allowed", len(items), MaxLines)
	case overflow:
		return invalid(lines, "the summed num of one goods exceeds %d", math.MaxInt32)
	}

	order := OrderPlaced{OrderID: orderID, Lines: lines}
	if raw, ok := fields["placed_at"]; ok && !isNull(raw) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return invalid(lines, "placed_at is not a string")
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return invalid(lines, "placed_at is not RFC 3339: %q", s)
		}
		order.PlacedAt = &t
	}
	return order, nil
}

// DecodeOrderCancelled decodes an order-cancelled payload. Errors wrap
// ErrUndecodable; a cancel has nothing else that could be invalid.
func DecodeOrderCancelled(b []byte) (OrderCancelled, error) {
	_, orderID, err := decodeEnvelope(b)
	if err != nil {
		return OrderCancelled{}, err
	}
	return OrderCancelled{OrderID: orderID}, nil
}

// decodeEnvelope parses b as a JSON object and extracts a usable order_id.
func decodeEnvelope(b []byte) (map[string]json.RawMessage, string, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
		if err == nil {
			err = fmt.Errorf("null")
		}
		return nil, "", fmt.Errorf("%w: not a JSON object: %v", ErrUndecodable, err)
	}
	raw, ok := fields["order_id"]
	if !ok {
		return nil, "", fmt.Errorf("%w: order_id missing", ErrUndecodable)
	}
	var orderID string
	if err := json.Unmarshal(raw, &orderID); err != nil || isNull(raw) {
		return nil, "", fmt.Errorf("%w: order_id is not a string", ErrUndecodable)
	}
	switch {
	case orderID == "":
		return nil, "", fmt.Errorf("%w: order_id is empty", ErrUndecodable)
	case len(orderID) > MaxOrderIDBytes:
		return nil, "", fmt.Errorf("%w: order_id is %d bytes, at most %d allowed", ErrUndecodable, len(orderID), MaxOrderIDBytes)
	case !utf8.ValidString(orderID):
		// encoding/json replaces invalid UTF-8 with U+FFFD, so this does not
		// happen today; the check keeps the key contract explicit.
		return nil, "", fmt.Errorf("%w: order_id is not valid UTF-8", ErrUndecodable)
	}
	return fields, orderID, nil
}

func decodeLine(raw json.RawMessage) (Line, error) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil || f == nil {
		return Line{}, fmt.Errorf("not an object")
	}
	var l Line
	g, ok := f["goods_id"]
	if !ok || isNull(g) {
		return Line{}, fmt.Errorf("goods_id missing")
	}
	if err := json.Unmarshal(g, &l.GoodsID); err != nil {
		return Line{}, fmt.Errorf("goods_id is not an integer: %s", g)
	}
	n, ok := f["num"]
	if !ok || isNull(n) {
		return Line{}, fmt.Errorf("num missing")
	}
	if err := json.Unmarshal(n, &l.Num); err != nil {
		return Line{}, fmt.Errorf("num is not a 32-bit integer: %s", n)
	}
	return l, nil
}

// MergeLines sums lines of the same goods and sorts them by ascending goods id,
// the order in which rows are locked. overflow reports a sum beyond int32; such
// a line is clamped to math.MaxInt32. The input is not modified.
func MergeLines(in []Line) (lines []Line, overflow bool) {
	sums := make(map[int64]int64, len(in))
	for _, l := range in {
		sums[l.GoodsID] += int64(l.Num)
	}
	lines = make([]Line, 0, len(sums))
	for g, n := range sums {
		if n > math.MaxInt32 {
			n, overflow = math.MaxInt32, true
		}
		lines = append(lines, Line{GoodsID: g, Num: int32(n)})
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].GoodsID < lines[j].GoodsID })
	return lines, overflow
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// EncodeOrderPlaced returns the JSON of an order-placed event, as an order
// service (or orderctl) would publish it.
func EncodeOrderPlaced(o OrderPlaced) ([]byte, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("events: encode order %q: %w", o.OrderID, err)
	}
	return b, nil
}
