package kafkaconn_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/internal/kafkaconn"
	"github.com/stockflow/stockflow/internal/tlsconf"
)

// The client certificate of KAFKA_TLS_CERT_FILE is presented in the
// handshake. The test broker only requests client certificates, so a
// connection without one gets through as well and TestClientCertificate
// alone would pass with the certificate left out. Here a TLS server that
// requires a client certificate signed by the test CA says which one it got.
func TestClientCertificatePresented(t *testing.T) {
	t.Parallel()
	dir := certsDir(t, "client", "kafkaconn-test")
	sdir := certsDir(t, "server", "kafkaconn-tls-server")
	ca := filepath.Join(dir, "ca.crt")
	serverCert, err := tls.LoadX509KeyPair(filepath.Join(sdir, "kafkaconn-tls-server.crt"), filepath.Join(sdir, "kafkaconn-tls-server.key"))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", ca)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 2) // per connection: the client's CN, or "refused: ..."
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if err := tc.Handshake(); err != nil {
					seen <- "refused: " + err.Error()
					return
				}
				seen <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
			}()
		}
	}()

	dial := func(cert bool) {
		t.Helper()
		s := kafkaconn.Settings{TLS: true, Files: tlsconf.Files{CA: ca}}
		if cert {
			s.Files.Cert, s.Files.Key = filepath.Join(dir, "kafkaconn-test.crt"), filepath.Join(dir, "kafkaconn-test.key")
		}
		sec, err := s.Load()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// The transport's dial is the TLS handshake every writer, reader
		// and admin call makes. With TLS 1.3 the server checks the client's
		// certificate after the client's side is done, so only the server
		// can tell whether it was accepted.
		if conn, err := sec.Transport().Dial(ctx, "tcp", ln.Addr().String()); err == nil {
			conn.Close()
		}
	}
	dial(true)
	if got := <-seen; got != "kafkaconn-test" {
		t.Errorf("with KAFKA_TLS_CERT_FILE the server saw %q, want the client certificate kafkaconn-test", got)
	}
	dial(false)
	if got := <-seen; !strings.HasPrefix(got, "refused: ") {
		t.Errorf("without a client certificate the server saw %q; it should have refused the handshake", got)
	}
}

// certsDir runs scripts/certs.sh with args and returns the directory it prints.
func certsDir(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(filepath.Join("..", "..", "scripts", "certs.sh"), args...).Output()
	if err != nil {
		t.Fatalf("scripts/certs.sh %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}
