package harness_test

import (
	"context"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/stockflow/stockflow/internal/harness"
)

func TestUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		u := harness.Unique("sf_")
		if !regexp.MustCompile(`^sf_[0-9a-f]{12}$`).MatchString(u) {
			t.Fatalf("Unique = %q", u)
		}
		if seen[u] {
			t.Fatalf("%q twice", u)
		}
		seen[u] = true
	}
}

func TestPreflight(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := ln.Addr().String()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := closed.Addr().String()
	closed.Close()
	defer ln.Close()

	ctx := context.Background()
	if err := harness.Preflight(ctx, harness.Service{Name: "Up", Addr: up}); err != nil {
		t.Fatalf("a listening service: %v", err)
	}
	err = harness.Preflight(ctx, harness.Service{Name: "MariaDB", Addr: down}, harness.Service{Name: "Up", Addr: up},
		harness.Service{Name: "Redis", Addr: ""})
	if err == nil {
		t.Fatal("a closed port passed")
	}
	msg := err.Error()
	lines := strings.Split(msg, "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "MariaDB is not reachable at "+down+" (") ||
		!strings.HasSuffix(lines[0], "; start it with: scripts/services.sh up") || !strings.Contains(lines[1], "Redis has no address") {
		t.Fatalf("error:\n%s", msg)
	}
	if strings.Contains(msg, "Up") {
		t.Fatalf("names a service that answers:\n%s", msg)
	}
}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	text := `# HELP stockflow_batch_size Messages per micro-batch.
# TYPE stockflow_batch_size histogram
stockflow_batch_size_bucket{le="1"} 3
stockflow_batch_size_bucket{le="+Inf"} 8
stockflow_batch_size_sum 1024
stockflow_batch_size_count 8
# TYPE stockflow_deduct_seconds histogram
stockflow_deduct_seconds_bucket{strategy="batch",le="+Inf"} 8
stockflow_deduct_seconds_sum{strategy="batch"} 0.25
stockflow_deduct_seconds_count{strategy="batch"} 8
stockflow_deduct_seconds_bucket{strategy="atomic",le="+Inf"} 2
stockflow_deduct_seconds_sum{strategy="atomic"} 0.5
stockflow_deduct_seconds_count{strategy="atomic"} 2
# TYPE stockflow_orders_total counter
stockflow_orders_total{outcome="deducted",replayed="false"} 1000
stockflow_orders_total{outcome="rejected",replayed="false"} 20
stockflow_orders_total{outcome="deducted",replayed="true"} 5
# TYPE stockflow_ready gauge
stockflow_ready 1
# TYPE stockflow_odd untyped
stockflow_odd{x="y"} 2.5
`
	m, err := harness.ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels harness.Labels
		want   float64
	}{
		{"stockflow_orders_total", nil, 1025},
		{"stockflow_orders_total", harness.Labels{"replayed": "false"}, 1020},
		{"stockflow_orders_total", harness.Labels{"replayed": "true", "outcome": "deducted"}, 5},
		{"stockflow_orders_total", harness.Labels{"replayed": "maybe"}, 0},
		{"stockflow_orders_total", harness.Labels{"no_such_label": ""}, 0},
		{"stockflow_ready", nil, 1},
		{"stockflow_odd", harness.Labels{"x": "y"}, 2.5},
		{"stockflow_missing_total", nil, 0},
	} {
		if got := m.Sum(c.name, c.labels); got != c.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if sum, count := m.Histogram("stockflow_batch_size", nil); sum != 1024 || count != 8 {
		t.Errorf("batch size: sum %v count %v", sum, count)
	}
	if sum, count := m.Histogram("stockflow_deduct_seconds", nil); sum != 0.75 || count != 10 {
		t.Errorf("deduct seconds: sum %v count %v", sum, count)
	}
	if sum, count := m.Histogram("stockflow_deduct_seconds", harness.Labels{"strategy": "atomic"}); sum != 0.5 || count != 2 {
		t.Errorf("deduct seconds of atomic: sum %v count %v", sum, count)
	}
	if _, err := harness.ParseMetrics(strings.NewReader("stockflow_orders_total{outcome=\"x\" 1\n")); err == nil {
		t.Error("a malformed page parsed")
	}
}
