package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	xs := ms(50, 10, 40, 20, 30, 60, 70, 80, 90, 100) // unsorted on purpose
	for _, c := range []struct {
		p    float64
		want int
	}{{0, 10}, {1, 10}, {10, 10}, {11, 20}, {50, 50}, {90, 90}, {99, 100}, {100, 100}} {
		if got := Percentile(xs, c.p); got != time.Duration(c.want)*time.Millisecond {
			t.Errorf("p%v = %v, want %dms", c.p, got, c.want)
		}
	}
	if xs[0] != 50*time.Millisecond {
		t.Error("Percentile reordered its input")
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty: want 0")
	}
	if got := Percentile(ms(7), 99); got != 7*time.Millisecond {
		t.Errorf("one sample: %v", got)
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	if h.Quantile(99) != 0 {
		t.Error("empty: want 0")
	}
	for range 98 {
		h.Add(300 * time.Microsecond) // bucket ≤ 500µs
	}
	h.Add(15 * time.Millisecond) // ≤ 20ms
	h.Add(7 * time.Second)       // above every bound
	if got := h.Quantile(50); got != 500*time.Microsecond {
		t.Errorf("p50 %v, want 500µs", got)
	}
	if got := h.Quantile(99); got != 20*time.Millisecond {
		t.Errorf("p99 %v, want 20ms", got)
	}
	if got := h.Quantile(100); got != 7*time.Second {
		t.Errorf("p100 %v, want the max 7s", got)
	}
	var m Histogram
	m.Add(time.Millisecond)
	m.Merge(&h)
	if m.N != 101 || m.Max != 7*time.Second {
		t.Errorf("merged N %d max %v", m.N, m.Max)
	}
	var small Histogram
	small.Add(3 * time.Millisecond)
	if got := small.Quantile(50); got != 3*time.Millisecond {
		t.Errorf("a bucket bound above the max is capped at the max: %v", got)
	}
}
