package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stockflow/stockflow/internal/harness"
)

func TestMetricsSnapshot(t *testing.T) {
	text := `# HELP stockflow_batch_size messages per micro-batch
# TYPE stockflow_batch_size histogram
stockflow_batch_size_bucket{le="1"} 3
stockflow_batch_size_bucket{le="+Inf"} 8
stockflow_batch_size_sum 1024
stockflow_batch_size_count 8
# TYPE stockflow_deduct_seconds histogram
stockflow_deduct_seconds_bucket{strategy="batch",le="+Inf"} 8
stockflow_deduct_seconds_sum{strategy="batch"} 0.25
stockflow_deduct_seconds_count{strategy="batch"} 8
# TYPE stockflow_db_retries_total counter
stockflow_db_retries_total{cause="deadlock",strategy="batch"} 2
stockflow_db_retries_total{cause="guard",strategy="batch"} 1
# TYPE stockflow_batch_retries_total counter
stockflow_batch_retries_total{transient="true"} 4
# TYPE stockflow_orders_total counter
stockflow_orders_total{outcome="deducted",replayed="false"} 1000
stockflow_orders_total{outcome="deducted",replayed="true"} 5
stockflow_orders_total{outcome="rejected",replayed="true"} 2
`
	m, err := harness.ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	s := snapshotOf(m)
	want := metricsSnapshot{BatchSum: 1024, BatchCount: 8, DeductSum: 0.25, DeductCount: 8, DBRetries: 3, BatchRetries: 4, Replayed: 7}
	if s != want {
		t.Errorf("snapshot %+v, want %+v", s, want)
	}
	if d := s.sub(s); d != (metricsSnapshot{}) {
		t.Errorf("s - s = %+v", d)
	}
	if d := s.add(s).sub(s); d != s {
		t.Errorf("s + s - s = %+v", d)
	}
}

func TestConsumersOf(t *testing.T) {
	if n := consumersOf([]string{"LOCK_STRATEGY=batch"}); n != defaultConsumers {
		t.Errorf("default: %d", n)
	}
	if n := consumersOf([]string{"CONSUMERS=2", "BATCH_SIZE=9", "CONSUMERS=3"}); n != 3 {
		t.Errorf("the last setting must win: %d", n)
	}
}

func TestProcStatus(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	hwm, err := procStatusKB(os.Getpid(), "VmHWM")
	if err != nil || hwm <= 0 {
		t.Fatalf("VmHWM of this process: %d, %v", hwm, err)
	}
}
