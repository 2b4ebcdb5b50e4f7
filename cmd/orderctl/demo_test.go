package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/internal/testsvc"
)

// buildWorker builds stockworker for the test and returns the binary's path.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stockworker")
	build := exec.Command("go", "build", "-o", bin, "./cmd/stockworker")
	build.Dir = "../.." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestDemoIsExact runs `orderctl demo` for two strategies against a real
// stockworker binary built for the test: two worker processes each, 20
// concurrent orders for 10 items.
func TestDemoIsExact(t *testing.T) {
	t.Parallel()
	testsvc.Require(t, "Kafka", testsvc.KafkaBrokers()[0])
	mc, err := mysql.ParseDSN(testsvc.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	testsvc.Require(t, "MariaDB", mc.Addr)

	bin := buildWorker(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	err = runDemo(ctx, testConfig(), []string{"-worker", bin, "-strategies", "pessimistic,batch"}, &out, &errb)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo: %v\nstderr:\n%s", err, errb.String())
	}
	row := regexp.MustCompile(`(?m)^(pessimistic|batch)\s+10\s+10\s+0\s+0\s+\S+\s+exact$`)
	if got := row.FindAllString(out.String(), -1); len(got) != 2 {
		t.Fatalf("want an exact row for pessimistic and batch, got %q", got)
	}
	if !strings.Contains(out.String(), "\nall strategies exact\n") {
		t.Fatal("no verdict line")
	}
	if errb.Len() != 0 {
		t.Fatalf("stderr of a successful demo:\n%s", errb.String())
	}
}

func TestDemoJudge(t *testing.T) {
	t.Parallel()
	o := demoOptions{orders: 20, stock: 10}
	tests := []struct {
		name string
		r    demoResult
		want string // "" for exact
	}{
		{"exact", demoResult{answered: 20, deducted: 10, rejected: 10, finalStock: 0}, ""},
		{"oversold", demoResult{answered: 20, deducted: 12, rejected: 8, finalStock: 0}, "oversold 2"},
		{"lost update", demoResult{answered: 20, deducted: 10, rejected: 10, finalStock: 3}, "final stock 3, want 10 − 10 = 0"},
		{"negative", demoResult{answered: 20, deducted: 10, rejected: 10, finalStock: -1}, "negative stock -1"},
		{"lost orders", demoResult{answered: 17, deducted: 10, rejected: 7, finalStock: 0}, "3 of 20 orders unanswered"},
		{"undersold", demoResult{answered: 20, deducted: 9, rejected: 11, finalStock: 1}, "undersold: 9 deducted, 10 could be"},
	}
	for _, tt := range tests {
		r := tt.r
		r.strategy, r.stock = "x", 10
		r.judge(o)
		got := strings.Join(r.problems, "; ")
		if (tt.want == "") != r.exact() || !strings.Contains(got, tt.want) {
			t.Errorf("%s: problems %q, exact %v; want %q", tt.name, got, r.exact(), tt.want)
		}
	}
	over := demoResult{strategy: "x", stock: 10, answered: 20, deducted: 12, rejected: 8}
	if over.oversold() != 2 {
		t.Fatalf("oversold = %d", over.oversold())
	}
}
