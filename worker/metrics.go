package worker

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stockflow/stockflow/events"
)

// Metrics are the worker's Prometheus series. A nil *Metrics records nothing.
type Metrics struct {
	orders        *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	poison        *prometheus.CounterVec
	cancellations *prometheus.CounterVec
	deduct        *prometheus.HistogramVec
	batchSize     prometheus.Histogram
	retries       *prometheus.CounterVec
	dbRetries     *prometheus.CounterVec
	lag           *prometheus.GaugeVec
	ready         prometheus.Gauge
}

// NewMetrics registers the worker's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockflow_orders_total",
			Help: "Order-placed messages answered, by outcome (deducted, rejected, dead_letter) and whether the answer replayed a stored decision.",
		}, []string{"outcome", "replayed"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockflow_dead_letters_total",
			Help: "Messages sent to the dead-letter topic, by source topic.",
		}, []string{"topic"}),
		poison: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockflow_poison_total",
			Help: "Messages parked on the dead-letter topic because handling them kept failing on their own while the services answered, by source topic.",
		}, []string{"topic"}),
		cancellations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockflow_cancellations_total",
			Help: "Order-cancelled messages handled, by result (released, nothing, before_order) and whether it was a replay.",
		}, []string{"result", "replayed"}),
		deduct: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stockflow_deduct_seconds",
			Help:    "Time to decide one call of the lock strategy (one order, or one run for batch), by strategy.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"strategy"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "stockflow_batch_size",
			Help:    "Orders per transaction of the batch strategy (a run: the chain of one goods, or ready orders of many).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockflow_batch_retries_total",
			Help: "Attempts to decide or publish that failed and were retried, by whether the failure was classified transient.",
		}, []string{"transient"}),
		dbRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockflow_db_retries_total",
			Help: "Transactions retried inside a strategy, by strategy and cause (deadlock, lock_wait_timeout, snapshot_conflict, duplicate, conflict, guard).",
		}, []string{"strategy", "cause"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stockflow_consumer_lag",
			Help: "Messages behind the partition's high-water mark at the last fetch, by topic and partition.",
		}, []string{"topic", "partition"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stockflow_ready",
			Help: "1 while no part of the worker is retrying a failure, 0 while one is.",
		}),
	}
	reg.MustRegister(m.orders, m.deadLetters, m.poison, m.cancellations, m.deduct, m.batchSize, m.retries, m.dbRetries, m.lag, m.ready)
	return m
}

// DBRetry counts a transaction a strategy retried, by its cause
// (db.RetryCause names them).
func (m *Metrics) DBRetry(strategy, cause string) {
	if m != nil {
		m.dbRetries.WithLabelValues(strategy, cause).Inc()
	}
}

// answered counts an order answered with an outcome event of type typ.
func (m *Metrics) answered(typ string, replayed bool) {
	if m != nil {
		outcome := "rejected"
		if typ == events.TypeDeducted {
			outcome = "deducted"
		}
		m.orders.WithLabelValues(outcome, strconv.FormatBool(replayed)).Inc()
	}
}

func (m *Metrics) deadLetter(topic string) {
	if m != nil {
		m.orders.WithLabelValues("dead_letter", "false").Inc()
		m.deadLetters.WithLabelValues(topic).Inc()
	}
}

func (m *Metrics) poisoned(topic string) {
	if m != nil {
		m.poison.WithLabelValues(topic).Inc()
		m.deadLetters.WithLabelValues(topic).Inc()
	}
}

func (m *Metrics) cancelled(result string, replayed bool) {
	if m != nil {
		m.cancellations.WithLabelValues(result, strconv.FormatBool(replayed)).Inc()
	}
}

func (m *Metrics) deducted(strategy string, took time.Duration) {
	if m != nil {
		m.deduct.WithLabelValues(strategy).Observe(took.Seconds())
	}
}

func (m *Metrics) batch(n int) {
	if m != nil {
		m.batchSize.Observe(float64(n))
	}
}

func (m *Metrics) retried(transient bool) {
	if m != nil {
		m.retries.WithLabelValues(strconv.FormatBool(transient)).Inc()
	}
}

func (m *Metrics) fetched(topic string, partition int, offset, highWaterMark int64) {
	if m != nil {
		m.lag.WithLabelValues(topic, strconv.Itoa(partition)).Set(float64(max(highWaterMark-offset-1, 0)))
	}
}

func (m *Metrics) setReady(ok bool) {
	if m != nil {
		v := 0.0
		if ok {
			v = 1
		}
		m.ready.Set(v)
	}
}
