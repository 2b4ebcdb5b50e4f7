package testsvc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisServerOptions configure a redis-server of the test's own.
type RedisServerOptions struct {
	// Config are redis.conf lines: requirepass, user (ACL) lines and such.
	Config []string
	// TLSCert and TLSKey, when set, open a TLS port (TLSAddr) beside the
	// plaintext one, with this certificate; clients need none of their own.
	TLSCert, TLSKey string
}

// RedisServer is a redis-server process started for one test, on free
// loopback ports, without persistence. The shared Redis (RedisAddr) is used
// by every test without a password; a test of passwords, ACL users or TLS
// runs its own.
type RedisServer struct {
	t       testing.TB
	Addr    string // plaintext, host:port
	TLSAddr string // TLS, host:port; empty without TLSCert
	conf    string

	mu   sync.Mutex // guards cmd and done
	cmd  *exec.Cmd
	done chan struct{}

	outMu sync.Mutex
	out   strings.Builder
}

// StartRedisServer starts redis-server with opts and stops it when the test
// ends. Without the redis-server binary the test is skipped (failed under
// CI=true), with the command that installs it.
func StartRedisServer(t testing.TB, opts RedisServerOptions) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found (%v): scripts/services.sh up redis installs it", err)
		}
		t.Skipf("redis-server not found (%v): scripts/services.sh up redis installs it", err)
	}
	dir := t.TempDir()
	s := &RedisServer{t: t, Addr: freeLoopback(t), conf: filepath.Join(dir, "redis.conf")}
	lines := []string{
		"bind 127.0.0.1",
		"port " + portOf(s.Addr),
		"save \"\"",
		"appendonly no",
		"dir " + dir,
		"daemonize no",
		"logfile \"\"",
	}
	if opts.TLSCert != "" {
		s.TLSAddr = freeLoopback(t)
		lines = append(lines, "tls-port "+portOf(s.TLSAddr), "tls-cert-file "+opts.TLSCert,
			"tls-key-file "+opts.TLSKey, "tls-auth-clients no")
	}
	lines = append(lines, opts.Config...)
	if err := os.WriteFile(s.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("redis-server %s output:\n%s", s.Addr, s.Output())
		}
	})
	s.Start()
	return s
}

// Start starts the server again after Stop, on the same ports and
// configuration, and waits until it accepts connections (at most 10s).
func (s *RedisServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return
	}
	cmd := exec.Command("redis-server", s.conf)
	cmd.Stdout = &lockedWriter{mu: &s.outMu, w: &s.out}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			s.t.Fatalf("redis-server exited at start: %s", s.Output())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server does not accept connections on %s within 10s: %v", s.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (SIGTERM, SIGKILL after 10s) and waits for its exit.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Output is what the server wrote so far.
func (s *RedisServer) Output() string {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.out.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// freeLoopback returns 127.0.0.1:<a port free a moment ago>.
func freeLoopback(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

var certsMu sync.Mutex

// Certs runs scripts/certs.sh with args ("server", "redis"; "other-ca") and
// returns the directory it prints. The script makes each file once; runs of
// one test binary are serialised.
func Certs(t testing.TB, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skipf("openssl not found (%v)", err)
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	certsMu.Lock()
	defer certsMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "certs.sh"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/certs.sh %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// repoRoot is the directory of go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
