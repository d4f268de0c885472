package whip

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the liveingest_whip_* series. Admission outcomes are counted
// by edge/admit (liveingest_admit_*), segments by the segmenter.
type metrics struct {
	requests         *prometheus.CounterVec // by method and status
	sessions         prometheus.Gauge
	ends             *prometheus.CounterVec // by reason
	keyframeRequests prometheus.Counter
	panics           prometheus.Counter // readers that panicked (each ended its session)
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveingest_whip_requests_total",
			Help: "WHIP HTTP requests by method and response status.",
		}, []string{"method", "status"}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveingest_whip_sessions",
			Help: "WHIP sessions now open (answered, not yet ended).",
		}),
		ends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveingest_whip_session_ends_total",
			Help: "WHIP sessions ended, by reason: delete, closed, ice-failed, media-timeout, shutdown, or an admission reason.",
		}, []string{"reason"}),
		keyframeRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveingest_whip_keyframe_requests_total",
			Help: "RTCP PLI keyframe requests sent to WHIP publishers.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveingest_whip_panics_total",
			Help: "WHIP media readers that panicked; each ended its own session only.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.sessions, m.ends, m.keyframeRequests, m.panics} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
