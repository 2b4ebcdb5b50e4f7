// Command stockworker runs stockflow's worker: it consumes order-placed events,
// deducts stock in MySQL under the configured lock strategy, and publishes an
// outcome event for every order. `stockworker migrate` applies the migrations.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/stockflow/stockflow/db"
	"github.com/stockflow/stockflow/internal/wire"
	"github.com/stockflow/stockflow/producer"
	"github.com/stockflow/stockflow/worker"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"
)

// publishAttempts is how many times the worker's writer tries a partition's
// batch of answers before the worker holds them and retries them later.
const publishAttempts = 3

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second signal, after the first cancelled ctx, exits at once.
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		<-again
		fmt.Fprintln(os.Stderr, "stockworker: second signal, exiting now")
		os.Exit(130)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	migrateOnly := len(args) > 0 && args[0] == "migrate"
	if migrateOnly {
		args = args[1:]
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "stockworker: %v\n", err)
		return 2
	}
	log, err := newLogger(cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "stockworker: %v\n", err)
		return 2
	}
	defer log.Sync() //nolint:errcheck // nothing useful to do about a failed flush at exit

	if migrateOnly {
		err = migrate(ctx, cfg, log)
	} else {
		err = serve(ctx, cfg, log)
	}
	if err != nil {
		log.Error("stockworker failed", zap.Error(err))
		return 1
	}
	return 0
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("LOG_LEVEL %q: %w", level, err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.EncoderConfig.TimeKey = "ts"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return zc.Build()
}

// openDB connects to MYSQL_DSN (with MYSQL_TLS_*) and, with MIGRATE, creates
// the database if it is missing and applies pending migrations. A user
// without DDL rights passes when the database exists and the schema is
// current; with migrations pending it fails with db.ErrMigrateDenied.
func openDB(ctx context.Context, cfg config, log *zap.Logger) (*gorm.DB, error) {
	dsn, err := cfg.mysqlDSN()
	if err != nil {
		return nil, err
	}
	if cfg.Migrate {
		if err := db.EnsureDatabase(ctx, dsn); err != nil {
			return nil, err
		}
	}
	g, err := db.Open(ctx, dsn, db.PoolOptions{MaxOpen: cfg.DBMaxOpen})
	if err != nil {
		return nil, err
	}
	if cfg.Migrate {
		applied, err := db.Migrate(ctx, g)
		if err != nil {
			db.Close(g)
			return nil, err
		}
		log.Info("database ready", zap.String("dsn", db.RedactDSN(cfg.MySQLDSN)), zap.String("tls", cfg.mysqlTLSMode()),
			zap.Ints("migrations_applied", applied))
	}
	return g, nil
}

func migrate(ctx context.Context, cfg config, log *zap.Logger) error {
	cfg.Migrate = true
	g, err := openDBWhenReachable(ctx, cfg, log)
	if err != nil {
		return err
	}
	return db.Close(g)
}

// openDBWhenReachable is openDB, waiting for a database that does not answer
// yet (db.Transient) rather than failing.
func openDBWhenReachable(ctx context.Context, cfg config, log *zap.Logger) (*gorm.DB, error) {
	var g *gorm.DB
	err := untilReachable(ctx, log, "MySQL", db.Transient, func(ctx context.Context) error {
		var err error
		g, err = openDB(ctx, cfg, log)
		return err
	})
	return g, err
}

func serve(ctx context.Context, cfg config, log *zap.Logger) error {
	brokers := cfg.brokerList()
	if cfg.Brokers == "embedded" {
		cluster, err := kfake.NewCluster(kfake.Ports(9092), kfake.DefaultNumPartitions(cfg.Partitions))
		if err != nil {
			return fmt.Errorf("start the embedded broker on 127.0.0.1:9092: %w", err)
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()
		log.Warn("embedded Kafka broker started: development only, nothing is persisted", zap.Strings("brokers", brokers))
	}

	g, err := openDBWhenReachable(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close(g)

	if cfg.CreateTopics {
		if err := untilReachable(ctx, log, "Kafka", kafkaAway, func(ctx context.Context) error {
			return producer.EnsureTopicsWith(ctx, cfg.KafkaSecurity, brokers, cfg.Partitions, cfg.Replication, cfg.OrdersTopic, cfg.CancelledTopic, cfg.EventsTopic, cfg.DLQTopic)
		}); err != nil {
			return err
		}
	} else {
		// Waiting cannot create a topic: say so once and stop, rather than
		// consume nothing, quietly, forever.
		var missing []string
		err := untilReachable(ctx, log, "Kafka", kafkaAway, func(ctx context.Context) error {
			var err error
			missing, err = producer.MissingTopicsWith(ctx, cfg.KafkaSecurity, brokers, cfg.OrdersTopic, cfg.CancelledTopic, cfg.EventsTopic, cfg.DLQTopic)
			return err
		})
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return fmt.Errorf("topic(s) %s do not exist and CREATE_TOPICS=false: create them, or let the worker create them with CREATE_TOPICS=true",
				strings.Join(missing, ", "))
		}
	}

	// The worker retries answers that failed itself, and publishes the
	// answers decided meanwhile as they come (worker.publisher): a write
	// should not wait long for a partition without a leader.
	pub := producer.New(brokers, producer.Options{Partitioner: producer.Partitioner(cfg.Partitioner), Security: cfg.KafkaSecurity, Attempts: publishAttempts})
	defer pub.Close()

	var rdb *redis.Client
	if cfg.Strategy == "redis" {
		ropts, err := cfg.redisOptions()
		if err != nil {
			return err
		}
		rdb = redis.NewClient(ropts)
		defer rdb.Close()
		if err := checkRedis(ctx, rdb, cfg, log); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := worker.NewMetrics(reg)
	dbOpts := wire.Options(metrics, db.Options{RedisPrefix: cfg.RedisPrefix})
	deductor, err := db.NewStrategy(cfg.Strategy, g, rdb, dbOpts)
	if err != nil {
		return err
	}
	ledger := db.NewLedger(g, dbOpts)
	wcfg := cfg.workerConfig(brokers, metrics)
	wcfg.Probe = func(ctx context.Context) error {
		if err := ledger.Probe(ctx); err != nil {
			return err
		}
		if rdb != nil {
			if err := rdb.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("redis: %w", err)
			}
		}
		return nil
	}

	w, err := worker.New(wcfg, wire.Deductor(deductor), wire.Ledger(ledger), pub, log)
	if err != nil {
		return err
	}

	grp, gctx := errgroup.WithContext(ctx)
	var endpoints []endpoint
	if cfg.HTTPAddr != "" {
		endpoints = append(endpoints, endpoint{"HTTP_ADDR", cfg.HTTPAddr, httpHandler(w, g, rdb, brokers, reg)})
	}
	if cfg.PprofAddr != "" {
		endpoints = append(endpoints, endpoint{"PPROF_ADDR", cfg.PprofAddr, pprofHandler()})
		log.Warn("pprof enabled: profiles are served without authentication; keep PPROF_ADDR off the network", zap.String("pprof", cfg.PprofAddr))
	}
	if err := serveHTTP(gctx, grp, endpoints); err != nil {
		return err
	}
	grp.Go(func() error {
		err := w.Run(gctx)
		if ctx.Err() == nil && err == nil {
			err = errors.New("worker stopped unexpectedly")
		}
		return err
	})
	log.Info("stockworker running", zap.Strings("brokers", brokers), zap.Stringer("kafka_security", cfg.KafkaSecurity),
		zap.String("strategy", cfg.Strategy), zap.String("group", cfg.GroupID), zap.String("http", cfg.HTTPAddr),
		zap.String("outcome_partitioner", cfg.Partitioner))
	// A member stops for good when Kafka refuses it (worker's fatalFetch):
	// say what to check.
	err = cfg.KafkaSecurity.Explain(grp.Wait())
	log.Info("stockworker stopped")
	return err
}

// httpHandler serves /healthz (the process is alive), /readyz (MySQL, Kafka and,
// for the redis strategy, Redis answer, and the worker is not stuck retrying a
// failure) and /metrics.
// workerConfig maps the configuration onto the worker's.
func (c config) workerConfig(brokers []string, metrics *worker.Metrics) worker.Config {
	return worker.Config{
		Brokers:        brokers,
		GroupID:        c.GroupID,
		OrdersTopic:    c.OrdersTopic,
		CancelledTopic: c.CancelledTopic,
		EventsTopic:    c.EventsTopic,
		DLQTopic:       c.DLQTopic,
		Strategy:       c.Strategy,
		DrainTimeout:   c.ShutdownGrace,
		BatchSize:      c.BatchSize,
		BatchWait:      c.BatchWait,
		Consumers:      c.Consumers,
		Lanes:          c.lanes(),
		Limits:         c.Limits,
		PoisonAttempts: c.PoisonAttempts,
		Metrics:        metrics,
		Transient:      wire.Transient,
		OpenReader:     c.openReader,
	}
}

// lanes is LANES, or, when it is 0, DB_MAX_OPEN shared among the consumers
// (as many decisions at once as the pool has connections) — except for the
// batch strategy, whose runs already carry many orders each: one lane, so
// that at low load orders gather into runs instead of many small
// transactions competing for the database.
func (c config) lanes() int {
	switch {
	case c.Lanes > 0:
		return c.Lanes
	case c.Strategy == "batch":
		return 1
	}
	return max(1, c.DBMaxOpen/max(1, c.Consumers))
}

func httpHandler(w *worker.Worker, g *gorm.DB, rdb *redis.Client, brokers []string, reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var problems []string
		if sqlDB, err := g.DB(); err != nil {
			problems = append(problems, "mysql: "+err.Error())
		} else if err := sqlDB.PingContext(ctx); err != nil {
			problems = append(problems, "mysql: "+err.Error())
		}
		if err := dialAny(ctx, brokers); err != nil {
			problems = append(problems, "kafka: "+err.Error())
		}
		if rdb != nil {
			if err := rdb.Ping(ctx).Err(); err != nil {
				problems = append(problems, "redis: "+err.Error())
			}
		}
		if err := w.Ready(); err != nil {
			problems = append(problems, "worker: retrying: "+err.Error())
		}
		if len(problems) > 0 {
			rw.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range problems {
				fmt.Fprintln(rw, p)
			}
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

func dialAny(ctx context.Context, addrs []string) error {
	var d net.Dialer
	var last error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", a)
		if err == nil {
			return c.Close()
		}
		last = err
	}
	return last
}
