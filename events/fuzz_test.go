package events

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzDecodeOrderPlaced checks that every input lands in exactly one of the three
// kinds, never panics, and that each kind keeps the contract's invariants.
// Run it with: go test ./events -run '^$' -fuzz FuzzDecodeOrderPlaced -fuzztime 30s
// Inputs it finds land in testdata/fuzz/FuzzDecodeOrderPlaced, which go test
// replays and the end-to-end corpus test sends through the real broker.
func FuzzDecodeOrderPlaced(f *testing.F) {
	for _, seed := range []string{
		`{"order_id":"A1001","items":[{"goods_id":16,"num":1},{"goods_id":17,"num":2}]}`,
		`{"order_id":"A","items":[{"goods_id":1,"num":2147483647},{"goods_id":1,"num":1}]}`,
		`{"order_id":"A","items":[]}`,
		`{"order_id":"","items":[]}`,
		`{"order_id":"A","items":[{"goods_id":1.5,"num":1}],"placed_at":"x"}`,
		`{"order_id":"A\ud800","items":[{"goods_id":1,"num":1}]}`,
		`{"order_id":"A","order_id":"B","items":[{"goods_id":1,"num":1}]}`,
		"{\"order_id\":\"U\xff\xfeV\",\"items\":[{\"goods_id\":1,\"num\":1}]}",
		`[]`, `null`, `"x"`, `{`, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeOrderPlaced(b)
		var inv *InvalidError
		switch {
		case err == nil:
			if !utf8.Valid(b) || loneSurrogate(b) >= 0 {
				t.Fatalf("accepted a message that is not clean UTF-8")
			}
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
			// Encoding a valid order and decoding it again keeps it byte for byte.
			again, err := EncodeOrderPlaced(o)
			if err != nil {
				t.Fatal(err)
			}
			o2, err := DecodeOrderPlaced(again)
			if err != nil || o2.OrderID != o.OrderID || len(o2.Lines) != len(o.Lines) {
				t.Fatalf("re-decode of %s: %+v, %v", again, o2, err)
			}
		case errors.As(err, &inv):
			if errors.Is(err, ErrUndecodable) || inv.OrderID == "" || len(inv.OrderID) > MaxOrderIDBytes || !utf8.ValidString(inv.OrderID) {
				t.Fatalf("invalid order with unusable order_id: %v", err)
			}
			if len(inv.Lines) > MaxLines {
				t.Fatalf("an invalid order lists %d lines", len(inv.Lines))
			}
			ev, err := Rejected(inv.OrderID, ReasonInvalidOrder, inv.Lines, nil, timeZero).WithItemsTotal(inv.ItemsTotal).Encode()
			if err != nil {
				t.Fatalf("cannot encode the rejection: %v", err)
			}
			if len(ev) > 16<<10 {
				t.Fatalf("the rejection is %d bytes", len(ev))
			}
		case errors.Is(err, ErrUndecodable):
			if len(err.Error()) > 512 {
				t.Fatalf("dead-letter error of %d bytes", len(err.Error()))
			}
		default:
			t.Fatalf("error of no known kind: %v", err)
		}
	})
}

// FuzzDecodeOrderCancelled: a cancel either names a usable order_id or is a
// dead letter; it never panics.
func FuzzDecodeOrderCancelled(f *testing.F) {
	for _, seed := range []string{`{"order_id":"A1001"}`, `{"order_id":"A1001 "}`, `{"order_id":""}`, `{"order_id":"\udfff"}`, `7`, "\x00"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeOrderCancelled(b)
		switch {
		case err == nil:
			if c.OrderID == "" || len(c.OrderID) > MaxOrderIDBytes || !utf8.Valid(b) || loneSurrogate(b) >= 0 {
				t.Fatalf("accepted cancel %q of %q", c.OrderID, b)
			}
		case !errors.Is(err, ErrUndecodable):
			t.Fatalf("error of no known kind: %v", err)
		}
	})
}

// FuzzValidateLines builds orders from fuzzed numbers and compares the
// validator's verdict with the contract computed independently: valid iff there
// are 1..MaxLines lines, every goods_id > 0, every num in 1..MaxInt32, and no
// goods sums past MaxInt32.
func FuzzValidateLines(f *testing.F) {
	f.Add(int64(16), int64(1), int64(17), int64(2), uint8(2))
	f.Add(int64(1), int64(math.MaxInt32), int64(1), int64(1), uint8(2))
	f.Add(int64(0), int64(1), int64(2), int64(1), uint8(1))
	f.Add(int64(math.MaxInt64), int64(1), int64(-1), int64(0), uint8(101))
	f.Fuzz(func(t *testing.T, g1, n1, g2, n2 int64, count uint8) {
		n := int(count)
		parts := make([]string, n)
		sums := map[int64]int64{}
		want := n >= 1 && n <= MaxLines
		for i := range parts {
			g, num := g1, n1
			if i%2 == 1 {
				g, num = g2, n2
			}
			parts[i] = fmt.Sprintf(`{"goods_id":%d,"num":%d}`, g, num)
			if g <= 0 || num < 1 || num > math.MaxInt32 {
				want = false
			}
			sums[g] += num
			if sums[g] > math.MaxInt32 || sums[g] < 0 {
				want = false
			}
		}
		b := []byte(`{"order_id":"F","items":[` + strings.Join(parts, ",") + `]}`)
		o, err := DecodeOrderPlaced(b)
		var inv *InvalidError
		switch {
		case want && err != nil:
			t.Fatalf("%s: rejected a valid order: %v", b, err)
		case !want && err == nil:
			t.Fatalf("%s: accepted an invalid order: %+v", b, o)
		case !want && !errors.As(err, &inv):
			t.Fatalf("%s: want invalid_order, got %v", b, err)
		case want:
			for _, l := range o.Lines {
				if int64(l.Num) != sums[l.GoodsID] {
					t.Fatalf("%s: goods %d num %d, want the sum %d", b, l.GoodsID, l.Num, sums[l.GoodsID])
				}
			}
		}
	})
}

var timeZero = time.Time{}

// FuzzScanMatchesEncodingJSON checks the fast object scanner against
// encoding/json's token decoder on every input: the same members, the same
// repeated keys, and an error exactly when it errs; and the decoder built on
// each gives the same answer.
func FuzzScanMatchesEncodingJSON(f *testing.F) {
	for _, seed := range []string{
		`{"order_id":"A1001","items":[{"goods_id":16,"num":1},{"goods_id":17,"num":2}]}`,
		` { "order_id" : "A" , "items" : [ { "goods_id" : 1 , "num" : 1 } ] , "x" : [ "]" , "\"" , { } ] } `,
		`{"order_id":"A","order\u005fid":"B"}`, `{"a":1,"a":2}`, `{}`, `[]`, `{"a":`, `{"a":1}x`, `"s"`, `-0`,
		`{"order_id":"A","items":[{"goods_id":1e2,"num":-0}]}`, `{"order_id":"A","items":[{"goods_id":"1","num":1.0}]}`,
	} {
		f.Add([]byte(seed))
	}
	reference := &Decoder{limits: DefaultLimits(), object: jsonObject}
	f.Fuzz(func(t *testing.T, b []byte) {
		o1, err1 := DecodeOrderPlaced(b)
		o2, err2 := reference.OrderPlaced(b)
		// The same answer: the same order, the same invalid_order, or both a
		// dead letter (whose error text may differ: encoding/json explains a
		// number too large for a float64, the scanner just sees a number).
		same := fmt.Sprint(o1) == fmt.Sprint(o2) && fmt.Sprint(err1) == fmt.Sprint(err2)
		if errors.Is(err1, ErrUndecodable) && errors.Is(err2, ErrUndecodable) {
			same = true
		}
		if !same {
			t.Fatalf("%q: fast decoder %+v, %v; reference %+v, %v", b, o1, err1, o2, err2)
		}
		if !utf8.Valid(b) {
			return // the decoders refuse it before parsing; encoding/json would turn bad bytes of keys into U+FFFD
		}
		f1, d1, e1 := scanObject(b)
		f2, d2, e2 := jsonObject(b)
		if (e1 == nil) != (e2 == nil) {
			t.Fatalf("%q: scan error %v, encoding/json error %v", b, e1, e2)
		}
		if len(f1) != len(f2) || len(d1) != len(d2) {
			t.Fatalf("%q: scan %v %v, encoding/json %v %v", b, f1, d1, f2, d2)
		}
		for k, v := range f2 {
			if string(f1[k]) != string(v) || d1[k] != d2[k] {
				t.Fatalf("%q: member %q: scan %q, encoding/json %q", b, k, f1[k], v)
			}
		}
	})
}
