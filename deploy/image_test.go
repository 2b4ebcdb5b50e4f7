package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/testsvc"
	"gorm.io/gorm"
)

// Bounds of the steps. The first build compiles both commands from a cold
// cache, which takes a minute or two on two cores.
const (
	engineBound  = 5 * time.Minute // scripts/docker.sh up, an apt-get install included
	buildBound   = 10 * time.Minute
	dockerBound  = 2 * time.Minute // one docker command
	readyBound   = 90 * time.Second
	outcomeBound = 60 * time.Second
	exitBound    = 30 * time.Second // SIGTERM to exit; SHUTDOWN_GRACE is 10s
	maxImageSize = 100 << 20        // two static binaries are ~40 MB; more means something crept in
)

// dockerCLI is the client the tests use: $DOCKER, else docker from PATH (the
// same rule as scripts/docker.sh and scripts/image.sh).
func dockerCLI() string { return testsvc.Env("DOCKER", "docker") }

// runCmd runs a command within ctx and returns its stdout; its stderr goes
// into the error.
func runCmd(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// docker runs one docker command, bounded by dockerBound.
func docker(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerBound)
	defer cancel()
	return runCmd(ctx, nil, dockerCLI(), args...)
}

// requireEngine starts the engine (scripts/docker.sh up). When it cannot
// start here the test fails under CI=true, where the engine is part of the
// suite, and is skipped with the reason otherwise.
func requireEngine(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineBound)
	defer cancel()
	start := time.Now()
	if _, err := runCmd(ctx, nil, "../scripts/docker.sh", "up"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: scripts/docker.sh up could not start the Docker engine, so the image cannot be tested: %v", err)
		}
		t.Skipf("no Docker engine could start here, so the image is not tested: %v", err)
	}
	t.Logf("engine up in %v", time.Since(start).Round(time.Millisecond))
}

// buildImage builds the image with a tag of its own (scripts/image.sh) and
// removes it when the test ends.
func buildImage(t *testing.T) string {
	t.Helper()
	image := "stockflow/stockworker:" + testsvc.Unique("test-")
	ctx, cancel := context.WithTimeout(context.Background(), buildBound)
	defer cancel()
	start := time.Now()
	if _, err := runCmd(ctx, []string{"IMAGE=" + image}, "../scripts/image.sh"); err != nil {
		t.Fatal(err)
	}
	t.Logf("built %s in %v", image, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if _, err := docker(t, "image", "rm", image); err != nil {
			t.Errorf("remove the test image: %v", err)
		}
	})
	return image
}

// imageInfo is the part of `docker image inspect` the tests check.
type imageInfo struct {
	Size   int64
	Config struct {
		User         string
		ExposedPorts map[string]struct{}
		Entrypoint   []string
		Labels       map[string]string
	}
	RootFS struct{ Layers []string }
}

// TestImage builds the offline image and runs it as it runs in production: a
// read-only root filesystem, user 65532, no capabilities. A worker in it gets
// ready, decides an order that orderctl (from the same image) placed, and on
// SIGTERM drains and exits 0.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs a container image")
	}
	requireEngine(t)
	// The services before the build, so a missing one is reported at once.
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 2)
	testsvc.Require(t, "Redis", testsvc.RedisAddr())
	image := buildImage(t)

	t.Run("config", func(t *testing.T) { checkImageConfig(t, image) })
	t.Run("commands", func(t *testing.T) { checkCommands(t, image) })
	t.Run("worker", func(t *testing.T) { runWorker(t, image, dsn, topics) })
}

func checkImageConfig(t *testing.T, image string) {
	out, err := docker(t, "image", "inspect", "--format", "{{json .}}", image)
	if err != nil {
		t.Fatal(err)
	}
	var info imageInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("docker image inspect: %v\n%s", err, out)
	}
	t.Logf("image size %.1f MB, %d layer(s)", float64(info.Size)/1e6, len(info.RootFS.Layers))
	if info.Size > maxImageSize {
		t.Errorf("image is %d bytes, more than %d", info.Size, maxImageSize)
	}
	c := info.Config
	if c.User != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532", c.User)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("EXPOSE %v, want 8080/tcp only", c.ExposedPorts)
	}
	if strings.Join(c.Entrypoint, " ") != "/usr/local/bin/stockworker" {
		t.Errorf("ENTRYPOINT %q, want /usr/local/bin/stockworker", c.Entrypoint)
	}
	for _, k := range []string{"title", "description", "source", "version", "revision", "licenses"} {
		if c.Labels["org.opencontainers.image."+k] == "" {
			t.Errorf("label org.opencontainers.image.%s missing", k)
		}
	}
	// The CA bundle, for TLS to brokers and databases: `docker cp` out of a
	// created (never started) container writes a tar stream, the file as it is.
	name := testsvc.Unique("stockflow-test-")
	if _, err := docker(t, "create", "--name", name, image); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := docker(t, "rm", name); err != nil {
			t.Errorf("remove the container: %v", err)
		}
	})
	if tar, err := docker(t, "cp", name+":/etc/ssl/certs/ca-certificates.crt", "-"); err != nil {
		t.Error(err)
	} else if n := strings.Count(tar, "-----BEGIN CERTIFICATE-----"); n < 10 {
		t.Errorf("/etc/ssl/certs/ca-certificates.crt holds %d certificates", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if head, err := runCmd(ctx, nil, "git", "rev-parse", "HEAD"); err == nil {
		if got := c.Labels["org.opencontainers.image.revision"]; got != strings.TrimSpace(head) {
			t.Errorf("revision label %q, want git HEAD %s", got, strings.TrimSpace(head))
		}
	}
}

// checkCommands runs both commands' help in the image, without a network.
func checkCommands(t *testing.T, image string) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{image, "-help"}, "stockworker migrate"},
		{[]string{"--entrypoint", "orderctl", image, "--help"}, "orderctl place"},
	} {
		args := append([]string{"run", "--rm", "--read-only", "--network", "none", "--cap-drop", "ALL"}, c.args...)
		// stockworker prints its help on stderr, orderctl on stdout.
		out, err := combined(args...)
		if err != nil {
			t.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		if !strings.Contains(out, c.want) {
			t.Errorf("docker %s printed no %q:\n%s", strings.Join(args, " "), c.want, out)
		}
	}
}

// runWorker runs the worker container against the real services and follows
// one order through it.
func runWorker(t *testing.T, image, dsn string, topics testsvc.Topics) {
	const goods, stock, num = 16, 5, 2
	g := openDB(t, dsn)
	testsvc.Stock(t, g, goods, stock)

	brokers := strings.Join(testsvc.KafkaBrokers(), ",")
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	name := testsvc.Unique("stockflow-test-")
	secure := []string{"--network", "host", "--read-only", "--user", "65532:65532",
		"--cap-drop", "ALL", "--security-opt", "no-new-privileges"}
	env := func(kv ...string) []string {
		var out []string
		for _, e := range kv {
			out = append(out, "-e", e)
		}
		return out
	}
	args := append(append([]string{"run", "-d", "--name", name}, secure...), env(
		"KAFKA_BROKERS="+brokers,
		"MYSQL_DSN="+dsn,
		"LOCK_STRATEGY=redis",
		"REDIS_ADDR="+testsvc.RedisAddr(),
		"REDIS_PREFIX="+testsvc.Unique("sftest:")+":",
		"GROUP_ID="+topics.Orders+".group",
		"ORDERS_TOPIC="+topics.Orders,
		"CANCELLED_TOPIC="+topics.Cancelled,
		"EVENTS_TOPIC="+topics.Events,
		"DLQ_TOPIC="+topics.DLQ,
		"HTTP_ADDR="+addr,
		"CONSUMERS=1",
		"SHUTDOWN_GRACE=10s",
	)...)
	args = append(args, image)
	start := time.Now()
	if _, err := docker(t, args...); err != nil {
		t.Fatal(err)
	}
	exited := waitExit(t, name)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("container log:\n%s", containerLog(t, name))
		}
		if _, err := docker(t, "rm", "-f", name); err != nil {
			t.Errorf("remove the container: %v", err)
		}
	})

	if err := waitReady(addr, exited, readyBound); err != nil {
		t.Fatal(err)
	}
	t.Logf("container ready in %v", time.Since(start).Round(time.Millisecond))

	// The order, placed by orderctl from the image.
	order := testsvc.Unique("image-")
	placeArgs := append(append([]string{"run", "--rm"}, secure...), env("KAFKA_BROKERS="+brokers, "ORDERS_TOPIC="+topics.Orders)...)
	placeArgs = append(placeArgs, "--entrypoint", "orderctl", image, "place", order, fmt.Sprintf("%d:%d", goods, num))
	if out, err := docker(t, placeArgs...); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("orderctl: %s", strings.TrimSpace(out))
	}

	var got *events.Outcome
	testsvc.CollectUntil(t, topics.Events, outcomeBound, func(msgs []kafka.Message) bool {
		for _, m := range msgs {
			o, err := events.DecodeOutcome(m.Value)
			if err != nil {
				t.Fatalf("undecodable outcome %q: %v", m.Value, err)
			}
			if o.OrderID == order {
				got = &o
				return true
			}
		}
		return false
	})
	if got == nil {
		t.Fatalf("no outcome for %s on %s within %v", order, topics.Events, outcomeBound)
	}
	if got.Type != "stock-deducted" {
		t.Fatalf("outcome %+v, want stock-deducted", *got)
	}
	if s := testsvc.Stocks(t, g, goods); s != stock-num {
		t.Fatalf("stock of goods %d is %d, want %d", goods, s, stock-num)
	}

	// SIGTERM: the worker drains, leaves the group and exits 0.
	if _, err := docker(t, "kill", "--signal", "TERM", name); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	select {
	case r := <-exited:
		if r.err != nil {
			t.Fatalf("docker wait: %v", r.err)
		}
		if r.code != 0 {
			t.Fatalf("exit status %d after SIGTERM, want 0", r.code)
		}
		t.Logf("exited 0 %v after SIGTERM", time.Since(stopped).Round(time.Millisecond))
	case <-time.After(exitBound):
		t.Fatalf("still running %v after SIGTERM", exitBound)
	}
	log := containerLog(t, name)
	for _, want := range []string{`"worker stopping"`, `"stockworker stopped"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not show the drain (%s):\n%s", want, log)
		}
	}
}

// exitResult is a container's exit status as `docker wait` printed it.
type exitResult struct {
	code int
	err  error
}

// waitExit runs `docker wait` for the container and delivers its exit
// status once. The goroutine is awaited when the test ends (removing the
// container ends `docker wait`; the context bounds it in any case).
func waitExit(t *testing.T, name string) <-chan exitResult {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan exitResult, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		out, err := runCmd(ctx, nil, dockerCLI(), "wait", name)
		r := exitResult{err: err}
		if err == nil {
			_, r.err = fmt.Sscan(out, &r.code)
		}
		ch <- r
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return ch
}

// waitReady polls /readyz until it answers 200, the container exits, or
// bound passes; it says what it last saw.
func waitReady(addr string, exited <-chan exitResult, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err != nil {
			last = err.Error()
		} else {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(body.String()))
		}
		select {
		case r := <-exited:
			return fmt.Errorf("the container exited (status %d, %v) before it was ready; last /readyz: %s", r.code, r.err, last)
		case <-ctx.Done():
			return fmt.Errorf("not ready within %v; last /readyz: %s", bound, last)
		case <-tick.C:
		}
	}
}

// containerLog is the container's output: stockworker logs to stderr, which
// `docker logs` writes to its own stderr.
func containerLog(t *testing.T, name string) string {
	out, err := combined("logs", name)
	if err != nil {
		return fmt.Sprintf("(docker logs: %v) %s", err, out)
	}
	return out
}

// combined runs one docker command, bounded by dockerBound, and returns its
// stdout and stderr together.
func combined(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, dockerCLI(), args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// openDB is a two-connection pool on dsn, closed when the test ends.
func openDB(t *testing.T, dsn string) *gorm.DB {
	t.Helper()
	return testsvc.Open(t, dsn, 2, nil)
}
