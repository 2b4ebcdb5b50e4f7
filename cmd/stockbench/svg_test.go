package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func sampleResults() *results {
	return &results{
		Machine: machine{NProc: 2, CPUModel: `AMD "EPYC" <test> & co`, MariaDB: "10.11", Kafka: "4.1.1"},
		DBLimit: &dbLimitResult{UpdatesPerS: 9000, Correct: true},
		Runs: []*runResult{
			{Name: "seed-style/hot/1/lanes=1", Strategy: seedStyle, Workload: "hot", Workers: 1, Lanes: 1, LanesDefault: true, OrdersPerS: 210, Correct: true},
			{Name: "mutex/hot/2/lanes=8", Strategy: "mutex", Workload: "hot", Workers: 2, Lanes: 8, LanesDefault: true, Skipped: "one process only"},
			{Name: "atomic/hot/1/lanes=1", Strategy: "atomic", Workload: "hot", Workers: 1, Lanes: 1, OrdersPerS: 700, Correct: true},
			{Name: "atomic/hot/1/lanes=8", Strategy: "atomic", Workload: "hot", Workers: 1, Lanes: 8, LanesDefault: true, OrdersPerS: 2600, Correct: true},
			{Name: "atomic/hot/2/lanes=8", Strategy: "atomic", Workload: "hot", Workers: 2, Lanes: 8, LanesDefault: true, OrdersPerS: 3100, Correct: true},
			{Name: "batch/hot/1/lanes=1", Strategy: "batch", Workload: "hot", Workers: 1, Lanes: 1, LanesDefault: true, OrdersPerS: 23000, Correct: true},
			{Name: "batch/spread/1/lanes=1", Strategy: "batch", Workload: "spread", Workers: 1, Lanes: 1, LanesDefault: true, OrdersPerS: 18000, Correct: false, Error: "x"},
			{Name: "batch/hot/2/lanes=1", Strategy: "batch", Workload: "hot", Workers: 2, Lanes: 1, LanesDefault: true, OrdersPerS: 0.5, Correct: true},
		},
	}
}

// legacyResults is a results file written before lanes: no lanes fields.
const legacyResults = `{
  "machine": {"nproc": 2, "mariadb": "10.11", "kafka": "4.1.1"},
  "options": {"rate": 1000, "latency_seconds": 3},
  "runs": [
    {"name": "seed-style/hot/1", "strategy": "seed-style", "workload": "hot", "workers": 1, "orders": 2000, "orders_per_s": 210, "correct": true},
    {"name": "batch/hot/1", "strategy": "batch", "workload": "hot", "workers": 1, "orders": 20000, "orders_per_s": 23000, "correct": true},
    {"name": "mutex/hot/2", "strategy": "mutex", "workload": "hot", "workers": 2, "orders": 0, "skipped": "one process only"}
  ]
}`

// barOf returns the SVG group of the bar whose title starts with name, or "".
func barOf(svg, name string) string {
	i := strings.Index(svg, "<g><title>"+name+": ")
	if i < 0 {
		return ""
	}
	j := strings.Index(svg[i:], "</g>")
	return svg[i : i+j]
}

// xOf returns the x attribute of the first element of s.
func xOf(t *testing.T, s string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, ` x="`)
	x, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 {
		t.Fatalf("no x in %q", s)
	}
	return x
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
	for _, want := range []string{seedStyle, "batch", "mutex", "hot", "spread", "db-limit", "target", "FAIL", "n/a", "2 worker processes",
		"batch/spread/1/lanes=1: failed", "default lanes of the strategy", "other -lanes", ">lanes</text>"} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if strings.Contains(s, "NaN") || strings.Contains(s, "Inf") {
		t.Error("SVG contains NaN or Inf coordinates")
	}
}

// Each bar says its lanes: in its title, under it, and by its look — the
// default solid, the lanes=1 baseline light and hatched — and a strategy's
// lanes keep their place from panel to panel.
func TestSVGLanes(t *testing.T) {
	s := string(renderSVG(sampleResults()))
	base, def, def2, seed := barOf(s, "atomic/hot/1/lanes=1"), barOf(s, "atomic/hot/1/lanes=8"), barOf(s, "atomic/hot/2/lanes=8"), barOf(s, "seed-style/hot/1/lanes=1")
	if base == "" || def == "" || def2 == "" || seed == "" {
		t.Fatalf("bars missing: baseline %q default %q default, 2 workers %q seed-style %q", base, def, def2, seed)
	}
	if !strings.Contains(base, `class="light"`) || !strings.Contains(base, "url(#hatch)") {
		t.Errorf("the lanes=1 baseline is not light and hatched: %s", base)
	}
	for _, g := range []string{def, def2, seed} {
		if strings.Contains(g, `class="light"`) || !strings.Contains(g, "default lanes") {
			t.Errorf("a default-lanes bar is not solid or not titled so: %s", g)
		}
	}
	if xOf(t, base) == xOf(t, def) {
		t.Errorf("the baseline and the default share x %s", xOf(t, base))
	}
	if xOf(t, def) != xOf(t, def2) {
		t.Errorf("atomic lanes=8 at x %s with one worker, %s with two", xOf(t, def), xOf(t, def2))
	}
	for _, want := range []string{`fill="#555">1</text>`, `fill="#555">8</text>`, `<pattern id="hatch"`} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

// A results file from before lanes still renders: no lanes row, no light bars.
func TestSVGLegacyResults(t *testing.T) {
	var res results
	if err := json.Unmarshal([]byte(legacyResults), &res); err != nil {
		t.Fatal(err)
	}
	b := renderSVG(&res)
	if root := wellFormed(t, b); root != "svg" {
		t.Errorf("root element %q", root)
	}
	s := string(b)
	if !strings.Contains(s, "batch/hot/1: 23000 orders/s, lanes unknown") {
		t.Errorf("legacy bar title missing:\n%s", s)
	}
	if strings.Contains(s, `class="light"`) || strings.Contains(s, ">lanes</text>") || strings.Contains(s, "other -lanes") {
		t.Errorf("a legacy chart claims lanes:\n%s", s)
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
	for _, want := range []string{"db-limit", "ERROR", "skipped", "batch/spread/1/lanes=1: x", "110×", "lanes: LANES of the workers", "(8 here)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// tableRows returns the table's lines split into fields, by first field +
// workers + lanes ("atomic/1/8"), and the header's fields.
func tableRows(t *testing.T, out string) (header []string, rows map[string][]string) {
	t.Helper()
	rows = map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "strategy":
			header = f
		case header != nil && len(f) >= 5 && !strings.HasSuffix(f[0], ":"):
			rows[f[0]+"/"+f[1]+"/"+f[2]+"/"+f[3]] = f
		}
	}
	if header == nil {
		t.Fatalf("no header:\n%s", out)
	}
	return header, rows
}

// The lanes column comes right after workers and holds each run's LANES.
func TestTableLanesColumn(t *testing.T) {
	res := sampleResults()
	computeRatios(res)
	var b bytes.Buffer
	printTable(&b, res)
	header, rows := tableRows(t, b.String())
	if want := []string{"strategy", "workload", "workers", "lanes", "orders"}; !slices.Equal(header[:5], want) {
		t.Errorf("header %v, want it to begin %v", header, want)
	}
	for _, key := range []string{"atomic/hot/1/1", "atomic/hot/1/8", "atomic/hot/2/8", "seed-style/hot/1/1", "batch/hot/2/1", "mutex/hot/2/8"} {
		if rows[key] == nil {
			t.Errorf("no row %s:\n%s", key, b.String())
		}
	}
	// ×seed: both atomic lanes against the one seed-style run of hot/1.
	if r := rows["atomic/hot/1/1"]; r != nil && r[6] != "3.33×" {
		t.Errorf("atomic lanes=1 ×seed %q, want 3.33×: %v", r[6], r)
	}
	if r := rows["atomic/hot/1/8"]; r != nil && r[6] != "12.4×" {
		t.Errorf("atomic lanes=8 ×seed %q, want 12.4×: %v", r[6], r)
	}
}

// stockbench -from renders a results file from before lanes: lanes "-".
func TestReplayLegacyResults(t *testing.T) {
	dir := t.TempDir()
	from := filepath.Join(dir, "old.json")
	if err := os.WriteFile(from, []byte(legacyResults), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	svg := filepath.Join(dir, "old.svg")
	if code := run(t.Context(), []string{"-from", from, "-svg", svg}, noEnv, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	header, rows := tableRows(t, stdout.String())
	if header[3] != "lanes" {
		t.Errorf("header %v", header)
	}
	for _, key := range []string{"seed-style/hot/1/-", "batch/hot/1/-", "mutex/hot/2/-"} {
		if rows[key] == nil {
			t.Errorf("no row %s with lanes -:\n%s", key, stdout.String())
		}
	}
	if strings.Contains(stdout.String(), "lanes: LANES") {
		t.Errorf("a legacy table explains lanes it does not have:\n%s", stdout.String())
	}
	if b, err := os.ReadFile(svg); err != nil || wellFormed(t, b) != "svg" {
		t.Errorf("SVG of the legacy results: %v", err)
	}
}

// The JSON of a run carries its lanes and whether they were the default.
func TestResultJSONLanes(t *testing.T) {
	spec := runSpec{Strategy: "atomic", Workload: "spread", Workers: 1, N: 10, Lanes: lanesSetting{Lanes: 8, Default: true}}
	b, err := json.Marshal(spec.result())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name":"atomic/spread/1/lanes=8"`, `"lanes":8`, `"lanes_default":true`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
}
