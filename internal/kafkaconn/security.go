package kafkaconn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// Bounds of one connection's set-up.
const (
	dialTimeout      = 5 * time.Second  // TCP connect
	handshakeTimeout = 10 * time.Second // TLS handshake
	probeTimeout     = 3 * time.Second  // the plaintext probe after a handshake the broker hung up on
	readerDialBound  = 10 * time.Second // a reader's whole dial, kafka-go's default
)

// Security is how every connection to Kafka is made: TLS or not, SASL or
// not. Make it with Settings.Load; a nil *Security is plaintext without SASL.
// It is immutable and safe for concurrent use.
type Security struct {
	tls           *tls.Config    // nil: plaintext
	mechanism     sasl.Mechanism // nil: no SASL
	mechanismName string
	username      string
	caFile        string
}

// Plaintext reports whether connections use neither TLS nor SASL.
func (s *Security) Plaintext() bool { return s == nil || (s.tls == nil && s.mechanism == nil) }

// String names the security as Kafka's security.protocol does, with the
// SASL mechanism and user: "SASL_SSL (SCRAM-SHA-512, user stockflow)". It
// never holds the password.
func (s *Security) String() string {
	switch {
	case s.Plaintext():
		return "PLAINTEXT"
	case s.mechanism == nil:
		return "SSL"
	case s.tls == nil:
		return "SASL_PLAINTEXT (" + s.mechanismName + ", user " + s.username + ")"
	}
	return "SASL_SSL (" + s.mechanismName + ", user " + s.username + ")"
}

// Transport returns a new transport for writers and admin clients
// (kafka.Writer, kafka.Client) that connects with this security. The caller
// sets its other fields (MetadataTTL...) and closes its idle connections when
// done with it.
func (s *Security) Transport() *kafka.Transport {
	t := &kafka.Transport{Dial: (&net.Dialer{Timeout: dialTimeout}).DialContext}
	if s == nil {
		return t
	}
	if s.tls != nil {
		t.Dial = s.dialTLS
	}
	t.SASL = s.mechanism
	return t
}

// Dialer returns the dialer of a kafka.Reader (ReaderConfig.Dialer) that
// connects with this security; nil, kafka-go's default dialer, for
// plaintext without SASL.
func (s *Security) Dialer() *kafka.Dialer {
	if s.Plaintext() {
		return nil
	}
	d := &kafka.Dialer{Timeout: readerDialBound, DualStack: true, SASLMechanism: s.mechanism}
	if s.tls != nil {
		d.DialFunc = s.dialTLS
	}
	return d
}

// dialTLS connects to addr and completes the TLS handshake, verifying the
// broker's certificate and that it names the host dialled. A failed
// handshake is a *HandshakeError (see Refused). kafka-go would do the
// handshake itself, but its error would not say that it is one.
func (s *Security) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := s.tls.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		herr := &HandshakeError{Addr: addr, Err: err}
		if hungUp(err) && ctx.Err() == nil {
			herr.Plaintext = speaksPlaintext(ctx, network, addr)
		}
		return nil, herr
	}
	return tc, nil
}

// hungUp reports a handshake the other end closed without a word: what a
// plaintext Kafka listener does with a TLS ClientHello (it reads it as a
// request of absurd size), but also what a broker going down does.
func hungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// speaksPlaintext reports whether addr answers a plaintext ApiVersions
// request: a Kafka listener without TLS.
func speaksPlaintext(ctx context.Context, network, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	c, err := (&kafka.Dialer{Timeout: probeTimeout}).DialContext(ctx, network, addr)
	if err != nil {
		return false
	}
	defer c.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(deadline)
	}
	_, err = c.ApiVersions()
	return err == nil
}

// Check asks the cluster for its metadata over a connection made with this
// security, and returns the error, if any, explained (Explain): a refused
// connection says what to check. It is bounded by ctx.
func (s *Security) Check(ctx context.Context, brokers []string) error {
	t := s.Transport()
	defer t.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: t}
	if _, err := c.Metadata(ctx, &kafka.MetadataRequest{}); err != nil {
		return s.Explain(fmt.Errorf("kafka %v over %s: %w", brokers, s, err))
	}
	return nil
}

// GoString is String, so that %#v never prints the credentials either.
func (s *Security) GoString() string { return s.String() }
