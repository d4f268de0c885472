package segment

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/origin/metricsreg"
)

// metrics are the upload queues' measurements, aggregated over the
// Segmenter's streams: per-stream series would add a label per slot, and
// the question they answer — is the store keeping up? — is the edge's. A
// stream's own figures are in its Stats and in the live status. A nil
// *metrics measures nothing.
type metrics struct {
	segments prometheus.Gauge
	bytes    prometheus.Gauge
	wait     prometheus.Histogram
	commit   prometheus.Histogram
}

// latencyBuckets run from 1 ms to about 16 s: a Write that found room
// waits for nothing, a full queue waits up to its Wait (seconds).
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 15)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		segments: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveingest_segment_queue_segments",
			Help: "Segments cut and waiting in the upload queues to be stored and listed, all streams together.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveingest_segment_queue_bytes",
			Help: "Media bytes of the segments waiting in the upload queues, all streams together.",
		}),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "liveingest_segment_queue_wait_seconds",
			Help:    "How long a protocol's read loop waited to hand a cut segment to its upload queue (back-pressure from a full queue), one observation per segment.",
			Buckets: latencyBuckets,
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "liveingest_segment_commit_seconds",
			Help:    "From a segment's cut to its files stored and the manifests listing it committed.",
			Buckets: latencyBuckets,
		}),
	}
	var err error
	if m.segments, err = metricsreg.Register(reg, m.segments); err != nil {
		return nil, err
	}
	if m.bytes, err = metricsreg.Register(reg, m.bytes); err != nil {
		return nil, err
	}
	if m.wait, err = metricsreg.Register(reg, m.wait); err != nil {
		return nil, err
	}
	if m.commit, err = metricsreg.Register(reg, m.commit); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) queued(segments, bytes int) {
	if m != nil {
		m.segments.Add(float64(segments))
		m.bytes.Add(float64(bytes))
	}
}

func (m *metrics) waited(d time.Duration) {
	if m != nil {
		m.wait.Observe(d.Seconds())
	}
}

func (m *metrics) committed(d time.Duration) {
	if m != nil {
		m.commit.Observe(d.Seconds())
	}
}
