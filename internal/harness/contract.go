package harness

import (
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/api"
)

// Check inspects a message a Tail hands over (see WithCheck); a non-nil error
// says what is wrong with it.
type Check func(kafka.Message) error

// TailOption adjusts a Tail opened by OpenTail.
type TailOption func(*Tail)

// WithCheck makes Next and NextAt run check on every message before handing
// it over. A message that fails it is returned together with a *CheckError
// holding the message, so a caller can report it and go on reading. A nil
// check checks nothing.
func WithCheck(check Check) TailOption {
	return func(t *Tail) { t.check = check }
}

// CheckError is a message a Tail's Check refused, and why.
type CheckError struct {
	Message kafka.Message
	Err     error
}

func (e *CheckError) Error() string {
	m := e.Message
	var hs []string
	for _, h := range m.Headers {
		hs = append(hs, fmt.Sprintf("%s=%.80q", h.Key, h.Value))
	}
	return fmt.Sprintf("%s partition %d offset %d (key %.80q, headers [%s], value %.600q): %v",
		m.Topic, m.Partition, m.Offset, m.Key, strings.Join(hs, " "), m.Value, e.Err)
}

func (e *CheckError) Unwrap() error { return e.Err }

// ContractCheck returns the check of the event contract (package api) for the
// messages of topic, chosen by its name: the outcome topic stock.events and
// the dead-letter topic orders.dlq, by those names or names ending in
// ".stock.events" / ".orders.dlq" (what testsvc.NewTopics makes). Every
// message of them is something the worker published, so each must pass
// api.ValidateMessage. Other topics get nil: the order topics carry what an
// order service (or a test, on purpose) sends, garbage included.
func ContractCheck(topic string) Check {
	kind, ok := contractKind(topic)
	if !ok {
		return nil
	}
	return func(m kafka.Message) error { return api.ValidateMessage(kind, m) }
}

func contractKind(topic string) (api.Kind, bool) {
	for name, kind := range map[string]api.Kind{"stock.events": api.Outcome, "orders.dlq": api.DeadLetter} {
		if topic == name || strings.HasSuffix(topic, "."+name) {
			return kind, true
		}
	}
	return "", false
}
