package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stockflow/stockflow/internal/mysqlconf"
	"github.com/stockflow/stockflow/internal/testsvc"
)

// writeFile writes content to a file of the test's and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// parseWith parses args as `orderctl stock get` does, with env as the whole
// environment, and returns the configuration it leaves.
func parseWith(env map[string]string, args ...string) (config, error) {
	cfg := configFromEnv(func(k string) string { return env[k] })
	fs := newFlagSet("stock get", stockGetHelp, &cfg)
	_, err := fs.parse(append(args, "16"), &bytes.Buffer{})
	return cfg, err
}

// The DSN comes as stockworker's does: MYSQL_DSN, or the file MYSQL_DSN_FILE
// names (one trailing line break dropped), or -mysql-dsn when it carries no
// password; a password on the command line is a usage error that does not
// repeat it, and so are both variables at once.
func TestMySQLDSNSources(t *testing.T) {
	t.Parallel()
	const dsn = "app:Dsn-Secret-1@tcp(db:3306)/stockflow?parseTime=true"
	file := writeFile(t, "dsn", dsn+"\n")

	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"default":              {nil, nil, mysqlconf.DefaultDSN},
		"variable":             {map[string]string{"MYSQL_DSN": dsn}, nil, dsn},
		"file":                 {map[string]string{"MYSQL_DSN_FILE": file}, nil, dsn},
		"flag over the file":   {map[string]string{"MYSQL_DSN_FILE": file}, []string{"-mysql-dsn", "app@tcp(db:3306)/x"}, "app@tcp(db:3306)/x"},
		"flag over the env":    {map[string]string{"MYSQL_DSN": dsn}, []string{"-mysql-dsn", "app@tcp(db:3306)/x"}, "app@tcp(db:3306)/x"},
		"flag after arguments": {nil, []string{"16", "-mysql-dsn=ro@tcp(db:3306)/y"}, "ro@tcp(db:3306)/y"},
	} {
		cfg, err := parseWith(tc.env, tc.args...)
		if err != nil || cfg.MySQLDSN != tc.want {
			t.Errorf("%s: DSN %q, %v; want %q", name, cfg.MySQLDSN, err, tc.want)
		}
	}

	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"password on the command line": {nil, []string{"-mysql-dsn", "app:Flag-Secret-1@tcp(db:3306)/x"}, "-mysql-dsn carries a password"},
		"both variables":               {map[string]string{"MYSQL_DSN": dsn, "MYSQL_DSN_FILE": file}, nil, "MYSQL_DSN and MYSQL_DSN_FILE are both set: set one"},
		"missing file":                 {map[string]string{"MYSQL_DSN_FILE": file + ".none"}, nil, "MYSQL_DSN_FILE: open "},
		"empty file":                   {map[string]string{"MYSQL_DSN_FILE": writeFile(t, "empty", "\n")}, nil, "MYSQL_DSN_FILE: "},
		"file that is no DSN":          {map[string]string{"MYSQL_DSN_FILE": writeFile(t, "bad", "app:Dsn-Secret-1@tcp(db:3306)/x?parseTime=maybe")}, nil, "MYSQL_DSN <unparsable DSN>"},
	} {
		_, err := parseWith(tc.env, tc.args...)
		var usage *usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a usage error %q", name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "Secret-1") {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}

	// Through the whole command: exit 2, one short message, no password.
	code, out, errOut := runCLI(t, nil, "stock", "get", "16", "-mysql-dsn", "app:Flag-Secret-1@tcp(127.0.0.1:1)/x")
	if code != 2 || !strings.HasPrefix(errOut, "orderctl stock get: -mysql-dsn carries a password") || strings.Contains(out+errOut, "Flag-Secret-1") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// -help names the file, never its content.
	code, out, _ = runCLI(t, map[string]string{"MYSQL_DSN_FILE": file}, "stock", "set", "-help")
	if code != 0 || strings.Contains(out, "Dsn-Secret-1") || !strings.Contains(out, "the DSN in MYSQL_DSN_FILE") || !strings.Contains(out, "-mysql-tls-ca-file") {
		t.Fatalf("exit %d, help:\n%s", code, out)
	}
}

// The MySQL TLS files are checked before anything connects: files that
// cannot be read, half a client certificate, a DSN that asks for an
// unverified connection beside a CA.
func TestMySQLTLSSettingsAreChecked(t *testing.T) {
	t.Parallel()
	notPEM := writeFile(t, "ca.crt", "not a certificate")
	ca := testsvc.UntrustedCA(t) // any well-formed CA will do here
	for name, tc := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"missing CA":       {nil, []string{"-mysql-tls-ca-file", notPEM + ".none"}, "MYSQL_TLS_*: read the CA file"},
		"not PEM":          {map[string]string{"MYSQL_TLS_CA_FILE": notPEM}, nil, "holds no PEM certificate"},
		"cert without key": {map[string]string{"MYSQL_TLS_CERT_FILE": notPEM}, nil, "needs both the certificate file and the key file"},
		"tls=skip-verify":  {map[string]string{"MYSQL_DSN": "u:p@tcp(db:3306)/s?tls=skip-verify", "MYSQL_TLS_CA_FILE": ca}, nil, "MYSQL_DSN says tls=skip-verify"},
	} {
		_, err := parseWith(tc.env, tc.args...)
		var usage *usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a usage error %q", name, err, tc.want)
		}
	}
	cfg, err := parseWith(map[string]string{"MYSQL_TLS_CA_FILE": ca})
	if err != nil || cfg.mysql().TLS.CA != ca {
		t.Fatalf("CA from the environment: %+v, %v", cfg.mysql().TLS, err)
	}
}

// orderctl reaches MySQL as the worker does in production: the DSN of the
// least-privilege user, with its password, from a file; over TLS, verifying
// the server with MYSQL_TLS_CA_FILE (the user is REQUIRE SSL, so the server
// refuses it any connection without TLS). A CA that did not sign the
// server's certificate fails with one clear line, as does no TLS at all; no
// output shows the password.
func TestStockOverMySQLTLSWithTheDSNInAFile(t *testing.T) {
	t.Parallel()
	ca := testsvc.MySQLServerCA(t)
	const password = "Worker-Secret-7"
	user := testsvc.MySQLUser(t, testsvc.DatabaseDSN(t), testsvc.UserOptions{Grants: testsvc.WorkerGrants, RequireSSL: true, Password: password})
	mc, err := mysql.ParseDSN(user)
	if err != nil {
		t.Fatal(err)
	}
	mc.TLSConfig = "" // the verified TLS comes from MYSQL_TLS_CA_FILE
	dsnFile := writeFile(t, "worker-dsn", mc.FormatDSN()+"\n")
	env := map[string]string{"MYSQL_DSN_FILE": dsnFile, "MYSQL_TLS_CA_FILE": ca}

	noLeak := func(what, out string) {
		t.Helper()
		if strings.Contains(out, password) {
			t.Errorf("%s: the output shows the password:\n%s", what, out)
		}
	}
	code, out, errOut := runCLI(t, env, "stock", "set", "16=10", "17=3")
	if code != 0 || out != "goods 16: stock 10\ngoods 17: stock 3\n" {
		t.Fatalf("stock set over TLS: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	noLeak("stock set", out+errOut)
	// The CA as a flag, the DSN still from the file.
	code, out, errOut = runCLI(t, map[string]string{"MYSQL_DSN_FILE": dsnFile}, "stock", "get", "16", "17", "-mysql-tls-ca-file", ca)
	if rows := parseTable(t, out); code != 0 || rows["16"][0] != "10" || rows["17"][0] != "3" {
		t.Fatalf("stock get over TLS: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	noLeak("stock get", out+errOut)

	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"a CA that did not sign the server's certificate", map[string]string{"MYSQL_DSN_FILE": dsnFile, "MYSQL_TLS_CA_FILE": testsvc.UntrustedCA(t)}, "certificate signed by unknown authority"},
		{"no TLS for a REQUIRE SSL user", map[string]string{"MYSQL_DSN_FILE": dsnFile}, "access denied to "},
	} {
		code, out, errOut := runCLI(t, tc.env, "stock", "get", "16")
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.name, code, out, errOut, tc.want)
		}
		noLeak(tc.name, out+errOut)
	}
}

// The demo over MySQL TLS, the DSN with its password in a file: orderctl
// opens the demo's databases with TLS, and hands its stockworker processes
// the DSN (MYSQL_DSN, never the file, which names another database) and the
// TLS files. The user is REQUIRE SSL, so a worker without TLS could not
// connect; it may only create and use the demo's databases.
func TestDemoOverMySQLTLS(t *testing.T) {
	t.Parallel()
	testsvc.Require(t, "Kafka", testsvc.KafkaBrokers()[0])
	ca := testsvc.MySQLServerCA(t)
	const password = "Demo-Secret-3"
	user := testsvc.MySQLUser(t, testsvc.DatabaseDSN(t), testsvc.UserOptions{
		Grants: []string{"ALL PRIVILEGES ON `stockflow\\_demo\\_%`.*"}, RequireSSL: true, Password: password})
	bin := buildWorker(t)
	env := map[string]string{"MYSQL_DSN_FILE": writeFile(t, "dsn", user+"\n"), "MYSQL_TLS_CA_FILE": ca,
		"KAFKA_BROKERS": strings.Join(testsvc.KafkaBrokers(), ","), "REDIS_ADDR": testsvc.RedisAddr()}
	code, out, errOut := runCLI(t, env, "demo", "-worker", bin, "-strategies", "atomic")
	t.Logf("demo output:\n%s", out)
	if code != 0 || !strings.Contains(out, "\nall strategies exact\n") {
		t.Fatalf("demo: exit %d\nstderr:\n%s", code, errOut)
	}
	if strings.Contains(out+errOut, password) {
		t.Fatal("the password is in the output")
	}
}
