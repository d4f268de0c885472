package srt

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the SRT server's own: handshakes, publishers, recovered
// panics, and per publishing connection the link measurements (labelled by
// slot id and role, so a bad contribution path shows up per stream; the
// series exist only while the connection publishes).
type metrics struct {
	handshakes      *prometheus.CounterVec
	publishers      prometheus.Gauge
	decodeErrors    prometheus.Counter
	discontinuities prometheus.Counter
	handshakePanics prometheus.Counter
	connPanics      prometheus.Counter
	link            *linkCollector
}

func newMetrics(reg prometheus.Registerer, s *Server) (*metrics, error) {
	m := &metrics{
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveingest_srt_handshakes_total",
			Help: "SRT connection requests by result: accepted, rejected (by admission; see liveingest_ingest_rejections_total for why) or bad-streamid.",
		}, []string{"result"}),
		publishers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "liveingest_srt_publishers",
			Help: "SRT callers currently writing segments.",
		}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveingest_srt_ts_decode_errors_total",
			Help: "MPEG-TS decode errors (packet loss, corrupt PES) of ended SRT connections.",
		}),
		discontinuities: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveingest_srt_ts_discontinuities_total",
			Help: "MPEG-TS timestamp discontinuities (encoder restarts) bridged, of ended SRT connections.",
		}),
		handshakePanics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveingest_srt_handshake_panics_total",
			Help: "Handshake packets on which the SRT library panicked (malformed handshakes its parser does not check); each was dropped unanswered and the listener went on accepting.",
		}),
		connPanics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "liveingest_srt_connection_panics_total",
			Help: "Panics recovered in an SRT connection's goroutines (handshake answer, admission, MPEG-TS, watchdog); each ended its own connection only.",
		}),
		link: &linkCollector{s: s},
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.handshakes, m.publishers, m.decodeErrors, m.discontinuities,
			m.handshakePanics, m.connPanics, m.link} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

var (
	labels      = []string{"slot", "role"}
	descRTT     = prometheus.NewDesc("liveingest_srt_rtt_seconds", "Smoothed round-trip time of a publishing SRT connection.", labels, nil)
	descRate    = prometheus.NewDesc("liveingest_srt_receive_rate_bits_per_second", "Current receive rate of a publishing SRT connection, retransmissions included.", labels, nil)
	descRecv    = prometheus.NewDesc("liveingest_srt_packets_received_total", "Data packets received on a publishing SRT connection, retransmissions included.", labels, nil)
	descLost    = prometheus.NewDesc("liveingest_srt_packets_lost_total", "Data packets detected missing on a publishing SRT connection (recovered or dropped later).", labels, nil)
	descRetrans = prometheus.NewDesc("liveingest_srt_packets_retransmitted_total", "Retransmitted data packets received on a publishing SRT connection.", labels, nil)
	descDropped = prometheus.NewDesc("liveingest_srt_packets_dropped_total", "Data packets of a publishing SRT connection the receiver discarded (arrived too late or twice). Media lost for good shows as liveingest_srt_ts_decode_errors_total.", labels, nil)
)

// linkCollector reads the statistics of every publishing connection at
// scrape time.
type linkCollector struct{ s *Server }

func (l *linkCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRTT, descRate, descRecv, descLost, descRetrans, descDropped} {
		ch <- d
	}
}

func (l *linkCollector) Collect(ch chan<- prometheus.Metric) {
	for _, c := range l.s.publishing() {
		st := c.linkStats()
		lv := []string{c.slot, c.role}
		ch <- prometheus.MustNewConstMetric(descRTT, prometheus.GaugeValue, st.RTTMs/1000, lv...)
		ch <- prometheus.MustNewConstMetric(descRate, prometheus.GaugeValue, float64(st.ReceiveRateKbps)*1000, lv...)
		ch <- prometheus.MustNewConstMetric(descRecv, prometheus.CounterValue, float64(st.PacketsReceived), lv...)
		ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(st.PacketsLost), lv...)
		ch <- prometheus.MustNewConstMetric(descRetrans, prometheus.CounterValue, float64(st.PacketsRetransmitted), lv...)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.PacketsDropped), lv...)
	}
}
