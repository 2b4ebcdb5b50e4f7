package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/kafkaconn"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

// saslEnv is an environment that talks to the SASL_SSL listener with
// mechanism (testsvc.SASLBroker.Env), plus the test services.
func saslEnv(b testsvc.SASLBroker, mechanism string, extra ...string) map[string]string {
	env := map[string]string{"MYSQL_DSN": testsvc.MySQLDSN(), "REDIS_ADDR": testsvc.RedisAddr()}
	for _, kv := range append(b.Env(mechanism), extra...) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// place and watch over SASL_SSL, configured by the environment, the
// password from a file.
func TestPlaceAndWatchOverSASL(t *testing.T) {
	t.Parallel()
	b := testsvc.KafkaSASL(t)
	topics := testsvc.NewTopics(t, 2)
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(b.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := saslEnv(b, kafkaconn.Plain, kafkaconn.EnvPassword+"=", kafkaconn.EnvPasswordFile+"="+pwFile,
		"ORDERS_TOPIC="+topics.Orders, "EVENTS_TOPIC="+topics.Events)

	code, out, errOut := runCLI(t, env, "place", "S1", "16:2")
	if code != 0 || out != "placed S1 on "+topics.Orders+": 16×2\n" {
		t.Fatalf("place: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if msgs := testsvc.Collect(t, topics.Orders, 1, 30*time.Second); len(msgs) != 1 || string(msgs[0].Key) != "S1" {
		t.Fatalf("orders topic holds %v", msgs)
	}

	deducted, _ := events.Deducted("S1", []events.Line{{GoodsID: 16, Num: 2}}, fixedTime).Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := publish(ctx, testConfig().kafka(), producer.Outcome(topics.Events, "S1", events.TypeDeducted, deducted)); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, env, "watch", "-from-beginning", "-n", "1")
	if code != 0 || !strings.Contains(out, "  S1  stock-deducted   16×2\n") {
		t.Fatalf("watch: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// The seed scenario of `orderctl demo` over SASL_SSL, configured by flags
// (the password from the environment): orderctl creates the topics, waits
// for the group, places and reads over it, and hands the settings to its
// stockworker processes.
func TestDemoOverSASL(t *testing.T) {
	t.Parallel()
	b := testsvc.KafkaSASL(t)
	mc, err := mysql.ParseDSN(testsvc.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	testsvc.Require(t, "MariaDB", mc.Addr)
	bin := buildWorker(t)
	env := map[string]string{"MYSQL_DSN": testsvc.MySQLDSN(), "REDIS_ADDR": testsvc.RedisAddr(), kafkaconn.EnvPassword: b.Password}
	code, out, errOut := runCLI(t, env, "demo", "-worker", bin, "-strategies", "atomic",
		"-kafka-brokers", b.Addr, "-kafka-tls", "-kafka-tls-ca-file", b.CAFile,
		"-kafka-sasl-mechanism", kafkaconn.ScramSHA512, "-kafka-sasl-username", b.Username)
	t.Logf("demo output:\n%s", out)
	if code != 0 || !strings.Contains(out, "\nall strategies exact\n") {
		t.Fatalf("demo: exit %d\nstderr:\n%s", code, errOut)
	}
	if strings.Contains(out+errOut, b.Password) {
		t.Fatalf("the password is in the output")
	}
}

// A wrong password is one line, exit status 1, with what to check and
// without the password; settings that do not fit are a usage error.
func TestSASLErrors(t *testing.T) {
	t.Parallel()
	b := testsvc.KafkaSASL(t)
	const wrong = "not-the-Pa55word"
	topics := testsvc.NewTopics(t, 1)
	code, out, errOut := runCLI(t, saslEnv(b, kafkaconn.ScramSHA256, kafkaconn.EnvPassword+"="+wrong, "ORDERS_TOPIC="+topics.Orders),
		"place", "E1", "16:1")
	if code != 1 || strings.Count(errOut, "\n") != 1 || out != "" ||
		!strings.HasPrefix(errOut, `orderctl place: Kafka rejected the SASL credentials of user "`+b.Username+`" (SCRAM-SHA-256)`) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if strings.Contains(errOut, wrong) {
		t.Fatalf("the password is in the error: %q", errOut)
	}

	for _, tt := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{map[string]string{}, []string{"watch", "-kafka-sasl-mechanism", "PLAIN"}, "orderctl watch: KAFKA_SASL_MECHANISM=PLAIN needs KAFKA_SASL_USERNAME"},
		{map[string]string{"KAFKA_TLS": "maybe"}, []string{"watch"}, `orderctl watch: -kafka-tls (KAFKA_TLS) "maybe" is not true or false`},
		{map[string]string{"KAFKA_SASL_PASSWORD": wrong}, []string{"watch"}, "orderctl watch: KAFKA_SASL_USERNAME or a password is set but KAFKA_SASL_MECHANISM is empty"},
		{map[string]string{}, []string{"watch", "-kafka-tls-ca-file", "ca.pem"}, "need KAFKA_TLS=true"},
		{map[string]string{}, []string{"watch", "-kafka-brokers", "embedded", "-kafka-tls"}, "KAFKA_BROKERS=embedded is a plaintext development broker"},
	} {
		code, out, errOut := runCLI(t, tt.env, tt.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tt.want) || strings.Contains(errOut, wrong) {
			t.Errorf("%v %v: exit %d, stdout %q, stderr %q; want exit 2 and %q", tt.env, tt.args, code, out, errOut, tt.want)
		}
	}
}

func TestHelpShowsKafkaSecurityButNeverThePassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-sasl-pw"
	env := map[string]string{"KAFKA_SASL_PASSWORD": secret, "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u"}
	code, out, _ := runCLI(t, env, "place", "-help")
	if code != 0 || strings.Contains(out, secret) {
		t.Fatalf("exit %d, help:\n%s", code, out)
	}
	for _, want := range []string{"-kafka-tls ", "-kafka-tls-ca-file", "-kafka-tls-cert-file", "-kafka-tls-key-file",
		"-kafka-sasl-mechanism", "-kafka-sasl-username", "KAFKA_SASL_PASSWORD_FILE", "(default PLAIN)"} {
		if !strings.Contains(out, want) {
			t.Errorf("help does not mention %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI(t, env, "--help")
	if code != 0 || strings.Contains(out, secret) || !strings.Contains(out, "KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE") {
		t.Fatalf("exit %d, help:\n%s", code, out)
	}
}
