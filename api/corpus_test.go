package api_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stockflow/stockflow/api"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/corpus"
)

// The schemas (with the rules beyond them) accept exactly what the decoder
// accepts, on every input of the bad-input corpus and every input the fuzz
// targets found: an order-placed passes if and only if the worker deducts or
// rejects it for stock, a cancel if and only if it is not a dead letter. And
// the outcome the worker publishes for each order, whatever its defects, is
// one the outcome schema accepts.
func TestSchemasAgreeWithTheDecoder(t *testing.T) {
	dir, err := corpus.Dir()
	if err != nil {
		t.Fatal(err)
	}
	c, err := corpus.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	fuzz, err := corpus.LoadFuzz(filepath.Join(filepath.Dir(filepath.Dir(dir)), "events", "testdata", "fuzz"))
	if err != nil {
		t.Fatal(err)
	}
	type input struct {
		name   string
		cancel bool
		value  []byte
	}
	var inputs []input
	for _, k := range c.Cases {
		inputs = append(inputs, input{k.Name, k.Topic == corpus.Cancelled, k.Value})
	}
	for _, f := range fuzz {
		switch f.Target {
		case "FuzzDecodeOrderPlaced", "FuzzScanMatchesEncodingJSON":
			inputs = append(inputs, input{f.Target + "/" + f.File, false, f.Value})
		case "FuzzDecodeOrderCancelled":
			inputs = append(inputs, input{f.Target + "/" + f.File, true, f.Value})
		}
	}
	at := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	valid := 0
	for _, in := range inputs {
		if in.cancel {
			_, derr := events.DecodeOrderCancelled(in.value)
			verr := api.Validate(api.OrderCancelled, in.value)
			if (derr == nil) != (verr == nil) {
				t.Errorf("cancel %s (%.80q): decoder %v, schema %v", in.name, in.value, derr, verr)
			}
			continue
		}
		o, derr := events.DecodeOrderPlaced(in.value)
		verr := api.Validate(api.OrderPlaced, in.value)
		if (derr == nil) != (verr == nil) {
			t.Errorf("order %s (%.80q): decoder %v, schema %v", in.name, in.value, derr, verr)
		}
		var answers []events.Outcome
		var inv *events.InvalidError
		switch {
		case derr == nil:
			valid++
			stock := map[int64]int64{}
			for _, l := range o.Lines {
				stock[l.GoodsID] = int64(l.Num) - 1
			}
			answers = append(answers, events.Deducted(o.OrderID, o.Lines, at),
				events.Rejected(o.OrderID, events.ReasonInsufficientStock, o.Lines, stock, at),
				events.Rejected(o.OrderID, events.ReasonUnknownGoods, o.Lines, nil, at),
				events.Released(o.OrderID, o.Lines, at))
		case errors.As(derr, &inv):
			answers = append(answers, events.Rejected(inv.OrderID, events.ReasonInvalidOrder, inv.Lines, nil, at).WithItemsTotal(inv.ItemsTotal))
		}
		for _, ev := range answers {
			b, err := ev.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if err := api.Validate(api.Outcome, b); err != nil {
				t.Errorf("order %s: its %s: %v", in.name, describe(ev), err)
			}
		}
	}
	if len(inputs) < 100 || valid < 5 {
		t.Fatalf("%d inputs, %d valid orders: the corpus is not where it should be", len(inputs), valid)
	}
}

func describe(ev events.Outcome) string {
	if ev.Reason != "" {
		return fmt.Sprintf("%s/%s", ev.Type, ev.Reason)
	}
	return ev.Type
}
