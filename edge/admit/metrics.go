package admit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the admission counters. Several Admission values may share one
// Registerer (an edge serving RTMP and SRT, or tests with two "edges"), so a
// collector that is already registered is reused instead of failing.
type metrics struct {
	rejections *prometheus.CounterVec // nil: no metrics
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return &metrics{}, nil
	}
	cv := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liveingest_ingest_rejections_total",
		Help: "Publishes refused at admission and ingest sessions ended with a reason, by protocol and reason (R-EDGE-5).",
	}, []string{"protocol", "reason"})
	if err := reg.Register(cv); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, err
		}
		cv = existing
	}
	return &metrics{rejections: cv}, nil
}

// rejected counts one rejection. protocol is one of the known protocols (or
// "unknown"), so the label set stays bounded whatever a client sends.
func (m *metrics) rejected(protocol string, r Reason) {
	if m.rejections != nil {
		m.rejections.WithLabelValues(protocol, string(r)).Inc()
	}
}
