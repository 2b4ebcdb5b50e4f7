package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/internal/testsvc"
)

// TestSmoke runs `stockbench -short` end to end against the real services:
// it builds stockworker, runs the smoke matrix, and requires every run to be
// correct and the JSON and SVG to be written. Without the services it is
// skipped (failed under CI=true), like every integration test.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end smoke benchmark; not with -short")
	}
	cfg, err := mysql.ParseDSN(testsvc.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	testsvc.Require(t, "MariaDB", cfg.Addr)
	testsvc.Require(t, "Kafka", testsvc.KafkaBrokers()[0])

	dir := t.TempDir()
	worker := buildWorker(t, dir)
	out, svg := filepath.Join(dir, "results.json"), filepath.Join(dir, "throughput.svg")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"-short", "-worker", worker, "-out", out, "-svg", svg,
		"-mysql-dsn", testsvc.MySQLDSN(), "-kafka-brokers", strings.Join(testsvc.KafkaBrokers(), ","),
		"-redis-addr", testsvc.RedisAddr()}, func(string) string { return "" }, &stdout, &stderr)
	t.Logf("stockbench -short took %s:\n%s", time.Since(start).Round(time.Second), stdout.String())
	if code != 0 {
		t.Fatalf("stockbench -short exited %d\nstderr:\n%s", code, stderr.String())
	}

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	if res.Failed != 0 || len(res.Runs) != 6 {
		t.Errorf("%d failed, %d runs; want 0 and 6 (seed-style and batch × 3 workloads)", res.Failed, len(res.Runs))
	}
	for _, r := range res.Runs {
		if !r.Correct || r.OrdersPerS <= 0 || r.Latency == nil || r.Latency.P99MS <= 0 || r.PeakRSSMB <= 0 {
			t.Errorf("run %s: correct %v, %.0f orders/s, latency %+v, RSS %.0f MB; error %q, problems %v",
				r.Name, r.Correct, r.OrdersPerS, r.Latency, r.PeakRSSMB, r.Error, r.Check.Problems)
		}
		if r.Check.Deducted+r.Check.Rejected != r.Orders+r.Latency.Orders+6 {
			t.Errorf("run %s: %d decisions for %d orders and 6 warm-ups", r.Name, r.Check.Deducted+r.Check.Rejected, r.Orders+r.Latency.Orders)
		}
	}
	if res.DBLimit == nil || !res.DBLimit.Correct || res.DBLimit.UpdatesPerS <= 0 {
		t.Errorf("db-limit %+v", res.DBLimit)
	}
	if res.Machine.NProc <= 0 || res.Machine.MariaDB == "unknown" {
		t.Errorf("machine %+v", res.Machine)
	}
	s, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if root := wellFormed(t, s); root != "svg" {
		t.Errorf("SVG root %q", root)
	}
	if !strings.Contains(stdout.String(), "batch") || !strings.Contains(stdout.String(), "stockbench — ") {
		t.Errorf("no table on stdout:\n%s", stdout.String())
	}
}

// buildWorker builds stockworker from this module into dir.
func buildWorker(t *testing.T, dir string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build stockworker with")
	}
	mod, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(mod)) == "" {
		t.Fatalf("find the module root: %v", err)
	}
	bin := filepath.Join(dir, "stockworker")
	cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/stockworker")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(mod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/stockworker: %v\n%s", err, out)
	}
	return bin
}
