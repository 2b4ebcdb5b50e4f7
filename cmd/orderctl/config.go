package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stockflow/stockflow/db"
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
	Brokers        string
	MySQLDSN       string
	RedisAddr      string
	OrdersTopic    string
	CancelledTopic string
	EventsTopic    string
	DLQTopic       string
}

// commonFlag is one shared setting: flag name, variable, default, help.
type commonFlag struct {
	flag, env, def, help string
	field                func(*config) *string
}

// commonFlags lists the shared settings.
func commonFlags() []commonFlag {
	return []commonFlag{
		{"kafka-brokers", "KAFKA_BROKERS", "localhost:9092", "comma-separated Kafka brokers (embedded: stockworker's in-process broker at 127.0.0.1:9092)", func(c *config) *string { return &c.Brokers }},
		{"mysql-dsn", "MYSQL_DSN", "root@tcp(127.0.0.1:3306)/stockflow?parseTime=true", "go-sql-driver DSN of the inventory database", func(c *config) *string { return &c.MySQLDSN }},
		{"redis-addr", "REDIS_ADDR", "127.0.0.1:6379", "Redis address, passed to the workers of demo (redis strategy)", func(c *config) *string { return &c.RedisAddr }},
		{"orders-topic", "ORDERS_TOPIC", "orders.placed", "topic of order-placed events", func(c *config) *string { return &c.OrdersTopic }},
		{"cancelled-topic", "CANCELLED_TOPIC", "orders.cancelled", "topic of order-cancelled events", func(c *config) *string { return &c.CancelledTopic }},
		{"events-topic", "EVENTS_TOPIC", "stock.events", "topic of the outcome events", func(c *config) *string { return &c.EventsTopic }},
		{"dlq-topic", "DLQ_TOPIC", "orders.dlq", "dead-letter topic (dlq list, dlq replay)", func(c *config) *string { return &c.DLQTopic }},
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
	return c
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
		if f.flag != "kafka-brokers" && strings.TrimSpace(*f.field(&c)) == "" {
			errs = append(errs, fmt.Errorf("-%s (%s) is empty", f.flag, f.env))
		}
	}
	return errors.Join(errs...)
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
		fs.StringVar(p, f.flag, *p, fmt.Sprintf("%s [%s]", f.help, f.env))
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
	return positional, nil
}

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
