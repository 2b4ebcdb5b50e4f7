package worker

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the worker's Prometheus series.
type Metrics struct {
	orders *prometheus.CounterVec
}

// NewMetrics registers the worker's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stockflow_orders_total",
			Help: "Order-placed messages answered, by outcome (deducted, rejected, dead_letter) and whether the answer was a replay of a stored decision.",
		}, []string{"outcome", "replayed"}),
	}
	reg.MustRegister(m.orders)
	return m
}

func (m *Metrics) answered(outcome string, replayed bool) {
	if m == nil {
		return
	}
	r := "false"
	if replayed {
		r = "true"
	}
	m.orders.WithLabelValues(outcome, r).Inc()
}
