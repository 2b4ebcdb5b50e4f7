package deploytest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/stockflow/stockflow/worker"
)

// targetLabels are the labels Prometheus attaches to every scraped series.
var targetLabels = []string{"job", "instance"}

// series is one series name a worker exports: the metric family it belongs
// to (a histogram's _bucket, _sum and _count belong to the histogram) and the
// label names it carries, target labels included.
type series struct {
	family string
	labels []string
}

// exported returns every series name a stockworker process exports, by name.
// The stockflow_ series come from worker.NewMetrics itself: a recording
// Registerer keeps what it registers, and each vector gets one child, since
// a vector without children shows up in no Gather. The Go runtime and
// process series come from the collectors cmd/stockworker registers beside
// them; TestPrometheusScrapesWorker checks the ones the dashboard reads
// against a real worker's /metrics.
func exported(t *testing.T) map[string]series {
	t.Helper()
	reg := prometheus.NewRegistry()
	rec := &recordingRegisterer{Registerer: reg}
	worker.NewMetrics(rec)
	if len(rec.collectors) == 0 {
		t.Fatal("worker.NewMetrics registered nothing")
	}
	descs := 0
	for _, c := range rec.collectors {
		descs += countDescs(c)
		if err := instantiate(c); err != nil {
			t.Fatal(err)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather the worker's metrics: %v", err)
	}
	if len(fams) != descs {
		t.Fatalf("the worker describes %d metrics but %d show up in a Gather: teach instantiate about the new collector type", descs, len(fams))
	}
	runtime := prometheus.NewRegistry()
	runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	more, err := runtime.Gather()
	if err != nil {
		t.Fatalf("gather the runtime metrics: %v", err)
	}
	out := map[string]series{}
	for _, f := range append(fams, more...) {
		for name, s := range seriesOf(f) {
			out[name] = s
		}
	}
	return out
}

// recordingRegisterer registers on the Registerer it wraps and keeps every
// collector it was given.
type recordingRegisterer struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func countDescs(c prometheus.Collector) int {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	n := 0
	for range ch {
		n++
	}
	return n
}

// instantiate gives a vector one child, trying label counts until the vector
// accepts one; plain metrics show up as they are.
func instantiate(c prometheus.Collector) error {
	var child func(values []string) error
	switch v := c.(type) {
	case *prometheus.CounterVec:
		child = func(l []string) error { _, err := v.GetMetricWithLabelValues(l...); return err }
	case *prometheus.GaugeVec:
		child = func(l []string) error { _, err := v.GetMetricWithLabelValues(l...); return err }
	case *prometheus.HistogramVec:
		child = func(l []string) error { _, err := v.GetMetricWithLabelValues(l...); return err }
	case *prometheus.SummaryVec:
		child = func(l []string) error { _, err := v.GetMetricWithLabelValues(l...); return err }
	default:
		return nil
	}
	var err error
	for n := 1; n <= 16; n++ {
		if err = child(slices.Repeat([]string{"x"}, n)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no label count fits the vector %T: %v", c, err)
}

// seriesOf names the series a family's exposition holds.
func seriesOf(f *dto.MetricFamily) map[string]series {
	labels := slices.Clone(targetLabels)
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(labels, l.GetName()) {
				labels = append(labels, l.GetName())
			}
		}
	}
	name := f.GetName()
	with := func(extra ...string) series {
		return series{family: name, labels: append(slices.Clone(labels), extra...)}
	}
	switch f.GetType() {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return map[string]series{name + "_bucket": with("le"), name + "_sum": with(), name + "_count": with()}
	case dto.MetricType_SUMMARY:
		return map[string]series{name: with("quantile"), name + "_sum": with(), name + "_count": with()}
	}
	return map[string]series{name: with()}
}

func TestExportedSeriesComeFromTheWorker(t *testing.T) {
	got := exported(t)
	// A few the README documents, to show the derivation sees them; the
	// list of what exists is the worker's, not this one.
	for name, label := range map[string]string{
		"stockflow_orders_total":          "outcome",
		"stockflow_consumer_lag":          "partition",
		"stockflow_deduct_seconds_bucket": "le",
		"stockflow_ready":                 "instance",
		"process_resident_memory_bytes":   "job",
	} {
		s, ok := got[name]
		if !ok {
			t.Errorf("%s is not among the exported series", name)
			continue
		}
		if !slices.Contains(s.labels, label) {
			t.Errorf("%s has labels %v, not %s", name, s.labels, label)
		}
	}
	if _, ok := got["stockflow_deduct_seconds"]; ok {
		t.Error("a classic histogram's own name is not a series")
	}
	n := 0
	for name := range got {
		if strings.HasPrefix(name, "stockflow_") {
			n++
		}
	}
	t.Logf("%d series names, %d of them stockflow_", len(got), n)
}
