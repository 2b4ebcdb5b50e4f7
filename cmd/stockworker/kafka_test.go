package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKafkaSecuritySettings(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-sasl-pw"
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KAFKA_TLS": "true", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "KAFKA_SASL_USERNAME": "app", "KAFKA_SASL_PASSWORD_FILE": pw}
	c, err := parseConfig([]string{"-kafka-sasl-mechanism", "SCRAM-SHA-512"}, func(k string) string { return env[k] }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.KafkaSecurity.String(); got != "SASL_SSL (SCRAM-SHA-512, user app)" {
		t.Fatalf("security %q", got)
	}
	if out := fmt.Sprintf("%+v %#v", c, c); strings.Contains(out, secret) {
		t.Fatalf("the config prints the password: %s", out)
	}
	if c, err = parseConfig(nil, func(string) string { return "" }, &bytes.Buffer{}); err != nil || !c.KafkaSecurity.Plaintext() {
		t.Fatalf("default: %v, %v", c.KafkaSecurity, err)
	}
}

func TestKafkaSecurityErrorsAreConfigErrors(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-sasl-pw"
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"KAFKA_SASL_USERNAME": "app"}, "KAFKA_SASL_USERNAME or a password is set but KAFKA_SASL_MECHANISM is empty"},
		{map[string]string{"KAFKA_SASL_MECHANISM": "OAUTHBEARER", "KAFKA_SASL_USERNAME": "app", "KAFKA_SASL_PASSWORD": secret}, `KAFKA_SASL_MECHANISM "OAUTHBEARER" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`},
		{map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "app", "KAFKA_SASL_PASSWORD": secret, "KAFKA_SASL_PASSWORD_FILE": "/x"}, "KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set"},
		{map[string]string{"KAFKA_TLS": "true", "KAFKA_TLS_CERT_FILE": "c.pem"}, "KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE go together"},
		{map[string]string{"KAFKA_TLS_CA_FILE": "ca.pem"}, "need KAFKA_TLS=true"},
		{map[string]string{"KAFKA_TLS": "sure"}, `KAFKA_TLS="sure" is not true or false`},
		{map[string]string{"KAFKA_BROKERS": "embedded", "KAFKA_TLS": "true"}, "KAFKA_BROKERS=embedded is a plaintext development broker"},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), nil, func(k string) string { return tt.env[k] }, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) || strings.Contains(stderr.String(), secret) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.env, code, stderr.String(), tt.want)
		}
	}
}

func TestHelpShowsKafkaSecurityButNeverThePassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-sasl-pw"
	env := map[string]string{"KAFKA_SASL_PASSWORD": secret, "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "app"}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"-help"}, func(k string) string { return env[k] }, &out); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(out.String(), secret) {
		t.Fatalf("help shows the password:\n%s", out.String())
	}
	for _, want := range []string{"KAFKA_TLS]", "KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE", "KAFKA_SASL_MECHANISM",
		"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD_FILE", "-kafka-sasl-username"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not mention %s", want)
		}
	}
	if strings.Contains(out.String(), "-kafka-sasl-password") {
		t.Errorf("a password flag:\n%s", out.String())
	}
}
