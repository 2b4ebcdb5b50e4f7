package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/kafkaconn"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

// The seed scenario through the broker's SASL_SSL listener, with each SASL
// mechanism: TLS on (the services' CA), the worker creates its topics,
// consumes, publishes and commits over it; orders go in over it too.
func TestSASLSeedScenario(t *testing.T) {
	for _, mechanism := range kafkaconn.Mechanisms() {
		t.Run(mechanism, func(t *testing.T) {
			t.Parallel()
			saslSeedScenario(t, mechanism)
		})
	}
}

func saslSeedScenario(t *testing.T, mechanism string) {
	const orders, stock = 20, 10
	b := testsvc.KafkaSASL(t)
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 3)
	pool := openDSN(t, dsn)
	testsvc.Stock(t, pool, 16, stock)
	ws := startWorkers(t, "worker", 1, workerEnv(dsn, topics, "atomic", b.Env(mechanism)...))
	if err := ws.WaitReady(true, time.Minute); err != nil {
		t.Fatal(err)
	}
	waitAssigned(t, topics, testConsumers)

	pub := producer.New([]string{b.Addr}, producer.Options{Security: b.Security(t, mechanism)})
	defer pub.Close()
	var wg sync.WaitGroup
	for i := range orders {
		id := fmt.Sprintf("sasl-%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := pub.Publish(ctx, kafka.Message{Topic: topics.Orders, Key: []byte(id),
				Value: []byte(fmt.Sprintf(`{"order_id":%q,"items":[{"goods_id":16,"num":1}]}`, id))}); err != nil {
				t.Errorf("place %s: %v", id, err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	answers := map[string]string{} // order id → "type/reason"
	read := 0
	testsvc.CollectUntil(t, topics.Events, 90*time.Second, func(got []kafka.Message) bool {
		for _, m := range got[read:] {
			o, err := events.DecodeOutcome(m.Value)
			if err != nil {
				t.Fatalf("undecodable outcome %q: %v", m.Value, err)
			}
			answers[o.OrderID] = o.Type + "/" + o.Reason
		}
		read = len(got)
		return len(answers) >= orders
	})
	count := map[string]int{}
	for _, a := range answers {
		count[a]++
	}
	if len(answers) != orders || count["stock-deducted/"] != stock || count["stock-rejected/insufficient_stock"] != orders-stock {
		t.Fatalf("%d orders answered: %v; want %d, %d deducted and %d rejected", len(answers), count, orders, stock, orders-stock)
	}
	if s := testsvc.Stocks(t, pool, 16); s != 0 {
		t.Fatalf("final stock = %d, want 0", s)
	}
	for _, e := range ws.Stop(syscall.SIGTERM, 30*time.Second) {
		if !e.Clean() {
			t.Errorf("%v", e.Problem())
		}
	}
	log := ws.List()[0].Log()
	if want := `"kafka_security":"SASL_SSL (` + mechanism + `, user ` + b.Username + `)"`; !strings.Contains(log, want) {
		t.Errorf("the log does not say %s:\n%s", want, log)
	}
	if strings.Contains(log, b.Password) {
		t.Errorf("the password is in the log:\n%s", log)
	}
}

// A wrong password stops the worker at start: exit status 1 within 30s, one
// error line that says the credentials were rejected and names the user,
// never the password, and no retry loop.
func TestSASLWrongPasswordStopsTheWorker(t *testing.T) {
	t.Parallel()
	b := testsvc.KafkaSASL(t)
	const wrong = "wrong-Pa55word-of-the-test"
	env := append(b.Env(kafkaconn.ScramSHA512), kafkaconn.EnvPassword+"="+wrong)
	errLine := refusedAtStart(t, env)
	for _, want := range []string{`Kafka rejected the SASL credentials of user \"` + b.Username + `\" (SCRAM-SHA-512)`, "KAFKA_SASL_PASSWORD"} {
		if !strings.Contains(errLine, want) {
			t.Errorf("the error line does not say %s:\n%s", want, errLine)
		}
	}
}

// A broker certificate the configured CA did not sign stops the worker at
// start, also with CREATE_TOPICS=false (the worker then only reads the
// topics' metadata).
func TestSASLUntrustedCertificateStopsTheWorker(t *testing.T) {
	t.Parallel()
	b := testsvc.KafkaSASL(t)
	ca := testsvc.UntrustedCA(t)
	for _, create := range []string{"true", "false"} {
		t.Run("CREATE_TOPICS="+create, func(t *testing.T) {
			t.Parallel()
			env := append(b.Env(kafkaconn.Plain), kafkaconn.EnvCAFile+"="+ca, "CREATE_TOPICS="+create)
			errLine := refusedAtStart(t, env)
			for _, want := range []string{"the Kafka broker's certificate is not signed by the CA of KAFKA_TLS_CA_FILE=" + ca, "x509"} {
				if !strings.Contains(errLine, want) {
					t.Errorf("the error line does not say %s:\n%s", want, errLine)
				}
			}
		})
	}
}

// refusedAtStart runs a worker on the test's database and topics with the
// Kafka settings of extra, expects it to exit with status 1 within 30s with
// exactly one error line and no retry, none of it holding the SASL password
// of extra, and returns the error line.
func refusedAtStart(t *testing.T, extra []string) string {
	t.Helper()
	dsn := testsvc.DatabaseDSN(t)
	topics := testsvc.NewTopics(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildWorker(t))
	cmd.Env = workerEnv(dsn, topics, "atomic", append(extra, "HTTP_ADDR=")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v after %v, want status 1\n%s", err, took, out.String())
	}
	if took > 30*time.Second {
		t.Errorf("exited after %v, want within 30s", took)
	}
	var password string
	for _, kv := range extra {
		if v, ok := strings.CutPrefix(kv, kafkaconn.EnvPassword+"="); ok {
			password = v
		}
	}
	if password != "" && strings.Contains(out.String(), password) {
		t.Errorf("the password is in the output:\n%s", out.String())
	}
	var errLines []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.Contains(line, `"level":"error"`) {
			errLines = append(errLines, line)
		}
		if strings.Contains(line, "will retry") {
			t.Errorf("a retry before the exit: %s", line)
		}
	}
	if len(errLines) != 1 {
		t.Fatalf("%d error lines, want 1:\n%s", len(errLines), out.String())
	}
	t.Logf("exited 1 after %v: %s", took.Round(time.Millisecond), errLines[0])
	return errLines[0]
}
