package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/kafka-go"
	"go.yaml.in/yaml/v3"
)

// loadDoc parses asyncapi.yaml into plain Go values (maps with string keys).
func loadDoc(t *testing.T) map[string]any {
	t.Helper()
	b, err := fs.ReadFile(Files(), "asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("asyncapi.yaml is not valid YAML: %v", err)
	}
	return doc
}

// pointer resolves a JSON pointer ("/a/b~1c") in v.
func pointer(v any, ptr string) (any, error) {
	if ptr == "" {
		return v, nil
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, fmt.Errorf("pointer %q does not start with /", ptr)
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("no member %q", tok)
			}
			v = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("no element %q", tok)
			}
			v = c[i]
		default:
			return nil, fmt.Errorf("%q: not an object or array", tok)
		}
	}
	return v, nil
}

// refs returns every $ref of v with the path it was found at.
func refs(v any, at string, out map[string]string) {
	switch c := v.(type) {
	case map[string]any:
		for k, e := range c {
			if k == "$ref" {
				if s, ok := e.(string); ok {
					out[at] = s
				}
				continue
			}
			refs(e, at+"/"+k, out)
		}
	case []any:
		for i, e := range c {
			refs(e, at+"/"+strconv.Itoa(i), out)
		}
	}
}

func allSchemaFiles(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(Files(), "schemas/*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("schemas: %v %v", names, err)
	}
	return names
}

// The document is AsyncAPI 3.0.0 YAML whose every $ref resolves: references
// inside it to what they point at, references to schema files to a file of
// schemas/ and a place in it that compiles as JSON Schema 2020-12. Every
// schema file is reached, directly or from another schema.
func TestAsyncAPIReferencesResolve(t *testing.T) {
	doc := loadDoc(t)
	if doc["asyncapi"] != "3.0.0" {
		t.Fatalf("asyncapi: %v, want 3.0.0", doc["asyncapi"])
	}
	c, err := compiler()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	refs(doc, "", found)
	if len(found) < 20 {
		t.Fatalf("only %d $refs found", len(found))
	}
	reached := map[string]bool{}
	for at, ref := range found {
		file, frag, _ := strings.Cut(ref, "#")
		if file == "" {
			if _, err := pointer(doc, frag); err != nil {
				t.Errorf("%s: $ref %s does not resolve: %v", at, ref, err)
			}
			continue
		}
		name := path.Clean(file)
		if !strings.HasPrefix(name, "schemas/") {
			t.Errorf("%s: $ref %s leaves schemas/", at, ref)
			continue
		}
		if _, err := fs.Stat(Files(), name); err != nil {
			t.Errorf("%s: $ref %s: %v", at, ref, err)
			continue
		}
		reached[name] = true
		if _, err := c.Compile(schemaURL(path.Base(name)) + "#" + frag); err != nil {
			t.Errorf("%s: $ref %s does not compile: %v", at, ref, err)
		}
	}
	// Files reached from the document reach others through their own $refs.
	for _, name := range allSchemaFiles(t) {
		b, _ := fs.ReadFile(Files(), name)
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		inner := map[string]string{}
		refs(v, "", inner)
		for at, ref := range inner {
			file, frag, _ := strings.Cut(ref, "#")
			target := name
			if file != "" {
				target = path.Join("schemas", file)
				reached[target] = true
			}
			b, err := fs.ReadFile(Files(), target)
			if err != nil {
				t.Errorf("%s%s: $ref %s: %v", name, at, ref, err)
				continue
			}
			var tv any
			if err := json.Unmarshal(b, &tv); err != nil {
				t.Fatal(err)
			}
			if _, err := pointer(tv, frag); err != nil {
				t.Errorf("%s%s: $ref %s does not resolve: %v", name, at, ref, err)
			}
		}
	}
	for _, name := range allSchemaFiles(t) {
		if !reached[name] {
			t.Errorf("%s is referenced neither by asyncapi.yaml nor by another schema", name)
		}
	}
}

// Every schema file is a draft 2020-12 schema that compiles (with format
// assertions on, nothing loaded from outside), and its own examples pass it.
func TestSchemasCompileAndTheirExamplesPass(t *testing.T) {
	c, err := compiler()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range allSchemaFiles(t) {
		b, _ := fs.ReadFile(Files(), name)
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m, _ := doc.(map[string]any)
		if m["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %v, want draft 2020-12", name, m["$schema"])
		}
		s, err := c.Compile(schemaURL(path.Base(name)))
		if err != nil {
			t.Errorf("%s does not compile: %v", name, err)
			continue
		}
		examples, _ := m["examples"].([]any)
		for i, ex := range examples {
			if err := s.Validate(ex); err != nil {
				t.Errorf("%s: example %d fails its own schema: %v", name, i, err)
			}
		}
	}
}

// The AsyncAPI Schema Objects written in the document itself (the key, the
// consumer group) compile too, as the JSON Schema draft-07 they extend.
func TestAsyncAPIInlineSchemasCompile(t *testing.T) {
	doc := loadDoc(t)
	inline := []string{"/components/messages/orderPlaced/bindings/kafka/key", "/components/messages/deadLetter/bindings/kafka/key"}
	ops, _ := doc["operations"].(map[string]any)
	for name, op := range ops {
		if _, err := pointer(op, "/bindings/kafka/groupId"); err == nil {
			inline = append(inline, "/operations/"+name+"/bindings/kafka/groupId")
		}
	}
	for _, ptr := range inline {
		v, err := pointer(doc, ptr)
		if err != nil {
			t.Errorf("%s: %v", ptr, err)
			continue
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft7)
		u := "stockflow:///asyncapi.yaml" + url.PathEscape(ptr)
		if err := c.AddResource(u, v); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Compile(u); err != nil {
			t.Errorf("%s does not compile: %v", ptr, err)
		}
	}
}

// kindOf maps a message of the document (by name) to its Kind.
var kindOf = map[string]Kind{
	"order-placed": OrderPlaced, "order-cancelled": OrderCancelled,
	"stock-deducted": Outcome, "stock-rejected": Outcome, "stock-released": Outcome,
	"dead-letter": DeadLetter,
}

// Each channel carries the messages of its kind, at the contract's default
// topic, and every message example in the document is a valid Kafka message
// of that kind (payload, headers, and the key the contract asks for).
func TestAsyncAPIChannelsAndExamples(t *testing.T) {
	doc := loadDoc(t)
	channels, _ := doc["channels"].(map[string]any)
	want := map[string][]string{
		"orders.placed":    {"order-placed"},
		"orders.cancelled": {"order-cancelled"},
		"stock.events":     {"stock-deducted", "stock-rejected", "stock-released"},
		"orders.dlq":       {"dead-letter"},
	}
	seen := 0
	for id, ch := range channels {
		addr, _ := pointer(ch, "/address")
		topic, _ := pointer(ch, "/bindings/kafka/topic")
		if addr != topic {
			t.Errorf("channel %s: address %v, Kafka binding topic %v", id, addr, topic)
		}
		names, ok := want[fmt.Sprint(addr)]
		if !ok {
			t.Errorf("channel %s: address %v is none of the contract's topics", id, addr)
			continue
		}
		seen++
		msgs, _ := pointer(ch, "/messages")
		var got []string
		for _, m := range msgs.(map[string]any) {
			ref, _ := pointer(m, "/$ref")
			target, err := pointer(doc, strings.TrimPrefix(fmt.Sprint(ref), "#"))
			if err != nil {
				t.Fatalf("channel %s: %v", id, err)
			}
			name, _ := pointer(target, "/name")
			got = append(got, fmt.Sprint(name))
			examples, _ := pointer(target, "/examples")
			exs, _ := examples.([]any)
			if len(exs) == 0 {
				t.Errorf("message %s has no example", name)
			}
			for i, ex := range exs {
				msg := exampleMessage(t, ex)
				if err := ValidateMessage(kindOf[fmt.Sprint(name)], msg); err != nil {
					t.Errorf("message %s: example %d: %v", name, i, err)
				}
				if h, ok := header(msg, "type"); ok && h != name {
					t.Errorf("message %s: example %d has header type %s", name, i, h)
				}
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, names) {
			t.Errorf("channel %s carries %v, want %v", addr, got, names)
		}
	}
	if seen != len(want) {
		t.Errorf("%d of the %d topics have a channel", seen, len(want))
	}
}

// exampleMessage turns a message example of the document into the Kafka
// message it describes: a JSON payload keyed by its order_id, or (a dead
// letter) the string as bytes.
func exampleMessage(t *testing.T, ex any) kafka.Message {
	t.Helper()
	var m kafka.Message
	switch p, _ := pointer(ex, "/payload"); v := p.(type) {
	case string:
		m.Value = []byte(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		m.Value = b
		if id, ok := v.(map[string]any)["order_id"].(string); ok {
			m.Key = []byte(id)
		}
	}
	if hs, err := pointer(ex, "/headers"); err == nil {
		for k, v := range hs.(map[string]any) {
			m.Headers = append(m.Headers, kafka.Header{Key: k, Value: []byte(fmt.Sprint(v))})
		}
	}
	return m
}

func header(m kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}
