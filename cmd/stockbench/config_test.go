package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

func TestParseNSpec(t *testing.T) {
	s, err := parseNSpec("20000, seed-style=3000,pessimistic=5000")
	if err != nil {
		t.Fatal(err)
	}
	if s.For("batch") != 20000 || s.For(seedStyle) != 3000 || s.For("pessimistic") != 5000 {
		t.Errorf("parsed %+v", s)
	}
	if got := s.String(); got != "20000,seed-style=3000,pessimistic=5000" {
		t.Errorf("String() = %q", got)
	}
	for _, bad := range []string{"", "seed-style=5", "0", "-3", "x", "20000,nosuch=5", "20000,batch=0"} {
		if _, err := parseNSpec(bad); err == nil {
			t.Errorf("parseNSpec(%q) accepted", bad)
		}
	}
}

func TestParseOptionsDefaults(t *testing.T) {
	o, err := parseOptions(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Strategies, strategyNames()) || !slices.Equal(o.Workloads, allWorkloads) || !slices.Equal(o.Workers, []int{1, 2}) {
		t.Errorf("matrix = %v × %v × %v", o.Strategies, o.Workloads, o.Workers)
	}
	if o.Rate != 1000 || o.Out != "bench/results.json" || o.SVG != "bench/throughput.svg" || o.Worker != "bin/stockworker" {
		t.Errorf("defaults = %+v", o)
	}
	if o.N.For("batch") != 20000 {
		t.Errorf("-n batch = %d", o.N.For("batch"))
	}
	if !slices.Equal(o.Lanes, []int{1, 0}) {
		t.Errorf("-lanes = %v, want the baseline and the default [1 0]", o.Lanes)
	}
}

func TestParseOptionsShortKeepsExplicitFlags(t *testing.T) {
	o, err := parseOptions([]string{"-short", "-workloads", "hot", "-rate", "50"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Strategies, []string{seedStyle, "batch"}) || !slices.Equal(o.Workers, []int{1}) {
		t.Errorf("short matrix = %v × %v", o.Strategies, o.Workers)
	}
	if !slices.Equal(o.Workloads, []string{"hot"}) || o.Rate != 50 {
		t.Errorf("explicit flags lost: workloads %v rate %v", o.Workloads, o.Rate)
	}
	if o.N.For("batch") != 500 || o.Timeout != 40*time.Second {
		t.Errorf("short N %d timeout %s", o.N.For("batch"), o.Timeout)
	}
	if !slices.Equal(o.Lanes, []int{0}) {
		t.Errorf("short -lanes = %v, want the default only [0]", o.Lanes)
	}
	o, err = parseOptions([]string{"-short", "-lanes", "1,4"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Lanes, []int{1, 4}) {
		t.Errorf("explicit -lanes lost under -short: %v", o.Lanes)
	}
}

func TestParseLanes(t *testing.T) {
	for in, want := range map[string][]int{
		"1,0":               {1, 0},
		"default":           {0},
		"0,default":         {0},
		" default, 8 ,1,8 ": {1, 8, 0},
		"16,2,,4":           {2, 4, 16},
		"256":               {256},
	} {
		got, err := parseLanes("-lanes", in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseLanes(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", " , ", "-1", "x", "1.5", "257", "defaults", "1,,nine"} {
		if got, err := parseLanes("-lanes", bad); err == nil {
			t.Errorf("parseLanes(%q) accepted: %v", bad, got)
		} else if !strings.Contains(err.Error(), "-lanes") {
			t.Errorf("parseLanes(%q): error %q does not name the flag", bad, err)
		}
	}
}

func TestParseOptionsOrdersAndRejects(t *testing.T) {
	o, err := parseOptions([]string{"-strategies", "batch, seed-style,batch", "-workers", "2,1"}, func(k string) string {
		if k == "KAFKA_BROKERS" {
			return "a:1,b:2"
		}
		return ""
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Strategies, []string{seedStyle, "batch"}) || !slices.Equal(o.Workers, []int{1, 2}) {
		t.Errorf("not in table order: %v %v", o.Strategies, o.Workers)
	}
	if !slices.Equal(o.Brokers, []string{"a:1", "b:2"}) {
		t.Errorf("brokers from KAFKA_BROKERS = %v", o.Brokers)
	}
	for _, args := range [][]string{
		{"-strategies", "fastest"},
		{"-workloads", "cold"},
		{"-workers", "0"},
		{"-n", "lots"},
		{"-rate", "0"},
		{"-worker-env", "NOVALUE"},
		{"-worker-env", "CONSUMERS=3,LANES=4"},
		{"-lanes", "-2"},
		{"-lanes", ""},
		{"-lanes", "some"},
		{"extra"},
	} {
		_, err := parseOptions(args, noEnv, io.Discard)
		if err == nil {
			t.Errorf("parseOptions(%q) accepted", args)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("parseOptions(%q): empty error", args)
		}
	}
}

func TestWorkerSettings(t *testing.T) {
	o := options{BatchSize: 512, BatchWait: 2 * time.Millisecond, WorkerEnv: []string{"CONSUMERS=3"}}
	// seed-style is one lane whatever it is given.
	if got := workerSettings(o, seedStyle, 8); !slices.Contains(got, "LOCK_STRATEGY=pessimistic") || !slices.Contains(got, "BATCH_SIZE=1") ||
		lanesIn(got) != "LANES=1" {
		t.Errorf("seed-style settings %v", got)
	}
	if got := workerSettings(o, "atomic", 8); lanesIn(got) != "LANES=8" {
		t.Errorf("atomic settings %v, want LANES=8 once", got)
	}
	got := workerSettings(o, "batch", 1)
	for _, want := range []string{"LOCK_STRATEGY=batch", "BATCH_SIZE=512", "BATCH_WAIT=2ms", "CONSUMERS=3", "LANES=1"} {
		if !slices.Contains(got, want) {
			t.Errorf("batch settings %v lack %s", got, want)
		}
	}
	// The inherited environment's stockworker settings are removed by
	// harness.StartWorkers (tested there), so only these apply.
	if n := consumersOf(got); n != 3 {
		t.Errorf("CONSUMERS of %v = %d, want 3", got, n)
	}
}

// lanesIn returns the one LANES entry of env, or all of them joined.
func lanesIn(env []string) string {
	var l []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "LANES=") {
			l = append(l, kv)
		}
	}
	return strings.Join(l, " ")
}

// The DSN comes from MYSQL_DSN unless -mysql-dsn is given, and -help never
// prints it: it may hold a password.
func TestMySQLDSNFromEnvNotInHelp(t *testing.T) {
	const secret = "s3cret-in-the-env"
	env := func(k string) string {
		if k == "MYSQL_DSN" {
			return "bench:" + secret + "@tcp(127.0.0.1:3306)/x"
		}
		return ""
	}
	var help strings.Builder
	if _, err := parseOptions([]string{"-help"}, env, &help); err == nil {
		t.Fatalf("-help: no error")
	}
	if strings.Contains(help.String(), secret) || !strings.Contains(help.String(), "-mysql-dsn") {
		t.Errorf("-help shows the password of MYSQL_DSN, or no -mysql-dsn:\n%s", help.String())
	}
	o, err := parseOptions(nil, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.MySQLDSN != env("MYSQL_DSN") {
		t.Errorf("DSN %q, want MYSQL_DSN's", o.MySQLDSN)
	}
	if o, err = parseOptions([]string{"-mysql-dsn", "a@tcp(h:1)/y"}, env, io.Discard); err != nil || o.MySQLDSN != "a@tcp(h:1)/y" {
		t.Errorf("-mysql-dsn: %q, %v", o.MySQLDSN, err)
	}
	if o, err = parseOptions(nil, noEnv, io.Discard); err != nil || o.MySQLDSN != defaultDSN {
		t.Errorf("no MYSQL_DSN: %q, %v; want %s", o.MySQLDSN, err, defaultDSN)
	}
}
