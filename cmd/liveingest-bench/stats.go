package main

import (
	"math"
	"slices"
	"time"
)

// Percentile is the nearest-rank percentile p (0–100) of xs; 0 when xs is
// empty. It sorts a copy: callers keep their order.
func Percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// histBounds are the upper bounds of the Histogram's buckets. A publisher
// adds one value per frame (thousands a second in all), so it keeps counts,
// not samples; the percentiles it gives are bucket bounds, precise enough to
// tell a millisecond of jitter from a stall.
var histBounds = []time.Duration{
	100 * time.Microsecond, 200 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second,
}

// Histogram counts durations into histBounds buckets (the last bucket holds
// everything above). The zero value is ready. Not safe for concurrent use.
type Histogram struct {
	Counts [16]int64
	N      int64
	Max    time.Duration
}

// Add counts d.
func (h *Histogram) Add(d time.Duration) {
	i, _ := slices.BinarySearch(histBounds, d)
	h.Counts[i]++
	h.N++
	h.Max = max(h.Max, d)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.N += o.N
	h.Max = max(h.Max, o.Max)
}

// Quantile is the upper bound of the bucket holding the p-th percentile
// (0–100); Max for the open last bucket; 0 when empty.
func (h *Histogram) Quantile(p float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	rank := int64(math.Ceil(p / 100 * float64(h.N)))
	rank = min(max(rank, 1), h.N)
	var seen int64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			if i < len(histBounds) {
				return min(histBounds[i], h.Max)
			}
			return h.Max
		}
	}
	return h.Max
}
