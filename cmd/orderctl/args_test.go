package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stockflow/stockflow/events"
)

func TestParseLine(t *testing.T) {
	good := []struct {
		in   string
		want events.Line
	}{
		{"16:1", events.Line{GoodsID: 16, Num: 1}},
		{"9223372036854775807:2147483647", events.Line{GoodsID: 9223372036854775807, Num: 2147483647}},
	}
	for _, tt := range good {
		got, err := parseLine(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseLine(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	bad := map[string]string{
		"16:x":                    "16:x: NUM must be a whole number ≥ 1",
		"16:0":                    "16:0: NUM must be a whole number ≥ 1",
		"16:-3":                   "16:-3: NUM must be a whole number ≥ 1",
		"16:1.5":                  "16:1.5: NUM must be a whole number ≥ 1",
		"16:":                     "16:: NUM must be a whole number ≥ 1",
		"16:2147483648":           "16:2147483648: NUM must be at most 2147483647",
		"16:99999999999999999999": "16:99999999999999999999: NUM must be at most 2147483647",
		"x:1":                     "x:1: GOODS must be a whole number ≥ 1",
		"0:1":                     "0:1: GOODS must be a whole number ≥ 1",
		"-4:1":                    "-4:1: GOODS must be a whole number ≥ 1",
		":1":                      ":1: GOODS must be a whole number ≥ 1",
		"16":                      "16: want GOODS:NUM, for example 16:1",
		"16=1":                    "16=1: want GOODS:NUM, for example 16:1",
		"":                        ": want GOODS:NUM, for example 16:1",
	}
	for in, want := range bad {
		_, err := parseLine(in)
		if err == nil || err.Error() != want {
			t.Errorf("parseLine(%q) error = %v, want %q", in, err, want)
		}
	}
}

func TestParseLinesMergesAndReportsEveryMistake(t *testing.T) {
	got, err := parseLines([]string{"17:2", "16:1", "17:3"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []events.Line{{GoodsID: 16, Num: 1}, {GoodsID: 17, Num: 5}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("lines = %v, want %v", got, want)
	}

	_, err = parseLines([]string{"16:x", "17:1", "0:2"})
	if err == nil {
		t.Fatal("bad lines accepted")
	}
	for _, want := range []string{"16:x: NUM must be a whole number ≥ 1", "0:2: GOODS must be a whole number ≥ 1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	if _, err := parseLines(nil); err == nil || !strings.Contains(err.Error(), "at least one GOODS:NUM") {
		t.Errorf("no lines: %v", err)
	}
	if _, err := parseLines([]string{"1:2147483647", "1:1"}); err == nil || !strings.Contains(err.Error(), "add up to more than") {
		t.Errorf("overflowing sum: %v", err)
	}
	many := make([]string, events.MaxLines+1)
	for i := range many {
		many[i] = "1:1"
	}
	if _, err := parseLines(many); err == nil || !strings.Contains(err.Error(), "at most 100") {
		t.Errorf("101 lines: %v", err)
	}
}

func TestParseOrderID(t *testing.T) {
	if id, err := parseOrderID("A1001"); err != nil || id != "A1001" {
		t.Fatalf("A1001: %q, %v", id, err)
	}
	if _, err := parseOrderID(strings.Repeat("x", 128)); err != nil {
		t.Fatalf("128 bytes refused: %v", err)
	}
	for in, want := range map[string]string{
		"":                       "ORDER_ID must not be empty",
		strings.Repeat("x", 129): "ORDER_ID is 129 bytes, at most 128 allowed",
		"a\xffb":                 "is not valid UTF-8",
	} {
		if _, err := parseOrderID(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseOrderID(%.20q) = %v, want %q", in, err, want)
		}
	}
}

func TestParseStockArgs(t *testing.T) {
	got, err := parseStockArgs([]string{"16=10", "17=0", "18=2147483647"})
	if err != nil {
		t.Fatal(err)
	}
	want := []stockArg{{16, 10}, {17, 0}, {18, 2147483647}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	bad := map[string]string{
		"16=x":          "16=x: N must be a whole number ≥ 0",
		"16=-1":         "16=-1: N must be a whole number ≥ 0",
		"16=2147483648": "16=2147483648: N must be at most 2147483647",
		"x=1":           "x=1: GOODS must be a whole number ≥ 1",
		"0=1":           "0=1: GOODS must be a whole number ≥ 1",
		"16":            "16: want GOODS=N, for example 16=10",
		"16:10":         "16:10: want GOODS=N, for example 16=10",
	}
	for in, want := range bad {
		_, err := parseStockArg(in)
		if err == nil || err.Error() != want {
			t.Errorf("parseStockArg(%q) error = %v, want %q", in, err, want)
		}
	}
	if _, err := parseStockArgs([]string{"16=1", "16=2"}); err == nil || !strings.Contains(err.Error(), "16=2: goods 16 is named twice") {
		t.Errorf("duplicate goods: %v", err)
	}
	if _, err := parseStockArgs(nil); err == nil || !strings.Contains(err.Error(), "at least one GOODS=N") {
		t.Errorf("no goods: %v", err)
	}
}

func TestParseGoods(t *testing.T) {
	if g, err := parseGoods("16"); err != nil || g != 16 {
		t.Fatalf("16: %d, %v", g, err)
	}
	for _, in := range []string{"0", "-1", "x", "16:1", ""} {
		if _, err := parseGoods(in); err == nil || err.Error() != in+": GOODS must be a whole number ≥ 1" {
			t.Errorf("parseGoods(%q) = %v", in, err)
		}
	}
}

func TestParseStrategies(t *testing.T) {
	all, err := parseStrategies("all")
	if err != nil || len(all) != 6 {
		t.Fatalf("all = %v, %v", all, err)
	}
	got, err := parseStrategies("batch, pessimistic,batch")
	if err != nil || !reflect.DeepEqual(got, []string{"batch", "pessimistic"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := parseStrategies("batch,spinlock"); err == nil || !strings.Contains(err.Error(), `"spinlock" is not one of: mutex, pessimistic`) {
		t.Fatalf("unknown strategy: %v", err)
	}
}

func TestLoadOptionsValidate(t *testing.T) {
	ok := loadOptions{n: 10, goods: "hot", hotGoods: 16, spreadGoods: 10000, lines: 1, concurrency: 4, batch: 500, prefix: "p"}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		change func(*loadOptions)
		want   string
	}{
		{func(o *loadOptions) { o.n = 0 }, "-n must be at least 1"},
		{func(o *loadOptions) { o.goods = "warm" }, `-goods must be hot or spread, got "warm"`},
		{func(o *loadOptions) { o.lines = 101 }, "-lines must be in 1..100"},
		{func(o *loadOptions) { o.goods, o.spreadGoods, o.lines = "spread", 2, 3 }, "-spread-goods must be at least -lines (3)"},
		{func(o *loadOptions) { o.rate = -1 }, "-rate must be ≥ 0"},
		{func(o *loadOptions) { o.concurrency = 0 }, "-concurrency must be at least 1"},
		{func(o *loadOptions) { o.prefix = strings.Repeat("p", 127) }, "ORDER_ID is 130 bytes"},
	} {
		o := ok
		tt.change(&o)
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("validate() = %v, want %q", err, tt.want)
		}
	}
}

func TestLoadOrderLines(t *testing.T) {
	hot := loadOptions{goods: "hot", hotGoods: 16, lines: 3}
	if got, want := hot.orderLines(), []events.Line{{GoodsID: 16, Num: 1}, {GoodsID: 17, Num: 1}, {GoodsID: 18, Num: 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("hot lines = %v, want %v", got, want)
	}
	spread := loadOptions{goods: "spread", spreadGoods: 5, lines: 5}
	for range 100 {
		lines := spread.orderLines()
		if len(lines) != 5 {
			t.Fatalf("spread lines = %v", lines)
		}
		for i, l := range lines {
			if l.GoodsID < 1 || l.GoodsID > 5 || l.Num != 1 || (i > 0 && lines[i-1].GoodsID >= l.GoodsID) {
				t.Fatalf("spread lines not distinct, sorted and in range: %v", lines)
			}
		}
	}
}

func TestDefaultLoadPrefixIsUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		p := defaultLoadPrefix(fixedTime)
		if seen[p] {
			t.Fatalf("prefix %s repeated", p)
		}
		seen[p] = true
		if !strings.HasPrefix(p, "load-20261125-223105-") {
			t.Fatalf("prefix %s", p)
		}
	}
}
