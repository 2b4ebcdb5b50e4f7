package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

func sampleResults() *results {
	return &results{
		Machine: machine{NProc: 2, CPUModel: `AMD "EPYC" <test> & co`, MariaDB: "10.11", Kafka: "4.1.1"},
		DBLimit: &dbLimitResult{UpdatesPerS: 9000, Correct: true},
		Runs: []*runResult{
			{Name: "seed-style/hot/1", Strategy: seedStyle, Workload: "hot", Workers: 1, OrdersPerS: 210, Correct: true},
			{Name: "batch/hot/1", Strategy: "batch", Workload: "hot", Workers: 1, OrdersPerS: 23000, Correct: true},
			{Name: "batch/spread/1", Strategy: "batch", Workload: "spread", Workers: 1, OrdersPerS: 18000, Correct: false, Error: "x"},
			{Name: "mutex/hot/2", Strategy: "mutex", Workload: "hot", Workers: 2, Skipped: "one process only"},
			{Name: "batch/hot/2", Strategy: "batch", Workload: "hot", Workers: 2, OrdersPerS: 0.5, Correct: true},
		},
	}
}

// wellFormed parses b as XML and returns the root element's name.
func wellFormed(t *testing.T, b []byte) string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return root
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
			if se.Name.Space != "http://www.w3.org/2000/svg" {
				t.Errorf("root namespace %q", se.Name.Space)
			}
		}
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	b := renderSVG(sampleResults())
	if root := wellFormed(t, b); root != "svg" {
		t.Errorf("root element %q, want svg", root)
	}
	s := string(b)
	for _, want := range []string{seedStyle, "batch", "mutex", "hot", "spread", "db-limit", "target", "FAIL", "n/a", "2 worker processes"} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if strings.Contains(s, "NaN") || strings.Contains(s, "Inf") {
		t.Error("SVG contains NaN or Inf coordinates")
	}
}

func TestSVGWithoutResults(t *testing.T) {
	if root := wellFormed(t, renderSVG(&results{})); root != "svg" {
		t.Errorf("root element %q", root)
	}
}

func TestTableMarksFailures(t *testing.T) {
	res := sampleResults()
	computeRatios(res)
	var b bytes.Buffer
	printTable(&b, res)
	out := b.String()
	for _, want := range []string{"db-limit", "ERROR", "skipped", "batch/spread/1: x", "110×"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
