package events

import (
	"errors"
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

		{name: "101 lines", in: `{"order_id":"A","items":` + many(101) + `}`, invalid: true, want: []Line{{1, 101}}},
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
