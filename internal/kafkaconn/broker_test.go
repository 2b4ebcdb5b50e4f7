package kafkaconn_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/kafkaconn"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/producer"
)

// These tests run against the real broker's SASL_SSL listener
// (scripts/services.sh up kafka); without it they skip, except under CI=true.

// Every mechanism gets through: topics are created, messages written and
// read back over TLS with SASL.
func TestEveryMechanismOverSASLSSL(t *testing.T) {
	t.Parallel()
	b := testsvc.KafkaSASL(t)
	topics := testsvc.NewTopics(t, 2)
	for _, mechanism := range kafkaconn.Mechanisms() {
		t.Run(mechanism, func(t *testing.T) {
			t.Parallel()
			sec := b.Security(t, mechanism)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := sec.Check(ctx, []string{b.Addr}); err != nil {
				t.Fatal(err)
			}
			topic := topics.Orders + "." + strings.ToLower(mechanism)
			if err := producer.EnsureTopicsWith(ctx, sec, []string{b.Addr}, 2, 1, topic); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { deleteTopic(t, topic) })
			k := harness.Kafka{Brokers: []string{b.Addr}, Security: sec}
			tail, err := k.OpenTail(ctx, topic, harness.FromEnd)
			if err != nil {
				t.Fatal(err)
			}
			defer tail.Close()
			pub := producer.New([]string{b.Addr}, producer.Options{Security: sec})
			defer pub.Close()
			if err := pub.Publish(ctx, kafka.Message{Topic: topic, Key: []byte("k"), Value: []byte(mechanism)}); err != nil {
				t.Fatal(err)
			}
			m, err := tail.Next(ctx)
			if err != nil || string(m.Value) != mechanism {
				t.Fatalf("read %q, %v; want %q", m.Value, err, mechanism)
			}
		})
	}
}

// A wrong password fails at once — the admin client, the writer and a
// group reader alike — with an error that says so and not the password.
func TestWrongPasswordIsRefused(t *testing.T) {
	t.Parallel()
	b := testsvc.KafkaSASL(t)
	topics := testsvc.NewTopics(t, 1)
	for _, mechanism := range kafkaconn.Mechanisms() {
		t.Run(mechanism, func(t *testing.T) {
			t.Parallel()
			s := b.Settings(mechanism)
			s.Password = "not-" + b.Password + "-wrong-one"
			sec, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			want := `Kafka rejected the SASL credentials of user "` + b.Username + `" (` + mechanism + `)`
			errs := refusedEverywhere(t, sec, b.Addr, topics.Orders)
			for what, err := range errs {
				if !kafkaconn.Refused(err) {
					t.Errorf("%s: not refused: %v", what, err)
				}
				if explained := sec.Explain(err); !strings.Contains(explained.Error(), want) || strings.Contains(explained.Error(), s.Password) {
					t.Errorf("%s: %v; want %q and never the password", what, explained, want)
				}
			}
		})
	}
}

// A broker certificate that the configured CA did not sign is refused at
// once, as are TLS against the plaintext listener, plaintext against the
// TLS one, and SASL against a listener without it.
func TestWrongTLSOrProtocolIsRefused(t *testing.T) {
	t.Parallel()
	b := testsvc.KafkaSASL(t)
	plainAddr := testsvc.KafkaBrokers()[0]
	topics := testsvc.NewTopics(t, 1)
	untrusted := b.Settings(kafkaconn.ScramSHA256)
	untrusted.Files.CA = testsvc.UntrustedCA(t)
	tests := []struct {
		name string
		s    kafkaconn.Settings
		addr string
		want string
		// fetchHealing: a group reader sees only io.EOF, which a broker
		// going away gives too: a worker finds this at start (Check,
		// EnsureTopicsWith), before it fetches.
		fetchHealing bool
	}{
		{"untrusted certificate", untrusted, b.Addr, "the Kafka broker's certificate is not signed by the CA of KAFKA_TLS_CA_FILE=" + untrusted.Files.CA, false},
		{"TLS against a plaintext listener", b.Settings(kafkaconn.Plain), plainAddr, "the Kafka listener speaks plaintext, not TLS", false},
		{"plaintext against a TLS listener", kafkaconn.Settings{}, b.Addr, "the Kafka listener expects TLS: set KAFKA_TLS=true", true},
		{"SASL against a listener without it", kafkaconn.Settings{Mechanism: kafkaconn.Plain, Username: b.Username, Password: b.Password}, plainAddr,
			"the Kafka listener does not speak SASL", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sec, err := tt.s.Load()
			if err != nil {
				t.Fatal(err)
			}
			for what, err := range refusedEverywhere(t, sec, tt.addr, topics.Orders) {
				if what == "fetch" && tt.fetchHealing {
					if kafkaconn.Refused(err) {
						t.Errorf("fetch: refused: %v", err)
					}
					continue
				}
				if !kafkaconn.Refused(err) {
					t.Errorf("%s: not refused: %v", what, err)
				}
				if explained := sec.Explain(err); !strings.Contains(explained.Error(), tt.want) {
					t.Errorf("%s: %v; want %q", what, explained, tt.want)
				}
			}
		})
	}
}

// The broker accepts a connection that presents a client certificate signed by
// the services' CA, with SASL on top. The listener requests client
// certificates but does not require them (and ignores one it does not trust
// rather than refuse it), so this passes without the certificate too:
// TestClientCertificatePresented is the test that fails when it is not sent.
func TestClientCertificate(t *testing.T) {
	t.Parallel()
	b := testsvc.KafkaSASL(t)
	out, err := exec.Command(filepath.Join("..", "..", "scripts", "certs.sh"), "client", "kafkaconn-test").Output()
	if err != nil {
		t.Fatalf("scripts/certs.sh client kafkaconn-test: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	s := b.Settings(kafkaconn.ScramSHA512)
	s.Files.Cert, s.Files.Key = filepath.Join(dir, "kafkaconn-test.crt"), filepath.Join(dir, "kafkaconn-test.key")
	sec, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.Check(ctx, []string{b.Addr}); err != nil {
		t.Fatalf("a client certificate of the CA: %v", err)
	}
}

// refusedEverywhere connects with sec to addr as the worker does — an admin
// client (Check), a writer, a group reader — and returns each one's error,
// failing the test for one that gets through or does not fail within 20s.
func refusedEverywhere(t *testing.T, sec *kafkaconn.Security, addr, topic string) map[string]error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := map[string]error{}
	start := time.Now()
	errs["check"] = sec.Check(ctx, []string{addr})

	pub := producer.New([]string{addr}, producer.Options{Security: sec})
	errs["publish"] = pub.Publish(ctx, kafka.Message{Topic: topic, Value: []byte("x")})
	_ = pub.Close()

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: testsvc.Unique("g"), Topic: topic,
		Dialer: sec.Dialer(), JoinGroupBackoff: 100 * time.Millisecond, MaxAttempts: 2})
	_, errs["fetch"] = r.FetchMessage(ctx)
	_ = r.Close()

	for what, err := range errs {
		if err == nil {
			t.Fatalf("%s got through", what)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s did not fail within 20s: %v", what, err)
		}
	}
	t.Logf("all refused in %v: %v", time.Since(start).Round(time.Millisecond), errs)
	return errs
}

func deleteTopic(t *testing.T, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	transport := (*kafkaconn.Security)(nil).Transport()
	defer transport.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(testsvc.KafkaBrokers()...), Transport: transport}
	if _, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
		t.Logf("delete topic %s: %v", topic, err)
	}
}

// plainPassword is the password the PLAIN mechanism of sec sends.
func plainPassword(t *testing.T, sec *kafkaconn.Security) string {
	t.Helper()
	m, ok := sec.Transport().SASL.(plain.Mechanism)
	if !ok {
		t.Fatalf("mechanism %T, want PLAIN", sec.Transport().SASL)
	}
	return m.Password
}
