package deploytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// ruleFile is what the tests read of a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func (r rule) name() string { return r.Record + r.Alert }

func readRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s has no rules", rulesFile)
	}
	return out
}

// recorded returns the names the recording rules define.
func recorded(rules []rule) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules {
		if r.Record != "" {
			out[r.Record] = true
		}
	}
	return out
}

// alertExpr returns the expression of the alerting rule name.
func alertExpr(t *testing.T, rules []rule, name string) string {
	t.Helper()
	for _, r := range rules {
		if r.Alert == name {
			return r.Expr
		}
	}
	t.Fatalf("%s has no alert %s", rulesFile, name)
	return ""
}

// query is one PromQL expression and where it was found, for messages.
type query struct {
	where, expr string
}

// dashboard is the Grafana dashboard, decoded generically.
type dashboard map[string]any

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// panels returns every panel, those inside rows included.
func (d dashboard) panels() []map[string]any {
	var out []map[string]any
	var walk func(v any)
	walk = func(v any) {
		list, _ := v.([]any)
		for _, p := range list {
			if m, ok := p.(map[string]any); ok {
				out = append(out, m)
				walk(m["panels"])
			}
		}
	}
	walk(d["panels"])
	return out
}

// variables returns the dashboard's template variables.
func (d dashboard) variables() []map[string]any {
	tmpl, _ := d["templating"].(map[string]any)
	list, _ := tmpl["list"].([]any)
	var out []map[string]any
	for _, v := range list {
		if m, ok := v.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// queries returns every PromQL expression of the dashboard: each target's
// expr, and the series selector of each label_values() variable query, with
// Grafana's variables replaced by values (see expand).
func (d dashboard) queries(t *testing.T) []query {
	t.Helper()
	vars := map[string]string{
		"__rate_interval": "1m", "__interval": "1m", "__range": "1h",
		"__interval_ms": "60000", "__range_s": "3600", "__range_ms": "3600000",
	}
	for _, v := range d.variables() {
		name, _ := v["name"].(string)
		vars[name] = ".+" // what "All" of a multi-value variable selects
	}
	var out []query
	for _, p := range d.panels() {
		targets, _ := p["targets"].([]any)
		for i, tg := range targets {
			m, _ := tg.(map[string]any)
			expr, ok := m["expr"].(string)
			if !ok {
				continue
			}
			where := fmt.Sprintf("panel %q target %d", p["title"], i)
			e, err := expand(expr, vars)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			out = append(out, query{where: where, expr: e})
		}
	}
	for _, v := range d.variables() {
		if v["type"] != "query" {
			continue
		}
		q := v["query"]
		if m, ok := q.(map[string]any); ok {
			q = m["query"]
		}
		s, _ := q.(string)
		where := fmt.Sprintf("variable %q", v["name"])
		m := labelValues.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("%s: query %q is not label_values(series, label)", where, s)
			continue
		}
		out = append(out, query{where: where, expr: m[1]})
	}
	return out
}

var (
	grafanaVar  = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)
	labelValues = regexp.MustCompile(`^\s*label_values\((.+),\s*(\w+)\s*\)\s*$`)
)

// expand replaces Grafana's variables ($name, ${name}, ${name:fmt},
// [[name]]) by the values in vars; an unknown variable is an error.
func expand(expr string, vars map[string]string) (string, error) {
	var unknown []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(s string) string {
		m := grafanaVar.FindStringSubmatch(s)
		name := m[1] + m[2] + m[3]
		v, ok := vars[name]
		if !ok {
			unknown = append(unknown, s)
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown Grafana variable %v in %q", unknown, expr)
	}
	return out, nil
}

// checkQuery parses q and checks that every series it selects is a series in
// known (then only with label matchers on labels that series has) or a name
// in recorded. It returns the names it selects.
func checkQuery(q query, known map[string]series, recorded map[string]bool) ([]string, error) {
	expr, err := parser.ParseExpr(q.expr)
	if err != nil {
		return nil, fmt.Errorf("%s: %q does not parse: %w", q.where, q.expr, err)
	}
	var names []string
	var errs []error
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && name == "" {
				if m.Type != labels.MatchEqual {
					errs = append(errs, fmt.Errorf("%s: %s selects no single metric name", q.where, vs))
					return nil
				}
				name = m.Value
			}
		}
		names = append(names, name)
		if recorded[name] {
			return nil
		}
		s, ok := known[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %s is neither a series the worker exports nor a recording rule of %s", q.where, name, rulesFile))
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name != labels.MetricName && !slices.Contains(s.labels, m.Name) {
				errs = append(errs, fmt.Errorf("%s: %s has no label %q (it has %v)", q.where, name, m.Name, s.labels))
			}
		}
		return nil
	})
	return names, errors.Join(errs...)
}

func TestDashboardQueriesReadExportedSeries(t *testing.T) {
	known, rec := exported(t), recorded(readRules(t))
	qs := readDashboard(t).queries(t)
	if len(qs) < 10 {
		t.Fatalf("only %d queries found in %s", len(qs), dashboardFile)
	}
	for _, q := range qs {
		if _, err := checkQuery(q, known, rec); err != nil {
			t.Error(err)
		}
	}
}

func TestRuleExpressionsReadExportedSeries(t *testing.T) {
	rules := readRules(t)
	known, rec := exported(t), recorded(rules)
	for _, r := range rules {
		if _, err := checkQuery(query{where: "rule " + r.name(), expr: r.Expr}, known, rec); err != nil {
			t.Error(err)
		}
	}
}

func TestRecordingRulesAreUsed(t *testing.T) {
	rules := readRules(t)
	known, rec := exported(t), recorded(rules)
	used := map[string]bool{}
	qs := readDashboard(t).queries(t)
	for _, r := range rules {
		qs = append(qs, query{where: "rule " + r.name(), expr: r.Expr})
	}
	for _, q := range qs {
		names, _ := checkQuery(q, known, rec) // errors are the tests above's
		for _, n := range names {
			used[n] = true
		}
	}
	for name := range rec {
		if !used[name] {
			t.Errorf("recording rule %s is used by no alert, rule or dashboard panel", name)
		}
	}
}

func TestAlertsSayWhatToDo(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range readRules(t) {
		if r.Alert == "" {
			continue
		}
		if seen[r.Alert] {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s has no %s", r.Alert, a)
			}
		}
	}
	if len(seen) < 6 {
		t.Errorf("only %d alerts", len(seen))
	}
}

// Every alert has a unit test where it fires and one where it must not.
func TestEveryAlertHasFiringAndQuietTests(t *testing.T) {
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	if !slices.Contains(f.RuleFiles, "rules.yaml") {
		t.Errorf("%s does not load rules.yaml: %v", rulesTestFile, f.RuleFiles)
	}
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	var alerts []string
	for _, r := range readRules(t) {
		if r.Alert != "" {
			alerts = append(alerts, r.Alert)
		}
	}
	sort.Strings(alerts)
	for _, a := range alerts {
		if !firing[a] {
			t.Errorf("no test in %s where %s fires", rulesTestFile, a)
		}
		if !quiet[a] {
			t.Errorf("no test in %s where %s stays quiet", rulesTestFile, a)
		}
	}
}

func TestDashboardIsImportable(t *testing.T) {
	d := readDashboard(t)
	for _, k := range []string{"uid", "title"} {
		if s, _ := d[k].(string); s == "" {
			t.Errorf("dashboard has no %s", k)
		}
	}
	ids := map[float64]string{}
	for _, p := range d.panels() {
		title, _ := p["title"].(string)
		id, _ := p["id"].(float64)
		if other, dup := ids[id]; dup {
			t.Errorf("panels %q and %q share id %v", other, title, id)
		}
		ids[id] = title
		if p["type"] == "row" {
			continue
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", title)
		}
		// Every query names the datasource variable, so the dashboard works
		// on whatever Prometheus it is imported next to.
		for _, tg := range append(targets, p) {
			m, _ := tg.(map[string]any)
			ds, _ := m["datasource"].(map[string]any)
			if ds["uid"] != "${datasource}" {
				t.Errorf("panel %q: datasource %v, want the ${datasource} variable", title, m["datasource"])
			}
		}
	}
}

func TestExpandGrafanaVariables(t *testing.T) {
	vars := map[string]string{"job": ".+", "__rate_interval": "1m"}
	got, err := expand(`rate(x{job=~"$job"}[$__rate_interval]) + y{job=~"${job:regex}"} + z{job=~"[[job]]"}`, vars)
	if err != nil {
		t.Fatal(err)
	}
	if want := `rate(x{job=~".+"}[1m]) + y{job=~".+"} + z{job=~".+"}`; got != want {
		t.Errorf("expand = %s, want %s", got, want)
	}
	if _, err := expand(`x{pod="$pod"}`, vars); err == nil {
		t.Error("an unknown variable was accepted")
	}
}

// The checker itself: a typo, a wrong label and a histogram's bare name are
// caught; a recording rule and a well-formed query pass.
func TestCheckQueryCatchesMistakes(t *testing.T) {
	known := exported(t)
	rec := map[string]bool{"job:stockflow_orders:rate5m": true}
	for _, tc := range []struct {
		expr string
		ok   bool
	}{
		{`sum by (outcome) (rate(stockflow_orders_total{job="a", replayed="false"}[5m]))`, true},
		{`job:stockflow_orders:rate5m{outcome="deducted"}`, true},
		{`histogram_quantile(0.99, sum by (le) (rate(stockflow_deduct_seconds_bucket[5m])))`, true},
		{`{__name__="stockflow_ready"}`, true},
		{`rate(stockflow_order_total[5m])`, false},
		{`stockflow_orders_total{result="released"}`, false},
		{`rate(stockflow_deduct_seconds[5m])`, false},
		{`job:stockflow_orders:rate1m`, false},
		{`{__name__=~"stockflow_.+"}`, false},
		{`sum(rate(stockflow_orders_total[5m])`, false},
	} {
		_, err := checkQuery(query{where: "test", expr: tc.expr}, known, rec)
		if (err == nil) != tc.ok {
			t.Errorf("checkQuery(%s) = %v, want ok %v", tc.expr, err, tc.ok)
		}
	}
}
