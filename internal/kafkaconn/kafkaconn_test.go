package kafkaconn_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/kafkaconn"
	"github.com/stockflow/stockflow/internal/testsvc"
	"github.com/stockflow/stockflow/internal/tlsconf"
)

const secret = "pw-Sekr1t-never-shown"

func TestLoadRefusesSettingsThatDoNotFit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testsvc.UntrustedCA(t)
	tests := []struct {
		name string
		s    kafkaconn.Settings
		want string
	}{
		{"CA file without TLS", kafkaconn.Settings{Files: tlsconf.Files{CA: ca}}, "need KAFKA_TLS=true"},
		{"certificate without key", kafkaconn.Settings{TLS: true, Files: tlsconf.Files{Cert: ca}}, "KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE go together"},
		{"key without certificate", kafkaconn.Settings{TLS: true, Files: tlsconf.Files{Key: ca}}, "KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE go together"},
		{"unknown mechanism", kafkaconn.Settings{Mechanism: "GSSAPI", Username: "u", Password: secret}, `KAFKA_SASL_MECHANISM "GSSAPI" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`},
		{"username without mechanism", kafkaconn.Settings{Username: "u"}, "KAFKA_SASL_MECHANISM is empty"},
		{"password without mechanism", kafkaconn.Settings{Password: secret}, "KAFKA_SASL_MECHANISM is empty"},
		{"mechanism without username", kafkaconn.Settings{Mechanism: "PLAIN", Password: secret}, "KAFKA_SASL_MECHANISM=PLAIN needs KAFKA_SASL_USERNAME"},
		{"mechanism without password", kafkaconn.Settings{Mechanism: "SCRAM-SHA-256", Username: "u"}, "needs KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE"},
		{"password and password file", kafkaconn.Settings{Mechanism: "PLAIN", Username: "u", Password: secret, PasswordFile: ca}, "KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set"},
		{"missing password file", kafkaconn.Settings{Mechanism: "PLAIN", Username: "u", PasswordFile: filepath.Join(dir, "nope")}, "KAFKA_SASL_PASSWORD_FILE: open"},
		{"empty password file", kafkaconn.Settings{Mechanism: "PLAIN", Username: "u", PasswordFile: writeFile(t, dir, "empty", "\n")}, "is empty"},
		{"missing CA file", kafkaconn.Settings{TLS: true, Files: tlsconf.Files{CA: filepath.Join(dir, "nope.crt")}}, "read the CA file"},
		{"CA file without a certificate", kafkaconn.Settings{TLS: true, Files: tlsconf.Files{CA: writeFile(t, dir, "junk.crt", "junk")}}, "holds no PEM certificate"},
		{"password SCRAM cannot prepare", kafkaconn.Settings{Mechanism: "SCRAM-SHA-512", Username: "u", Password: secret + "\u0007"}, "SASLprep"},
	}
	for _, tt := range tests {
		sec, err := tt.s.Load()
		if err == nil {
			t.Errorf("%s: accepted (%v)", tt.name, sec)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q does not say %q", tt.name, err, tt.want)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the password is in the error %q", tt.name, err)
		}
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testsvc.UntrustedCA(t)
	for _, tt := range []struct {
		s    kafkaconn.Settings
		want string
	}{
		{kafkaconn.Settings{}, "PLAINTEXT"},
		{kafkaconn.Settings{TLS: true}, "SSL"},
		{kafkaconn.Settings{TLS: true, Files: tlsconf.Files{CA: ca}}, "SSL"},
		{kafkaconn.Settings{Mechanism: "plain", Username: "u", Password: secret}, "SASL_PLAINTEXT (PLAIN, user u)"},
		{kafkaconn.Settings{TLS: true, Files: tlsconf.Files{CA: ca}, Mechanism: "SCRAM-SHA-256", Username: "u",
			PasswordFile: writeFile(t, dir, "pw", secret+"\n")}, "SASL_SSL (SCRAM-SHA-256, user u)"},
		{kafkaconn.Settings{TLS: true, Mechanism: "SCRAM-SHA-512", Username: "u", Password: secret}, "SASL_SSL (SCRAM-SHA-512, user u)"},
	} {
		sec, err := tt.s.Load()
		if err != nil {
			t.Errorf("%+v: %v", tt.want, err)
			continue
		}
		if got := sec.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(verb, sec); strings.Contains(out, secret) {
				t.Errorf("%s shows the password: %s", verb, out)
			}
		}
		if (sec.Dialer() == nil) != sec.Plaintext() {
			t.Errorf("%s: Dialer() = %v", tt.want, sec.Dialer())
		}
		if tr := sec.Transport(); tr.Dial == nil {
			t.Errorf("%s: the transport has no dial timeout", tt.want)
		}
	}
	var none *kafkaconn.Security
	if !none.Plaintext() || none.String() != "PLAINTEXT" || none.Dialer() != nil || none.Transport() == nil {
		t.Errorf("a nil Security is not plaintext")
	}
}

func TestPasswordFileLosesOneTrailingLineBreak(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for content, want := range map[string]string{"a b\n": "a b", "a b\r\n": "a b", "a b": "a b", "a b\n\n": "a b\n", " a b ": " a b "} {
		s := kafkaconn.Settings{Mechanism: "PLAIN", Username: "u", PasswordFile: writeFile(t, dir, "pw", content)}
		// PLAIN sends the password as it is: the mechanism shows what was read.
		sec, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		if got := plainPassword(t, sec); got != want {
			t.Errorf("file %q: password %q, want %q", content, got, want)
		}
	}
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"KAFKA_TLS": "true", "KAFKA_TLS_CA_FILE": "ca", "KAFKA_TLS_CERT_FILE": "c", "KAFKA_TLS_KEY_FILE": "k",
		"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": secret, "KAFKA_SASL_PASSWORD_FILE": "f"}
	s, err := kafkaconn.FromEnv(func(k string) string { return env[k] })
	want := kafkaconn.Settings{TLS: true, Files: tlsconf.Files{CA: "ca", Cert: "c", Key: "k"}, Mechanism: "PLAIN", Username: "u", Password: secret, PasswordFile: "f"}
	if err != nil || s != want {
		t.Fatalf("FromEnv = %+v, %v", s, err)
	}
	if len(kafkaconn.Vars()) != len(env) {
		t.Errorf("Vars() = %v", kafkaconn.Vars())
	}
	if _, err := kafkaconn.FromEnv(func(k string) string { return map[string]string{"KAFKA_TLS": "yes please"}[k] }); err == nil ||
		!strings.Contains(err.Error(), `KAFKA_TLS="yes please" is not true or false`) {
		t.Fatalf("a bad KAFKA_TLS: %v", err)
	}
}

// Refused tells what waiting never heals from what it does.
func TestRefused(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("kafka.(*Client).Metadata: %w", err) }
	refused := []error{
		wrap(kafka.SASLAuthenticationFailed),
		wrap(kafka.UnsupportedSASLMechanism),
		wrap(kafka.IllegalSASLState),
		wrap(&kafkaconn.HandshakeError{Addr: "b:9093", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}),
		wrap(&kafkaconn.HandshakeError{Addr: "b:9093", Err: &tls.CertificateVerificationError{Err: x509.HostnameError{Host: "b"}}}),
		wrap(&kafkaconn.HandshakeError{Addr: "b:9093", Err: io.EOF, Plaintext: true}),
		wrap(&kafkaconn.HandshakeError{Addr: "b:9093", Err: tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}}),
		wrap(&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}),
		wrap(fmt.Errorf("%w: broker appears to be expecting TLS", io.ErrUnexpectedEOF)),
	}
	for _, err := range refused {
		if !kafkaconn.Refused(err) {
			t.Errorf("not refused: %v", err)
		}
		explained := (*kafkaconn.Security)(nil).Explain(err)
		var r *kafkaconn.RefusedError
		if !errors.As(explained, &r) || !errors.Is(explained, err) || r.Reason == "" {
			t.Errorf("Explain(%v) = %v", err, explained)
		}
	}
	healing := []error{
		nil,
		wrap(io.EOF),
		wrap(&kafkaconn.HandshakeError{Addr: "b:9093", Err: io.EOF}), // a broker going down mid-handshake
		wrap(&net.OpError{Op: "dial", Err: errors.New("connection refused")}),
		wrap(kafka.BrokerNotAvailable),
		wrap(kafka.NotCoordinatorForGroup),
		wrap(kafka.RequestTimedOut),
		wrap(&net.OpError{Op: "remote error", Err: errors.New("tls: internal error")}),
	}
	for _, err := range healing {
		if kafkaconn.Refused(err) {
			t.Errorf("refused: %v", err)
		}
		if got := (*kafkaconn.Security)(nil).Explain(err); got != err {
			t.Errorf("Explain(%v) = %v, want it unchanged", err, got)
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
