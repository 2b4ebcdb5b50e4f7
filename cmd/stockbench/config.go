package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stockflow/stockflow/db"
)

// Reference rows and workloads.
const (
	seedStyle  = "seed-style"  // LOCK_STRATEGY=pessimistic, BATCH_SIZE=1, LANES=1
	dbLimit    = "db-limit"    // hot-row UPDATE rate, no Kafka
	orderLimit = "order-limit" // one-order transaction rate, no Kafka

	workloadHot    = "hot"
	workloadSpread = "spread"
	workloadMulti  = "multi"
)

// allWorkloads lists the workloads in table order.
var allWorkloads = []string{workloadHot, workloadSpread, workloadMulti}

// strategyNames lists what -strategies accepts, in table order.
func strategyNames() []string {
	return append([]string{seedStyle}, db.StrategyNames()...)
}

// options is one stockbench invocation.
type options struct {
	Strategies     []string      `json:"strategies"`
	Workloads      []string      `json:"workloads"`
	Workers        []int         `json:"workers"`
	Lanes          []int         `json:"lanes"` // LANES requested; 0: the strategy's default (see lanesFor)
	N              nSpec         `json:"n"`
	Rate           float64       `json:"rate"`
	LatencySeconds float64       `json:"latency_seconds"`
	Short          bool          `json:"short"`
	Out            string        `json:"-"`
	SVG            string        `json:"-"`
	Worker         string        `json:"-"`
	Keep           bool          `json:"keep"`
	Brokers        []string      `json:"-"`
	MySQLDSN       string        `json:"-"`
	RedisAddr      string        `json:"-"`
	Partitions     int           `json:"partitions"`
	BatchSize      int           `json:"batch_size,omitempty"` // 0: the worker's default
	BatchWait      time.Duration `json:"batch_wait,omitempty"` // 0: the worker's default
	DBMaxOpen      int           `json:"db_max_open,omitempty"`
	WorkerEnv      []string      `json:"worker_env,omitempty"`
	Timeout        time.Duration `json:"timeout"`
	Stall          time.Duration `json:"stall"`
	DBLimitSeconds float64       `json:"db_limit_seconds"`
	DBLimitConns   int           `json:"db_limit_conns"`
	Seed           uint64        `json:"seed"`
	KafkaVersion   string        `json:"-"`
	From           string        `json:"-"`
}

// nSpec is -n: a default order count with optional per-strategy overrides,
// "20000,seed-style=3000,pessimistic=5000".
type nSpec struct {
	Default  int            `json:"default"`
	Override map[string]int `json:"override,omitempty"`
}

func (s nSpec) For(strategy string) int {
	if n, ok := s.Override[strategy]; ok {
		return n
	}
	return s.Default
}

func (s nSpec) String() string {
	parts := []string{strconv.Itoa(s.Default)}
	for _, k := range strategyNames() {
		if n, ok := s.Override[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		}
	}
	return strings.Join(parts, ",")
}

func parseNSpec(v string) (nSpec, error) {
	s := nSpec{Override: map[string]int{}}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, num, named := strings.Cut(part, "=")
		if !named {
			num = name
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 {
			return s, fmt.Errorf("-n %q: %q is not a positive number", v, num)
		}
		switch {
		case !named:
			s.Default = n
		case slices.Contains(strategyNames(), name):
			s.Override[name] = n
		default:
			return s, fmt.Errorf("-n %q: unknown strategy %q", v, name)
		}
	}
	if s.Default == 0 {
		return s, fmt.Errorf("-n %q: no default count (e.g. -n 20000,seed-style=3000)", v)
	}
	return s, nil
}

// Defaults of the full matrix and of -short.
const (
	defaultN      = "20000,seed-style=2000,mutex=6000,pessimistic=6000,optimistic=6000,redis=4000,atomic=8000"
	shortN        = "500,seed-style=200"
	shortRate     = 300
	shortLatency  = 1
	shortDBLimit  = 1
	shortWorkload = "hot,spread,multi"
	shortStrategy = "seed-style,batch"
	defaultLanes  = "1,default"
	shortLanes    = "default"
	maxLanes      = 256 // far above any useful LANES; catches a typo such as 80000
)

const usageHead = `stockbench measures stockflow end to end: real Kafka, stockworker processes,
real MariaDB. For each strategy × workload × worker-process count × lanes it
creates a fresh database and topics, stocks the goods, starts the workers, and
measures
  - throughput: N orders produced as fast as possible (acks=all, batched),
    first order produced → last outcome consumed;
  - latency: p50/p99 from produce to outcome at a fixed offered rate;
  - MariaDB transactions per order (Com_commit delta) and worker peak RSS;
then checks correctness (stock arithmetic, one ledger row per order, an
outcome event for every order). A wrong run is a failure, not a number.
Reference rows: seed-style (pessimistic, BATCH_SIZE=1, LANES=1: one order per
transaction, offset committed per message) and db-limit (hot-row autocommit
UPDATE rate, no Kafka). Results: a table on stdout, JSON (-out), SVG (-svg).

Lanes: each strategy also runs with each LANES of -lanes (the decisions one
consumer takes at once). "default" (or 0) is the worker's own choice,
DB_MAX_OPEN / CONSUMERS (16 / 2 = 8 unless -db-max-open or -worker-env
change them), at least 1, and 1 for batch; 1 decides one order at a time,
the behaviour before lanes. A LANES that comes to the same number as another
runs once (batch: 1 and default are both 1; seed-style is always 1). When
-lanes lists other values too, lanes=1 is the baseline and runs with one
worker process only. The table's lanes column is the LANES the workers were
given.

Usage:
  stockbench [flags]

Examples:
  go build -o /tmp/bench/stockworker ./cmd/stockworker
  stockbench -worker /tmp/bench/stockworker                       # the full matrix
  stockbench -worker /tmp/bench/stockworker -short                # smoke: < 1 minute
  stockbench -strategies batch,seed-style -workloads hot -workers 1 -n 50000
  stockbench -strategies atomic -workloads spread -lanes 1,4,default

Flags:
`

// parseOptions parses the command line; getenv supplies the service defaults.
// defaultDSN is the MariaDB server of scripts/services.sh.
const defaultDSN = "root@tcp(127.0.0.1:3306)/stockflow?parseTime=true"

func parseOptions(args []string, getenv func(string) string, out io.Writer) (options, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var (
		o                                              options
		strategies, workloads, workers, lanes, n, wenv string
		brokers                                        string
	)
	fs := flag.NewFlagSet("stockbench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&strategies, "strategies", strings.Join(strategyNames(), ","), "comma-separated strategies: "+strings.Join(strategyNames(), ", "))
	fs.StringVar(&workloads, "workloads", strings.Join(allWorkloads, ","), "comma-separated workloads: hot (one goods, stock N/2), spread (10,000 goods, ample stock), multi (3-line orders over 100 goods, stock 80% of demand)")
	fs.StringVar(&workers, "workers", "1,2", "comma-separated worker-process counts")
	fs.StringVar(&lanes, "lanes", defaultLanes, "comma-separated LANES of the workers: counts, and default (or 0) for the worker's default; 1 decides one order at a time")
	fs.StringVar(&n, "n", defaultN, "orders of the throughput phase: a default and optional strategy=N overrides")
	fs.Float64Var(&o.Rate, "rate", 1000, "offered rate of the latency phase, orders/s")
	fs.Float64Var(&o.LatencySeconds, "latency-seconds", 3, "length of the latency phase; 0 skips it")
	fs.BoolVar(&o.Short, "short", false, "smoke mode: -n "+shortN+", -strategies "+shortStrategy+", -workers 1, -lanes "+shortLanes+", a short latency phase; under a minute")
	fs.StringVar(&o.Out, "out", "bench/results.json", "JSON results file")
	fs.StringVar(&o.SVG, "svg", "bench/throughput.svg", "SVG throughput chart")
	fs.StringVar(&o.Worker, "worker", "bin/stockworker", "stockworker binary")
	fs.BoolVar(&o.Keep, "keep", false, "keep each run's database and topics")
	fs.StringVar(&brokers, "kafka-brokers", env("KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka brokers [KAFKA_BROKERS]")
	// Not env(...) as the flag's default: -help prints defaults, and a DSN
	// from the environment may hold a password.
	fs.StringVar(&o.MySQLDSN, "mysql-dsn", "", "MariaDB server; each run uses its own database on it (default $MYSQL_DSN, else "+defaultDSN+")")
	fs.StringVar(&o.RedisAddr, "redis-addr", env("REDIS_ADDR", "127.0.0.1:6379"), "Redis, for the redis strategy [REDIS_ADDR]")
	fs.IntVar(&o.Partitions, "partitions", 6, "partitions of each run's topics")
	fs.IntVar(&o.BatchSize, "batch-size", 0, "BATCH_SIZE of the workers (0: the worker's default; seed-style always 1)")
	fs.DurationVar(&o.BatchWait, "batch-wait", 0, "BATCH_WAIT of the workers (0: the worker's default)")
	fs.IntVar(&o.DBMaxOpen, "db-max-open", 0, "DB_MAX_OPEN of the workers (0: the worker's default)")
	fs.StringVar(&wenv, "worker-env", "", "extra worker environment, comma-separated KEY=VALUE (e.g. CONSUMERS=3; LANES is -lanes)")
	fs.DurationVar(&o.Timeout, "timeout", 3*time.Minute, "longest wait for one phase's outcomes")
	fs.DurationVar(&o.Stall, "stall", 45*time.Second, "fail a phase that makes no progress for this long")
	fs.Float64Var(&o.DBLimitSeconds, "db-limit-seconds", 3, "length of the db-limit measurement; 0 skips it")
	fs.IntVar(&o.DBLimitConns, "db-limit-conns", 4, "goroutines (connections) of the db-limit measurement")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the generated orders")
	fs.StringVar(&o.KafkaVersion, "kafka-version", env("KAFKA_VERSION", ""), "Kafka version for the report (default: detected from a local broker process) [KAFKA_VERSION]")
	fs.StringVar(&o.From, "from", "", "measure nothing: print the table of this results JSON and write -svg from it")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q (see stockbench -help)", fs.Arg(0))
	}
	if o.MySQLDSN == "" {
		o.MySQLDSN = env("MYSQL_DSN", defaultDSN)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.Short {
		// Smoke mode changes the defaults only; explicit flags still win.
		if !set["strategies"] {
			strategies = shortStrategy
		}
		if !set["workloads"] {
			workloads = shortWorkload
		}
		if !set["workers"] {
			workers = "1"
		}
		if !set["lanes"] {
			lanes = shortLanes
		}
		if !set["n"] {
			n = shortN
		}
		if !set["rate"] {
			o.Rate = shortRate
		}
		if !set["latency-seconds"] {
			o.LatencySeconds = shortLatency
		}
		if !set["db-limit-seconds"] {
			o.DBLimitSeconds = shortDBLimit
		}
		if !set["timeout"] {
			o.Timeout = 40 * time.Second
		}
		if !set["stall"] {
			o.Stall = 20 * time.Second
		}
	}

	var errs []error
	var err error
	if o.Strategies, err = parseList("-strategies", strategies, strategyNames()); err != nil {
		errs = append(errs, err)
	}
	if o.Workloads, err = parseList("-workloads", workloads, allWorkloads); err != nil {
		errs = append(errs, err)
	}
	if o.Workers, err = parseInts("-workers", workers); err != nil {
		errs = append(errs, err)
	}
	if o.Lanes, err = parseLanes("-lanes", lanes); err != nil {
		errs = append(errs, err)
	}
	if o.N, err = parseNSpec(n); err != nil {
		errs = append(errs, err)
	}
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			o.Brokers = append(o.Brokers, b)
		}
	}
	for _, kv := range strings.Split(wenv, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			errs = append(errs, fmt.Errorf("-worker-env: %q is not KEY=VALUE", kv))
			continue
		}
		if k == "LANES" {
			// The table's lanes column must be what ran.
			errs = append(errs, fmt.Errorf("-worker-env: %q: set LANES with -lanes", kv))
			continue
		}
		o.WorkerEnv = append(o.WorkerEnv, kv)
	}
	switch {
	case len(o.Brokers) == 0:
		errs = append(errs, errors.New("-kafka-brokers is empty"))
	case o.Rate <= 0 && o.LatencySeconds > 0:
		errs = append(errs, fmt.Errorf("-rate must be positive, got %v", o.Rate))
	case o.LatencySeconds < 0 || o.DBLimitSeconds < 0:
		errs = append(errs, errors.New("-latency-seconds and -db-limit-seconds must not be negative"))
	case o.Partitions < 1:
		errs = append(errs, fmt.Errorf("-partitions must be at least 1, got %d", o.Partitions))
	case o.DBLimitConns < 1:
		errs = append(errs, fmt.Errorf("-db-limit-conns must be at least 1, got %d", o.DBLimitConns))
	case o.Timeout <= 0 || o.Stall <= 0:
		errs = append(errs, errors.New("-timeout and -stall must be positive"))
	}
	return o, errors.Join(errs...)
}

func parseList(flagName, v string, allowed []string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" || slices.Contains(out, s) {
			continue
		}
		if !slices.Contains(allowed, s) {
			return nil, fmt.Errorf("%s: %q is not one of: %s", flagName, s, strings.Join(allowed, ", "))
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is empty", flagName)
	}
	// Table order, whatever the order given.
	slices.SortStableFunc(out, func(a, b string) int { return slices.Index(allowed, a) - slices.Index(allowed, b) })
	return out, nil
}

// parseLanes parses -lanes: counts from 1 to maxLanes, and "default" or 0
// for the worker's default (kept as 0). Duplicates are dropped; the order is
// ascending with the default last. Whether two entries come to the same
// LANES depends on the strategy, so that is decided per run (lanesFor).
func parseLanes(flagName, v string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		n := 0
		if s != "default" {
			var err error
			n, err = strconv.Atoi(s)
			if err != nil || n < 0 || n > maxLanes {
				return nil, fmt.Errorf("%s: %q is not default or a count between 0 and %d", flagName, s, maxLanes)
			}
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is empty", flagName)
	}
	slices.SortFunc(out, func(a, b int) int { return lanesKey(a) - lanesKey(b) })
	return out, nil
}

// lanesKey orders -lanes values: counts ascending, the default (0) last.
func lanesKey(n int) int {
	if n == 0 {
		return maxLanes + 1
	}
	return n
}

func parseInts(flagName, v string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 16 {
			return nil, fmt.Errorf("%s: %q is not a count between 1 and 16", flagName, s)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is empty", flagName)
	}
	slices.Sort(out)
	return out, nil
}
