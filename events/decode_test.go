package events

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeOrderPlaced(t *testing.T) {
	long := strings.Repeat("x", MaxOrderIDBytes)
	many := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = `{"goods_id":1,"num":1}`
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	tests := []struct {
		name      string
		in        string
		want      []Line // for valid and invalid orders
		invalid   bool
		deadLeter bool
	}{
		{name: "contract example", in: `{"order_id":"A1001","items":[{"goods_id":16,"num":1},{"goods_id":17,"num":2}]}`,
			want: []Line{{16, 1}, {17, 2}}},
		{name: "lines sorted by goods", in: `{"order_id":"A","items":[{"goods_id":9,"num":1},{"goods_id":3,"num":2}]}`,
			want: []Line{{3, 2}, {9, 1}}},
		{name: "duplicate lines summed", in: `{"order_id":"A","items":[{"goods_id":5,"num":1},{"goods_id":4,"num":1},{"goods_id":5,"num":3}]}`,
			want: []Line{{4, 1}, {5, 4}}},
		{name: "unknown fields ignored", in: `{"order_id":"A","shop":"x","items":[{"goods_id":5,"num":1,"sku":"q"}],"extra":[1,2]}`,
			want: []Line{{5, 1}}},
		{name: "placed_at accepted", in: `{"order_id":"A","items":[{"goods_id":5,"num":1}],"placed_at":"2026-11-25T20:00:00Z"}`,
			want: []Line{{5, 1}}},
		{name: "order_id of 128 bytes", in: `{"order_id":"` + long + `","items":[{"goods_id":1,"num":1}]}`, want: []Line{{1, 1}}},
		{name: "100 lines", in: `{"order_id":"A","items":` + many(100) + `}`, want: []Line{{1, 100}}},
		{name: "max goods and num", in: `{"order_id":"A","items":[{"goods_id":9223372036854775807,"num":2147483647}]}`,
			want: []Line{{9223372036854775807, 2147483647}}},

		{name: "101 lines", in: `{"order_id":"A","items":` + many(101) + `}`, invalid: true, want: []Line{{1, 100}}},
		{name: "no items", in: `{"order_id":"A"}`, invalid: true},
		{name: "null items", in: `{"order_id":"A","items":null}`, invalid: true},
		{name: "empty items", in: `{"order_id":"A","items":[]}`, invalid: true, want: []Line{}},
		{name: "items not an array", in: `{"order_id":"A","items":{"goods_id":1}}`, invalid: true},
		{name: "goods_id zero", in: `{"order_id":"A","items":[{"goods_id":0,"num":1},{"goods_id":2,"num":1}]}`,
			invalid: true, want: []Line{{0, 1}, {2, 1}}},
		{name: "negative goods", in: `{"order_id":"A","items":[{"goods_id":-3,"num":1}]}`, invalid: true, want: []Line{{-3, 1}}},
		{name: "num zero", in: `{"order_id":"A","items":[{"goods_id":1,"num":0}]}`, invalid: true, want: []Line{{1, 0}}},
		{name: "num fraction", in: `{"order_id":"A","items":[{"goods_id":1,"num":1.5},{"goods_id":2,"num":1}]}`,
			invalid: true, want: []Line{{2, 1}}},
		{name: "num beyond int32", in: `{"order_id":"A","items":[{"goods_id":1,"num":2147483648}]}`, invalid: true, want: []Line{}},
		{name: "summed num beyond int32", in: `{"order_id":"A","items":[{"goods_id":1,"num":2147483647},{"goods_id":1,"num":1}]}`,
			invalid: true, want: []Line{{1, 2147483647}}},
		{name: "goods_id as string", in: `{"order_id":"A","items":[{"goods_id":"16","num":1}]}`, invalid: true, want: []Line{}},
		{name: "missing num", in: `{"order_id":"A","items":[{"goods_id":16}]}`, invalid: true, want: []Line{}},
		{name: "line not an object", in: `{"order_id":"A","items":[7]}`, invalid: true, want: []Line{}},
		{name: "bad placed_at", in: `{"order_id":"A","items":[{"goods_id":5,"num":1}],"placed_at":"yesterday"}`,
			invalid: true, want: []Line{{5, 1}}},

		{name: "not JSON", in: `hello`, deadLeter: true},
		{name: "empty", in: ``, deadLeter: true},
		{name: "array", in: `[{"order_id":"A"}]`, deadLeter: true},
		{name: "null", in: `null`, deadLeter: true},
		{name: "no order_id", in: `{"items":[{"goods_id":1,"num":1}]}`, deadLeter: true},
		{name: "numeric order_id", in: `{"order_id":1001,"items":[]}`, deadLeter: true},
		{name: "null order_id", in: `{"order_id":null}`, deadLeter: true},
		{name: "empty order_id", in: `{"order_id":"","items":[{"goods_id":1,"num":1}]}`, deadLeter: true},
		{name: "order_id of 129 bytes", in: `{"order_id":"` + long + `x","items":[{"goods_id":1,"num":1}]}`, deadLeter: true},
		{name: "trailing garbage", in: `{"order_id":"A","items":[{"goods_id":1,"num":1}]} x`, deadLeter: true},
		{name: "two objects", in: `{"order_id":"A","items":[{"goods_id":1,"num":1}]}{"order_id":"B"}`, deadLeter: true},
		{name: "invalid UTF-8 in order_id", in: "{\"order_id\":\"U\xff\xfeV\",\"items\":[{\"goods_id\":1,\"num\":1}]}", deadLeter: true},
		{name: "invalid UTF-8 in an unknown field", in: "{\"order_id\":\"A\",\"x\":\"\xc3\",\"items\":[{\"goods_id\":1,\"num\":1}]}", deadLeter: true},
		{name: "lone high surrogate", in: `{"order_id":"A\ud800","items":[{"goods_id":1,"num":1}]}`, deadLeter: true},
		{name: "lone low surrogate", in: `{"order_id":"A\udc00B","items":[{"goods_id":1,"num":1}]}`, deadLeter: true},
		{name: "reversed surrogate pair", in: `{"order_id":"\ude00\ud83d","items":[{"goods_id":1,"num":1}]}`, deadLeter: true},
		{name: "lone surrogate in a key", in: `{"order_id":"A","\ud800":1,"items":[{"goods_id":1,"num":1}]}`, deadLeter: true},
		{name: "order_id twice", in: `{"order_id":"A","order_id":"B","items":[{"goods_id":1,"num":1}]}`, deadLeter: true},
		{name: "order_id twice, once escaped", in: `{"order_id":"A","order\u005fid":"A","items":[{"goods_id":1,"num":1}]}`, deadLeter: true},
		{name: "deeper than the parser allows", in: `{"order_id":"A","x":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`, deadLeter: true},
		{name: "Order_ID in other case", in: `{"Order_ID":"A","items":[{"goods_id":1,"num":1}]}`, deadLeter: true},

		{name: "items twice", in: `{"order_id":"A","items":[{"goods_id":1,"num":1}],"items":[{"goods_id":2,"num":1}]}`, invalid: true},
		{name: "goods_id twice in a line", in: `{"order_id":"A","items":[{"goods_id":1,"goods_id":2,"num":1}]}`, invalid: true, want: []Line{}},
		{name: "goods_id past int64", in: `{"order_id":"A","items":[{"goods_id":9223372036854775808,"num":1}]}`, invalid: true, want: []Line{}},
		{name: "num as exponent", in: `{"order_id":"A","items":[{"goods_id":1,"num":1e0}]}`, invalid: true, want: []Line{}},
		{name: "oversized message", in: `{"order_id":"A","items":[{"goods_id":1,"num":1}],"pad":"` + strings.Repeat("p", DefaultMaxMessageBytes) + `"}`, invalid: true, want: []Line{{1, 1}}},

		{name: "surrogate pair", in: `{"order_id":"\ud83d\ude00","items":[{"goods_id":1,"num":1}]}`, want: []Line{{1, 1}}},
		{name: "escaped backslash before u", in: `{"order_id":"A\\ud800","items":[{"goods_id":1,"num":1}]}`, want: []Line{{1, 1}}},
		{name: "nested unknown field", in: `{"order_id":"A","x":` + strings.Repeat("[", 500) + strings.Repeat("]", 500) + `,"items":[{"goods_id":1,"num":1}]}`, want: []Line{{1, 1}}},
		{name: "control characters in order_id", in: `{"order_id":"A\u0000\t\u001f","items":[{"goods_id":1,"num":1}]}`, want: []Line{{1, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeOrderPlaced([]byte(tt.in))
			var inv *InvalidError
			switch {
			case tt.deadLeter:
				if !errors.Is(err, ErrUndecodable) {
					t.Fatalf("err = %v, want ErrUndecodable", err)
				}
			case tt.invalid:
				if !errors.As(err, &inv) {
					t.Fatalf("err = %v, want *InvalidError", err)
				}
				if errors.Is(err, ErrUndecodable) {
					t.Fatalf("an invalid order must not be a dead letter")
				}
				if inv.OrderID == "" {
					t.Fatalf("invalid order lost its order_id")
				}
				if len(inv.Lines) != 0 || len(tt.want) != 0 {
					if !reflect.DeepEqual(inv.Lines, tt.want) {
						t.Fatalf("readable lines = %v, want %v", inv.Lines, tt.want)
					}
				}
			default:
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !reflect.DeepEqual(got.Lines, tt.want) {
					t.Fatalf("lines = %v, want %v", got.Lines, tt.want)
				}
			}
		})
	}
}

func TestDecodePlacedAt(t *testing.T) {
	o, err := DecodeOrderPlaced([]byte(`{"order_id":"A","items":[{"goods_id":5,"num":1}],"placed_at":"2026-11-25T20:00:00+01:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	if o.PlacedAt == nil || !o.PlacedAt.Equal(time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)) {
		t.Fatalf("placed_at = %v", o.PlacedAt)
	}
}

func TestDecodeOrderCancelled(t *testing.T) {
	c, err := DecodeOrderCancelled([]byte(`{"order_id":"A1001","why":"changed mind"}`))
	if err != nil || c.OrderID != "A1001" {
		t.Fatalf("got %+v, %v", c, err)
	}
	for _, in := range []string{`{}`, `{"order_id":""}`, `42`, `{"order_id":7}`} {
		if _, err := DecodeOrderCancelled([]byte(in)); !errors.Is(err, ErrUndecodable) {
			t.Errorf("%s: err = %v, want ErrUndecodable", in, err)
		}
	}
}

func TestOutcomeEncoding(t *testing.T) {
	at := time.Date(2026, 11, 25, 20, 0, 0, 0, time.FixedZone("CET", 3600))
	lines := []Line{{16, 1}, {17, 2}}

	b, err := Deducted("A1001", lines, at).Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"stock-deducted","event_id":"A1001:stock-deducted","order_id":"A1001",` +
		`"items":[{"goods_id":16,"num":1},{"goods_id":17,"num":2}],"occurred_at":"2026-11-25T19:00:00Z"}`
	if string(b) != want {
		t.Fatalf("deducted =\n%s\nwant\n%s", b, want)
	}

	b, err = Rejected("A1002", ReasonInsufficientStock, lines, map[int64]int64{16: 5}, at).Encode()
	if err != nil {
		t.Fatal(err)
	}
	want = `{"type":"stock-rejected","event_id":"A1002:stock-rejected","order_id":"A1002","reason":"insufficient_stock",` +
		`"items":[{"goods_id":16,"num":1,"available":5},{"goods_id":17,"num":2,"available":0}],"occurred_at":"2026-11-25T19:00:00Z"}`
	if string(b) != want {
		t.Fatalf("rejected =\n%s\nwant\n%s", b, want)
	}

	o, err := DecodeOutcome(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := o.Encode()
	if string(again) != string(b) {
		t.Fatalf("round trip changed the bytes:\n%s\n%s", again, b)
	}

	b, _ = Rejected("A3", ReasonInvalidOrder, nil, nil, at).Encode()
	if !strings.Contains(string(b), `"items":[]`) {
		t.Fatalf("a rejection with no readable lines must still list items: %s", b)
	}
}

func TestEncodeOrderPlacedRoundTrip(t *testing.T) {
	in := OrderPlaced{OrderID: "A9", Lines: []Line{{1, 2}, {3, 4}}}
	b, err := EncodeOrderPlaced(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeOrderPlaced(b)
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
}

func TestOrderIDIsKeptByteForByte(t *testing.T) {
	for in, want := range map[string]string{
		`{"order_id":"TS1","items":[{"goods_id":1,"num":1}]}`:       "TS1",
		`{"order_id":"TS1 ","items":[{"goods_id":1,"num":1}]}`:      "TS1 ",
		`{"order_id":" TS1","items":[{"goods_id":1,"num":1}]}`:      " TS1",
		`{"order_id":"ts1","items":[{"goods_id":1,"num":1}]}`:       "ts1",
		`{"order_id":"e\u0301","items":[{"goods_id":1,"num":1}]}`:   "e\u0301",
		`{"order_id":"\u00e9","items":[{"goods_id":1,"num":1}]}`:    "\u00e9",
		`{"order_id":"A\u0000\t","items":[{"goods_id":1,"num":1}]}`: "A\x00\t",
	} {
		o, err := DecodeOrderPlaced([]byte(in))
		if err != nil || o.OrderID != want {
			t.Errorf("%s: order_id %q, %v; want %q", in, o.OrderID, err, want)
		}
	}
}

func TestTooManyLinesListsTheFirstAndACount(t *testing.T) {
	parts := make([]string, 3000)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"goods_id":%d,"num":1}`, i+1)
	}
	in := `{"order_id":"big","items":[` + strings.Join(parts, ",") + `]}`
	_, err := DecodeOrderPlaced([]byte(in))
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v, want *InvalidError", err)
	}
	if len(inv.Lines) != MaxLines || inv.ItemsTotal != 3000 || inv.Lines[0].GoodsID != 1 || inv.Lines[MaxLines-1].GoodsID != MaxLines {
		t.Fatalf("lines %d (first %v), total %d; want the first %d and 3000", len(inv.Lines), inv.Lines[:1], inv.ItemsTotal, MaxLines)
	}
	if !strings.Contains(inv.Detail, "bytes, at most 65536 allowed") {
		t.Fatalf("detail %q does not give the size", inv.Detail)
	}
	b, err := Rejected(inv.OrderID, ReasonInvalidOrder, inv.Lines, nil, time.Time{}).WithItemsTotal(inv.ItemsTotal).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 8<<10 || !strings.Contains(string(b), `"items_total":3000`) {
		t.Fatalf("rejection is %d bytes (want a bounded size with items_total): %.200s", len(b), b)
	}
}

func TestLimitsAreEnforced(t *testing.T) {
	d := NewDecoder(Limits{MaxMessageBytes: 200, MaxLines: 2, MaxNum: 10, MaxOrderIDBytes: 4})
	for _, c := range []struct {
		in     string
		dead   bool
		detail string
	}{
		{in: `{"order_id":"ABCDE","items":[{"goods_id":1,"num":1}]}`, dead: true},
		{in: `{"order_id":"ABCD","items":[{"goods_id":1,"num":1},{"goods_id":2,"num":1},{"goods_id":3,"num":1}]}`, detail: "3 items, at most 2"},
		{in: `{"order_id":"ABCD","items":[{"goods_id":1,"num":11}]}`, detail: "num must be at most 10"},
		{in: `{"order_id":"ABCD","items":[{"goods_id":1,"num":6},{"goods_id":1,"num":5}]}`, detail: "summed num of goods 1 is 11"},
		{in: `{"order_id":"ABCD","items":[{"goods_id":1,"num":1}],"pad":"` + strings.Repeat("x", 200) + `"}`, detail: "at most 200 allowed"},
	} {
		_, err := d.OrderPlaced([]byte(c.in))
		var inv *InvalidError
		switch {
		case c.dead && !errors.Is(err, ErrUndecodable):
			t.Errorf("%.60s: err = %v, want a dead letter", c.in, err)
		case !c.dead && (!errors.As(err, &inv) || !strings.Contains(inv.Detail, c.detail)):
			t.Errorf("%.60s: err = %v, want invalid with %q", c.in, err, c.detail)
		}
	}
	if _, err := d.OrderPlaced([]byte(`{"order_id":"ABCD","items":[{"goods_id":1,"num":10},{"goods_id":2,"num":10}]}`)); err != nil {
		t.Errorf("an order at every limit: %v", err)
	}
	for _, l := range []Limits{{MaxOrderIDBytes: 256}, {MaxLines: -1}, {MaxNum: -5}, {MaxMessageBytes: -1}} {
		if l.Validate() == nil {
			t.Errorf("limits %+v accepted", l)
		}
	}
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestErrorDetailsAreBounded(t *testing.T) {
	huge := strings.Repeat("9", 5000)
	for _, in := range []string{
		`{"order_id":"A","items":[{"goods_id":"` + huge + `","num":1}]}`,
		`{"order_id":"A","items":[{"goods_id":1,"num":` + huge + `}]}`,
		`{"order_id":"A","items":[{"goods_id":1,"num":1}],"placed_at":"` + huge + `"}`,
	} {
		_, err := DecodeOrderPlaced([]byte(in))
		if err == nil || len(err.Error()) > 300 {
			t.Errorf("error of %d bytes: %.300v", len(fmt.Sprint(err)), err)
		}
	}
}
