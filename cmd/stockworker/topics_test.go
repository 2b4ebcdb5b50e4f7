package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/internal/testsvc"
)

// With CREATE_TOPICS=false, a topic that does not exist stops the worker at
// once with one line naming it: waiting cannot create it, and a worker that
// consumes nothing without a word looks healthy.
func TestMissingTopicStopsTheWorker(t *testing.T) {
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 1)
	missing := topics.Orders + ".not-created"
	env := workerEnv(dsn, topics, "atomic", "CREATE_TOPICS=false", "ORDERS_TOPIC="+missing, "HTTP_ADDR=127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildWorker(t))
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v after %v, want status 1\n%s", err, time.Since(start), stderr.String())
	}
	out := stderr.String()
	if !strings.Contains(out, missing) || !strings.Contains(out, "CREATE_TOPICS=false") {
		t.Fatalf("the error does not name the topic and the setting:\n%s", out)
	}
	for _, other := range []string{topics.Cancelled, topics.Events, topics.DLQ} {
		if strings.Contains(out, other+",") || strings.Contains(out, other+" do not") {
			t.Errorf("existing topic %s is called missing:\n%s", other, out)
		}
	}
	t.Logf("exited 1 after %v", time.Since(start).Round(time.Millisecond))
}
