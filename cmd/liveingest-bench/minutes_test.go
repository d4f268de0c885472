package main

import (
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// series is one Usage a second for secs seconds (and a last one at secs),
// the tree spending cpuAt(s) ms of CPU in second s and holding rssAt(s)
// MiB at its end.
func series(t0 time.Time, secs float64, cpuAt func(s int) float64, rssAt func(s int) float64) []Usage {
	var out []Usage
	var cpu float64
	for s := 0; ; s++ {
		at := float64(s)
		if at > secs {
			at = secs
		}
		if s > 0 {
			cpu += cpuAt(s-1) * (at - float64(s-1))
		}
		out = append(out, Usage{At: t0.Add(time.Duration(at * float64(time.Second))),
			CPU: time.Duration(cpu * float64(time.Millisecond)), RSS: int64(rssAt(s) * mib)})
		if at == secs {
			return out
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6*math.Max(1, math.Abs(b)) }

// TestPerMinute: a cost that grows with time shows minute by minute, the
// partial last minute included, and in the trend of the last 60 s against
// the second minute.
func TestPerMinute(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// 16 streams: 160 ms of CPU a second (10 ms per stream-second) for the
	// first two minutes, 176 (11) after; RSS grows 1 MiB a minute.
	cpu := func(s int) float64 {
		if s < 120 {
			return 160
		}
		return 176
	}
	rss := func(s int) float64 { return 100 + float64(s)/60 }
	rows, trend := perMinute(series(t0, 190, cpu, rss), 16, 36*mib)
	if len(rows) != 4 {
		t.Fatalf("%d rows, want 3 full minutes and a partial one: %+v", len(rows), rows)
	}
	for i, want := range []float64{10, 10, 11, 11} {
		if m := rows[i]; m.Minute != i+1 || !near(m.CPUmsPerSS, want) {
			t.Errorf("minute %d: %+v, want %v ms per stream-second", i+1, m, want)
		}
	}
	if m := rows[1]; m.FromS != 60 || m.ToS != 120 || m.Partial || !near(m.CPUPct, 16) || !near(m.RSSMiB, 102) || !near(m.RSSPerMiB, 66.0/16) {
		t.Errorf("minute 2: %+v", m)
	}
	if m := rows[3]; !m.Partial || m.FromS != 180 || m.ToS != 190 {
		t.Errorf("last row: %+v, want the partial minute 180-190 s", m)
	}
	if trend == nil || !near(trend.SecondCPUmsPerSS, 10) || !near(trend.LastCPUmsPerSS, 11) || !near(trend.Ratio, 1.1) || trend.LastFromS != 130 {
		t.Errorf("trend %+v, want 11 / 10 over 130-190 s", trend)
	}

	// A window that is a whole number of minutes has no partial row; one
	// under two full minutes has no trend.
	rows, trend = perMinute(series(t0, 120, cpu, rss), 16, 0)
	if len(rows) != 2 || rows[1].Partial || trend == nil || !near(trend.Ratio, 1) {
		t.Errorf("120 s: rows %+v, trend %+v", rows, trend)
	}
	rows, trend = perMinute(series(t0, 31, cpu, rss), 16, 0)
	if len(rows) != 1 || !rows[0].Partial || trend != nil {
		t.Errorf("31 s: rows %+v, trend %+v", rows, trend)
	}
	if rows, trend := perMinute(nil, 16, 0); rows != nil || trend != nil {
		t.Error("no samples: want nothing")
	}
}

// TestMarkdownLongRun: the long run is named apart from the short run at
// the same N, kept out of the ratios, and has its minute table and trend;
// the profiles are named.
func TestMarkdownLongRun(t *testing.T) {
	short := RunResult{Target: "liveingest", N: 64, Clean: true, DurationS: 40, CPUmsPerSS: 7.5, RSSPerMiB: 2.5,
		Profile: &ProfileResult{CPU: "bin/bench-pprof/liveingest-n64-cpu.pprof", CPUSeconds: 31, Heap: "bin/bench-pprof/liveingest-n64-heap.pprof"}}
	long := RunResult{Target: "liveingest", N: 64, Long: true, Clean: true, DurationS: 600, WindowS: 591, CPUmsPerSS: 7.9, RSSPerMiB: 2.6,
		Minutes: []MinuteUsage{
			{Minute: 1, FromS: 0, ToS: 60, CPUPct: 49, CPUmsPerSS: 7.66, RSSMiB: 190, RSSPerMiB: 2.5},
			{Minute: 2, FromS: 60, ToS: 120, CPUPct: 48, CPUmsPerSS: 7.5, RSSMiB: 191, RSSPerMiB: 2.51},
			{Minute: 3, FromS: 120, ToS: 151, Partial: true, CPUPct: 50, CPUmsPerSS: 7.8, RSSMiB: 192, RSSPerMiB: 2.52},
		},
		Trend:   &MinuteTrend{SecondCPUmsPerSS: 7.5, LastFromS: 91, LastCPUmsPerSS: 7.8, Ratio: 1.04, SecondRSSMiB: 191, LastRSSMiB: 192},
		Profile: &ProfileResult{Note: noPprofNote}}
	ref := RunResult{Target: "nginx-rtmp-hls", N: 64, Clean: true, DurationS: 40, CPUmsPerSS: 5, RSSPerMiB: 0.1}
	r := &Report{Reference: "nginx-rtmp-hls", DurationS: 40, LongDurationS: 600, ProfileDir: "bin/bench-pprof",
		Runs: orderRuns([]RunResult{long, ref, short}, "liveingest")}
	if !r.Runs[2].Long || r.Runs[0].Long || r.Runs[0].Target != "liveingest" {
		t.Fatalf("order: want the short runs, then the long one: %+v", r.Runs)
	}
	r.AddRatios("liveingest", "nginx-rtmp-hls")
	if len(r.Ratios) != 1 || r.Ratios[0].CPURatio != 1.5 {
		t.Errorf("ratios %+v: the long run must not pair with the reference", r.Ratios)
	}
	md := r.Markdown()
	for _, want := range []string{
		"| liveingest, 10 min run | 64 |",
		"in the long run for 10 min.",
		"Minute by minute, liveingest, 10 min run N=64 (CPU over each minute of the 591 s window, RSS at its end):",
		"| 2 | 60–120 | 48.0 | 7.50 | 191.0 | 2.51 |",
		"| 3 (partial, 31 s) | 120–151 | 50.0 | 7.80 | 192.0 | 2.52 |",
		"CPU ms per stream-second **1.04×** (7.80 in the last 60 s, from 91 s, / 7.50 in minute 2), within the 1.10× target; RSS 191.0 → 192.0 MiB.",
		"Profiles of these runs (`go tool pprof`; written by `--pprof bin/bench-pprof`, not committed):",
		"- liveingest N=64: CPU `bin/bench-pprof/liveingest-n64-cpu.pprof` (31 s of the window); heap `bin/bench-pprof/liveingest-n64-heap.pprof` (at the window's end).",
		"- liveingest, 10 min run N=64: " + noPprofNote + ".",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Count(md, "Minute by minute") != 1 {
		t.Errorf("a minute table for a run of one minute or less:\n%s", md)
	}
	r.Runs[2].Trend.Ratio = 1.2
	if md := r.Markdown(); !strings.Contains(md, "**1.20×**") || !strings.Contains(md, "above the 1.10× target") {
		t.Errorf("a trend above the target is not said so:\n%s", md)
	}
	var sb strings.Builder
	r.WriteTable(&sb)
	for _, want := range []string{
		"liveingest, 10 min run N=64 per minute: CPU ms/stream-s 7.66 7.50 7.80*; RSS MiB 190.0 191.0 192.0 (* partial minute); last 60 s / minute 2: 1.20× (7.80 / 7.50), above the 1.10× target",
		"liveingest N=64 profiles: CPU bin/bench-pprof/liveingest-n64-cpu.pprof (31 s); heap bin/bench-pprof/liveingest-n64-heap.pprof",
	} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, sb.String())
		}
	}
}

func TestProfileSeconds(t *testing.T) {
	for _, c := range []struct {
		window time.Duration
		want   int
	}{{31900 * time.Millisecond, 31}, {300 * time.Millisecond, 1}, {591 * time.Second, 591}, {50 * time.Minute, maxProfileSeconds}} {
		if got := profileSeconds(c.window); got != c.want {
			t.Errorf("window %v: %d s, want %d", c.window, got, c.want)
		}
	}
}

// TestCaptureProfiles fetches both profiles from a fake pprof endpoint and
// names them after the run; a server without one gets its note.
func TestCaptureProfiles(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.RequestURI())
		w.Write([]byte("profile of " + r.URL.Path))
	}))
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "pprof")
	now := time.Now()
	pr := captureProfiles(t.Context(), &Running{Pprof: strings.TrimPrefix(srv.URL, "http://")}, dir, "liveingest-n16", now, now.Add(2500*time.Millisecond))
	cpu, heap := profileFiles(dir, "liveingest-n16")
	if pr == nil || pr.CPU != cpu || pr.Heap != heap || pr.CPUSeconds != 2 || pr.Note != "" {
		t.Fatalf("profiles %+v", pr)
	}
	if len(asked) != 2 || asked[0] != "/debug/pprof/profile?seconds=2" || asked[1] != "/debug/pprof/heap" {
		t.Errorf("asked %v", asked)
	}
	if b, _ := os.ReadFile(heap); string(b) != "profile of /debug/pprof/heap" {
		t.Errorf("heap file %q", b)
	}
	if filepath.Base(cpu) != "liveingest-n16-cpu.pprof" || filepath.Base(heap) != "liveingest-n16-heap.pprof" {
		t.Errorf("names %s %s", cpu, heap)
	}
	if pr := captureProfiles(t.Context(), &Running{ProfileNote: noPprofNote}, dir, "x", now, now); pr == nil || pr.Note != noPprofNote || pr.CPU != "" {
		t.Errorf("a build without --pprof: %+v", pr)
	}
	if pr := captureProfiles(t.Context(), &Running{}, dir, "x", now, now); pr != nil {
		t.Errorf("nginx: %+v, want none", pr)
	}
}
