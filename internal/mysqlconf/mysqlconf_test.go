package mysqlconf_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/internal/mysqlconf"
	"github.com/stockflow/stockflow/internal/tlsconf"
)

// testCA writes a fresh self-signed CA certificate (PEM) and returns its path.
func testCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckFlagDSN(t *testing.T) {
	if err := mysqlconf.CheckFlagDSN("app:Flag-Secret-1@tcp(db:3306)/x"); !errors.Is(err, mysqlconf.ErrFlagPassword) || strings.Contains(err.Error(), "Flag-Secret-1") {
		t.Fatalf("a password on the command line: %v", err)
	}
	for _, ok := range []string{"app@tcp(db:3306)/x", mysqlconf.DefaultDSN, "not a DSN"} {
		if err := mysqlconf.CheckFlagDSN(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// Check finds every setting that cannot work; ConnectDSN verifies the server
// with the CA and the DSN's host name.
func TestSettings(t *testing.T) {
	ca := testCA(t)
	for name, tc := range map[string]struct {
		s    mysqlconf.Settings
		want string
	}{
		"bad DSN":          {mysqlconf.Settings{DSN: "u:Dsn-Secret-1@tcp(db:3306)/x?parseTime=maybe"}, "MYSQL_DSN <unparsable DSN>: invalid bool value"},
		"missing CA":       {mysqlconf.Settings{DSN: "u@tcp(db)/x", TLS: tlsconf.Files{CA: ca + ".none"}}, "MYSQL_TLS_*: read the CA file"},
		"half a client":    {mysqlconf.Settings{DSN: "u@tcp(db)/x", TLS: tlsconf.Files{Cert: ca}}, "needs both"},
		"tls=skip-verify":  {mysqlconf.Settings{DSN: "u@tcp(db)/x?tls=skip-verify", TLS: tlsconf.Files{CA: ca}}, "MYSQL_DSN says tls=skip-verify"},
		"tls=preferred":    {mysqlconf.Settings{DSN: "u@tcp(db)/x?tls=preferred", TLS: tlsconf.Files{CA: ca}}, "MYSQL_DSN says tls=preferred"},
		"tls=false":        {mysqlconf.Settings{DSN: "u@tcp(db)/x?tls=false", TLS: tlsconf.Files{CA: ca}}, "MYSQL_DSN says tls=false"},
		"CA without a PEM": {mysqlconf.Settings{DSN: "u@tcp(db)/x", TLS: tlsconf.Files{CA: filepath.Dir(ca)}}, "MYSQL_TLS_*"},
	} {
		err := tc.s.Check()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "Secret-1") {
			t.Errorf("%s: %v, want %q and never the password", name, err, tc.want)
		}
	}

	plain := mysqlconf.Settings{DSN: "u:p@tcp(db.example:3306)/s?parseTime=true"}
	if err := plain.Check(); err != nil {
		t.Fatal(err)
	}
	if dsn, err := plain.ConnectDSN(); err != nil || dsn != plain.DSN || plain.TLSMode() != "off" {
		t.Fatalf("without TLS files: %q, %v, %s", dsn, err, plain.TLSMode())
	}
	for _, param := range []string{"", "&tls=true"} {
		s := mysqlconf.Settings{DSN: plain.DSN + param, TLS: tlsconf.Files{CA: ca}}
		if err := s.Check(); err != nil {
			t.Fatalf("%q: %v", param, err)
		}
		dsn, err := s.ConnectDSN()
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.TLS == nil || cfg.TLS.InsecureSkipVerify || cfg.TLS.ServerName != "db.example" || cfg.TLS.RootCAs == nil {
			t.Fatalf("%q: the connection does not verify db.example with the CA: %+v", param, cfg.TLS)
		}
		if s.TLSMode() != "verified (MYSQL_TLS_*)" {
			t.Errorf("TLS mode %q", s.TLSMode())
		}
	}
	if m := (mysqlconf.Settings{DSN: "u@tcp(db)/x?tls=skip-verify"}).TLSMode(); m != "unverified (tls=skip-verify)" {
		t.Errorf("tls=skip-verify: %q", m)
	}
	if m := (mysqlconf.Settings{DSN: "u@tcp(db)/x?tls=true"}).TLSMode(); m != "verified (the system's roots)" {
		t.Errorf("tls=true: %q", m)
	}
}
