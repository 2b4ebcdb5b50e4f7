package harness_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

func TestContractCheckChoosesByTopicName(t *testing.T) {
	for topic, checked := range map[string]bool{
		"stock.events": true, "t1a2b3.stock.events": true, "orders.dlq": true, "t1a2b3.orders.dlq": true,
		"orders.placed": false, "t1a2b3.orders.cancelled": false, "mystock.events": false, "stock.events.v2": false,
	} {
		if got := harness.ContractCheck(topic) != nil; got != checked {
			t.Errorf("ContractCheck(%q) checks: %v, want %v", topic, got, checked)
		}
	}
}

// A tail with the contract check hands over a message that breaks the
// contract with a *CheckError that shows it, then goes on with the next.
func TestTailWithCheckReportsABrokenMessageAndGoesOn(t *testing.T) {
	t.Parallel()
	tp := testsvc.NewTopics(t, 1)
	good := func(id string) kafka.Message {
		ev := events.Deducted(id, []events.Line{{GoodsID: 16, Num: 1}}, time.Now())
		b, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return producer.Outcome(tp.Events, id, ev.Type, b)
	}
	bad := producer.Outcome(tp.Events, "B2", events.TypeDeducted, []byte(`{"type":"stock-deducted","order_id":"B2"}`))
	pub := producer.New(testsvc.KafkaBrokers(), producer.Options{})
	defer pub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, good("G1"), bad, good("G3")); err != nil {
		t.Fatal(err)
	}
	tl, err := harness.OpenTail(ctx, testsvc.KafkaBrokers(), tp.Events, harness.FromStart, harness.WithCheck(harness.ContractCheck(tp.Events)))
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	for _, want := range []string{"G1", "B2", "G3"} {
		m, err := tl.Next(ctx)
		var broken *harness.CheckError
		switch {
		case want == "B2" && !errors.As(err, &broken):
			t.Fatalf("the broken outcome came with err = %v", err)
		case want == "B2":
			for _, s := range []string{tp.Events, "offset 1", `key "B2"`, "missing properties 'event_id'", `"{\"type\":\"stock-deducted\"`} {
				if !strings.Contains(broken.Error(), s) {
					t.Errorf("the report does not say %q:\n%v", s, broken)
				}
			}
		case err != nil:
			t.Fatalf("%s: %v", want, err)
		}
		if string(m.Key) != want {
			t.Fatalf("read %q, want %q", m.Key, want)
		}
	}
}
