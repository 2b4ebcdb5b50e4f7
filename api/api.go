package api

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/kafka-go"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Kind is a kind of message of the contract: what one topic carries.
type Kind string

// The kinds, one per topic.
const (
	// OrderPlaced is a message of orders.placed.
	OrderPlaced Kind = "order-placed"
	// OrderCancelled is a message of orders.cancelled.
	OrderCancelled Kind = "order-cancelled"
	// Outcome is a message of stock.events: stock-deducted, stock-rejected or
	// stock-released.
	Outcome Kind = "outcome"
	// DeadLetter is a message of orders.dlq.
	DeadLetter Kind = "dead-letter"
)

// Kinds returns every Kind.
func Kinds() []Kind { return []Kind{OrderPlaced, OrderCancelled, Outcome, DeadLetter} }

//go:embed asyncapi.yaml schemas/*.json
var files embed.FS

// Files returns the contract's files: asyncapi.yaml and schemas/*.json.
func Files() fs.FS { return files }

// schemaBase is the URL the embedded schemas are known by while compiling;
// their references to each other are relative, so any base works. It names no
// reachable place: nothing is ever loaded from it.
const schemaBase = "stockflow:///api/schemas/"

// schemaFiles returns the files of schemas/ that describe the payload and
// the headers of kind ("" for none, or an unknown kind).
func schemaFiles(kind Kind) (payload, headers string) {
	switch kind {
	case OrderPlaced:
		return "order-placed.json", ""
	case OrderCancelled:
		return "order-cancelled.json", ""
	case Outcome:
		return "outcome.json", "outcome-headers.json"
	case DeadLetter:
		return "dead-letter.json", "dead-letter-headers.json"
	}
	return "", ""
}

// Validator checks messages against the compiled schemas. It holds no state
// besides them and is safe for concurrent use.
type Validator struct {
	payload map[Kind]*jsonschema.Schema
	headers map[Kind]*jsonschema.Schema
	printer *message.Printer
}

// NewValidator compiles the embedded schemas.
func NewValidator() (*Validator, error) {
	c, err := compiler()
	if err != nil {
		return nil, err
	}
	v := &Validator{payload: map[Kind]*jsonschema.Schema{}, headers: map[Kind]*jsonschema.Schema{},
		printer: message.NewPrinter(language.English)}
	compile := func(name string) (*jsonschema.Schema, error) {
		s, err := c.Compile(schemaURL(name))
		if err != nil {
			return nil, fmt.Errorf("api: compile %s: %w", name, err)
		}
		return s, nil
	}
	for _, kind := range Kinds() {
		payload, headers := schemaFiles(kind)
		if v.payload[kind], err = compile(payload); err != nil {
			return nil, err
		}
		if headers != "" {
			if v.headers[kind], err = compile(headers); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// compiler returns a JSON Schema compiler (draft 2020-12, formats asserted)
// that knows every file of schemas/ by its name under schemaURL and loads
// nothing else: a reference that leaves the embedded files fails to compile.
func compiler() (*jsonschema.Compiler, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	entries, err := fs.ReadDir(files, "schemas")
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(files, "schemas/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("api: schemas/%s: %w", e.Name(), err)
		}
		if err := c.AddResource(schemaURL(e.Name()), doc); err != nil {
			return nil, fmt.Errorf("api: schemas/%s: %w", e.Name(), err)
		}
	}
	return c, nil
}

// schemaURL is the URL a compiler knows the file name of schemas/ by.
func schemaURL(name string) string { return schemaBase + name }

// noLoader refuses every URL: all the schemas are added beforehand.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("api: %s is not one of the embedded schemas (nothing is fetched)", url)
}

var defaultValidator = sync.OnceValues(NewValidator)

// Validate checks payload as a message of kind with the default Validator;
// see Validator.Validate.
func Validate(kind Kind, payload []byte) error {
	v, err := defaultValidator()
	if err != nil {
		return err
	}
	return v.Validate(kind, payload)
}

// ValidateMessage checks m as a message of kind with the default Validator;
// see Validator.ValidateMessage.
func ValidateMessage(kind Kind, m kafka.Message) error {
	v, err := defaultValidator()
	if err != nil {
		return err
	}
	return v.ValidateMessage(kind, m)
}

// Validate checks payload, the value of a message of kind, against its schema
// and the rules beyond it. A payload that breaks the contract gets an *Error
// listing every problem; a dead letter's payload is any bytes. For an
// order-placed payload, nil means an order the worker deducts or rejects for
// stock, and an error one it answers with invalid_order or parks as a dead
// letter.
func (v *Validator) Validate(kind Kind, payload []byte) error {
	_, problems, err := v.payloadProblems(kind, payload)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return &Error{Kind: kind, Problems: problems}
	}
	return nil
}

// payloadProblems returns payload parsed (nil for a dead letter, or bytes
// that are not JSON) and its problems; err is for an unknown kind.
func (v *Validator) payloadProblems(kind Kind, payload []byte) (*node, []string, error) {
	s, ok := v.payload[kind]
	if !ok {
		return nil, nil, fmt.Errorf("api: unknown kind %q", kind)
	}
	if kind == DeadLetter {
		return nil, nil, nil
	}
	doc, err := parse(payload)
	if err != nil {
		return nil, []string{err.Error()}, nil
	}
	var problems []string
	if err := s.Validate(doc.value); err != nil {
		problems = append(problems, v.schemaProblems(err)...)
	}
	return doc, append(problems, rules(kind, payload, doc)...), nil
}

// ValidateMessage checks a whole Kafka message of kind: its value (Validate),
// its headers (each name once, against the kind's header schema, none for the
// order topics) and its key: an outcome, an order-placed and an
// order-cancelled are keyed by their order_id, and an outcome's header type
// is its payload's type. (The worker itself does not rely on the key of what
// it consumes; the contract asks order services to set it.) A dead letter
// keeps its original key, which can be anything.
func (v *Validator) ValidateMessage(kind Kind, m kafka.Message) error {
	doc, problems, err := v.payloadProblems(kind, m.Value)
	if err != nil {
		return err
	}
	headers := map[string]any{}
	for _, h := range m.Headers {
		if _, dup := headers[h.Key]; dup {
			problems = append(problems, fmt.Sprintf("header %s: given more than once", h.Key))
		}
		headers[h.Key] = string(h.Value)
	}
	if s := v.headers[kind]; s != nil {
		if err := s.Validate(headers); err != nil {
			for _, p := range v.schemaProblems(err) {
				problems = append(problems, "headers: "+p)
			}
		}
	} else if len(headers) > 0 {
		problems = append(problems, fmt.Sprintf("headers %s: %s messages carry none", strings.Join(sortedKeys(headers), ", "), kind))
	}
	if doc != nil { // every kind but the dead letter, when the payload is JSON
		orderID, _ := doc.member("order_id").value.(string)
		if string(m.Key) != orderID {
			problems = append(problems, fmt.Sprintf("key: %q is not the order_id %q", clip(string(m.Key)), clip(orderID)))
		}
		if typ, ok := headers["type"]; ok && kind == Outcome && typ != doc.member("type").value {
			problems = append(problems, fmt.Sprintf("header type: %q is not the payload's type %v", typ, doc.member("type").value))
		}
	}
	if len(problems) > 0 {
		return &Error{Kind: kind, Problems: problems}
	}
	return nil
}

// schemaProblems lists the failures of a schema validation, one per failing
// keyword where the output has one: "at /items/0/num: minimum: got 0, want 1".
func (v *Validator) schemaProblems(err error) []string {
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return []string{err.Error()}
	}
	var out []string
	var leaves func(e *jsonschema.ValidationError)
	leaves = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			at := ""
			for _, tok := range e.InstanceLocation {
				at += "/" + escapePointer(tok)
			}
			out = append(out, fmt.Sprintf("at %s: %s", orDefault(at, "/"), e.ErrorKind.LocalizedString(v.printer)))
			return
		}
		for _, c := range e.Causes {
			leaves(c)
		}
	}
	leaves(verr)
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
