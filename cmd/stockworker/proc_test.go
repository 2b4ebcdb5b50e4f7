package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// workerProc is one stockworker process started by a test.
type workerProc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	logs *syncBuffer
	http string
	done chan error
}

// workerEnv is the environment of a stockworker on the test's database and topics.
func workerEnv(dsn string, topics testsvc.Topics, strategy string, extra ...string) []string {
	return append(append(os.Environ(),
		"KAFKA_BROKERS="+strings.Join(testsvc.KafkaBrokers(), ","),
		"MYSQL_DSN="+dsn,
		"LOCK_STRATEGY="+strategy,
		"REDIS_ADDR="+testsvc.RedisAddr(),
		"GROUP_ID="+topics.Orders+".group",
		"ORDERS_TOPIC="+topics.Orders,
		"CANCELLED_TOPIC="+topics.Cancelled,
		"EVENTS_TOPIC="+topics.Events,
		"DLQ_TOPIC="+topics.DLQ,
		"LOG_LEVEL=info",
	), extra...)
}

// startWorker starts a stockworker with env and its own HTTP port; the test's
// cleanup kills it if it is still running.
func startWorker(t *testing.T, name string, env []string) *workerProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &workerProc{t: t, name: name, logs: &syncBuffer{}, http: addr, done: make(chan error, 1)}
	p.cmd = exec.Command(buildWorker(t))
	p.cmd.Env = append(env, "HTTP_ADDR="+addr)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stop sends sig and waits at most bound for the exit; it returns the exit
// error (nil for exit 0) and how long the exit took.
func (p *workerProc) stop(sig os.Signal, bound time.Duration) (error, time.Duration) {
	p.t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%s: signal: %v", p.name, err)
	}
	select {
	case err := <-p.done:
		p.done <- err // keep it for cleanup
		return err, time.Since(start)
	case <-time.After(bound):
		p.t.Fatalf("%s did not exit within %v of %v\n%s", p.name, bound, sig, p.logs)
		return nil, 0
	}
}

// stopClean sends SIGTERM and requires exit 0 within 30s.
func (p *workerProc) stopClean() {
	p.t.Helper()
	if err, _ := p.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		p.t.Fatalf("%s exited with %v\n%s", p.name, err, p.logs)
	}
}

// get fetches path from the worker's HTTP server: status code and body, or 0
// when it does not answer.
func (p *workerProc) get(path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.http+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady polls /readyz until it reports want (true: 200) or bound passes.
func (p *workerProc) waitReady(want bool, bound time.Duration) bool {
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		code, _ := p.get("/readyz")
		if (code == http.StatusOK) == want && code != 0 {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// placeOrders publishes orders id(i) for i in [from, to) of one unit of goods,
// at most rate per second, and returns when all are acknowledged.
func placeOrders(t *testing.T, pub *producer.Publisher, topic string, goods int64, prefix string, from, to, rate int) {
	t.Helper()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := from; i < to; i++ {
		<-tick.C
		id := fmt.Sprintf("%s-%d", prefix, i)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := pub.Publish(ctx, kafka.Message{Topic: topic, Key: []byte(id),
			Value: []byte(fmt.Sprintf(`{"order_id":%q,"items":[{"goods_id":%d,"num":1}]}`, id, goods))})
		cancel()
		if err != nil {
			t.Errorf("place %s: %v", id, err)
			return
		}
	}
}
