// Package mysqlconf reads the settings of a command's MySQL connection the
// same way for stockworker and orderctl: the DSN from MYSQL_DSN or from the
// file MYSQL_DSN_FILE names (a mounted Secret), or from a -mysql-dsn flag
// only when it carries no password; TLS from MYSQL_TLS_CA_FILE,
// MYSQL_TLS_CERT_FILE and MYSQL_TLS_KEY_FILE. Settings.Check finds at start
// what cannot work (a configuration error, never retried); Settings.ConnectDSN
// gives the DSN to open, with the TLS configuration registered.
package mysqlconf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/internal/secretenv"
	"github.com/stockflow/stockflow/internal/tlsconf"
)

// The environment variables of the MySQL connection, the same for every
// command.
const (
	EnvDSN      = "MYSQL_DSN"
	EnvDSNFile  = "MYSQL_DSN_FILE"
	EnvCAFile   = "MYSQL_TLS_CA_FILE"
	EnvCertFile = "MYSQL_TLS_CERT_FILE"
	EnvKeyFile  = "MYSQL_TLS_KEY_FILE"
)

// DefaultDSN is the local development database of scripts/services.sh: its
// root over TCP, without a password.
const DefaultDSN = "root@tcp(127.0.0.1:3306)/stockflow?parseTime=true"

// LookupDSN reads MYSQL_DSN and MYSQL_DSN_FILE from getenv; the file is read
// by the Var's Value.
func LookupDSN(getenv func(string) string) secretenv.Var { return secretenv.Lookup(getenv, EnvDSN) }

// LookupTLS reads MYSQL_TLS_CA_FILE, MYSQL_TLS_CERT_FILE and
// MYSQL_TLS_KEY_FILE from getenv.
func LookupTLS(getenv func(string) string) tlsconf.Files {
	return tlsconf.Files{CA: getenv(EnvCAFile), Cert: getenv(EnvCertFile), Key: getenv(EnvKeyFile)}
}

// ErrFlagPassword is a -mysql-dsn flag that carries a password.
var ErrFlagPassword = errors.New("-mysql-dsn carries a password, which every user of the machine can read in the process list: set MYSQL_DSN or MYSQL_DSN_FILE instead")

// CheckFlagDSN refuses a DSN given on the command line (-mysql-dsn) that
// carries a password: put that in MYSQL_DSN or MYSQL_DSN_FILE. A DSN that
// does not parse is left to Settings.Check.
func CheckFlagDSN(dsn string) error {
	if cfg, err := mysql.ParseDSN(dsn); err == nil && cfg.Passwd != "" {
		return ErrFlagPassword
	}
	return nil
}

// Settings are a MySQL connection as configured.
type Settings struct {
	// DSN is the go-sql-driver DSN; it may carry a password, so print it
	// only through db.RedactDSN.
	DSN string
	// TLS (MYSQL_TLS_*): when any file is set the connection uses TLS and
	// verifies the server's certificate with TLS.CA (or the system's roots)
	// and its name against the DSN's host; Cert and Key are a client
	// certificate, for a user created REQUIRE X509.
	TLS tlsconf.Files
}

// Check parses the DSN and loads the TLS files, so that a wrong setting is
// a configuration error at start. A DSN asking for an unverified or no TLS
// connection (tls=skip-verify, preferred, false) while TLS files are set is a
// contradiction, refused. Errors never show the password.
func (s Settings) Check() error {
	var errs []error
	parsed, err := mysql.ParseDSN(s.DSN)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s %s: %w", EnvDSN, db.RedactDSN(s.DSN), err))
	}
	if !s.TLS.Empty() {
		if _, err := s.TLS.Config(); err != nil {
			errs = append(errs, fmt.Errorf("MYSQL_TLS_*: %w", err))
		}
		// db.UseTLS refuses it too; said here, it is a configuration error.
		if parsed != nil && parsed.TLSConfig != "" && !strings.EqualFold(parsed.TLSConfig, "true") {
			errs = append(errs, fmt.Errorf("%s says tls=%s, but MYSQL_TLS_* ask for a verified TLS connection: drop the tls parameter from the DSN", EnvDSN, parsed.TLSConfig))
		}
	}
	return errors.Join(errs...)
}

// ConnectDSN is the DSN to open (db.Open, db.EnsureDatabase): the DSN as it
// is, or with the TLS of s.TLS registered with the driver (db.UseTLS). The
// registered name lives in this process only: hand another process the DSN
// and the MYSQL_TLS_* files, not this DSN.
func (s Settings) ConnectDSN() (string, error) {
	if s.TLS.Empty() {
		return s.DSN, nil
	}
	t, err := s.TLS.Config()
	if err != nil {
		return "", fmt.Errorf("MYSQL_TLS_*: %w", err)
	}
	return db.UseTLS(s.DSN, t)
}

// TLSMode says how the connection is secured, for a log line: "verified
// (MYSQL_TLS_*)", "verified (the system's roots)" for tls=true in the DSN,
// "unverified (tls=skip-verify)" or "off".
func (s Settings) TLSMode() string {
	if !s.TLS.Empty() {
		return "verified (MYSQL_TLS_*)"
	}
	cfg, err := mysql.ParseDSN(s.DSN)
	switch {
	case err != nil || cfg.TLS == nil:
		return "off"
	case cfg.TLS.InsecureSkipVerify:
		return "unverified (tls=" + cfg.TLSConfig + ")"
	}
	return "verified (the system's roots)"
}
