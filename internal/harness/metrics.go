package harness

import (
	"fmt"
	"io"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics are the metric families of one Prometheus text-format page, by
// family name (a counter's name includes its _total).
type Metrics map[string]*dto.MetricFamily

// Labels selects series: every name must have the given value. Nil or empty
// selects every series of a family.
type Labels map[string]string

// ParseMetrics parses the Prometheus text exposition format (what /metrics
// serves) with expfmt.
func ParseMetrics(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return Metrics(fams), nil
}

// Sum adds up the values of the counter, gauge or untyped series of family
// name that match. A family that is not there sums to 0 (a counter vector
// shows no series before its first increment).
func (m Metrics) Sum(name string, match Labels) float64 {
	total := 0.0
	for _, s := range m.series(name, match) {
		switch {
		case s.Counter != nil:
			total += s.Counter.GetValue()
		case s.Gauge != nil:
			total += s.Gauge.GetValue()
		case s.Untyped != nil:
			total += s.Untyped.GetValue()
		}
	}
	return total
}

// Histogram adds up the sample sums and counts of the histogram series of
// family name that match; 0, 0 when there are none.
func (m Metrics) Histogram(name string, match Labels) (sum, count float64) {
	for _, s := range m.series(name, match) {
		h := s.GetHistogram()
		if h == nil {
			continue
		}
		sum += h.GetSampleSum()
		if h.SampleCountFloat != nil {
			count += h.GetSampleCountFloat()
		} else {
			count += float64(h.GetSampleCount())
		}
	}
	return sum, count
}

func (m Metrics) series(name string, match Labels) []*dto.Metric {
	f, ok := m[name]
	if !ok {
		return nil
	}
	var out []*dto.Metric
	for _, s := range f.GetMetric() {
		if matches(s, match) {
			out = append(out, s)
		}
	}
	return out
}

func matches(s *dto.Metric, match Labels) bool {
	for name, want := range match {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == name {
				found = l.GetValue() == want
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
