package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/db"
)

// envOf is a getenv over a map.
func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// writeSecret writes content to a file of the test's and returns its path.
func writeSecret(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Secrets come from the variable or from the file its _FILE names, as
// Kubernetes mounts them: a trailing line break is dropped, both set is an
// error, and no error shows the secret.
func TestSecretsFromFiles(t *testing.T) {
	const dsn = "app:Dsn-Secret-1@tcp(db:3306)/stockflow?parseTime=true"
	c, err := parseConfig(nil, envOf(map[string]string{
		"MYSQL_DSN_FILE":      writeSecret(t, "dsn", dsn+"\n"),
		"REDIS_PASSWORD_FILE": writeSecret(t, "redis", "Redis-Secret-1\r\n"),
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MySQLDSN != dsn || c.RedisPassword != "Redis-Secret-1" {
		t.Fatalf("DSN %q, Redis password %q", c.MySQLDSN, c.RedisPassword)
	}
	c, err = parseConfig(nil, envOf(map[string]string{"MYSQL_DSN": dsn, "REDIS_PASSWORD": "Redis-Secret-1"}), io.Discard)
	if err != nil || c.MySQLDSN != dsn || c.RedisPassword != "Redis-Secret-1" {
		t.Fatalf("from the variables: %q, %q, %v", c.MySQLDSN, c.RedisPassword, err)
	}
	if c, err := parseConfig(nil, envOf(nil), io.Discard); err != nil || c.MySQLDSN != defaultMySQLDSN {
		t.Fatalf("default DSN %q, %v", c.MySQLDSN, err)
	}

	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"both DSN": {map[string]string{"MYSQL_DSN": dsn, "MYSQL_DSN_FILE": writeSecret(t, "d", dsn)},
			"MYSQL_DSN and MYSQL_DSN_FILE are both set: set one"},
		"both Redis": {map[string]string{"REDIS_PASSWORD": "Redis-Secret-1", "REDIS_PASSWORD_FILE": writeSecret(t, "r", "Redis-Secret-1")},
			"REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set: set one"},
		"missing file": {map[string]string{"REDIS_PASSWORD_FILE": filepath.Join(t.TempDir(), "nothing")},
			"REDIS_PASSWORD_FILE: open "},
		"empty file": {map[string]string{"MYSQL_DSN_FILE": writeSecret(t, "e", "\r\n")},
			"MYSQL_DSN_FILE: "},
	} {
		_, err := parseConfig(nil, envOf(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "Secret-1") {
			t.Errorf("%s: the error shows the secret: %v", name, err)
		}
	}
}

// Flags never carry secrets: -mysql-dsn refuses a DSN with a password (a
// command line is readable by every user), there is no flag for a Redis
// password, and -help does not print the environment's DSN as a default.
func TestFlagsCarryNoSecrets(t *testing.T) {
	_, err := parseConfig([]string{"-mysql-dsn", "app:Flag-Secret-1@tcp(db:3306)/stockflow"}, envOf(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-mysql-dsn carries a password") || strings.Contains(err.Error(), "Flag-Secret-1") {
		t.Fatalf("a password on the command line: %v", err)
	}
	c, err := parseConfig([]string{"-mysql-dsn", "app@tcp(db:3306)/x"}, envOf(map[string]string{"MYSQL_DSN": "env@tcp(db:3306)/y"}), io.Discard)
	if err != nil || c.MySQLDSN != "app@tcp(db:3306)/x" {
		t.Fatalf("a DSN without a password on the command line: %q, %v", c.MySQLDSN, err)
	}
	for _, f := range []string{"-redis-password", "-redis-password-file", "-mysql-dsn-file"} {
		if _, err := parseConfig([]string{f, "x"}, envOf(nil), io.Discard); err == nil {
			t.Errorf("%s is a flag", f)
		}
	}
	var out bytes.Buffer
	env := map[string]string{"MYSQL_DSN": "app:Help-Secret-1@tcp(db:3306)/stockflow", "REDIS_PASSWORD": "Help-Secret-2"}
	if code := run(context.Background(), []string{"-help"}, envOf(env), &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(out.String(), "Help-Secret") {
		t.Fatalf("-help shows a secret:\n%s", out.String())
	}
	for _, v := range []string{"MYSQL_DSN", "MYSQL_TLS_CA_FILE", "MYSQL_TLS_CERT_FILE", "MYSQL_TLS_KEY_FILE", "REDIS_USERNAME",
		"REDIS_PASSWORD", "REDIS_TLS", "REDIS_TLS_CA_FILE", "PPROF_ADDR"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("help does not mention %s", v)
		}
	}
}

// The TLS settings are checked at start: files that cannot be read, half a
// client certificate, a CA without TLS, a DSN that contradicts them, pprof on
// the HTTP address.
func TestSecureSettingsAreChecked(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.crt")
	notPEM := writeSecret(t, "ca.crt", "not a certificate")
	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"missing CA":       {map[string]string{"MYSQL_TLS_CA_FILE": ca}, "MYSQL_TLS_*: read the CA file: open " + ca},
		"not PEM":          {map[string]string{"MYSQL_TLS_CA_FILE": notPEM}, "holds no PEM certificate"},
		"cert without key": {map[string]string{"MYSQL_TLS_CERT_FILE": notPEM}, "needs both the certificate file and the key file"},
		"CA without TLS":   {map[string]string{"REDIS_TLS_CA_FILE": notPEM}, "REDIS_TLS_CA_FILE is set but REDIS_TLS is not true"},
		"Redis CA":         {map[string]string{"REDIS_TLS": "true", "REDIS_TLS_CA_FILE": notPEM}, "REDIS_TLS_CA_FILE: CA file"},
		"pprof on HTTP":    {map[string]string{"HTTP_ADDR": ":9000", "PPROF_ADDR": ":9000"}, "PPROF_ADDR must not be HTTP_ADDR"},
	} {
		if _, err := parseConfig(nil, envOf(tc.env), io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}

	// MYSQL_TLS_* verify the server: the DSN may say tls=true or nothing,
	// never skip-verify, preferred or false.
	caPEM := testCA(t)
	for _, tlsParam := range []string{"", "&tls=true"} {
		c, err := parseConfig(nil, envOf(map[string]string{"MYSQL_DSN": "u:p@tcp(db.example:3306)/s?parseTime=true" + tlsParam, "MYSQL_TLS_CA_FILE": caPEM}), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		dsn, err := c.mysqlDSN()
		if err != nil {
			t.Fatalf("tls param %q: %v", tlsParam, err)
		}
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.TLS == nil || cfg.TLS.InsecureSkipVerify || cfg.TLS.ServerName != "db.example" || cfg.TLS.RootCAs == nil {
			t.Fatalf("tls param %q: the connection does not verify db.example with the CA: %+v", tlsParam, cfg.TLS)
		}
		if strings.Contains(db.RedactDSN(dsn), ":p@") {
			t.Fatalf("redacted DSN shows the password: %s", db.RedactDSN(dsn))
		}
	}
	for _, bad := range []string{"skip-verify", "preferred", "false"} {
		c, err := parseConfig(nil, envOf(map[string]string{"MYSQL_DSN": "u:p@tcp(db:3306)/s?tls=" + bad, "MYSQL_TLS_CA_FILE": caPEM}), io.Discard)
		if err == nil {
			_, err = c.mysqlDSN()
		}
		if err == nil || !strings.Contains(err.Error(), "tls="+bad) {
			t.Errorf("tls=%s with MYSQL_TLS_CA_FILE: %v", bad, err)
		}
	}
}

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
	return writeSecret(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
}

// The HTTP endpoints serve GET and HEAD only; pprof is served on its own
// listener, never on HTTP_ADDR's mux.
func TestHTTPServesOnlyGet(t *testing.T) {
	h := getOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }))
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(m, "/readyz", nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s: %d", m, rec.Code)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions, "TRACE"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(m, "/metrics", strings.NewReader("x")))
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q; want 405 and Allow: GET, HEAD", m, rec.Code, rec.Header().Get("Allow"))
		}
	}

	pp := getOnly(pprofHandler())
	rec := httptest.NewRecorder()
	pp.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "goroutine") {
		t.Fatalf("pprof index: %d %.200s", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	pp.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/debug/pprof/symbol", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST to pprof: %d", rec.Code)
	}
}
