package db

import (
	"crypto/tls"
	"strings"
	"testing"
)

// A DSN that would let the connection fall back to plaintext, or not verify
// the server, contradicts a configured CA and is refused; a plain DSN gets the
// registered configuration.
func TestUseTLSRefusesAWeakerDSN(t *testing.T) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	for _, dsn := range []string{
		"u@tcp(db:3306)/x?tls=skip-verify",
		"u@tcp(db:3306)/x?tls=preferred",
		"u@tcp(db:3306)/x?tls=false",
		"u@tcp(db:3306)/x?tls=true&allowFallbackToPlaintext=true",
		"u@tcp(db:3306)/x?allowFallbackToPlaintext=true",
	} {
		if got, err := UseTLS(dsn, conf); err == nil {
			t.Errorf("UseTLS(%s) = %s, want an error", dsn, got)
		}
	}
	got, err := UseTLS("u@tcp(db:3306)/x?parseTime=true", conf)
	if err != nil || !strings.Contains(got, "tls=stockflow-") {
		t.Fatalf("UseTLS of a plain DSN = %q, %v; want it to name the registered configuration", got, err)
	}
}
