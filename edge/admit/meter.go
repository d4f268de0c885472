package admit

import (
	"sync/atomic"
	"time"
)

// meter measures a session's ingest bitrate over a sliding window without a
// lock or an allocation per access unit: ObserveAU runs for every frame,
// possibly from one goroutine per track (WHIP reads audio and video apart).
//
// The window is the meterBuckets whole buckets (of window/meterBuckets each)
// before the running one, on the
// session's clock (wall time: what the edge has to carry, and what a
// publisher cannot fake with timestamps). Each bucket is one atomic word
// holding the bucket's sequence number (24 bits, modulo) and its byte count
// (40 bits, a terabyte per bucket): a writer that finds an older sequence in
// the word starts the bucket afresh, so stale buckets never need sweeping.
type meter struct {
	clock  interface{ Now() time.Time }
	start  time.Time
	bucket time.Duration
	limit  float64 // bits per second the window average may reach; 0: no limit

	words     [meterWords]atomic.Uint64
	evaluated atomic.Int64 // last bucket sequence at whose start the window was checked
}

const (
	meterBuckets = 10
	// meterWords has one word more than the window, for the running bucket:
	// the window's oldest bucket must survive the first write of the next.
	meterWords = meterBuckets + 1
	byteBits   = 40
	byteMask   = 1<<byteBits - 1
	seqMask    = 1<<(64-byteBits) - 1
)

func (m *meter) init(clock interface{ Now() time.Time }, start time.Time, window time.Duration, limitBps float64) {
	m.clock, m.start, m.bucket, m.limit = clock, start, window/meterBuckets, limitBps
}

// seqAt is the bucket sequence number of t (bucket 0 starts at m.start).
func (m *meter) seqAt(t time.Time) int64 {
	return max(0, int64(t.Sub(m.start)/m.bucket))
}

// add counts n bytes now. It returns the window's average in bits per second
// and true when this call is the first in a bucket and the window that just
// completed averaged above the limit (so the caller ends the session); the
// check runs at most once per bucket, by whichever call gets there first.
func (m *meter) add(n int) (float64, bool) {
	seq := m.seqAt(m.clock.Now())
	tag := uint64(seq) & seqMask
	w := &m.words[seq%meterWords]
	for {
		old := w.Load()
		oldTag := old >> byteBits
		var next uint64
		switch {
		case oldTag == tag:
			next = old + uint64(n)&byteMask
		case (tag-oldTag)&seqMask > seqMask/2:
			// A newer bucket already took the word: this call stalled for a
			// whole window between reading the clock and here. Drop it
			// rather than wipe newer data.
			return 0, false
		default:
			next = tag<<byteBits | uint64(n)&byteMask
		}
		if w.CompareAndSwap(old, next) {
			break
		}
	}
	if m.limit <= 0 || seq < meterBuckets {
		return 0, false // no limit, or no whole window yet
	}
	last := m.evaluated.Load()
	if seq <= last || !m.evaluated.CompareAndSwap(last, seq) {
		return 0, false
	}
	bps := m.windowBps(seq)
	return bps, bps > m.limit
}

// windowBps is the average over the meterBuckets whole buckets before seq.
func (m *meter) windowBps(seq int64) float64 {
	var sum uint64
	for s := seq - meterBuckets; s < seq; s++ {
		sum += m.bytesIn(s)
	}
	return float64(sum) * 8 / (time.Duration(meterBuckets) * m.bucket).Seconds()
}

// bytesIn is what bucket s holds, 0 if its word has moved on or never got there.
func (m *meter) bytesIn(s int64) uint64 {
	if s < 0 {
		return 0
	}
	word := m.words[s%meterWords].Load()
	if word>>byteBits != uint64(s)&seqMask {
		return 0
	}
	return word & byteMask
}

// kbps is the current bitrate for the registry: the average over the whole
// buckets of the last window (fewer at the start of a session), or over the
// running bucket before the first one completes.
func (m *meter) kbps(now time.Time) int64 {
	seq := m.seqAt(now)
	if seq == 0 {
		el := now.Sub(m.start)
		if el <= 0 {
			return 0
		}
		return int64(float64(m.bytesIn(0)) * 8 / el.Seconds() / 1000)
	}
	from := max(0, seq-meterBuckets)
	var sum uint64
	for s := from; s < seq; s++ {
		sum += m.bytesIn(s)
	}
	return int64(float64(sum) * 8 / (time.Duration(seq-from) * m.bucket).Seconds() / 1000)
}
