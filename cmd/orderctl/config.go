package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/internal/harness"
	"github.com/stockflow/stockflow/internal/kafkaconn"
	"github.com/stockflow/stockflow/internal/mysqlconf"
	"github.com/stockflow/stockflow/internal/secretenv"
	"github.com/stockflow/stockflow/internal/tlsconf"
)

// Deadlines of single network and database calls. Every call takes a context
// derived from the command's with one of these, so a dead service fails the
// command instead of hanging it.
const (
	kafkaTimeout = 30 * time.Second // one publish (acks=all) or one metadata round trip
	dbTimeout    = 30 * time.Second // connect, migrate, one statement
)

// config holds the settings every subcommand shares. Each is an environment
// variable with stockworker's default, and a flag of every subcommand; a flag
// on the command line wins.
type config struct {
	Brokers string
	// MySQLDSN is MYSQL_DSN (or the default), the -mysql-dsn flag, or,
	// once flagSet.parse has read it, the content of MYSQL_DSN_FILE.
	MySQLDSN       string
	RedisAddr      string
	OrdersTopic    string
	CancelledTopic string
	EventsTopic    string
	DLQTopic       string

	// Kafka's TLS and SASL, stockworker's settings by the same names
	// (kafkaconn). KafkaTLS is "true" or "false" (or empty: false).
	KafkaTLS, KafkaCAFile, KafkaCertFile, KafkaKeyFile string
	KafkaMechanism, KafkaUsername                      string
	// kafkaSecret is the SASL password, from the environment only; a
	// pointer, so that printing a config never shows it.
	kafkaSecret *kafkaSecret
	// kafkaSecurity is what the Kafka settings load (flagSet.parse); nil:
	// plaintext.
	kafkaSecurity *kafkaconn.Security

	// MySQL's TLS files, stockworker's settings by the same names
	// (mysqlconf): paths, not secrets, so flags too.
	MySQLCAFile, MySQLCertFile, MySQLKeyFile string
	// mysqlEnv is MYSQL_DSN and MYSQL_DSN_FILE: the file is read by
	// flagSet.parse unless -mysql-dsn is given. It never prints its value.
	mysqlEnv secretenv.Var
}

// kafkaSecret is KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE.
type kafkaSecret struct{ password, file string }

// commonFlag is one shared setting: flag name, variable, default, help.
type commonFlag struct {
	flag, env, def, help string
	field                func(*config) *string
}

// optional reports a setting that may be empty: the Kafka and MySQL
// security ones.
func (f commonFlag) optional() bool {
	return slices.Contains(kafkaconn.Vars(), f.env) ||
		slices.Contains([]string{mysqlconf.EnvCAFile, mysqlconf.EnvCertFile, mysqlconf.EnvKeyFile}, f.env)
}

// boolean reports a flag without a value (-kafka-tls, -kafka-tls=false)
// that holds "true" or "false".
func (f commonFlag) boolean() bool { return f.env == kafkaconn.EnvTLS }

// commonFlags lists the shared settings.
func commonFlags() []commonFlag {
	return []commonFlag{
		{"kafka-brokers", "KAFKA_BROKERS", "localhost:9092", "comma-separated Kafka brokers (embedded: stockworker's in-process broker at 127.0.0.1:9092)", func(c *config) *string { return &c.Brokers }},
		{"mysql-dsn", mysqlconf.EnvDSN, mysqlconf.DefaultDSN, "go-sql-driver DSN of the inventory database; this flag refuses a DSN with a password: put that in MYSQL_DSN or MYSQL_DSN_FILE", func(c *config) *string { return &c.MySQLDSN }},
		{"redis-addr", "REDIS_ADDR", "127.0.0.1:6379", "Redis address, passed to the workers of demo (redis strategy)", func(c *config) *string { return &c.RedisAddr }},
		{"orders-topic", "ORDERS_TOPIC", "orders.placed", "topic of order-placed events", func(c *config) *string { return &c.OrdersTopic }},
		{"cancelled-topic", "CANCELLED_TOPIC", "orders.cancelled", "topic of order-cancelled events", func(c *config) *string { return &c.CancelledTopic }},
		{"events-topic", "EVENTS_TOPIC", "stock.events", "topic of the outcome events", func(c *config) *string { return &c.EventsTopic }},
		{"dlq-topic", "DLQ_TOPIC", "orders.dlq", "dead-letter topic (dlq list, dlq replay)", func(c *config) *string { return &c.DLQTopic }},
		{"kafka-tls", kafkaconn.EnvTLS, "false", "connect to Kafka with TLS, verifying the broker's certificate and its name", func(c *config) *string { return &c.KafkaTLS }},
		{"kafka-tls-ca-file", kafkaconn.EnvCAFile, "", "PEM file of the CA that signed the brokers' certificates (empty: the system's roots)", func(c *config) *string { return &c.KafkaCAFile }},
		{"kafka-tls-cert-file", kafkaconn.EnvCertFile, "", "PEM client certificate for Kafka (with -kafka-tls-key-file)", func(c *config) *string { return &c.KafkaCertFile }},
		{"kafka-tls-key-file", kafkaconn.EnvKeyFile, "", "PEM key of the client certificate", func(c *config) *string { return &c.KafkaKeyFile }},
		{"kafka-sasl-mechanism", kafkaconn.EnvMechanism, "", "SASL mechanism: " + strings.Join(kafkaconn.Mechanisms(), ", ") + " (empty: no SASL)", func(c *config) *string { return &c.KafkaMechanism }},
		{"kafka-sasl-username", kafkaconn.EnvUsername, "", "SASL user; its password is KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, environment only", func(c *config) *string { return &c.KafkaUsername }},
		{"mysql-tls-ca-file", mysqlconf.EnvCAFile, "", "PEM file of the CA that signed MySQL's certificate: connect with TLS, verifying the certificate and the DSN's host name", func(c *config) *string { return &c.MySQLCAFile }},
		{"mysql-tls-cert-file", mysqlconf.EnvCertFile, "", "PEM client certificate for MySQL (with -mysql-tls-key-file), for a user created REQUIRE X509", func(c *config) *string { return &c.MySQLCertFile }},
		{"mysql-tls-key-file", mysqlconf.EnvKeyFile, "", "PEM key of the MySQL client certificate", func(c *config) *string { return &c.MySQLKeyFile }},
	}
}

// configFromEnv returns the shared settings from the environment, falling back
// to stockworker's defaults.
func configFromEnv(getenv func(string) string) config {
	var c config
	for _, f := range commonFlags() {
		v := getenv(f.env)
		if v == "" {
			v = f.def
		}
		*f.field(&c) = v
	}
	c.kafkaSecret = &kafkaSecret{password: getenv(kafkaconn.EnvPassword), file: getenv(kafkaconn.EnvPasswordFile)}
	c.mysqlEnv = mysqlconf.LookupDSN(getenv)
	return c
}

// mysql is the MySQL connection of c, as stockworker would make it.
func (c config) mysql() mysqlconf.Settings {
	return mysqlconf.Settings{DSN: c.MySQLDSN, TLS: tlsconf.Files{CA: c.MySQLCAFile, Cert: c.MySQLCertFile, Key: c.MySQLKeyFile}}
}

// mysqlWorkerEnv passes the MySQL connection to stockworker processes (the
// demo's) with dsn as the DSN: MYSQL_DSN, and the TLS files (the driver's
// TLS registration, ConnectDSN, is this process's only). MYSQL_DSN_FILE is
// emptied: a file orderctl was given names another database, and both set
// would stop the worker.
func (c config) mysqlWorkerEnv(dsn string) []string {
	return []string{
		mysqlconf.EnvDSN + "=" + dsn, mysqlconf.EnvDSNFile + "=",
		mysqlconf.EnvCAFile + "=" + c.MySQLCAFile, mysqlconf.EnvCertFile + "=" + c.MySQLCertFile, mysqlconf.EnvKeyFile + "=" + c.MySQLKeyFile,
	}
}

// loadMySQL completes the MySQL settings once the flags are parsed, as
// stockworker does: MYSQL_DSN and MYSQL_DSN_FILE must not both be set, and a
// file must be readable; a -mysql-dsn given on the command line must carry
// no password (a command line is readable by every user of the machine) and
// wins; without it the DSN of MYSQL_DSN_FILE, when set, replaces MySQLDSN.
// Then the DSN must parse and the TLS files load. Its errors never show the
// password.
func (c *config) loadMySQL(flagGiven bool) error {
	envDSN, err := c.mysqlEnv.Value()
	if err != nil {
		return err
	}
	switch {
	case flagGiven:
		if err := mysqlconf.CheckFlagDSN(c.MySQLDSN); err != nil {
			return err
		}
	case c.mysqlEnv.File != "":
		c.MySQLDSN = envDSN
	}
	return c.mysql().Check()
}

// kafkaSettings are the Kafka security settings of c.
func (c config) kafkaSettings() (kafkaconn.Settings, error) {
	s := kafkaconn.Settings{
		Files:     tlsconf.Files{CA: c.KafkaCAFile, Cert: c.KafkaCertFile, Key: c.KafkaKeyFile},
		Mechanism: c.KafkaMechanism,
		Username:  c.KafkaUsername,
	}
	if c.kafkaSecret != nil {
		s.Password, s.PasswordFile = c.kafkaSecret.password, c.kafkaSecret.file
	}
	if v := strings.TrimSpace(c.KafkaTLS); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return s, fmt.Errorf("-kafka-tls (%s) %q is not true or false", kafkaconn.EnvTLS, c.KafkaTLS)
		}
		s.TLS = b
	}
	return s, nil
}

// kafka is the cluster orderctl talks to: the brokers and the security the
// settings loaded (flagSet.parse).
func (c config) kafka() harness.Kafka {
	return harness.Kafka{Brokers: c.brokerList(), Security: c.kafkaSecurity}
}

// kafkaEnv passes the Kafka security settings on to stockworker processes
// (the demo's), password included, in their environment.
func (c config) kafkaEnv() []string {
	env := []string{
		kafkaconn.EnvTLS + "=" + c.KafkaTLS, kafkaconn.EnvCAFile + "=" + c.KafkaCAFile,
		kafkaconn.EnvCertFile + "=" + c.KafkaCertFile, kafkaconn.EnvKeyFile + "=" + c.KafkaKeyFile,
		kafkaconn.EnvMechanism + "=" + c.KafkaMechanism, kafkaconn.EnvUsername + "=" + c.KafkaUsername,
	}
	if c.kafkaSecret != nil {
		env = append(env, kafkaconn.EnvPassword+"="+c.kafkaSecret.password, kafkaconn.EnvPasswordFile+"="+c.kafkaSecret.file)
	}
	return env
}

// brokerList splits Brokers. "embedded" (stockworker's in-process development
// broker, as `make run` starts it) is its address, 127.0.0.1:9092.
func (c config) brokerList() []string {
	if strings.TrimSpace(c.Brokers) == "embedded" {
		return []string{"127.0.0.1:9092"}
	}
	var out []string
	for _, b := range strings.Split(c.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func (c config) validate() error {
	var errs []error
	if len(c.brokerList()) == 0 {
		errs = append(errs, errors.New("-kafka-brokers (KAFKA_BROKERS) is empty"))
	}
	for _, f := range commonFlags() {
		if f.flag != "kafka-brokers" && !f.optional() && strings.TrimSpace(*f.field(&c)) == "" {
			errs = append(errs, fmt.Errorf("-%s (%s) is empty", f.flag, f.env))
		}
	}
	if _, err := c.kafkaSettings(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loadKafka loads the Kafka security settings into c.kafkaSecurity: a
// file that cannot be read or settings that do not fit together are a
// usage error.
func (c *config) loadKafka() error {
	s, err := c.kafkaSettings()
	if err != nil {
		return err
	}
	if strings.TrimSpace(c.Brokers) == "embedded" && (s.TLS || s.Mechanism != "") {
		return errors.New("KAFKA_BROKERS=embedded is a plaintext development broker: it takes no KAFKA_TLS or KAFKA_SASL_* settings")
	}
	c.kafkaSecurity, err = s.Load()
	return err
}

// usageError is a mistake on the command line: it is reported with a hint to
// the command's help and exit code 2.
type usageError struct {
	cmd, msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// flagSet is one subcommand's flags: its own, and the common ones bound to cfg.
type flagSet struct {
	*flag.FlagSet
	cmd  string
	help string // description, usage line and examples, shown by -help
	cfg  *config
}

// newFlagSet returns the flags of the subcommand cmd. The common flags default
// to, and write into, *cfg.
func newFlagSet(cmd, help string, cfg *config) *flagSet {
	fs := flag.NewFlagSet("orderctl "+cmd, flag.ContinueOnError)
	// Errors are reported by exitCode in one line, help by printUsage.
	fs.SetOutput(io.Discard)
	for _, f := range commonFlags() {
		p := f.field(cfg)
		usage := fmt.Sprintf("%s [%s]", f.help, f.env)
		if f.boolean() {
			fs.Var((*boolString)(p), f.flag, usage)
			continue
		}
		fs.StringVar(p, f.flag, *p, usage)
	}
	return &flagSet{FlagSet: fs, cmd: cmd, help: help, cfg: cfg}
}

// parse parses args, allowing flags after positional arguments (`orderctl
// place A1 16:1 -wait`); everything after "--" is positional. It prints the
// help to stdout on -h/-help and returns flag.ErrHelp, and returns a
// *usageError for a bad flag or bad shared setting.
func (fs *flagSet) parse(args []string, stdout io.Writer) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printUsage(stdout)
				return nil, err
			}
			return nil, usagef(fs.cmd, "%v", err)
		}
		rest := fs.Args()
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if err := fs.cfg.validate(); err != nil {
		return nil, usagef(fs.cmd, "%v", err)
	}
	if err := fs.cfg.loadKafka(); err != nil {
		return nil, usagef(fs.cmd, "%v", err)
	}
	// The flag package remembers, across the Parse calls above, which
	// flags the command line set.
	dsnFlag := false
	fs.Visit(func(f *flag.Flag) { dsnFlag = dsnFlag || f.Name == "mysql-dsn" })
	if err := fs.cfg.loadMySQL(dsnFlag); err != nil {
		return nil, usagef(fs.cmd, "%v", err)
	}
	return positional, nil
}

// boolString is a boolean flag kept as "true" or "false" in a string, for
// the common settings, which are strings.
type boolString string

func (b *boolString) String() string {
	if b == nil || *b == "" {
		return "false"
	}
	return string(*b)
}

func (b *boolString) Set(v string) error {
	x, err := strconv.ParseBool(v)
	if err != nil {
		return err
	}
	*b = boolString(strconv.FormatBool(x))
	return nil
}

func (b *boolString) IsBoolFlag() bool { return true }

// printUsage prints the help text, then the command's own flags, then the
// common ones. Defaults come from the environment, so the DSN is redacted.
func (fs *flagSet) printUsage(w io.Writer) {
	fmt.Fprint(w, fs.help)
	common := map[string]bool{}
	for _, f := range commonFlags() {
		common[f.flag] = true
	}
	section := func(title string, want bool) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		n := 0
		fs.VisitAll(func(f *flag.Flag) {
			if common[f.Name] != want {
				return
			}
			if n == 0 {
				fmt.Fprintf(w, "\n%s:\n", title)
			}
			n++
			def := f.DefValue
			if f.Name == "mysql-dsn" {
				def = db.RedactDSN(def)
				if fs.cfg.mysqlEnv.File != "" {
					def = "the DSN in MYSQL_DSN_FILE"
				}
			}
			typ, _ := flag.UnquoteUsage(f)
			name := "-" + f.Name
			if typ != "" {
				name += " " + typ
			}
			line := "  " + name + "\t" + f.Usage
			if def != "" && def != "false" && def != "0" {
				line += fmt.Sprintf(" (default %s)", def)
			}
			fmt.Fprintln(tw, line)
		})
		tw.Flush()
	}
	section("Flags", false)
	section("Common flags (each also an environment variable, shown in brackets; a flag wins)", true)
}
