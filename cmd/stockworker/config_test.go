package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stockflow/stockflow/events"
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
