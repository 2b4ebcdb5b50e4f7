package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The contract's limits that JSON Schema cannot state, at stockworker's
// defaults.
const (
	maxOrderIDBytes          = 128      // MAX_ORDER_ID_BYTES
	maxPublishedOrderIDBytes = 255      // the most MAX_ORDER_ID_BYTES allows
	maxMessageBytes          = 64 << 10 // MAX_MESSAGE_BYTES
	maxSummedNum             = math.MaxInt32
)

// node is one JSON value as written: an object keeps every member in order,
// repeated names included, and a number keeps its spelling. value is the
// plain Go value a schema validates (numbers as json.Number, the last of
// repeated members winning, as encoding/json does).
type node struct {
	value   any
	names   []string // object members, in order
	members []*node
	elems   []*node // array elements
}

// member returns the last member called name of an object, or an empty node.
func (n *node) member(name string) *node {
	for i := len(n.names) - 1; i >= 0; i-- {
		if n.names[i] == name {
			return n.members[i]
		}
	}
	return &node{}
}

// repeated returns the member names given more than once, in order of first repetition.
func (n *node) repeated() []string {
	seen := map[string]int{}
	var out []string
	for _, k := range n.names {
		seen[k]++
		if seen[k] == 2 {
			out = append(out, k)
		}
	}
	return out
}

// maxDepth bounds the nesting parse follows, as encoding/json's own bound.
const maxDepth = 10000

// parse reads b as exactly one JSON value.
func parse(b []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n, err := parseValue(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not JSON: more after the first value")
	}
	return n, nil
}

func parseValue(dec *json.Decoder, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested more than %d deep", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	n := &node{value: tok}
	switch tok {
	case json.Delim('{'):
		obj := map[string]any{}
		for dec.More() {
			name, err := dec.Token()
			if err != nil {
				return nil, err
			}
			m, err := parseValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			key := name.(string) // the decoder only hands out strings as names
			n.names, n.members = append(n.names, key), append(n.members, m)
			obj[key] = m.value
		}
		n.value = obj
	case json.Delim('['):
		arr := []any{}
		for dec.More() {
			e, err := parseValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			n.elems = append(n.elems, e)
			arr = append(arr, e.value)
		}
		n.value = arr
	default:
		return n, nil
	}
	if _, err := dec.Token(); err != nil { // the closing } or ]
		return nil, err
	}
	return n, nil
}

// rules returns the problems of a payload of kind (parsed as doc) with the
// rules of the contract that its JSON Schema cannot state. Each schema's
// description lists them.
func rules(kind Kind, payload []byte, doc *node) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if !utf8.Valid(payload) {
		add("not valid UTF-8")
	}
	if at := loneSurrogate(payload); at >= 0 {
		add("a lone UTF-16 surrogate escape %s at byte %d", payload[at:at+6], at)
	}
	if _, ok := doc.value.(map[string]any); !ok {
		return out // the schema says what is wrong
	}
	orderID, _ := doc.member("order_id").value.(string)
	switch kind {
	case OrderPlaced:
		if len(payload) > maxMessageBytes {
			add("the message is %d bytes, at most %d allowed", len(payload), maxMessageBytes)
		}
		for _, k := range doc.repeated() {
			add("at /: member %q given more than once", k)
		}
		if len(orderID) > maxOrderIDBytes {
			add("at /order_id: %d bytes, at most %d allowed", len(orderID), maxOrderIDBytes)
		}
		sums := map[int64]int64{}
		for i, line := range doc.member("items").elems {
			for _, k := range line.repeated() {
				if k == "goods_id" || k == "num" {
					add("at /items/%d: %s given more than once", i, k)
				}
			}
			goods, gok := spelledInteger(line.member("goods_id"), "/items/"+strconv.Itoa(i)+"/goods_id", add)
			num, nok := spelledInteger(line.member("num"), "/items/"+strconv.Itoa(i)+"/num", add)
			if gok && nok && num > 0 {
				sums[goods] += num
			}
		}
		for goods, n := range sums {
			if n > maxSummedNum {
				add("at /items: the lines of goods %d sum to %d, at most %d allowed", goods, n, maxSummedNum)
			}
		}
	case OrderCancelled:
		if slices.Contains(doc.repeated(), "order_id") {
			add("at /: order_id given more than once")
		}
		if len(orderID) > maxOrderIDBytes {
			add("at /order_id: %d bytes, at most %d allowed", len(orderID), maxOrderIDBytes)
		}
	case Outcome:
		walk(doc, "", func(n *node, at string) {
			for _, k := range n.repeated() {
				add("at %s: member %q given more than once", orDefault(at, "/"), k)
			}
		})
		if len(orderID) > maxPublishedOrderIDBytes {
			add("at /order_id: %d bytes, at most %d allowed", len(orderID), maxPublishedOrderIDBytes)
		}
		typ, _ := doc.member("type").value.(string)
		if id, ok := doc.member("event_id").value.(string); ok && orderID != "" && typ != "" && id != orderID+":"+typ {
			add("at /event_id: %q is not order_id:type %q", clip(id), clip(orderID+":"+typ))
		}
		items := doc.member("items").elems
		var prev int64
		short := false
		for i, line := range items {
			goods, err := strconv.ParseInt(numberText(line.member("goods_id")), 10, 64)
			if err != nil {
				continue // the schema says what is wrong
			}
			if i > 0 && goods <= prev {
				add("at /items/%d: goods %d after goods %d: lines are sorted by ascending goods_id, one per goods", i, goods, prev)
			}
			prev = goods
			num, err1 := strconv.ParseInt(numberText(line.member("num")), 10, 64)
			avail, err2 := strconv.ParseInt(numberText(line.member("available")), 10, 64)
			short = short || (err1 == nil && err2 == nil && num > avail)
		}
		if total, err := strconv.Atoi(numberText(doc.member("items_total"))); err == nil && total <= len(items) {
			add("at /items_total: %d, but %d items are listed: items_total is set only when the order had more lines than listed", total, len(items))
		}
		if doc.member("reason").value == "insufficient_stock" && len(items) > 0 && !short {
			add("at /items: insufficient_stock, but no line asks for more than is available")
		}
	}
	return out
}

// integerSpelling is how the decoder wants an integer written: no fraction,
// no exponent.
var integerSpelling = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// spelledInteger returns the value of n when it is a number written as an
// integer that fits an int64, and reports (through add) one written otherwise.
// Other values are left to the schema.
func spelledInteger(n *node, at string, add func(string, ...any)) (int64, bool) {
	text := numberText(n)
	if text == "" {
		return 0, false
	}
	if !integerSpelling.MatchString(text) {
		add("at %s: %s is not written as an integer (no fraction, no exponent)", at, clip(text))
		return 0, false
	}
	v, err := strconv.ParseInt(text, 10, 64)
	return v, err == nil
}

// numberText returns the spelling of a number node, or "".
func numberText(n *node) string {
	num, _ := n.value.(json.Number)
	return string(num)
}

// walk calls f on every object of the tree under n, with its JSON pointer.
func walk(n *node, at string, f func(n *node, at string)) {
	if _, ok := n.value.(map[string]any); ok {
		f(n, at)
	}
	for i, m := range n.members {
		walk(m, at+"/"+escapePointer(n.names[i]), f)
	}
	for i, e := range n.elems {
		walk(e, at+"/"+strconv.Itoa(i), f)
	}
}

func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// loneSurrogate returns the offset of the first \uXXXX escape in a JSON
// string of b that encodes half of a UTF-16 surrogate pair without its other
// half, or -1. Parsers replace such an escape with U+FFFD (encoding/json) or
// keep an invalid string (JavaScript): either way two different messages
// could read as one order_id, so the contract refuses them.
func loneSurrogate(b []byte) int {
	inString := false
	for i := 0; i < len(b); i++ {
		switch {
		case !inString:
			inString = b[i] == '"'
		case b[i] == '"':
			inString = false
		case b[i] == '\\':
			r, ok := escapedRune(b, i)
			if !ok {
				i++ // a one-character escape such as \" (or a malformed one: the parser says so)
				continue
			}
			if utf16IsHigh(r) {
				if low, ok := escapedRune(b, i+6); ok && utf16IsLow(low) {
					i += 11
					continue
				}
				return i
			}
			if utf16IsLow(r) {
				return i
			}
			i += 5
		}
	}
	return -1
}

// escapedRune decodes the \uXXXX escape at b[i:], if there is one.
func escapedRune(b []byte, i int) (rune, bool) {
	if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
	return rune(v), err == nil
}

func utf16IsHigh(r rune) bool { return r >= 0xD800 && r <= 0xDBFF }
func utf16IsLow(r rune) bool  { return r >= 0xDC00 && r <= 0xDFFF }

// clip shortens s for a problem report.
func clip(s string) string {
	const most = 60
	if len(s) <= most {
		return s
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("…(%d bytes)", len(s))
}
