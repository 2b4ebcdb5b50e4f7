package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// A fast path for the one shape the worker decodes thousands of times a
// second: encoding/json's Valid checks the syntax (and nesting depth) in one
// pass without allocating, then a small scanner walks the already valid
// bytes to find an object's members and an array's elements. Anything that
// is not valid JSON goes to jsonObject, whose token decoder explains why. The
// fuzz target FuzzScanMatchesEncodingJSON checks that both agree on every
// input.

// scanObject is jsonObject for valid JSON, without its allocations.
func scanObject(b []byte) (map[string]json.RawMessage, map[string]bool, error) {
	if !json.Valid(b) {
		return jsonObject(b)
	}
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return nil, nil, fmt.Errorf("got %s", kindOf(b[i]))
	}
	fields := map[string]json.RawMessage{}
	var dup map[string]bool
	i++
	for {
		i = skipSpace(b, i)
		switch b[i] {
		case '}':
			return fields, dup, nil
		case ',':
			i = skipSpace(b, i+1)
		}
		end := skipString(b, i)
		key := unquote(b[i:end])
		i = skipSpace(b, end) // at ':'
		i = skipSpace(b, i+1)
		vend := skipValue(b, i)
		if _, seen := fields[key]; seen {
			if dup == nil {
				dup = map[string]bool{}
			}
			dup[key] = true
		}
		fields[key] = b[i:vend:vend]
		i = vend
	}
}

// arrayElements returns the first most elements of the valid JSON array b
// and how many it has in all.
func arrayElements(b []byte, most int) ([]json.RawMessage, int) {
	var out []json.RawMessage
	n := 0
	i := skipSpace(b, 0) + 1 // past '['
	for {
		i = skipSpace(b, i)
		switch b[i] {
		case ']':
			return out, n
		case ',':
			i = skipSpace(b, i+1)
		}
		end := skipValue(b, i)
		if n < most {
			out = append(out, b[i:end:end])
		}
		n++
		i = end
	}
}

// integer parses a JSON number that is an integer of the given bit size, as
// encoding/json would into int64 or int32: no fraction, no exponent, in range.
func integer(raw []byte, bits int) (int64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) || bytes.ContainsAny(raw, ".eE") {
		return 0, false
	}
	v, err := strconv.ParseInt(string(raw), 10, bits)
	return v, err == nil
}

// unquote returns the text of the JSON string s (with its quotes).
func unquote(s []byte) string {
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s[1 : len(s)-1])
	}
	var out string
	if err := json.Unmarshal(s, &out); err != nil {
		return string(s) // cannot happen: s is a valid JSON string
	}
	return out
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // a number, true, false or null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}

func kindOf(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
