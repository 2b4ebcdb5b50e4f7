package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
	res, raw, stdout, svg := smokeRun(t, dir, worker, "-short")
	if res.Failed != 0 || len(res.Runs) != 6 {
		t.Errorf("%d failed, %d runs; want 0 and 6 (seed-style and batch × 3 workloads)", res.Failed, len(res.Runs))
	}
	// -short runs the default lanes only, which is 1 for both strategies.
	if !strings.Contains(raw, `"lanes": 1,`) || !strings.Contains(raw, `"lanes_default": true`) {
		t.Errorf("results JSON has no lanes fields")
	}
	header, rows := tableRows(t, stdout)
	if header[2] != "workers" || header[3] != "lanes" {
		t.Errorf("table header %v: want lanes right after workers", header)
	}
	for _, r := range res.Runs {
		if r.Lanes != 1 || !r.LanesDefault || !strings.HasSuffix(r.Name, "/lanes=1") || !slices.Contains(r.WorkerEnv, "LANES=1") {
			t.Errorf("run %s: lanes %d (default %v), worker env %v; want LANES=1, the default", r.Name, r.Lanes, r.LanesDefault, r.WorkerEnv)
		}
		if rows[fmt.Sprintf("%s/%s/%d/1", r.Strategy, r.Workload, r.Workers)] == nil {
			t.Errorf("run %s has no table row with lanes 1:\n%s", r.Name, stdout)
		}
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
	if ol := res.OrderLimit; ol == nil || !ol.Correct || ol.OrdersPerS <= 0 || ol.LedgerRows != int64(ol.Orders) || ol.Conns != 16 {
		t.Errorf("order-limit %+v", ol)
	} else if rows["order-limit/spread/16/conns"] == nil {
		t.Errorf("no order-limit row in the table:\n%s", stdout)
	}
	checkCPU(t, res, rows)
	if res.Machine.NProc <= 0 || res.Machine.MariaDB == "unknown" {
		t.Errorf("machine %+v", res.Machine)
	}
	if root := wellFormed(t, svg); root != "svg" {
		t.Errorf("SVG root %q", root)
	}
	if !strings.Contains(stdout, "batch") || !strings.Contains(stdout, "stockbench — ") {
		t.Errorf("no table on stdout:\n%s", stdout)
	}
}

// TestSmokeLanes runs one strategy with the full matrix's lanes, 1 and the
// default, on one and two worker processes: the lanes=1 baseline runs with
// one process only, the default (DB_MAX_OPEN / CONSUMERS = 8) with both,
// and every run is correct.
func TestSmokeLanes(t *testing.T) {
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
	res, raw, stdout, _ := smokeRun(t, dir, worker, "-short", "-strategies", "atomic", "-workloads", "spread",
		"-workers", "1,2", "-lanes", "1,default", "-latency-seconds", "0.5", "-db-limit-seconds", "0")
	var got []string
	for _, r := range res.Runs {
		got = append(got, fmt.Sprintf("%s %d %v %s", r.Name, r.Lanes, r.LanesDefault, lanesIn(r.WorkerEnv)))
		if !r.Correct || r.OrdersPerS <= 0 {
			t.Errorf("run %s: correct %v, %.0f orders/s; error %q, problems %v", r.Name, r.Correct, r.OrdersPerS, r.Error, r.Check.Problems)
		}
	}
	want := []string{
		"atomic/spread/1/lanes=1 1 false LANES=1",
		"atomic/spread/1/lanes=8 8 true LANES=8",
		"atomic/spread/2/lanes=8 8 true LANES=8",
	}
	if !slices.Equal(got, want) {
		t.Errorf("runs\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(raw, `"lanes": 8,`) || !strings.Contains(raw, `"lanes_default": false`) {
		t.Errorf("results JSON lacks the lanes fields")
	}
	_, rows := tableRows(t, stdout)
	for _, key := range []string{"atomic/spread/1/1", "atomic/spread/1/8", "atomic/spread/2/8"} {
		if rows[key] == nil {
			t.Errorf("no table row %s:\n%s", key, stdout)
		}
	}
}

// smokeRun runs stockbench with args against the test services, requires exit
// code 0, and returns the results, the results JSON, the table (stdout) and
// the SVG.
func smokeRun(t *testing.T, dir, worker string, args ...string) (res results, raw, stdout string, svg []byte) {
	t.Helper()
	out, svgPath := filepath.Join(dir, "results.json"), filepath.Join(dir, "throughput.svg")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var outb, errb bytes.Buffer
	start := time.Now()
	code := run(ctx, append(args, "-worker", worker, "-out", out, "-svg", svgPath,
		"-mysql-dsn", testsvc.MySQLDSN(), "-kafka-brokers", strings.Join(testsvc.KafkaBrokers(), ","),
		"-redis-addr", testsvc.RedisAddr()), func(string) string { return "" }, &outb, &errb)
	t.Logf("stockbench %s took %s:\n%s", strings.Join(args, " "), time.Since(start).Round(time.Second), outb.String())
	if code != 0 {
		t.Fatalf("stockbench %s exited %d\nstderr:\n%s", strings.Join(args, " "), code, errb.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	svg, err = os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b), outb.String(), svg
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

// checkCPU requires the CPU figures of every run, and of the database and
// Kafka when they run on this machine (as in CI), in the JSON and the table.
func checkCPU(t *testing.T, res results, rows map[string][]string) {
	t.Helper()
	local := dsnIsLocal(testsvc.MySQLDSN()) && addrIsLocal(testsvc.KafkaBrokers()[0])
	busy := regexp.MustCompile(`^[0-9]+\.[0-9]{2}/[0-9]+$`)
	// A smoke run's throughput phase can be shorter than the kernel's CPU
	// accounting tick (10 ms), so one run may show 0 µs; the runs together
	// must not.
	var worker, dbUS, kafkaUS float64
	for _, r := range res.Runs {
		u := r.CPU
		if u == nil || u.WorkerUS < 0 || u.BusyCores < 0 {
			t.Errorf("run %s: CPU %+v, notes %v", r.Name, u, r.Notes)
			continue
		}
		worker += u.WorkerUS
		if local && (u.DBUS == nil || u.KafkaUS == nil) {
			t.Errorf("run %s: services on this machine but db %v, kafka %v µs per order", r.Name, u.DBUS, u.KafkaUS)
			continue
		}
		if local {
			dbUS, kafkaUS = dbUS+*u.DBUS, kafkaUS+*u.KafkaUS
		}
		row := rows[fmt.Sprintf("%s/%s/%d/%d", r.Strategy, r.Workload, r.Workers, r.Lanes)]
		if n := len(row); n < 5 || !busy.MatchString(row[n-2]) || row[n-5] == "-" || (local && (row[n-4] == "-" || row[n-3] == "-")) {
			t.Errorf("run %s: table row %v lacks the CPU columns", r.Name, row)
		}
	}
	if worker <= 0 || (local && (dbUS <= 0 || kafkaUS <= 0)) {
		t.Errorf("CPU per order summed over the runs: worker %.0f, db %.0f, kafka %.0f µs; want each above 0", worker, dbUS, kafkaUS)
	}
	if ol := res.OrderLimit; ol != nil && local && (ol.CPU == nil || ol.CPU.DBUS == nil || *ol.CPU.DBUS <= 0) {
		t.Errorf("order-limit CPU %+v", ol.CPU)
	}
}
