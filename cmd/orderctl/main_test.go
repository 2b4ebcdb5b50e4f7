package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runCLI runs one orderctl command line in-process with env as the whole
// environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, _ := runCLI(t, nil, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d", args, code)
		}
		for _, want := range []string{"place ORDER_ID GOODS:NUM", "cancel ORDER_ID", "load -n N", "stock set GOODS=N",
			"stock get", "stock list", "watch", "demo", "KAFKA_BROKERS", "MYSQL_DSN", "REDIS_ADDR", "ORDERS_TOPIC",
			"CANCELLED_TOPIC", "EVENTS_TOPIC", "Examples:"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v does not mention %q", args, want)
			}
		}
	}
}

func TestEverySubcommandHasHelpWithExamples(t *testing.T) {
	t.Parallel()
	for _, cmd := range [][]string{{"place"}, {"cancel"}, {"load"}, {"stock"}, {"stock", "set"}, {"stock", "get"},
		{"stock", "list"}, {"watch"}, {"demo"}} {
		name := strings.Join(cmd, " ")
		for _, args := range [][]string{append([]string{"help"}, cmd...), append(cmd[:len(cmd):len(cmd)], "-help")} {
			code, out, errOut := runCLI(t, nil, args...)
			if code != 0 || errOut != "" {
				t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
			}
			if !strings.Contains(out, "orderctl "+name) || !strings.Contains(out, "Examples:") || !strings.Contains(out, "Usage:") {
				t.Errorf("%v: help lacks usage or examples:\n%s", args, out)
			}
		}
	}
}

func TestHelpNeverShowsThePassword(t *testing.T) {
	t.Parallel()
	env := map[string]string{"MYSQL_DSN": "app:s3cret@tcp(db:3306)/stockflow?parseTime=true"}
	code, out, _ := runCLI(t, env, "stock", "set", "-help")
	if code != 0 || strings.Contains(out, "s3cret") || !strings.Contains(out, "app:xxxxx@tcp(db:3306)") {
		t.Fatalf("exit %d, help:\n%s", code, out)
	}
}

func TestUsageErrorsExit2WithAShortMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{nil, "orderctl: no command given"},
		{[]string{"frob"}, `orderctl: unknown command "frob"`},
		{[]string{"help", "frob"}, `orderctl: unknown command "frob"`},
		{[]string{"place", "A1", "16:x"}, "orderctl place: 16:x: NUM must be a whole number ≥ 1\n"},
		{[]string{"place", "A1"}, "orderctl place: want ORDER_ID GOODS:NUM..."},
		{[]string{"place", "-bogus", "A1", "16:1"}, "orderctl place: flag provided but not defined: -bogus"},
		{[]string{"place", "-timeout", "soon", "A1", "16:1"}, `orderctl place: invalid value "soon" for flag -timeout`},
		{[]string{"cancel"}, "orderctl cancel: want exactly one ORDER_ID"},
		{[]string{"cancel", "A1", "A2"}, "orderctl cancel: want exactly one ORDER_ID"},
		{[]string{"load"}, "orderctl load: -n must be at least 1"},
		{[]string{"load", "-n", "5", "-goods", "warm"}, `orderctl load: -goods must be hot or spread, got "warm"`},
		{[]string{"stock"}, "orderctl stock: want set, get or list"},
		{[]string{"stock", "frob"}, `orderctl stock: unknown stock command "frob"`},
		{[]string{"stock", "set", "16=x"}, "orderctl stock set: 16=x: N must be a whole number ≥ 0"},
		{[]string{"stock", "set"}, "orderctl stock set: name at least one GOODS=N"},
		{[]string{"stock", "get", "x"}, "orderctl stock get: x: GOODS must be a whole number ≥ 1"},
		{[]string{"stock", "list", "-limit", "-1"}, "orderctl stock list: -limit must be ≥ 0"},
		{[]string{"watch", "extra"}, `orderctl watch: unexpected argument "extra"`},
		{[]string{"watch", "-n", "-2"}, "orderctl watch: -n must be ≥ 0"},
		{[]string{"demo", "-strategies", "spinlock"}, `orderctl demo: -strategies: "spinlock" is not one of`},
		{[]string{"demo", "-orders", "0"}, "orderctl demo: -orders must be in 1..10000"},
		{[]string{"place", "-kafka-brokers", " ", "A1", "16:1"}, "orderctl place: -kafka-brokers (KAFKA_BROKERS) is empty"},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(t, nil, tt.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", tt.args, code, errOut)
		}
		if !strings.HasPrefix(errOut, tt.want) && !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: stderr %q, want %q", tt.args, errOut, tt.want)
		}
		if n := strings.Count(errOut, "\n"); n > 2 {
			t.Errorf("%v: %d lines on stderr, want a short message:\n%s", tt.args, n, errOut)
		}
		if out != "" {
			t.Errorf("%v: stdout %q, want nothing", tt.args, out)
		}
	}
}

func TestFlagsMayFollowArguments(t *testing.T) {
	t.Parallel()
	cfg := configFromEnv(func(string) string { return "" })
	fs := newFlagSet("place", "", &cfg)
	wait := fs.Bool("wait", false, "")
	pos, err := fs.parse([]string{"A1", "-wait", "16:1", "-orders-topic", "x", "--", "-17:1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !*wait || cfg.OrdersTopic != "x" || strings.Join(pos, " ") != "A1 16:1 -17:1" {
		t.Fatalf("wait %v, topic %q, positional %q", *wait, cfg.OrdersTopic, pos)
	}
}

func TestConfigFromEnvAndFlags(t *testing.T) {
	t.Parallel()
	cfg := configFromEnv(func(k string) string {
		return map[string]string{"ORDERS_TOPIC": "env.orders", "KAFKA_BROKERS": "k1:9092, k2:9092"}[k]
	})
	if cfg.OrdersTopic != "env.orders" || cfg.EventsTopic != "stock.events" || cfg.CancelledTopic != "orders.cancelled" ||
		cfg.MySQLDSN != "root@tcp(127.0.0.1:3306)/stockflow?parseTime=true" || cfg.RedisAddr != "127.0.0.1:6379" {
		t.Fatalf("config = %+v", cfg)
	}
	if got := cfg.brokerList(); strings.Join(got, ",") != "k1:9092,k2:9092" {
		t.Fatalf("brokers = %q", got)
	}
	fs := newFlagSet("watch", "", &cfg)
	if _, err := fs.parse([]string{"-orders-topic", "flag.orders"}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if cfg.OrdersTopic != "flag.orders" {
		t.Fatalf("a flag must win over the environment: %q", cfg.OrdersTopic)
	}
	if d := configFromEnv(func(string) string { return "" }); d.Brokers != "localhost:9092" {
		t.Fatalf("default brokers %q", d.Brokers)
	}
	if got := (config{Brokers: "embedded"}).brokerList(); strings.Join(got, ",") != "127.0.0.1:9092" {
		t.Fatalf("embedded = %q", got)
	}
}

func TestRuntimeErrorIsOneLineExit1WithoutPassword(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: the connection is refused at once.
	env := map[string]string{"MYSQL_DSN": "app:s3cret@tcp(127.0.0.1:1)/stockflow?parseTime=true"}
	code, out, errOut := runCLI(t, env, "stock", "get", "16")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (stderr %q)", code, errOut)
	}
	if !strings.HasPrefix(errOut, "orderctl stock get: ") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("stderr is not one line: %q", errOut)
	}
	if strings.Contains(errOut, "s3cret") || strings.Contains(out, "s3cret") {
		t.Fatalf("the password leaked: %q", errOut)
	}
	if strings.Contains(errOut, "goroutine") || strings.Contains(errOut, "panic") {
		t.Fatalf("stack trace: %q", errOut)
	}
}
