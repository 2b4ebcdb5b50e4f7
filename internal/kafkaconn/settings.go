package kafkaconn

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/stockflow/stockflow/internal/tlsconf"
)

// The environment variables of Settings, the same for every command.
const (
	EnvTLS          = "KAFKA_TLS"
	EnvCAFile       = "KAFKA_TLS_CA_FILE"
	EnvCertFile     = "KAFKA_TLS_CERT_FILE"
	EnvKeyFile      = "KAFKA_TLS_KEY_FILE"
	EnvMechanism    = "KAFKA_SASL_MECHANISM"
	EnvUsername     = "KAFKA_SASL_USERNAME"
	EnvPassword     = "KAFKA_SASL_PASSWORD"
	EnvPasswordFile = "KAFKA_SASL_PASSWORD_FILE"
)

// Vars lists the environment variables of Settings.
func Vars() []string {
	return []string{EnvTLS, EnvCAFile, EnvCertFile, EnvKeyFile, EnvMechanism, EnvUsername, EnvPassword, EnvPasswordFile}
}

// The SASL mechanisms (Settings.Mechanism).
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// Mechanisms lists the SASL mechanisms Settings.Mechanism may name.
func Mechanisms() []string { return []string{Plain, ScramSHA256, ScramSHA512} }

// Settings are the security settings of the connections to Kafka as
// configured. The zero value is plaintext without SASL, what a local
// development broker speaks.
type Settings struct {
	// TLS (KAFKA_TLS) connects with TLS, verifying the broker's certificate
	// chain and that it names the broker's host as dialled. Default false.
	TLS bool
	// Files (KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE) are
	// the CA the broker's certificate must lead to (empty: the system's
	// roots) and an optional client certificate and its key. Only with TLS.
	Files tlsconf.Files
	// Mechanism (KAFKA_SASL_MECHANISM) is PLAIN, SCRAM-SHA-256 or
	// SCRAM-SHA-512 (any case); empty: no SASL.
	Mechanism string
	// Username (KAFKA_SASL_USERNAME) is the SASL user.
	Username string
	// Password (KAFKA_SASL_PASSWORD) is the SASL password, a secret: it is
	// read from the environment only, never a flag, and never printed.
	Password string
	// PasswordFile (KAFKA_SASL_PASSWORD_FILE) names a file holding the
	// password instead, as Kubernetes mounts a Secret; one trailing line
	// break is dropped. Password and PasswordFile both set is an error.
	PasswordFile string
}

// FromEnv reads every setting from the environment. Only KAFKA_TLS can be
// wrong here (not a boolean); Load checks the rest.
func FromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{
		Files:        tlsconf.Files{CA: getenv(EnvCAFile), Cert: getenv(EnvCertFile), Key: getenv(EnvKeyFile)},
		Mechanism:    getenv(EnvMechanism),
		Username:     getenv(EnvUsername),
		Password:     getenv(EnvPassword),
		PasswordFile: getenv(EnvPasswordFile),
	}
	if v := getenv(EnvTLS); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return s, fmt.Errorf("%s=%q is not true or false", EnvTLS, v)
		}
		s.TLS = b
	}
	return s, nil
}

// Load checks the settings, reads the files they name and returns the
// Security they describe. Its errors name the settings and files at fault,
// never the password.
func (s Settings) Load() (*Security, error) {
	var errs []error
	mechanism := strings.ToUpper(strings.TrimSpace(s.Mechanism))
	if !s.TLS && !s.Files.Empty() {
		errs = append(errs, fmt.Errorf("%s, %s and %s need %s=true", EnvCAFile, EnvCertFile, EnvKeyFile, EnvTLS))
	}
	if (s.Files.Cert == "") != (s.Files.Key == "") {
		errs = append(errs, fmt.Errorf("%s and %s go together: set both or neither", EnvCertFile, EnvKeyFile))
	}
	if mechanism != "" && !slices.Contains(Mechanisms(), mechanism) {
		errs = append(errs, fmt.Errorf("%s %q is not one of %s (empty: no SASL)", EnvMechanism, s.Mechanism, strings.Join(Mechanisms(), ", ")))
	}
	if s.Password != "" && s.PasswordFile != "" {
		errs = append(errs, fmt.Errorf("%s and %s are both set: set one", EnvPassword, EnvPasswordFile))
	}
	hasPassword := s.Password != "" || s.PasswordFile != ""
	switch {
	case mechanism == "" && (s.Username != "" || hasPassword):
		errs = append(errs, fmt.Errorf("%s or a password is set but %s is empty: name the mechanism (%s)", EnvUsername, EnvMechanism, strings.Join(Mechanisms(), ", ")))
	case mechanism != "" && s.Username == "":
		errs = append(errs, fmt.Errorf("%s=%s needs %s", EnvMechanism, mechanism, EnvUsername))
	case mechanism != "" && !hasPassword:
		errs = append(errs, fmt.Errorf("%s=%s needs %s or %s", EnvMechanism, mechanism, EnvPassword, EnvPasswordFile))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	sec := &Security{mechanismName: mechanism, username: s.Username, caFile: s.Files.CA}
	if s.TLS {
		t, err := s.Files.Config()
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_*: %w", err)
		}
		sec.tls = t
	}
	if mechanism != "" {
		password := s.Password
		if s.PasswordFile != "" {
			p, err := readPassword(s.PasswordFile)
			if err != nil {
				return nil, err
			}
			password = p
		}
		m, err := newMechanism(mechanism, s.Username, password)
		if err != nil {
			return nil, err
		}
		sec.mechanism = m
	}
	return sec, nil
}

// readPassword returns the content of file without its trailing line break.
func readPassword(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", EnvPasswordFile, err)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if p == "" {
		return "", fmt.Errorf("%s: %s is empty", EnvPasswordFile, file)
	}
	return p, nil
}

func newMechanism(name, username, password string) (sasl.Mechanism, error) {
	algo := scram.SHA256
	switch name {
	case Plain:
		return plain.Mechanism{Username: username, Password: password}, nil
	case ScramSHA512:
		algo = scram.SHA512
	}
	m, err := scram.Mechanism(algo, username, password)
	if err != nil {
		// The library's error quotes the password: never pass it on.
		return nil, fmt.Errorf("%s or the password holds characters SCRAM does not allow (SASLprep, RFC 4013)", EnvUsername)
	}
	return m, nil
}
