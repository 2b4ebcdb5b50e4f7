package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Decoder decodes and validates incoming events under its Limits. It holds no
// state besides them and is safe for concurrent use.
type Decoder struct {
	limits Limits
	// object parses one JSON object: scanObject, or in tests the
	// encoding/json reference it must agree with.
	object func([]byte) (map[string]json.RawMessage, map[string]bool, error)
}

// NewDecoder returns a Decoder enforcing limits (zero fields: the defaults).
func NewDecoder(limits Limits) *Decoder {
	return &Decoder{limits: limits.withDefaults(), object: scanObject}
}

// Limits returns the limits the decoder enforces, defaults filled in.
func (d *Decoder) Limits() Limits { return d.limits }

var defaultDecoder = NewDecoder(Limits{})

// DecodeOrderPlaced decodes b under the default limits; see Decoder.OrderPlaced.
func DecodeOrderPlaced(b []byte) (OrderPlaced, error) { return defaultDecoder.OrderPlaced(b) }

// DecodeOrderCancelled decodes b under the default limits; see
// Decoder.OrderCancelled.
func DecodeOrderCancelled(b []byte) (OrderCancelled, error) { return defaultDecoder.OrderCancelled(b) }

// OrderPlaced decodes and validates an order-placed payload.
//
// It returns an error wrapping ErrUndecodable when b is not an order at all
// (not UTF-8, a lone surrogate escape, not a JSON object, no usable order_id,
// order_id given twice), and an *InvalidError when b names a usable order_id
// but breaks another rule, including the limits. Unknown fields are ignored;
// keys are case-sensitive.
func (d *Decoder) OrderPlaced(b []byte) (OrderPlaced, error) {
	env, err := d.envelope(b)
	if err != nil {
		return OrderPlaced{}, err
	}
	invalid := func(lines []Line, total int, format string, args ...any) (OrderPlaced, error) {
		return OrderPlaced{}, &InvalidError{OrderID: env.orderID, Lines: lines, ItemsTotal: total, Detail: fmt.Sprintf(format, args...)}
	}
	oversized := len(b) > d.limits.MaxMessageBytes
	tooBig := func(lines []Line, total int) (OrderPlaced, error) {
		return invalid(lines, total, "message is %d bytes, at most %d allowed", len(b), d.limits.MaxMessageBytes)
	}
	if env.duplicate != "" {
		return invalid(nil, 0, "key %s appears more than once", quote(env.duplicate))
	}

	rawItems, ok := env.fields["items"]
	isArray := ok && len(rawItems) > 0 && rawItems[0] == '['
	switch {
	case (!ok || isNull(rawItems)) && oversized:
		return tooBig(nil, 0)
	case !ok || isNull(rawItems):
		return invalid(nil, 0, "items missing")
	case !isArray && oversized:
		return tooBig(nil, 0)
	case !isArray:
		return invalid(nil, 0, "items is not an array")
	}
	// Only the first MaxLines lines are read: enough to list in the rejection
	// of an order with too many, and a bound on the work for any message.
	readable, count := arrayElements(rawItems, d.limits.MaxLines)
	total := 0
	if count > len(readable) {
		total = count
	}
	var (
		read    []Line // every line whose goods_id and num could be read
		problem string // the first defect found, if any
	)
	for i, raw := range readable {
		l, err := d.decodeLine(raw)
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
		case l.Num > d.limits.MaxNum:
			problem = fmt.Sprintf("items[%d]: num must be at most %d, got %d", i, d.limits.MaxNum, l.Num)
		}
	}
	lines, overflow := MergeLines(read)
	switch {
	case oversized:
		return tooBig(lines, total)
	case count > d.limits.MaxLines:
		return invalid(lines, total, "%d items, at most %d allowed", count, d.limits.MaxLines)
	case problem != "":
		return invalid(lines, total, "%s", problem)
	case count == 0:
		return invalid(lines, total, "items is empty")
	case overflow:
		return invalid(lines, total, "the summed num of one goods exceeds %d", math.MaxInt32)
	}
	for _, l := range lines {
		if l.Num > d.limits.MaxNum {
			return invalid(lines, total, "the summed num of goods %d is %d, at most %d allowed", l.GoodsID, l.Num, d.limits.MaxNum)
		}
	}

	order := OrderPlaced{OrderID: env.orderID, Lines: lines}
	if raw, ok := env.fields["placed_at"]; ok && !isNull(raw) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return invalid(lines, 0, "placed_at is not a string")
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return invalid(lines, 0, "placed_at is not RFC 3339: %s", quote(s))
		}
		order.PlacedAt = &t
	}
	return order, nil
}

// OrderCancelled decodes an order-cancelled payload. Errors wrap
// ErrUndecodable; a cancel has nothing else that could be invalid (its size is
// not limited: only its order_id is used, and that is).
func (d *Decoder) OrderCancelled(b []byte) (OrderCancelled, error) {
	env, err := d.envelope(b)
	if err != nil {
		return OrderCancelled{}, err
	}
	return OrderCancelled{OrderID: env.orderID}, nil
}

// envelope is a message's top-level object.
type envelope struct {
	fields    map[string]json.RawMessage
	orderID   string
	duplicate string // a key (other than order_id) given more than once
}

// envelope checks that b is UTF-8 without lone surrogate escapes, parses it as
// one JSON object and extracts a usable order_id.
func (d *Decoder) envelope(b []byte) (envelope, error) {
	if !utf8.Valid(b) {
		return envelope{}, fmt.Errorf("%w: not valid UTF-8 (first bad byte at offset %d)", ErrUndecodable, invalidUTF8At(b))
	}
	if at := loneSurrogate(b); at >= 0 {
		return envelope{}, fmt.Errorf("%w: lone UTF-16 surrogate escape %s at offset %d", ErrUndecodable, b[at:at+6], at)
	}
	fields, dup, err := d.object(b)
	if err != nil {
		return envelope{}, fmt.Errorf("%w: not a JSON object: %v", ErrUndecodable, err)
	}
	if dup["order_id"] {
		return envelope{}, fmt.Errorf("%w: order_id appears more than once", ErrUndecodable)
	}
	raw, ok := fields["order_id"]
	if !ok {
		return envelope{}, fmt.Errorf("%w: order_id missing", ErrUndecodable)
	}
	var orderID string
	if err := json.Unmarshal(raw, &orderID); err != nil || isNull(raw) {
		return envelope{}, fmt.Errorf("%w: order_id is not a string", ErrUndecodable)
	}
	switch {
	case orderID == "":
		return envelope{}, fmt.Errorf("%w: order_id is empty", ErrUndecodable)
	case len(orderID) > d.limits.MaxOrderIDBytes:
		return envelope{}, fmt.Errorf("%w: order_id is %d bytes, at most %d allowed", ErrUndecodable, len(orderID), d.limits.MaxOrderIDBytes)
	}
	env := envelope{fields: fields, orderID: orderID}
	for k := range dup {
		if env.duplicate == "" || k < env.duplicate {
			env.duplicate = k
		}
	}
	return env, nil
}

// jsonObject parses b as exactly one JSON object with encoding/json's token
// decoder and returns its members (raw) and the keys that appear more than
// once. Keys are compared after unescaping, so "order_id" and "order\u005fid"
// are one key. It is the reference scanObject must agree with (a fuzz target
// checks), and explains why bytes that are not valid JSON are not.
func jsonObject(b []byte) (map[string]json.RawMessage, map[string]bool, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '{' {
		return nil, nil, fmt.Errorf("got %s", describe(tok))
	}
	fields := map[string]json.RawMessage{}
	var dup map[string]bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("object key %v is not a string", tok)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, err
		}
		if _, seen := fields[key]; seen {
			if dup == nil {
				dup = map[string]bool{}
			}
			dup[key] = true
		}
		fields[key] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("more than one JSON value")
		}
		return nil, nil, fmt.Errorf("after the object: %w", err)
	}
	return fields, dup, nil
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "an array"
		}
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

func (d *Decoder) decodeLine(raw json.RawMessage) (Line, error) {
	f, dup, err := d.object(raw)
	if err != nil {
		return Line{}, errors.New("not an object")
	}
	for _, k := range []string{"goods_id", "num"} {
		if dup[k] {
			return Line{}, fmt.Errorf("%s appears more than once", k)
		}
	}
	var l Line
	g, ok := f["goods_id"]
	if !ok || isNull(g) {
		return Line{}, errors.New("goods_id missing")
	}
	goods, ok := integer(g, 64)
	if !ok {
		return Line{}, fmt.Errorf("goods_id is not a 64-bit integer: %s", clip(g))
	}
	l.GoodsID = goods
	n, ok := f["num"]
	if !ok || isNull(n) {
		return Line{}, errors.New("num missing")
	}
	num, ok := integer(n, 32)
	if !ok {
		return Line{}, fmt.Errorf("num is not a 32-bit integer: %s", clip(n))
	}
	l.Num = int32(num)
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

// loneSurrogate returns the offset of the first \u escape inside a JSON string
// of b that encodes a UTF-16 surrogate not part of a valid pair, or -1.
// encoding/json would replace it with U+FFFD, so two different messages could
// decode to one order_id.
func loneSurrogate(b []byte) int {
	if !bytes.Contains(b, []byte(`\u`)) {
		return -1
	}
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			r, ok := escapeAt(b, i)
			if !ok {
				i++ // \" \\ \n ... or a malformed escape, which the parser reports
				continue
			}
			switch {
			case r >= 0xD800 && r < 0xDC00:
				if lo, ok := escapeAt(b, i+6); ok && lo >= 0xDC00 && lo < 0xE000 {
					i += 11
					continue
				}
				return i
			case r >= 0xDC00 && r < 0xE000:
				return i
			}
			i += 5
		}
	}
	return -1
}

// escapeAt decodes the \uXXXX escape at b[i:], if there is one.
func escapeAt(b []byte, i int) (rune, bool) {
	if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}

// clip returns raw JSON for an error message, at most 40 bytes of it.
func clip(raw []byte) string {
	const most = 40
	if len(raw) <= most {
		return string(raw)
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(raw[cut]) {
		cut--
	}
	return string(raw[:cut]) + fmt.Sprintf("... (%d bytes)", len(raw))
}

// quote quotes s for an error message, at most 40 bytes of it.
func quote(s string) string {
	if len(s) <= 40 {
		return strconv.Quote(s)
	}
	return clip([]byte(strconv.Quote(s)))
}

// EncodeOrderPlaced returns the JSON of an order-placed event, as an order
// service (or orderctl) would publish it.
func EncodeOrderPlaced(o OrderPlaced) ([]byte, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("events: encode order %q: %w", o.OrderID, err)
	}
	return b, nil
}
