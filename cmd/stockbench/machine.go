package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
)

// machine describes where the numbers were measured.
type machine struct {
	NProc             int    `json:"nproc"`
	CPUModel          string `json:"cpu_model"`
	MemTotalMB        int64  `json:"mem_total_mb"`
	Kernel            string `json:"kernel"`
	Go                string `json:"go"`
	MariaDB           string `json:"mariadb"`
	FlushLogAtCommit  string `json:"innodb_flush_log_at_trx_commit"`
	InnoDBBufferPool  string `json:"innodb_buffer_pool_size"`
	Kafka             string `json:"kafka"`
	KafkaVersionFound string `json:"kafka_version_source"`
}

func (m machine) String() string { return m.hardware() + "; " + m.software() }

func (m machine) hardware() string {
	return fmt.Sprintf("%d × %s, %d MB RAM, Linux %s", m.NProc, m.CPUModel, m.MemTotalMB, m.Kernel)
}

func (m machine) software() string {
	return fmt.Sprintf("MariaDB %s (innodb_flush_log_at_trx_commit=%s); Kafka %s; %s", m.MariaDB, m.FlushLogAtCommit, m.Kafka, m.Go)
}

// describeMachine gathers the machine line. Nothing in it is fatal: what
// cannot be found is reported as unknown.
func describeMachine(ctx context.Context, d *runDB, kafkaVersion string) machine {
	m := machine{NProc: runtime.NumCPU(), CPUModel: "unknown", Kernel: "unknown", Go: runtime.Version(),
		MariaDB: "unknown", FlushLogAtCommit: "?", Kafka: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, err := procMeminfoKB("MemTotal"); err == nil {
		m.MemTotalMB = kb / 1024
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if d != nil {
		row := d.sql.QueryRowContext(ctx, "SELECT VERSION(), @@innodb_flush_log_at_trx_commit, @@innodb_buffer_pool_size")
		var v, flush, pool string
		if err := row.Scan(&v, &flush, &pool); err == nil {
			m.MariaDB, m.FlushLogAtCommit, m.InnoDBBufferPool = v, flush, pool
		}
	}
	switch {
	case kafkaVersion != "":
		m.Kafka, m.KafkaVersionFound = kafkaVersion, "-kafka-version / KAFKA_VERSION"
	default:
		if v := localKafkaVersion(); v != "" {
			m.Kafka, m.KafkaVersionFound = v, "jar of the local broker process"
		}
	}
	return m
}

func procMeminfoKB(field string) (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == field {
			var n int64
			_, err := fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
			return n, err
		}
	}
	return 0, fmt.Errorf("/proc/meminfo has no %s", field)
}

var kafkaJar = regexp.MustCompile(`kafka_2\.1[0-9]-([0-9]+\.[0-9]+\.[0-9]+)\.jar`)

// localKafkaVersion finds the version of a Kafka broker running on this
// machine from the kafka_2.13-X.Y.Z.jar on its class path. The broker
// protocol does not tell its version; "" when there is no such process.
func localKafkaVersion() string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "kafka.Kafka") {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i, a := range args {
			if (a != "-cp" && a != "-classpath") || i+1 >= len(args) {
				continue
			}
			for _, entry := range strings.Split(args[i+1], ":") {
				if v := kafkaJar.FindStringSubmatch(entry); v != nil {
					return v[1]
				}
				if strings.HasSuffix(entry, "/*") {
					jars, _ := filepath.Glob(strings.TrimSuffix(entry, "*") + "kafka_2.1*.jar")
					for _, j := range jars {
						if v := kafkaJar.FindStringSubmatch(filepath.Base(j)); v != nil {
							return v[1]
						}
					}
				}
			}
		}
	}
	return ""
}
