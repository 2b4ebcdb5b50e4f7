package deploytest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The files under test, relative to this package's directory (go test runs
// a package's tests there).
var (
	rulesFile     = filepath.Join("..", "prometheus", "rules.yaml")
	rulesTestFile = filepath.Join("..", "prometheus", "rules_test.yaml")
	dashboardFile = filepath.Join("..", "grafana", "stockflow.json")
)

// installHint is the command that puts promtool and prometheus on PATH.
const installHint = "scripts/prometheus.sh install"

// requireTool returns the path of a Prometheus binary (promtool,
// prometheus). Without it the test is skipped with the command that installs
// it, and fails under CI=true, as a missing service does (testsvc.Require).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not on PATH (%v); install it with: %s", name, err, installHint)
	}
	t.Skipf("%s is not on PATH (%v); install it with: %s", name, err, installHint)
	return ""
}

// promtool runs promtool with args, within a minute, and returns its output.
func promtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := requireTool(t, "promtool")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

func TestPromtoolCheckRules(t *testing.T) {
	t.Parallel()
	out, err := promtool(t, "check", "rules", rulesFile)
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
	t.Logf("%s", out)
}

func TestPromtoolTestRules(t *testing.T) {
	t.Parallel()
	out, err := promtool(t, "test", "rules", rulesTestFile)
	if err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s", rulesTestFile, err, out)
	}
}
