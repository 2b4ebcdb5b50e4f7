package kafkaconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/segmentio/kafka-go"
)

// HandshakeError is a TLS handshake with a broker that failed.
type HandshakeError struct {
	Addr string
	Err  error
	// Plaintext is set when the broker hung up on the handshake and then
	// answered a plaintext Kafka request: a listener without TLS.
	Plaintext bool
}

func (e *HandshakeError) Error() string {
	if e.Plaintext {
		return fmt.Sprintf("TLS handshake with %s: %v; it answers plaintext Kafka requests: a listener without TLS", e.Addr, e.Err)
	}
	return fmt.Sprintf("TLS handshake with %s: %v", e.Addr, e.Err)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// RefusedError is a connection the cluster refuses for good, with what to
// check (Explain).
type RefusedError struct {
	Reason string
	Err    error
}

func (e *RefusedError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// expectingTLS is how kafka-go says that a plaintext client got a TLS alert
// back: it has no error value for it, only this text.
const expectingTLS = "broker appears to be expecting TLS"

// Refused reports whether err is the cluster refusing this client for good:
// credentials it rejects, a certificate that is not trusted or does not name
// the broker, a TLS client on a plaintext listener or the other way round, a
// SASL mechanism the listener does not offer. Waiting never heals these, so
// they stop a worker at once with a clear error instead of a retry loop that
// looks like an outage. A broker that is away, hangs up or times out is not
// refused: that heals by waiting.
func Refused(err error) bool {
	if err == nil {
		return false
	}
	var refused *RefusedError
	if errors.As(err, &refused) {
		return true
	}
	if errors.Is(err, kafka.SASLAuthenticationFailed) || errors.Is(err, kafka.UnsupportedSASLMechanism) ||
		errors.Is(err, kafka.IllegalSASLState) {
		return true
	}
	var handshake *HandshakeError
	if errors.As(err, &handshake) && handshake.Plaintext {
		return true
	}
	return certificateProblem(err) != "" || tlsRefused(err) != "" || strings.Contains(err.Error(), expectingTLS)
}

// Explain returns err with what to check in front when the cluster refuses
// the connection (Refused), as a *RefusedError; any other err unchanged. The
// reason names the settings involved and the user, never the password.
func (s *Security) Explain(err error) error {
	var refused *RefusedError
	if !Refused(err) || errors.As(err, &refused) {
		return err
	}
	return &RefusedError{Reason: s.reason(err), Err: err}
}

func (s *Security) reason(err error) string {
	var mechanism, user, ca string
	if s != nil {
		mechanism, user, ca = s.mechanismName, s.username, s.caFile
	}
	var handshake *HandshakeError
	isHandshake := errors.As(err, &handshake)
	switch {
	case errors.Is(err, kafka.SASLAuthenticationFailed):
		return fmt.Sprintf("Kafka rejected the SASL credentials of user %q (%s): check %s and %s or %s",
			user, mechanism, EnvUsername, EnvPassword, EnvPasswordFile)
	case errors.Is(err, kafka.UnsupportedSASLMechanism):
		return fmt.Sprintf("the Kafka listener does not offer SASL mechanism %s (%s)", mechanism, EnvMechanism)
	case errors.Is(err, kafka.IllegalSASLState):
		return fmt.Sprintf("the Kafka listener does not speak SASL: point KAFKA_BROKERS at its SASL listener, or leave %s empty", EnvMechanism)
	case isHandshake && handshake.Plaintext:
		return fmt.Sprintf("the Kafka listener speaks plaintext, not TLS: point KAFKA_BROKERS at its TLS listener, or set %s=false", EnvTLS)
	case strings.Contains(err.Error(), expectingTLS):
		return fmt.Sprintf("the Kafka listener expects TLS: set %s=true (and %s)", EnvTLS, EnvCAFile)
	}
	if p := certificateProblem(err); p != "" {
		if p == "unknown authority" {
			if ca == "" {
				return fmt.Sprintf("the Kafka broker's certificate is not signed by a CA of the system's roots: set %s", EnvCAFile)
			}
			return fmt.Sprintf("the Kafka broker's certificate is not signed by the CA of %s=%s", EnvCAFile, ca)
		}
		return "the Kafka broker's certificate " + p
	}
	if p := tlsRefused(err); p != "" {
		return p
	}
	return "Kafka refused the connection"
}

// certificateProblem says what is wrong with the broker's certificate, or ""
// when err is not about it.
func certificateProblem(err error) string {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknown):
		return "unknown authority"
	case errors.As(err, &hostname):
		return fmt.Sprintf("does not name the host dialled (%s)", hostname.Host)
	case errors.As(err, &invalid):
		return "is not valid: " + invalid.Error()
	case errors.As(err, &verify):
		return "failed verification: " + verify.Err.Error()
	}
	return ""
}

// refusingAlert reports whether a TLS alert, as Go names it ("tls: bad
// certificate"), refuses this client for good: its certificate (or the lack
// of one), or no version or cipher in common. Go keeps a received alert in a
// *net.OpError whose Op is "remote error"; its text is the only way to tell
// one alert from another. With TLS 1.3 a refused client certificate arrives
// after the handshake, with the first answer.
func refusingAlert(alert string) bool {
	switch strings.TrimPrefix(alert, "tls: ") {
	case "bad certificate", "unsupported certificate", "revoked certificate", "expired certificate",
		"unknown certificate", "certificate required", "unknown certificate authority", "access denied",
		"handshake failure", "protocol version not supported", "insufficient security level":
		return true
	}
	return false
}

// tlsRefused says how the other end refused the TLS connection, or "" when
// it did not: it sent an alert that refuses this client (refusingAlert) or
// bytes that are not TLS at all.
func tlsRefused(err error) string {
	var op *net.OpError
	var header tls.RecordHeaderError
	switch {
	case errors.As(err, &op) && op.Op == "remote error" && op.Err != nil && refusingAlert(op.Err.Error()):
		return fmt.Sprintf("the Kafka broker refused the TLS connection (%v): does it accept the client certificate of %s?", op.Err, EnvCertFile)
	case errors.As(err, &header):
		return fmt.Sprintf("the Kafka address does not speak TLS: point KAFKA_BROKERS at its TLS listener, or set %s=false", EnvTLS)
	}
	return ""
}
