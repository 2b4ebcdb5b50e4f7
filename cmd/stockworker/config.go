package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/events"
	"github.com/stockflow/stockflow/internal/kafkaconn"
	"github.com/stockflow/stockflow/internal/tlsconf"
	"github.com/stockflow/stockflow/producer"
)

// config is stockworker's configuration: each setting is an environment
// variable and a flag; a flag given on the command line wins.
type config struct {
	Brokers        string
	MySQLDSN       string
	RedisAddr      string
	Strategy       string
	GroupID        string
	OrdersTopic    string
	CancelledTopic string
	EventsTopic    string
	DLQTopic       string
	HTTPAddr       string
	Partitions     int
	Replication    int
	CreateTopics   bool
	Migrate        bool
	LogLevel       string
	DBMaxOpen      int
	ShutdownGrace  time.Duration
	BatchSize      int
	BatchWait      time.Duration
	Consumers      int
	Lanes          int
	RedisPrefix    string
	PoisonAttempts int
	Limits         events.Limits
	// Partitioner places outcome events and dead letters by their key
	// (producer.Partitioners).
	Partitioner string

	// Kafka's TLS and SASL (kafka.go); the password comes from the
	// environment or a _FILE, never a flag. KafkaSecurity is what they load.
	Kafka         kafkaconn.Settings
	KafkaSecurity *kafkaconn.Security

	// Secure connections and secrets (secrets.go). MySQLDSN (above) and
	// RedisPassword come from the environment or a _FILE, never a flag.
	MySQLTLS      tlsconf.Files // MYSQL_TLS_CA_FILE, MYSQL_TLS_CERT_FILE, MYSQL_TLS_KEY_FILE
	RedisUsername string
	RedisPassword string
	RedisTLS      bool
	RedisTLSCA    string
	PprofAddr     string
}

const usageHead = `stockworker consumes order-placed events from Kafka, deducts stock in MySQL
under a lock strategy, and publishes stock-deducted / stock-rejected events.

Usage:
  stockworker [flags]           run the worker
  stockworker migrate [flags]   apply the database migrations and exit

Every flag can also be set by the environment variable shown in brackets; a
flag on the command line wins.

Examples:
  stockworker                                   # localhost Kafka and MariaDB, pessimistic
  KAFKA_BROKERS=embedded stockworker            # in-process broker on 127.0.0.1:9092 (development)
  stockworker -lock-strategy batch -batch-size 500       # hot goods: many orders per transaction
  LOCK_STRATEGY=redis REDIS_ADDR=redis:6379 stockworker
  MYSQL_DSN='app:secret@tcp(db:3306)/stockflow?parseTime=true' stockworker migrate

Flags:
`

func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("stockworker", flag.ContinueOnError)
	fs.SetOutput(out)
	str := func(p *string, name, env, def, help string) {
		if v := getenv(env); v != "" {
			def = v
		}
		fs.StringVar(p, name, def, fmt.Sprintf("%s [%s]", help, env))
	}
	var errs []error
	num := func(p *int, name, env string, def int, help string) {
		if v := getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q is not a number", env, v))
			} else {
				def = n
			}
		}
		fs.IntVar(p, name, def, fmt.Sprintf("%s [%s]", help, env))
	}
	boolean := func(p *bool, name, env string, def bool, help string) {
		if v := getenv(env); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q is not true or false", env, v))
			} else {
				def = b
			}
		}
		fs.BoolVar(p, name, def, fmt.Sprintf("%s [%s]", help, env))
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, help string) {
		if v := getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q is not a duration such as 10s", env, v))
			} else {
				def = d
			}
		}
		fs.DurationVar(p, name, def, fmt.Sprintf("%s [%s]", help, env))
	}

	str(&c.Brokers, "kafka-brokers", "KAFKA_BROKERS", "localhost:9092", "comma-separated Kafka brokers; 'embedded' starts an in-process broker on 127.0.0.1:9092 (development only)")
	finishKafka := c.kafkaSettings(fs, getenv, str, boolean)   // KAFKA_TLS*, KAFKA_SASL_*
	finishSecure := c.secureSettings(fs, getenv, str, boolean) // MYSQL_DSN, MYSQL_TLS_*, REDIS_USERNAME/PASSWORD/TLS*, PPROF_ADDR
	str(&c.RedisAddr, "redis-addr", "REDIS_ADDR", "127.0.0.1:6379", "Redis address, used by the redis strategy")
	str(&c.Strategy, "lock-strategy", "LOCK_STRATEGY", "pessimistic", "lock strategy: "+strings.Join(db.StrategyNames(), ", "))
	str(&c.GroupID, "group-id", "GROUP_ID", "stockflow", "Kafka consumer group")
	str(&c.OrdersTopic, "orders-topic", "ORDERS_TOPIC", "orders.placed", "topic of order-placed events")
	str(&c.CancelledTopic, "cancelled-topic", "CANCELLED_TOPIC", "orders.cancelled", "topic of order-cancelled events")
	str(&c.EventsTopic, "events-topic", "EVENTS_TOPIC", "stock.events", "topic of the outcome events")
	str(&c.DLQTopic, "dlq-topic", "DLQ_TOPIC", "orders.dlq", "dead-letter topic for messages that are not orders")
	str(&c.Partitioner, "outcome-partitioner", "OUTCOME_PARTITIONER", string(producer.Murmur2),
		"how the key of an outcome event or dead letter picks its partition: murmur2 (the Java client's partitioner) or fnv1a (kafka-go's Hash, what stockworker used before; keeps the partitions of orders in flight across an upgrade)")
	str(&c.HTTPAddr, "http-addr", "HTTP_ADDR", ":8080", "address of /healthz, /readyz and /metrics; empty disables")
	num(&c.Partitions, "partitions", "TOPIC_PARTITIONS", 6, "partitions of topics the worker creates")
	num(&c.Replication, "replication", "TOPIC_REPLICATION", 0, "replication factor of topics the worker creates (0: the cluster's default.replication.factor)")
	boolean(&c.CreateTopics, "create-topics", "CREATE_TOPICS", true, "create missing topics at start (false: a missing topic is an error at start)")
	boolean(&c.Migrate, "migrate", "MIGRATE", true, "apply database migrations at start")
	str(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	num(&c.DBMaxOpen, "db-max-open", "DB_MAX_OPEN", 16, "maximum open MySQL connections of this process")
	dur(&c.ShutdownGrace, "shutdown-grace", "SHUTDOWN_GRACE", 10*time.Second, "time the orders in hand may take to finish after SIGTERM")
	num(&c.BatchSize, "batch-size", "BATCH_SIZE", 1024, "most orders one batch-strategy transaction decides; a consumer holds at most 4 × this many messages in flight")
	dur(&c.BatchWait, "batch-wait", "BATCH_WAIT", 0, "batch strategy: how long a lane waits for a run of orders to fill before it starts a transaction that is not full (0: at once)")
	num(&c.Consumers, "consumers", "CONSUMERS", 2, "consumer-group members in this process, each working on its own partitions")
	num(&c.Lanes, "lanes", "LANES", 0, "decisions each consumer takes at once, orders on different goods in parallel (0: DB_MAX_OPEN / CONSUMERS, at least 1, and 1 for batch; 1 decides one at a time)")
	str(&c.RedisPrefix, "redis-prefix", "REDIS_PREFIX", "stockflow:goods:", "prefix of the redis strategy's lock keys; one per deployment sharing a Redis")
	num(&c.PoisonAttempts, "poison-attempts", "POISON_ATTEMPTS", 6, "attempts at a batch, then at a single message, that fails with a non-transient error before the message is parked on DLQ_TOPIC")
	num(&c.Limits.MaxMessageBytes, "max-message-bytes", "MAX_MESSAGE_BYTES", events.DefaultMaxMessageBytes, "largest order-placed message; a larger order is rejected as invalid_order")
	num(&c.Limits.MaxLines, "max-lines", "MAX_LINES", events.MaxLines, "most lines of one order")
	num(&c.Limits.MaxOrderIDBytes, "max-order-id-bytes", "MAX_ORDER_ID_BYTES", events.MaxOrderIDBytes, fmt.Sprintf("longest order_id in bytes (at most %d); a longer one is a dead letter", events.OrderIDColumnBytes))
	var maxNum int
	num(&maxNum, "max-num", "MAX_NUM", math.MaxInt32, "largest num of a line (and of one goods summed over the order)")

	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := finishSecure(); err != nil {
		errs = append(errs, err)
	}
	if err := finishKafka(); err != nil {
		errs = append(errs, err)
	}
	if maxNum < 1 || maxNum > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("MAX_NUM must be in 1..%d, got %d", math.MaxInt32, maxNum))
	} else {
		c.Limits.MaxNum = int32(maxNum)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see stockworker -help)", fs.Arg(0))
	}
	if err := c.validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

func (c config) validate() error {
	var errs []error
	if !slices.Contains(db.StrategyNames(), c.Strategy) {
		errs = append(errs, fmt.Errorf("LOCK_STRATEGY %q is not one of: %s", c.Strategy, strings.Join(db.StrategyNames(), ", ")))
	}
	if c.Consumers < 1 {
		errs = append(errs, fmt.Errorf("CONSUMERS must be at least 1, got %d", c.Consumers))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("BATCH_SIZE must be at least 1, got %d", c.BatchSize))
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("TOPIC_PARTITIONS must be at least 1, got %d", c.Partitions))
	}
	if c.Replication < 0 || c.Replication > math.MaxInt16 {
		errs = append(errs, fmt.Errorf("TOPIC_REPLICATION must be 0 (the cluster's default) or a replication factor, got %d", c.Replication))
	}
	if strings.TrimSpace(c.Brokers) == "" {
		errs = append(errs, errors.New("KAFKA_BROKERS is empty"))
	}
	if c.Lanes < 0 {
		errs = append(errs, fmt.Errorf("LANES must be 0 (sized to DB_MAX_OPEN) or more, got %d", c.Lanes))
	}
	if _, err := producer.ParsePartitioner(c.Partitioner); err != nil {
		errs = append(errs, fmt.Errorf("OUTCOME_PARTITIONER %q is not one of: %s", c.Partitioner, strings.Join(producer.Partitioners(), ", ")))
	}
	if c.PoisonAttempts < 1 {
		errs = append(errs, fmt.Errorf("POISON_ATTEMPTS must be at least 1, got %d", c.PoisonAttempts))
	}
	for name, v := range map[string]int{"MAX_MESSAGE_BYTES": c.Limits.MaxMessageBytes, "MAX_LINES": c.Limits.MaxLines} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1, got %d", name, v))
		}
	}
	if c.Limits.MaxOrderIDBytes < 1 || c.Limits.MaxOrderIDBytes > events.OrderIDColumnBytes {
		errs = append(errs, fmt.Errorf("MAX_ORDER_ID_BYTES must be in 1..%d (the ledger column), got %d", events.OrderIDColumnBytes, c.Limits.MaxOrderIDBytes))
	}
	if c.DBMaxOpen < 1 {
		errs = append(errs, fmt.Errorf("DB_MAX_OPEN must be at least 1, got %d", c.DBMaxOpen))
	}
	return errors.Join(errs...)
}

func (c config) brokerList() []string {
	var out []string
	for _, b := range strings.Split(c.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
