package main

import (
	"net"
	"os"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP stockflow_batch_size messages per micro-batch
# TYPE stockflow_batch_size histogram
stockflow_batch_size_bucket{le="1"} 3
stockflow_batch_size_sum 1024
stockflow_batch_size_count 8
stockflow_deduct_seconds_sum{strategy="batch"} 0.25
stockflow_deduct_seconds_count{strategy="batch"} 8
stockflow_db_retries_total{cause="deadlock",strategy="batch"} 2
stockflow_db_retries_total{cause="guard",strategy="batch"} 1
stockflow_batch_retries_total{transient="true"} 4
stockflow_orders_total{outcome="deducted",replayed="false"} 1000
stockflow_orders_total{outcome="deducted",replayed="true"} 5
stockflow_orders_total{outcome="rejected",replayed="true"} 2
`
	s, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := metricsSnapshot{BatchSum: 1024, BatchCount: 8, DeductSum: 0.25, DeductCount: 8, DBRetries: 3, BatchRetries: 4, Replayed: 7}
	if s != want {
		t.Errorf("parsed %+v, want %+v", s, want)
	}
	if d := s.sub(s); d != (metricsSnapshot{}) {
		t.Errorf("s - s = %+v", d)
	}
}

func TestTailKeepsTheEnd(t *testing.T) {
	tl := &tail{max: 10}
	tl.Write([]byte("0123456789"))
	tl.Write([]byte("abc"))
	if got := tl.String(); got != "3456789abc" {
		t.Errorf("tail = %q", got)
	}
}

func TestProcReaders(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	hwm, err := procStatusKB(os.Getpid(), "VmHWM")
	if err != nil || hwm <= 0 {
		t.Fatalf("VmHWM of this process: %d, %v", hwm, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port, err := listenPort(os.Getpid())
	if err != nil || port != ln.Addr().(*net.TCPAddr).Port {
		t.Errorf("listenPort = %d, %v; want %d", port, err, ln.Addr().(*net.TCPAddr).Port)
	}
}
