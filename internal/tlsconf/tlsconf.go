// Package tlsconf builds the TLS client configuration of a connection
// (MySQL, Redis) from PEM files, as Kubernetes mounts them from a Secret.
// The configuration always verifies the server: its certificate chain against
// the CA (or the system's roots) and its name against the address dialled,
// which the client fills in (ServerName is left empty on purpose).
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Files name PEM files; any of them may be empty.
type Files struct {
	// CA holds the certificates the server's chain must lead to. Empty: the
	// system's roots.
	CA string
	// Cert and Key are a client certificate and its key, for servers that
	// authenticate clients by certificate; both or neither.
	Cert, Key string
}

// Empty reports whether no file is named.
func (f Files) Empty() bool { return f == Files{} }

// Config returns a client configuration that verifies the server with f.CA
// (or the system's roots) and presents f.Cert when it is set. TLS 1.2 is the
// oldest version offered. Errors name the file at fault, never its content.
func (f Files) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("read the CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", f.CA)
		}
		c.RootCAs = pool
	}
	switch {
	case f.Cert != "" && f.Key != "":
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("load the client certificate %s and key %s: %w", f.Cert, f.Key, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case f.Cert != "" || f.Key != "":
		return nil, errors.New("a client certificate needs both the certificate file and the key file")
	}
	return c, nil
}
