package testsvc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/kafkaconn"
	"github.com/stockflow/stockflow/internal/tlsconf"
)

// SASLBroker is the real broker's SASL_SSL listener (scripts/services.sh:
// TLS with the certificate of `scripts/certs.sh server kafka`, SASL PLAIN,
// SCRAM-SHA-256 and SCRAM-SHA-512, one known test user).
type SASLBroker struct {
	Addr     string // TEST_KAFKA_SASL_BROKERS, default 127.0.0.1:9094
	CAFile   string // TEST_KAFKA_CA_FILE, default the ca.crt of scripts/certs.sh
	Username string // TEST_KAFKA_SASL_USERNAME, default stockflow
	Password string // TEST_KAFKA_SASL_PASSWORD, default stockflow-test-secret
}

// KafkaSASL returns the SASL_SSL listener, requiring it to be up and its CA
// file to exist (a failure under CI=true, a skip otherwise).
func KafkaSASL(t testing.TB) SASLBroker {
	t.Helper()
	b := SASLBroker{
		Addr:     Env("TEST_KAFKA_SASL_BROKERS", "127.0.0.1:9094"),
		CAFile:   Env("TEST_KAFKA_CA_FILE", filepath.Join(certsDir(), "ca.crt")),
		Username: Env("TEST_KAFKA_SASL_USERNAME", "stockflow"),
		Password: Env("TEST_KAFKA_SASL_PASSWORD", "stockflow-test-secret"),
	}
	Require(t, "Kafka's SASL_SSL listener", b.Addr)
	if _, err := os.Stat(b.CAFile); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the CA of Kafka's certificate: %v (make it with: %s kafka)", err, harness.StartCommand)
		}
		t.Skipf("the CA of Kafka's certificate: %v (make it with: %s kafka)", err, harness.StartCommand)
	}
	return b
}

// certsDir is where scripts/certs.sh keeps its files (CERTS_DIR, else
// $STOCKFLOW_STATE/tls, else $HOME/.cache/stockflow/state/tls).
func certsDir() string {
	if d := os.Getenv("CERTS_DIR"); d != "" {
		return d
	}
	state := os.Getenv("STOCKFLOW_STATE")
	if state == "" {
		home, _ := os.UserHomeDir()
		state = filepath.Join(home, ".cache", "stockflow", "state")
	}
	return filepath.Join(state, "tls")
}

// Settings are the security settings of a client of b with mechanism (TLS
// on, b's CA).
func (b SASLBroker) Settings(mechanism string) kafkaconn.Settings {
	return kafkaconn.Settings{TLS: true, Files: tlsconf.Files{CA: b.CAFile}, Mechanism: mechanism, Username: b.Username, Password: b.Password}
}

// Security loads Settings(mechanism), failing the test on an error.
func (b SASLBroker) Security(t testing.TB, mechanism string) *kafkaconn.Security {
	t.Helper()
	sec, err := b.Settings(mechanism).Load()
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// Env is the environment of a stockworker or orderctl process that talks to
// b with mechanism: KAFKA_BROKERS and every Kafka security setting.
func (b SASLBroker) Env(mechanism string) []string {
	return []string{
		"KAFKA_BROKERS=" + b.Addr,
		kafkaconn.EnvTLS + "=true",
		kafkaconn.EnvCAFile + "=" + b.CAFile,
		kafkaconn.EnvMechanism + "=" + mechanism,
		kafkaconn.EnvUsername + "=" + b.Username,
		kafkaconn.EnvPassword + "=" + b.Password,
	}
}
