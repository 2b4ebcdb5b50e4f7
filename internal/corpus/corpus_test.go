package corpus

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stockflow/stockflow/events"
)

// Every case's expected answer is what the decoder says, so a change of the
// decoder that breaks the contract fails here in a second, before the
// end-to-end run.
func TestCorpusAgreesWithTheDecoder(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Cases) < 60 {
		t.Fatalf("%d cases; the corpus must hold at least 60", len(c.Cases))
	}
	kinds := map[string]int{}
	for _, k := range c.Cases {
		kinds[k.Expect]++
		if k.Topic == Cancelled {
			got, err := events.DecodeOrderCancelled(k.Value)
			switch {
			case k.Expect == DeadLetter && !errors.Is(err, events.ErrUndecodable):
				t.Errorf("%s: want a dead letter, decoder says %+v, %v", k.Name, got, err)
			case k.Expect != DeadLetter && (err != nil || got.OrderID != *k.OrderID):
				t.Errorf("%s: want a cancel of %q, decoder says %+v, %v", k.Name, *k.OrderID, got, err)
			}
			continue
		}
		got, err := events.DecodeOrderPlaced(k.Value)
		var inv *events.InvalidError
		switch {
		case k.Expect == DeadLetter:
			if !errors.Is(err, events.ErrUndecodable) {
				t.Errorf("%s: want a dead letter, decoder says %+v, %v", k.Name, got, err)
			}
		case k.Expect == "rejected/"+events.ReasonInvalidOrder:
			if !errors.As(err, &inv) || inv.OrderID != *k.OrderID {
				t.Errorf("%s: want invalid_order of %q, decoder says %+v, %v", k.Name, *k.OrderID, got, err)
			}
		default:
			if err != nil || got.OrderID != *k.OrderID {
				t.Errorf("%s: want a valid order %q, decoder says %+v, %v", k.Name, *k.OrderID, got, err)
			}
			if k.Expect == Deducted {
				for _, d := range k.Deduct {
					found := false
					for _, l := range got.Lines {
						found = found || (l.GoodsID == d[0] && int64(l.Num) == d[1])
					}
					if !found || len(got.Lines) != len(k.Deduct) {
						t.Errorf("%s: decoded lines %v, corpus says %v", k.Name, got.Lines, k.Deduct)
					}
				}
			}
		}
	}
	for _, kind := range []string{Deducted, DeadLetter, Released, "rejected/invalid_order", "rejected/unknown_goods", "rejected/insufficient_stock"} {
		if kinds[kind] == 0 {
			t.Errorf("no case expects %s", kind)
		}
	}
	t.Logf("%d cases: %v", len(c.Cases), kinds)
}

func TestLoadRefusesABrokenCorpus(t *testing.T) {
	for name, line := range map[string]string{
		"two values":        `{"name":"a","expect":"dead_letter","value":"x","value_b64":"eA=="}`,
		"no order id":       `{"name":"a","expect":"deducted","value":"x","deduct":[[1,1]]}`,
		"unknown expect":    `{"name":"a","expect":"maybe","value":"x"}`,
		"unknown field":     `{"name":"a","expect":"dead_letter","value":"x","valu":"y"}`,
		"released, placed":  `{"name":"a","expect":"released","value":"x","order_id":"a"}`,
		"unknown template":  `{"name":"a","expect":"dead_letter","value":"{{y 3}}"}`,
		"dead letter + id":  `{"name":"a","expect":"dead_letter","value":"x","order_id":"a"}`,
		"deduct unexpected": `{"name":"a","expect":"rejected/unknown_goods","value":"x","order_id":"a","deduct":[[1,1]]}`,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "stock.json"), []byte(`{"stock":{"1":1}}`), 0o644)
		os.WriteFile(filepath.Join(dir, "cases.jsonl"), []byte(line+"\n"), 0o644)
		if _, err := Load(dir); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestExpand(t *testing.T) {
	b, err := expand(`[{{lines 2}}]{{x 3}}{{[ 2}}{{bytes 3}}`)
	if err != nil || string(b) != `[{"goods_id":1,"num":1},{"goods_id":2,"num":1}]xxx[[`+"\x00\x01\x02" {
		t.Fatalf("expand = %q, %v", b, err)
	}
	if !strings.Contains(string(b), "xxx") {
		t.Fatal("x")
	}
}

func TestLoadFuzz(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "FuzzX"), 0o755)
	os.WriteFile(filepath.Join(dir, "FuzzX", "abc"), []byte("go test fuzz v1\n[]byte(\"{\\\"a\\\":\\xff}\")\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "FuzzX", "other"), []byte("go test fuzz v1\nint64(1)\nint64(2)\n"), 0o644)
	got, err := LoadFuzz(dir)
	if err != nil || len(got) != 1 || string(got[0].Value) != "{\"a\":\xff}" || got[0].Target != "FuzzX" {
		t.Fatalf("LoadFuzz = %+v, %v", got, err)
	}
	if none, err := LoadFuzz(filepath.Join(dir, "missing")); err != nil || len(none) != 0 {
		t.Fatalf("missing dir: %v, %v", none, err)
	}
}
