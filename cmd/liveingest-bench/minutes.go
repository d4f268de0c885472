package main

import (
	"time"
)

// A cost that grows with time (a leak, a list that is scanned on every
// cut, a map that is never pruned) hides in a window's mean. So every run
// also reports its window minute by minute, from the same once-a-second
// samples of the server's process tree that the window measure takes, and
// the long run (--long-duration) compares its last minute with its second:
// the first holds the tail of the warm-up (connection set-up, the first
// cuts, the runtime growing its heap).

// MinuteUsage is one minute of a run's measurement window.
type MinuteUsage struct {
	// Minute counts from 1, the window's first.
	Minute int `json:"minute"`
	// FromS and ToS are the minute's bounds in seconds into the window;
	// the last minute may be partial (shorter than 60 s).
	FromS   float64 `json:"from_s"`
	ToS     float64 `json:"to_s"`
	Partial bool    `json:"partial,omitempty"`
	// CPUPct is the tree's utime + stime in the minute, of one core.
	CPUPct     float64 `json:"cpu_pct"`
	CPUmsPerSS float64 `json:"cpu_ms_per_stream_s"`
	// RSSMiB is the tree's VmRSS at the minute's end; RSSPerMiB the same
	// above the idle RSS, per stream.
	RSSMiB    float64 `json:"rss_mib"`
	RSSPerMiB float64 `json:"rss_per_stream_mib"`
}

// MinuteTrend compares the window's last 60 s with its second minute.
type MinuteTrend struct {
	SecondCPUmsPerSS float64 `json:"second_minute_cpu_ms_per_stream_s"`
	// LastFromS is where the last 60 s start, in seconds into the window:
	// they end with it, so they may overlap the previous minute row.
	LastFromS      float64 `json:"last_minute_from_s"`
	LastCPUmsPerSS float64 `json:"last_minute_cpu_ms_per_stream_s"`
	// Ratio is last / second: 1.10 means the last minute cost 10 % more.
	Ratio        float64 `json:"ratio"`
	SecondRSSMiB float64 `json:"second_minute_rss_mib"`
	LastRSSMiB   float64 `json:"last_minute_rss_mib"`
}

// minuteTrendLimit is issue 15's target: the last minute of a long run
// costs at most 10 % more CPU than the second.
const minuteTrendLimit = 1.10

// minuteSlack is how far from a minute boundary a sample may be taken and
// still mark it: samples come once a second, on the second.
const minuteSlack = 500 * time.Millisecond

// perMinute cuts a window's samples (first to last, about one a second)
// into minutes from the first sample, plus the partial last one when more
// than minuteSlack remains, for n streams over an idle RSS of idleRSS
// bytes. The trend needs two full minutes; nil otherwise.
func perMinute(series []Usage, n int, idleRSS int64) ([]MinuteUsage, *MinuteTrend) {
	if len(series) < 2 || n <= 0 {
		return nil, nil
	}
	t0 := series[0].At
	end := series[len(series)-1]
	row := func(k int, a, b Usage) MinuteUsage {
		wall := b.At.Sub(a.At)
		cpu := b.CPU - a.CPU
		m := MinuteUsage{Minute: k, FromS: a.At.Sub(t0).Seconds(), ToS: b.At.Sub(t0).Seconds(),
			CPUPct: pct(cpu, wall), RSSMiB: float64(b.RSS) / mib, RSSPerMiB: float64(b.RSS-idleRSS) / mib / float64(n)}
		if wall > 0 {
			m.CPUmsPerSS = float64(cpu.Milliseconds()) / (float64(n) * wall.Seconds())
		}
		return m
	}
	var rows []MinuteUsage
	from := 0
	for k := 1; ; k++ {
		i := sampleAt(series, from, t0.Add(time.Duration(k)*time.Minute))
		if i < 0 {
			break
		}
		rows = append(rows, row(k, series[from], series[i]))
		from = i
	}
	if end.At.Sub(series[from].At) > minuteSlack {
		m := row(len(rows)+1, series[from], end)
		m.Partial = true
		rows = append(rows, m)
	}
	full := 0
	for _, m := range rows {
		if !m.Partial {
			full++
		}
	}
	if full < 2 {
		return rows, nil
	}
	// The last 60 s: from the sample nearest a minute before the end.
	li := 0
	lastFrom := end.At.Add(-time.Minute)
	for i, u := range series {
		if absDur(u.At.Sub(lastFrom)) < absDur(series[li].At.Sub(lastFrom)) {
			li = i
		}
	}
	last := row(0, series[li], end)
	second := rows[1]
	return rows, &MinuteTrend{SecondCPUmsPerSS: second.CPUmsPerSS, LastFromS: last.FromS, LastCPUmsPerSS: last.CPUmsPerSS,
		Ratio: div(last.CPUmsPerSS, second.CPUmsPerSS), SecondRSSMiB: second.RSSMiB, LastRSSMiB: last.RSSMiB}
}

// sampleAt is the index of the first sample after from taken no earlier
// than minuteSlack before t; -1 when the series ends before.
func sampleAt(series []Usage, from int, t time.Time) int {
	for i := from + 1; i < len(series); i++ {
		if !series[i].At.Before(t.Add(-minuteSlack)) {
			return i
		}
	}
	return -1
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
