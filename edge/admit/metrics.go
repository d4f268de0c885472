package admit

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/origin/metricsreg"
)

// metrics are the admission counters and gauges. Several Admission values
// may share one Registerer (an edge serving RTMP and SRT, or tests with two
// "edges"), so a collector that is already registered is reused instead of
// failing.
type metrics struct {
	rejections *prometheus.CounterVec // nil: no metrics
	unleased   prometheus.Gauge       // nil: no metrics
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return &metrics{}, nil
	}
	cv, err := metricsreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveingest_ingest_rejections_total",
		Help: "Publishes refused at admission and ingest sessions ended with a reason, by protocol and reason (R-EDGE-5).",
	}, []string{"protocol", "reason"}))
	if err != nil {
		return nil, err
	}
	g, err := metricsreg.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "liveingest_ingest_sessions_without_lease",
		Help: "Ingest sessions publishing on without a slot lease: it lapsed or was lost while coordination was unreachable, and was not re-established yet. Their writes stay fenced by the store.",
	}))
	if err != nil {
		return nil, err
	}
	return &metrics{rejections: cv, unleased: g}, nil
}

// rejected counts one rejection. protocol is one of the known protocols (or
// "unknown"), so the label set stays bounded whatever a client sends.
func (m *metrics) rejected(protocol string, r Reason) {
	if m.rejections != nil {
		m.rejections.WithLabelValues(protocol, string(r)).Inc()
	}
}

// withoutLease moves the count of sessions running without a lease by d.
func (m *metrics) withoutLease(d float64) {
	if m.unleased != nil {
		m.unleased.Add(d)
	}
}
