package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/producer"
)

// The limits, the poison policy and the Redis prefix are configuration: they
// reach the worker, bad values are refused with a clear message, and -help
// lists them.
func TestPoisonAndLimitSettings(t *testing.T) {
	env := map[string]string{"MAX_MESSAGE_BYTES": "2048", "MAX_LINES": "7", "MAX_NUM": "99", "MAX_ORDER_ID_BYTES": "64",
		"POISON_ATTEMPTS": "3", "REDIS_PREFIX": "shop1:"}
	c, err := parseConfig(nil, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := events.Limits{MaxMessageBytes: 2048, MaxLines: 7, MaxNum: 99, MaxOrderIDBytes: 64}
	w := c.workerConfig([]string{"b:1"}, nil)
	if w.Limits != want || w.PoisonAttempts != 3 || c.RedisPrefix != "shop1:" {
		t.Fatalf("limits %+v, poison attempts %d, prefix %q", w.Limits, w.PoisonAttempts, c.RedisPrefix)
	}

	defaults, err := parseConfig(nil, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if defaults.Limits != events.DefaultLimits() || defaults.PoisonAttempts != 6 || defaults.RedisPrefix != "stockflow:goods:" {
		t.Fatalf("defaults: %+v, %d, %q", defaults.Limits, defaults.PoisonAttempts, defaults.RedisPrefix)
	}

	bad := map[string]string{"MAX_ORDER_ID_BYTES": "300", "MAX_NUM": "0", "POISON_ATTEMPTS": "0", "MAX_LINES": "-1", "MAX_MESSAGE_BYTES": "0"}
	_, err = parseConfig(nil, func(k string) string { return bad[k] }, &bytes.Buffer{})
	if err == nil {
		t.Fatal("bad limits accepted")
	}
	for _, msg := range []string{"MAX_ORDER_ID_BYTES must be in 1..255", "MAX_NUM must be in 1..2147483647", "POISON_ATTEMPTS must be at least 1",
		"MAX_LINES must be at least 1", "MAX_MESSAGE_BYTES must be at least 1"} {
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("error %q does not say %q", err, msg)
		}
	}

	var out bytes.Buffer
	if code := run(context.Background(), []string{"-help"}, func(string) string { return "" }, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, v := range []string{"MAX_MESSAGE_BYTES", "MAX_LINES", "MAX_NUM", "MAX_ORDER_ID_BYTES", "POISON_ATTEMPTS", "REDIS_PREFIX"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("help does not mention %s", v)
		}
	}
}

// LANES defaults to the pool shared among the consumers.
func TestLanesDefaultToThePool(t *testing.T) {
	for env, want := range map[string]int{"": 8, "LANES=3": 3, "DB_MAX_OPEN=5": 2, "DB_MAX_OPEN=1": 1, "CONSUMERS=1": 16, "LOCK_STRATEGY=batch": 1} {
		k, v, _ := strings.Cut(env, "=")
		c, err := parseConfig(nil, func(name string) string {
			if name == k {
				return v
			}
			return ""
		}, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.workerConfig([]string{"b:1"}, nil).Lanes; got != want {
			t.Errorf("%s: lanes %d, want %d", env, got, want)
		}
	}
	if _, err := parseConfig(nil, func(k string) string { return map[string]string{"LANES": "-1"}[k] }, &bytes.Buffer{}); err == nil {
		t.Error("LANES=-1 accepted")
	}
}

// OUTCOME_PARTITIONER defaults to the Java client's murmur2, keeps fnv1a (the
// placement before it) on request, refuses anything else by name, and -help
// lists it.
func TestOutcomePartitionerSetting(t *testing.T) {
	for env, want := range map[string]producer.Partitioner{"": producer.Murmur2, "murmur2": producer.Murmur2, "fnv1a": producer.FNV1a} {
		c, err := parseConfig(nil, func(k string) string { return map[string]string{"OUTCOME_PARTITIONER": env}[k] }, &bytes.Buffer{})
		if err != nil {
			t.Fatalf("OUTCOME_PARTITIONER=%q: %v", env, err)
		}
		if producer.Partitioner(c.Partitioner) != want {
			t.Errorf("OUTCOME_PARTITIONER=%q: partitioner %q, want %q", env, c.Partitioner, want)
		}
	}
	c, err := parseConfig([]string{"-outcome-partitioner", "fnv1a"}, func(k string) string {
		return map[string]string{"OUTCOME_PARTITIONER": "murmur2"}[k]
	}, &bytes.Buffer{})
	if err != nil || c.Partitioner != "fnv1a" {
		t.Fatalf("the flag does not win over the environment: %q, %v", c.Partitioner, err)
	}
	for _, bad := range []string{"hash", "Murmur2", "random"} {
		_, err := parseConfig(nil, func(k string) string { return map[string]string{"OUTCOME_PARTITIONER": bad}[k] }, &bytes.Buffer{})
		if want := `OUTCOME_PARTITIONER "` + bad + `" is not one of: murmur2, fnv1a`; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("OUTCOME_PARTITIONER=%s: error %v, want %q", bad, err, want)
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"-help"}, func(string) string { return "" }, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "OUTCOME_PARTITIONER") {
		t.Error("help does not mention OUTCOME_PARTITIONER")
	}
}
