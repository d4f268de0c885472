package whip

import (
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/liveingest/liveingest/origin/coord"
)

// linkMeter turns the PeerConnection's statistics into the link figures
// of the live status (coord.LinkStats). The heartbeat calls it from its own
// goroutine. pion's GetStats races with Close (both touch the ICE
// transport's fields unguarded), so the PeerConnection is closed through
// the meter, under the same lock.
type linkMeter struct {
	pc *webrtc.PeerConnection

	mu        sync.Mutex
	closed    bool
	lastBytes uint64
	lastAt    time.Time
}

// close closes the PeerConnection; stats reports nothing from then on.
func (m *linkMeter) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return m.pc.Close()
}

// stats sums the inbound RTP streams (audio and video) and takes the round
// trip time of the selected candidate pair; the receive rate is over the
// time since the previous call.
func (m *linkMeter) stats() coord.LinkStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ls coord.LinkStats
	if m.closed {
		return ls
	}
	var bytes uint64
	for _, st := range m.pc.GetStats() {
		switch s := st.(type) {
		case webrtc.InboundRTPStreamStats:
			ls.PacketsReceived += uint64(s.PacketsReceived)
			ls.PacketsLost += uint64(max(s.PacketsLost, 0))
			ls.PacketsDropped += uint64(s.PacketsDiscarded)
			bytes += s.BytesReceived
		case webrtc.ICECandidatePairStats:
			if s.Nominated && s.State == webrtc.StatsICECandidatePairStateSucceeded {
				ls.RTTMs = s.CurrentRoundTripTime * 1000
			}
		}
	}
	now := time.Now()
	if !m.lastAt.IsZero() && bytes >= m.lastBytes {
		if secs := now.Sub(m.lastAt).Seconds(); secs > 0 {
			ls.ReceiveRateKbps = int64(float64(bytes-m.lastBytes) * 8 / 1000 / secs)
		}
	}
	m.lastBytes, m.lastAt = bytes, now
	return ls
}
