package api_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/api"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/producer"
)

var at = time.Date(2026, 11, 25, 20, 0, 0, 123456789, time.FixedZone("CET", 3600))

// outcomeMessage is what the worker publishes for ev.
func outcomeMessage(t *testing.T, ev events.Outcome) kafka.Message {
	t.Helper()
	b, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return producer.Outcome("stock.events", ev.OrderID, ev.Type, b)
}

// Every outcome the events package builds, as the producer publishes it,
// passes: each type, each reason, the edge cases of invalid_order (lines out
// of range, none at all, items_total), an order_id of 255 bytes, and zero
// stock.
func TestOutcomesTheWorkerPublishesPass(t *testing.T) {
	lines := []events.Line{{GoodsID: 16, Num: 1}, {GoodsID: 17, Num: 2}}
	long := strings.Repeat("é", 127) + "x" // 255 bytes, 128 characters
	for name, ev := range map[string]events.Outcome{
		"deducted":               events.Deducted("A1001", lines, at),
		"deducted, long id":      events.Deducted(long, lines, at),
		"deducted, max values":   events.Deducted("M", []events.Line{{GoodsID: math.MaxInt64, Num: math.MaxInt32}}, at),
		"released":               events.Released("A1001", lines, at),
		"released, nothing":      events.Released("A1001", []events.Line{}, at),
		"insufficient_stock":     events.Rejected("A1002", events.ReasonInsufficientStock, lines, map[int64]int64{16: 5, 17: 1}, at),
		"unknown_goods":          events.Rejected("A1002", events.ReasonUnknownGoods, lines, map[int64]int64{16: 5}, at),
		"invalid_order":          events.Rejected("A1003", events.ReasonInvalidOrder, []events.Line{{GoodsID: -3, Num: 0}, {GoodsID: 0, Num: math.MinInt32}}, nil, at),
		"invalid_order, no line": events.Rejected("A1003", events.ReasonInvalidOrder, nil, nil, at),
		"invalid_order, total":   events.Rejected("A1003", events.ReasonInvalidOrder, []events.Line{{GoodsID: 1, Num: 100}}, nil, at).WithItemsTotal(101),
		"cancelled":              events.Rejected("A1004", events.ReasonCancelled, nil, nil, at),
		"zero time":              events.Deducted("Z", lines, time.Time{}),
	} {
		if err := api.ValidateMessage(api.Outcome, outcomeMessage(t, ev)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Each way an outcome can break the contract is caught, and the report says
// where.
func TestBrokenOutcomesFail(t *testing.T) {
	good := `{"type":"stock-rejected","event_id":"A:stock-rejected","order_id":"A","reason":"insufficient_stock",` +
		`"items":[{"goods_id":16,"num":2,"available":1},{"goods_id":17,"num":1,"available":9}],"occurred_at":"2026-11-25T20:00:00Z"}`
	if err := api.Validate(api.Outcome, []byte(good)); err != nil {
		t.Fatalf("the base case fails: %v", err)
	}
	for _, c := range []struct{ name, payload, want string }{
		{"missing event_id", strings.Replace(good, `"event_id":"A:stock-rejected",`, "", 1), "missing property 'event_id'"},
		{"missing items", strings.Replace(good, `"items":[{"goods_id":16,"num":2,"available":1},{"goods_id":17,"num":1,"available":9}],`, "", 1), "missing property 'items'"},
		{"goods_id a string", strings.Replace(good, `"goods_id":16`, `"goods_id":"16"`, 1), "/items/0/goods_id"},
		{"num a fraction", strings.Replace(good, `"num":2`, `"num":2.5`, 1), "/items/0/num"},
		{"available negative", strings.Replace(good, `"available":1`, `"available":-1`, 1), "/items/0/available"},
		{"available missing", strings.Replace(good, `,"available":1`, "", 1), "missing property 'available'"},
		{"unknown reason", strings.Replace(good, "insufficient_stock", "sold_out", 1), "/reason"},
		{"unknown member", strings.Replace(good, `"order_id":"A",`, `"order_id":"A","shop":"x",`, 1), "'shop' not allowed"},
		{"event_id of another order", strings.Replace(good, `"A:stock-rejected"`, `"B:stock-rejected"`, 1), "is not order_id:type"},
		{"occurred_at not UTC", strings.Replace(good, "20:00:00Z", "21:00:00+01:00", 1), "/occurred_at"},
		{"occurred_at not a date", strings.Replace(good, "2026-11-25", "2026-13-25", 1), "/occurred_at"},
		{"lines unsorted", strings.Replace(strings.Replace(good, `"goods_id":16`, `"goods_id":18`, 1), `"goods_id":17`, `"goods_id":16`, 1), "sorted by ascending goods_id"},
		{"a goods twice", strings.Replace(good, `"goods_id":17`, `"goods_id":16`, 1), "one per goods"},
		{"member twice", strings.Replace(good, `"order_id":"A",`, `"order_id":"A","order_id":"A",`, 1), `"order_id" given more than once`},
		{"items_total beside insufficient_stock", strings.Replace(good, `"occurred_at"`, `"items_total":101,"occurred_at"`, 1), "/items_total"},
		{"no line short of stock", strings.Replace(good, `"available":1`, `"available":2`, 1), "no line asks for more than is available"},
		{"deducted with a reason", strings.NewReplacer("stock-rejected", "stock-deducted", `,"available":1`, "", `,"available":9`, "").Replace(good), "'reason' not allowed"},
		{"deducted without lines", `{"type":"stock-deducted","event_id":"A:stock-deducted","order_id":"A","items":[],"occurred_at":"2026-11-25T20:00:00Z"}`, "minItems"},
		{"cancelled with lines", strings.Replace(good, "insufficient_stock", "cancelled", 1), "maxItems"},
		{"unknown type", `{"type":"stock-reserved","order_id":"A"}`, "/type"},
		{"empty order_id", `{"type":"stock-released","event_id":":stock-released","order_id":"","items":[],"occurred_at":"2026-11-25T20:00:00Z"}`, "/order_id"},
		{"order_id of 256 bytes", `{"type":"stock-released","event_id":"` + strings.Repeat("é", 128) + `:stock-released","order_id":"` + strings.Repeat("é", 128) +
			`","items":[],"occurred_at":"2026-11-25T20:00:00Z"}`, "256 bytes"},
		{"not JSON", `{"type":`, "not JSON"},
		{"an array", `[]`, "want object"},
	} {
		err := api.Validate(api.Outcome, []byte(c.payload))
		var cerr *api.Error
		if !errors.As(err, &cerr) || cerr.Kind != api.Outcome {
			t.Errorf("%s: err = %v, want an *api.Error", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\ndoes not say %q", c.name, err, c.want)
		}
	}
}

// The message around a valid payload is checked too: the key is the order_id
// and the one header, type, is the payload's type.
func TestOutcomeKeyAndHeaders(t *testing.T) {
	ok := outcomeMessage(t, events.Deducted("A1001", []events.Line{{GoodsID: 16, Num: 1}}, at))
	for _, c := range []struct {
		name string
		edit func(m *kafka.Message)
		want string
	}{
		{"key of another order", func(m *kafka.Message) { m.Key = []byte("A1002") }, `key: "A1002" is not the order_id "A1001"`},
		{"no key", func(m *kafka.Message) { m.Key = nil }, "key"},
		{"no type header", func(m *kafka.Message) { m.Headers = nil }, "missing property 'type'"},
		{"type header of another type", func(m *kafka.Message) { m.Headers[0].Value = []byte("stock-released") }, "header type"},
		{"type header twice", func(m *kafka.Message) { m.Headers = append(m.Headers, m.Headers[0]) }, "given more than once"},
		{"an extra header", func(m *kafka.Message) { m.Headers = append(m.Headers, kafka.Header{Key: "trace", Value: []byte("x")}) }, "'trace' not allowed"},
	} {
		m := ok
		m.Headers = append([]kafka.Header(nil), ok.Headers...)
		c.edit(&m)
		if err := api.ValidateMessage(api.Outcome, m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one saying %q", c.name, err, c.want)
		}
	}
	if err := api.ValidateMessage(api.Outcome, ok); err != nil {
		t.Fatal(err)
	}
}

// Dead letters as the producer builds them pass, cut or not; a letter whose
// headers break the contract fails.
func TestDeadLetters(t *testing.T) {
	src := kafka.Message{Topic: "orders.placed", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("hello")}
	undecodable := producer.DeadLetter("orders.dlq", src, errors.New("events: undecodable message: not a JSON object"))
	poison := producer.Letter("orders.dlq", src, producer.KindPoison, errors.New("deduct: boom"), 6)
	huge := producer.Letter("orders.dlq", kafka.Message{Topic: "orders.cancelled", Key: make([]byte, 2<<20), Value: make([]byte, 2<<20)},
		producer.KindUndecodable, errors.New(strings.Repeat("e", 5000)), 0)
	shrunk, _ := producer.Shrink(huge)
	keyless := producer.DeadLetter("orders.dlq", kafka.Message{Topic: "orders.placed", Value: []byte{0xff}}, errors.New("not UTF-8"))
	for name, m := range map[string]kafka.Message{"undecodable": undecodable, "poison": poison, "cut": huge, "shrunk": shrunk, "keyless": keyless} {
		if err := api.ValidateMessage(api.DeadLetter, m); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, c := range []struct {
		name string
		m    kafka.Message
		want string
	}{
		{"no source offset", without(undecodable, producer.HeaderSourceOffset), "missing property 'source-offset'"},
		{"no error", without(poison, producer.HeaderError), "missing property 'error'"},
		{"poison without attempts", without(poison, producer.HeaderAttempts), "missing property 'attempts'"},
		{"undecodable with attempts", with(undecodable, producer.HeaderAttempts, "2"), "/attempts"},
		{"partition not a number", with(without(undecodable, producer.HeaderSourcePartition), producer.HeaderSourcePartition, "three"), "source-partition"},
		{"unknown kind", with(without(undecodable, producer.HeaderKind), producer.HeaderKind, "broken"), "dead-letter-kind"},
		{"an extra header", with(undecodable, "note", "x"), "'note' not allowed"},
	} {
		if err := api.ValidateMessage(api.DeadLetter, c.m); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one saying %q", c.name, err, c.want)
		}
	}
	if err := api.Validate(api.DeadLetter, []byte{0xff, 0x00}); err != nil {
		t.Errorf("a dead letter's value is any bytes: %v", err)
	}
}

func without(m kafka.Message, key string) kafka.Message {
	var hs []kafka.Header
	for _, h := range m.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	m.Headers = hs
	return m
}

func with(m kafka.Message, key, value string) kafka.Message {
	m.Headers = append(append([]kafka.Header(nil), m.Headers...), kafka.Header{Key: key, Value: []byte(value)})
	return m
}

// The order topics: what the decoder deducts passes, what it answers with
// invalid_order or parks fails, including the rules beyond JSON Schema.
func TestOrders(t *testing.T) {
	for _, c := range []struct {
		kind    api.Kind
		payload string
		valid   bool
		want    string
	}{
		{api.OrderPlaced, `{"order_id":"A1001","items":[{"goods_id":16,"num":1},{"goods_id":17,"num":2}]}`, true, ""},
		{api.OrderPlaced, `{"order_id":"A","items":[{"goods_id":1,"num":1,"sku":"x"}],"placed_at":null,"shop":{"a":1,"a":2}}`, true, ""},
		{api.OrderPlaced, `{"order_id":"A","items":[{"goods_id":1,"num":1}],"placed_at":"2026-11-25T20:00:00.5+01:00"}`, true, ""},
		{api.OrderPlaced, `{"order_id":"A","items":[{"goods_id":1,"num":1.0}]}`, false, "not written as an integer"},
		{api.OrderPlaced, `{"order_id":"A","items":[{"goods_id":1e2,"num":1}]}`, false, "not written as an integer"},
		{api.OrderPlaced, `{"order_id":"A","items":[{"goods_id":1,"num":1,"num":2}]}`, false, "num given more than once"},
		{api.OrderPlaced, `{"order_id":"A","items":[{"goods_id":1,"num":1}],"items":[]}`, false, `"items" given more than once`},
		{api.OrderPlaced, `{"order_id":"` + strings.Repeat("é", 65) + `","items":[{"goods_id":1,"num":1}]}`, false, "130 bytes"},
		{api.OrderPlaced, `{"order_id":"A","items":[{"goods_id":1,"num":2147483647},{"goods_id":1,"num":1}]}`, false, "sum to 2147483648"},
		{api.OrderPlaced, `{"order_id":"A","items":[{"goods_id":0,"num":1}]}`, false, "/items/0/goods_id"},
		{api.OrderPlaced, `{"order_id":"A","items":[]}`, false, "minItems"},
		{api.OrderPlaced, `{"order_id":"A\ud800","items":[{"goods_id":1,"num":1}]}`, false, "lone UTF-16 surrogate"},
		{api.OrderPlaced, "{\"order_id\":\"A\xff\",\"items\":[{\"goods_id\":1,\"num\":1}]}", false, "not valid UTF-8"},
		{api.OrderPlaced, `{"order_id":"A","items":[{"goods_id":1,"num":1}],"placed_at":"2026-11-25 20:00:00Z"}`, false, "/placed_at"},
		{api.OrderPlaced, `{"order_id":"A","items":[{"goods_id":1,"num":1}],"pad":"` + strings.Repeat("x", 64<<10) + `"}`, false, "at most 65536"},
		{api.OrderCancelled, `{"order_id":"A1001","reason":"customer"}`, true, ""},
		{api.OrderCancelled, `{"order_id":"A1001","order_id":"A1002"}`, false, "order_id given more than once"},
		{api.OrderCancelled, `{"order_id":1001}`, false, "/order_id"},
	} {
		err := api.Validate(c.kind, []byte(c.payload))
		switch {
		case c.valid && err != nil:
			t.Errorf("%.70s: %v", c.payload, err)
		case !c.valid && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%.70s: err = %v, want one saying %q", c.payload, err, c.want)
		}
	}
	m := kafka.Message{Key: []byte("B"), Value: []byte(`{"order_id":"A"}`)}
	if err := api.ValidateMessage(api.OrderCancelled, m); err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("a cancel keyed by another order: %v", err)
	}
	if err := api.Validate("order-shipped", []byte(`{}`)); err == nil {
		t.Error("an unknown kind passed")
	}
}
