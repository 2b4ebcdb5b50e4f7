package events

import (
	"errors"
	"math"
	"sort"
	"testing"
	"time"
)

// FuzzDecodeOrderPlaced checks that every input lands in exactly one of the three
// kinds, never panics, and that a valid order keeps the contract's invariants.
// Run it with: go test ./events -run '^$' -fuzz FuzzDecodeOrderPlaced -fuzztime 30s
func FuzzDecodeOrderPlaced(f *testing.F) {
	for _, seed := range []string{
		`{"order_id":"A1001","items":[{"goods_id":16,"num":1},{"goods_id":17,"num":2}]}`,
		`{"order_id":"A","items":[{"goods_id":1,"num":2147483647},{"goods_id":1,"num":1}]}`,
		`{"order_id":"A","items":[]}`,
		`{"order_id":"","items":[]}`,
		`{"order_id":"A","items":[{"goods_id":1.5,"num":1}],"placed_at":"x"}`,
		`[]`, `null`, `"x"`, `{`, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeOrderPlaced(b)
		var inv *InvalidError
		switch {
		case err == nil:
			if o.OrderID == "" || len(o.OrderID) > MaxOrderIDBytes {
				t.Fatalf("valid order with bad order_id %q", o.OrderID)
			}
			if len(o.Lines) == 0 || len(o.Lines) > MaxLines {
				t.Fatalf("valid order with %d lines", len(o.Lines))
			}
			if !sort.SliceIsSorted(o.Lines, func(i, j int) bool { return o.Lines[i].GoodsID < o.Lines[j].GoodsID }) {
				t.Fatalf("lines not sorted: %v", o.Lines)
			}
			for i, l := range o.Lines {
				if l.GoodsID <= 0 || l.Num < 1 || l.Num > math.MaxInt32 {
					t.Fatalf("valid order with bad line %+v", l)
				}
				if i > 0 && o.Lines[i-1].GoodsID == l.GoodsID {
					t.Fatalf("duplicate goods %d not merged", l.GoodsID)
				}
			}
			// Encoding a valid order and decoding it again is stable.
			again, err := EncodeOrderPlaced(o)
			if err != nil {
				t.Fatal(err)
			}
			o2, err := DecodeOrderPlaced(again)
			if err != nil || o2.OrderID != o.OrderID || len(o2.Lines) != len(o.Lines) {
				t.Fatalf("re-decode of %s: %+v, %v", again, o2, err)
			}
		case errors.As(err, &inv):
			if errors.Is(err, ErrUndecodable) || inv.OrderID == "" || len(inv.OrderID) > MaxOrderIDBytes {
				t.Fatalf("invalid order with unusable order_id: %v", err)
			}
			if _, err := Rejected(inv.OrderID, ReasonInvalidOrder, inv.Lines, nil, timeZero).Encode(); err != nil {
				t.Fatalf("cannot encode the rejection: %v", err)
			}
		case errors.Is(err, ErrUndecodable):
		default:
			t.Fatalf("error of no known kind: %v", err)
		}
	})
}

var timeZero = time.Time{}
