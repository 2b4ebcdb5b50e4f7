package main

import (
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/prometheus/procfs"
)

// Where the machine's CPU goes during a throughput phase: the worker
// processes, the database server and the Kafka brokers, when those run on
// this machine (the benchmark's usual set-up, where they share its cores).
// Read from /proc with prometheus/procfs, which client_golang already uses
// for the worker's process_cpu_seconds_total.

// cpuUse is the CPU of one throughput phase, per order. DB and Kafka are nil
// when that service does not run on this machine (or could not be read).
type cpuUse struct {
	WorkerUS float64  `json:"worker_us_per_order"`
	DBUS     *float64 `json:"db_us_per_order,omitempty"`
	KafkaUS  *float64 `json:"kafka_us_per_order,omitempty"`
	// BusyCores is the machine's non-idle CPU over the phase, in cores
	// (all processes, the benchmark's own producer and reader included);
	// StealCores the part of it the hypervisor gave to other guests.
	BusyCores  float64 `json:"busy_cores"`
	StealCores float64 `json:"steal_cores"`
	Cores      int     `json:"cores"`
}

// cpuMeter samples the CPU time of the processes a run cares about.
type cpuMeter struct {
	fs            procfs.FS
	db, kafka     []int // local server processes; empty: not on this machine
	dbOK, kafkaOK bool
}

// cpuSample is one reading, in CPU seconds since each process started (the
// machine's since boot).
type cpuSample struct {
	at                time.Time
	worker, db, kafka float64
	busy, steal       float64
}

// newCPUMeter finds the database server and Kafka brokers on this machine,
// when dsn and brokers point at it (no brokers: Kafka is not measured). It fails only when /proc cannot be read.
func newCPUMeter(dsn string, brokers []string) (*cpuMeter, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, fmt.Errorf("cpu: %w", err)
	}
	m := &cpuMeter{fs: fs}
	if dsnIsLocal(dsn) {
		m.db = findProcs(fs, func(comm string, _ []string) bool { return comm == "mariadbd" || comm == "mysqld" })
		m.dbOK = len(m.db) > 0
	}
	if len(brokers) == 0 || slices.ContainsFunc(brokers, func(b string) bool { return !addrIsLocal(b) }) {
		return m, nil
	}
	m.kafka = findProcs(fs, func(_ string, args []string) bool { return slices.Contains(args, "kafka.Kafka") })
	m.kafkaOK = len(m.kafka) > 0
	return m, nil
}

// findProcs returns the pids of the processes match accepts.
func findProcs(fs procfs.FS, match func(comm string, args []string) bool) []int {
	procs, err := fs.AllProcs()
	if err != nil {
		return nil
	}
	var pids []int
	for _, p := range procs {
		comm, err := p.Comm()
		if err != nil {
			continue
		}
		args, _ := p.CmdLine()
		if match(comm, args) {
			pids = append(pids, p.PID)
		}
	}
	return pids
}

// sample reads the CPU time of workers, the local servers and the machine.
func (m *cpuMeter) sample(workers []int) (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	var err error
	if s.worker, err = m.cpuOf(workers); err != nil {
		return s, fmt.Errorf("cpu of the workers: %w", err)
	}
	if m.dbOK {
		if s.db, err = m.cpuOf(m.db); err != nil {
			m.dbOK = false // restarted or gone: no figure rather than a wrong one
		}
	}
	if m.kafkaOK {
		if s.kafka, err = m.cpuOf(m.kafka); err != nil {
			m.kafkaOK = false
		}
	}
	st, err := m.fs.Stat()
	if err != nil {
		return s, fmt.Errorf("cpu of the machine: %w", err)
	}
	c := st.CPUTotal
	// guest time is already counted in user time
	s.busy = c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
	s.steal = c.Steal
	return s, nil
}

func (m *cpuMeter) cpuOf(pids []int) (float64, error) {
	var sum float64
	for _, pid := range pids {
		p, err := m.fs.Proc(pid)
		if err != nil {
			return 0, err
		}
		st, err := p.Stat()
		if err != nil {
			return 0, err
		}
		sum += st.CPUTime()
	}
	return sum, nil
}

// use is the CPU between samples a and b, per order of orders.
func (m *cpuMeter) use(a, b cpuSample, orders int) *cpuUse {
	wall := b.at.Sub(a.at).Seconds()
	if orders <= 0 || wall <= 0 {
		return nil
	}
	per := func(d float64) float64 { return d * 1e6 / float64(orders) }
	u := &cpuUse{
		WorkerUS:   per(b.worker - a.worker),
		BusyCores:  (b.busy - a.busy) / wall,
		StealCores: (b.steal - a.steal) / wall,
		Cores:      runtime.NumCPU(),
	}
	if m.dbOK {
		v := per(b.db - a.db)
		u.DBUS = &v
	}
	if m.kafkaOK {
		v := per(b.kafka - a.kafka)
		u.KafkaUS = &v
	}
	return u
}

// dsnIsLocal reports whether dsn names a server on this machine: a unix
// socket or a loopback address.
func dsnIsLocal(dsn string) bool {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return false
	}
	if cfg.Net == "unix" {
		return true
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:3306" // the driver's default
	}
	return addrIsLocal(addr)
}

// addrIsLocal reports whether host:port is a loopback address or localhost.
func addrIsLocal(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// cpuCols are the table's CPU columns of u: worker, db and kafka µs per
// order, and the machine's busy cores; "-" where there is no figure.
func cpuCols(u *cpuUse) (worker, db, kafka, busy string) {
	if u == nil {
		return "-", "-", "-", "-"
	}
	us := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatFloat(*v, 'f', 0, 64)
	}
	w := u.WorkerUS
	return us(&w), us(u.DBUS), us(u.KafkaUS), fmt.Sprintf("%.2f/%d", u.BusyCores, u.Cores)
}

// cpuSummary is u for a progress line: ", CPU µs/order worker 95, db 210,
// kafka 60; 1.93 of 2 cores busy"; "" without figures.
func cpuSummary(u *cpuUse) string {
	if u == nil {
		return ""
	}
	w, d, k, _ := cpuCols(u)
	return fmt.Sprintf(", CPU µs/order worker %s, db %s, kafka %s; %.2f of %d cores busy (steal %.2f)", w, d, k, u.BusyCores, u.Cores, u.StealCores)
}
