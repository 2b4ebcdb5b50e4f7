// Package corpus loads the bad-input corpus of testdata/corpus: messages with
// the answer stockflow must give each (see testdata/corpus/README.md), and the
// inputs the fuzz targets found.
package corpus

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Expected answers.
const (
	Deducted   = "deducted"
	Released   = "released"
	DeadLetter = "dead_letter"
)

// Topics a case is sent to.
const (
	Placed    = "placed"
	Cancelled = "cancelled"
)

// Case is one message and the answer it must get.
type Case struct {
	Name    string     `json:"name"`
	Topic   string     `json:"topic"`
	Expect  string     `json:"expect"`
	OrderID *string    `json:"order_id"`
	Deduct  [][2]int64 `json:"deduct"`
	Note    string     `json:"note"`
	Text    *string    `json:"value"`
	Base64  *string    `json:"value_b64"`

	// Value is the message's bytes, templates expanded.
	Value []byte `json:"-"`
}

// Corpus is the cases and the stock they start from.
type Corpus struct {
	Cases []Case
	Stock map[int64]int64
}

// Dir finds testdata/corpus from the working directory of a test (any
// package of the module).
func Dir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "corpus"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("corpus: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Load reads cases.jsonl and stock.json of dir and checks them.
func Load(dir string) (Corpus, error) {
	var c Corpus
	var stock struct {
		Stock map[string]int64 `json:"stock"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "stock.json"))
	if err != nil {
		return c, fmt.Errorf("corpus: %w", err)
	}
	if err := json.Unmarshal(b, &stock); err != nil {
		return c, fmt.Errorf("corpus: stock.json: %w", err)
	}
	c.Stock = map[int64]int64{}
	for k, v := range stock.Stock {
		g, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return c, fmt.Errorf("corpus: stock.json: goods %q: %w", k, err)
		}
		c.Stock[g] = v
	}

	f, err := os.Open(filepath.Join(dir, "cases.jsonl"))
	if err != nil {
		return c, fmt.Errorf("corpus: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	names := map[string]bool{}
	ids := map[string]string{}
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var k Case
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&k); err != nil {
			return c, fmt.Errorf("corpus: cases.jsonl line %d: %w", line, err)
		}
		if err := k.check(); err != nil {
			return c, fmt.Errorf("corpus: cases.jsonl line %d (%s): %w", line, k.Name, err)
		}
		if names[k.Name] {
			return c, fmt.Errorf("corpus: cases.jsonl line %d: name %q used twice", line, k.Name)
		}
		names[k.Name] = true
		if k.OrderID != nil {
			if other, dup := ids[*k.OrderID]; dup {
				return c, fmt.Errorf("corpus: cases %s and %s share order_id %q", other, k.Name, *k.OrderID)
			}
			ids[*k.OrderID] = k.Name
		}
		c.Cases = append(c.Cases, k)
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("corpus: cases.jsonl: %w", err)
	}
	return c, nil
}

func (k *Case) check() error {
	if k.Name == "" {
		return fmt.Errorf("no name")
	}
	if k.Topic == "" {
		k.Topic = Placed
	}
	if k.Topic != Placed && k.Topic != Cancelled {
		return fmt.Errorf("topic %q is not placed or cancelled", k.Topic)
	}
	switch {
	case k.Text != nil && k.Base64 != nil, k.Text == nil && k.Base64 == nil:
		return fmt.Errorf("give exactly one of value and value_b64")
	case k.Text != nil:
		v, err := expand(*k.Text)
		if err != nil {
			return err
		}
		k.Value = v
	default:
		v, err := base64.StdEncoding.DecodeString(*k.Base64)
		if err != nil {
			return fmt.Errorf("value_b64: %w", err)
		}
		k.Value = v
	}
	switch {
	case k.Expect == DeadLetter:
		if k.OrderID != nil || k.Deduct != nil {
			return fmt.Errorf("a dead letter has no order_id or deduct")
		}
	case k.Expect == Deducted, k.Expect == Released, strings.HasPrefix(k.Expect, "rejected/"):
		if k.OrderID == nil {
			return fmt.Errorf("expect %s needs the order_id of the answer", k.Expect)
		}
		if (k.Expect == Deducted) != (k.Deduct != nil) {
			return fmt.Errorf("deduct is given exactly for expect deducted")
		}
		if (k.Expect == Released) != (k.Topic == Cancelled) {
			return fmt.Errorf("expect released is the answer to a cancel, and only a cancel")
		}
	default:
		return fmt.Errorf("expect %q is not deducted, rejected/<reason>, released or dead_letter", k.Expect)
	}
	return nil
}

var template = regexp.MustCompile(`\{\{(\S+) (\d+)\}\}`)

// expand replaces the templates of the README in s.
func expand(s string) ([]byte, error) {
	var err error
	out := template.ReplaceAllStringFunc(s, func(m string) string {
		parts := template.FindStringSubmatch(m)
		n, _ := strconv.Atoi(parts[2])
		switch parts[1] {
		case "x", "[", "]":
			return strings.Repeat(parts[1], n)
		case "lines":
			lines := make([]string, n)
			for i := range lines {
				lines[i] = fmt.Sprintf(`{"goods_id":%d,"num":1}`, i+1)
			}
			return strings.Join(lines, ",")
		case "bytes":
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(i)
			}
			return string(b)
		}
		err = fmt.Errorf("unknown template %s", m)
		return m
	})
	return []byte(out), err
}

// Fuzz is an input a fuzz target of package events found, from its corpus
// file under events/testdata/fuzz.
type Fuzz struct {
	Target, File string
	Value        []byte
}

// LoadFuzz reads the single-[]byte inputs under dir (events/testdata/fuzz),
// target by target; a missing dir is no inputs.
func LoadFuzz(dir string) ([]Fuzz, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Fuzz
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
			continue // an input of a target with other arguments
		}
		v, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			return nil, fmt.Errorf("corpus: %s: %w", path, err)
		}
		out = append(out, Fuzz{Target: filepath.Base(filepath.Dir(path)), File: filepath.Base(path), Value: []byte(v)})
	}
	return out, nil
}
