package tlsconf_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/internal/tlsconf"
)

// write puts a PEM block in a file of the test's and returns its path.
func write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfig(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, keyFile := write(t, "c.pem", "CERTIFICATE", der), write(t, "k.pem", "PRIVATE KEY", keyDER)

	c, err := tlsconf.Files{CA: cert, Cert: cert, Key: keyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	// Always verifying: no skip, a name left to the client, TLS 1.2 at least.
	if c.InsecureSkipVerify || c.ServerName != "" || c.RootCAs == nil || len(c.Certificates) != 1 || c.MinVersion != tls.VersionTLS12 {
		t.Fatalf("config %+v", c)
	}
	if c, err := (tlsconf.Files{}).Config(); err != nil || c.RootCAs != nil || c.InsecureSkipVerify {
		t.Fatalf("no files: the system's roots, verified: %+v, %v", c, err)
	}
	for name, tc := range map[string]struct {
		f    tlsconf.Files
		want string
	}{
		"missing CA":         {tlsconf.Files{CA: filepath.Join(t.TempDir(), "none")}, "read the CA file: open "},
		"CA not PEM":         {tlsconf.Files{CA: keyFile + ".nope"}, "read the CA file"},
		"key as CA":          {tlsconf.Files{CA: keyFile}, "holds no PEM certificate"},
		"cert without key":   {tlsconf.Files{Cert: cert}, "needs both"},
		"key without cert":   {tlsconf.Files{Key: keyFile}, "needs both"},
		"cert and wrong key": {tlsconf.Files{Cert: cert, Key: cert}, "load the client certificate"},
	} {
		if _, err := tc.f.Config(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
