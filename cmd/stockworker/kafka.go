package main

import (
	"errors"
	"flag"
	"strings"

	"github.com/segmentio/kafka-go"
	"github.com/stockflow/stockflow/internal/kafkaconn"
	"github.com/stockflow/stockflow/worker"
)

// kafkaSettings declares the security settings of the Kafka connections —
// TLS and SASL, the same names as orderctl's (kafkaconn.Vars) — on fs, and
// returns the function that completes them once fs is parsed: it reads the
// password (KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, from the
// environment only: a flag shows in the process list) and loads the files,
// so a wrong setting is a configuration error at start (exit 2).
func (c *config) kafkaSettings(fs *flag.FlagSet, getenv func(string) string,
	str func(p *string, name, env, def, help string), boolean func(p *bool, name, env string, def bool, help string),
) (finish func() error) {
	k := &c.Kafka
	boolean(&k.TLS, "kafka-tls", kafkaconn.EnvTLS, false, "connect to Kafka with TLS, verifying the broker's certificate and its name")
	str(&k.Files.CA, "kafka-tls-ca-file", kafkaconn.EnvCAFile, "", "PEM file of the CA that signed the brokers' certificates (KAFKA_TLS=true; empty: the system's roots)")
	str(&k.Files.Cert, "kafka-tls-cert-file", kafkaconn.EnvCertFile, "", "PEM client certificate for Kafka (with KAFKA_TLS_KEY_FILE), for brokers that check clients' certificates")
	str(&k.Files.Key, "kafka-tls-key-file", kafkaconn.EnvKeyFile, "", "PEM key of KAFKA_TLS_CERT_FILE")
	str(&k.Mechanism, "kafka-sasl-mechanism", kafkaconn.EnvMechanism, "", "SASL mechanism: "+strings.Join(kafkaconn.Mechanisms(), ", ")+" (empty: no SASL)")
	str(&k.Username, "kafka-sasl-username", kafkaconn.EnvUsername, "", "SASL user; its password is KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, environment only")
	// Read now, as every other setting is: -help stops before finish runs,
	// and what it reads is the list of stockworker's variables.
	password, passwordFile := getenv(kafkaconn.EnvPassword), getenv(kafkaconn.EnvPasswordFile)
	return func() error {
		k.Password, k.PasswordFile = password, passwordFile
		sec, err := k.Load()
		if err != nil {
			return err
		}
		if strings.TrimSpace(c.Brokers) == "embedded" && !sec.Plaintext() {
			return errors.New("KAFKA_BROKERS=embedded is a plaintext development broker: it takes no KAFKA_TLS or KAFKA_SASL_* settings")
		}
		c.KafkaSecurity = sec
		// From here on the password lives only inside KafkaSecurity,
		// which never prints it.
		k.Password = ""
		return nil
	}
}

// openReader opens a consumer-group member's reader (worker.Config.OpenReader)
// that connects with the Kafka security.
func (c config) openReader(rc kafka.ReaderConfig) worker.Reader {
	rc.Dialer = c.KafkaSecurity.Dialer()
	return kafka.NewReader(rc)
}
