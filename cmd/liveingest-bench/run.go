package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// RunConfig is the shape of one run (one target, one N).
type RunConfig struct {
	N        int
	Duration time.Duration // how long each publisher publishes
	Warmup   time.Duration // after the last publisher started, before the CPU/RSS window
	Idle     time.Duration // idle measurement before publishing
	Poll     time.Duration // segment watcher interval
	// CPUCores is the number of cores the server may use (1 when pinned to
	// one): the clean-run CPU limit is 95 % of them.
	CPUCores int
	// Long marks the long run (--long-duration): reports keep it apart
	// from the short runs at the same N.
	Long bool
	// ProfileDir, when set, receives a CPU profile of the window and a
	// heap profile at its end from a target that serves Go's pprof
	// endpoints, named ProfileName-cpu.pprof and ProfileName-heap.pprof
	// (profile.go).
	ProfileDir, ProfileName string
}

// Run thresholds.
const (
	cleanCPUShare = 0.95
	// fellBehind is the lag at which a publisher counts as no longer real
	// time: a stall, not jitter (behindLag counts the jitter).
	fellBehind = 500 * time.Millisecond
	// generatorLate is the wake-up lateness (p99) above which the bench
	// itself was too slow for its own schedule.
	generatorLate = 50 * time.Millisecond
	// cutMargin: keyframes sent this close to a publisher's end may close
	// their segment only when the session ends; they are not judged.
	cutMargin = 500 * time.Millisecond
)

// RunResult is everything measured in one run. Times in ms, sizes in MiB.
type RunResult struct {
	Target   string    `json:"target"`
	Protocol string    `json:"protocol,omitempty"` // rtmp or srt
	Version  string    `json:"version,omitempty"`
	N        int       `json:"n"`
	Started  time.Time `json:"started"`
	Err      string    `json:"error,omitempty"`
	Skipped  bool      `json:"skipped,omitempty"` // target unavailable here
	// DurationS is how long each publisher published; Long marks the long
	// run (--long-duration).
	DurationS float64 `json:"duration_s"`
	Long      bool    `json:"long,omitempty"`
	// Note is what the target says about the run besides the numbers
	// (MediaMTX: what it recorded).
	Note string `json:"note,omitempty"`

	WindowS    float64 `json:"window_s"` // CPU/RSS measurement window
	IdleCPUPct float64 `json:"idle_cpu_pct"`
	CPUPct     float64 `json:"cpu_pct"` // of one core, in the window
	CPUmsPerSS float64 `json:"cpu_ms_per_stream_s"`
	IdleRSSMiB float64 `json:"idle_rss_mib"`
	RSSMiB     float64 `json:"rss_mib"` // mean in the window
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	RSSPerMiB  float64 `json:"rss_per_stream_mib"`
	Procs      int     `json:"procs"`
	// Minutes are the window minute by minute; Trend compares its last
	// 60 s with its second minute (minutes.go).
	Minutes []MinuteUsage `json:"minutes,omitempty"`
	Trend   *MinuteTrend  `json:"minute_trend,omitempty"`
	// Profile names the pprof files of the run (profile.go).
	Profile *ProfileResult `json:"profile,omitempty"`

	Failed     int      `json:"publishers_failed"`
	Behind     int      `json:"publishers_behind"` // max lag > fellBehind
	LateFrames int64    `json:"frames_late"`       // sent > behindLag after schedule
	Frames     int64    `json:"frames"`
	IngestMbps float64  `json:"ingest_mbps"`
	Errors     []string `json:"errors,omitempty"` // first few publisher errors

	Watched     bool `json:"watched"` // segments were watched in the store
	SegExpected int  `json:"segments_expected"`
	SegFound    int  `json:"segments_found"`
	SegMissing  int  `json:"segments_missing"`
	SegLate     int  `json:"segments_late"`
	SegExtra    int  `json:"segments_extra"` // more than the cut model predicts
	// SegNotRecorded are the segments before a recorder's first one
	// (MediaMTX starts recording once it has found the tracks): not judged.
	SegNotRecorded int     `json:"segments_not_recorded_at_start,omitempty"`
	LatP50ms       float64 `json:"latency_p50_ms"`
	LatP99ms       float64 `json:"latency_p99_ms"`
	LatMaxms       float64 `json:"latency_max_ms"`

	GenCPUPct     float64 `json:"generator_cpu_pct"` // of the cores it may use
	GenWakeP99ms  float64 `json:"generator_wake_p99_ms"`
	GenWakeMaxms  float64 `json:"generator_wake_max_ms"`
	WriteP99ms    float64 `json:"write_block_p99_ms"`
	WriteMaxms    float64 `json:"write_block_max_ms"`
	GenBottleneck bool    `json:"generator_bottleneck"`

	SRT *SRTRun `json:"srt,omitempty"` // SRT runs: the link, from both ends

	Clean bool     `json:"clean"`
	Why   []string `json:"why_not_clean,omitempty"`
	Log   string   `json:"server_log,omitempty"`
}

// usageWindow samples a process tree from `from` to `to`: CPU and RSS at
// both ends and every second in between (series, for perMinute).
type usageWindow struct {
	first, last Usage
	series      []Usage
	selfA       time.Duration
	selfB       time.Duration
	rssSum      int64
	rssN        int64
	rssMax      int64
	err         error
}

func sampleWindow(ctx context.Context, proc Proc, pid int, from, to time.Time) (w usageWindow) {
	if !sleepUntil(ctx, from) {
		w.err = ctx.Err()
		return w
	}
	w.selfA, _ = proc.Self()
	if w.first, w.err = proc.Usage(pid); w.err != nil {
		return w
	}
	add := func(u Usage) {
		w.series = append(w.series, u)
		w.rssSum += u.RSS
		w.rssN++
		w.rssMax = max(w.rssMax, u.RSS)
	}
	add(w.first)
	for next := from.Add(time.Second); next.Before(to); next = next.Add(time.Second) {
		if !sleepUntil(ctx, next) {
			w.err = ctx.Err()
			return w
		}
		u, err := proc.Usage(pid)
		if err != nil {
			w.err = err
			return w
		}
		add(u)
	}
	if !sleepUntil(ctx, to) {
		w.err = ctx.Err()
		return w
	}
	w.selfB, _ = proc.Self()
	if w.last, w.err = proc.Usage(pid); w.err == nil {
		add(w.last)
	}
	return w
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-time.After(time.Until(t)):
		return true
	case <-ctx.Done():
		return false
	}
}

const mib = 1 << 20

// Run starts target, measures it idle, publishes cfg.N streams of sample for
// cfg.Duration and measures it loaded, then stops it and judges the run.
// Failures of the run itself come back in RunResult.Err; ErrUnavailable
// marks it Skipped.
func Run(ctx context.Context, t Target, s *Sample, cfg RunConfig, logf func(string, ...any)) RunResult {
	res := RunResult{Target: t.Name(), N: cfg.N, Started: time.Now().UTC(), DurationS: cfg.Duration.Seconds(), Long: cfg.Long}
	rt, err := t.Start(ctx, cfg.N)
	if err != nil {
		res.Err, res.Skipped = err.Error(), errors.Is(err, ErrUnavailable)
		return res
	}
	res.Version = rt.Version
	if len(rt.URLs) > 0 {
		res.Protocol = protocolOf(rt.URLs[0])
	}
	func() {
		// Deferred: the server stops whatever happens while measuring.
		defer func() {
			if err := rt.Stop(); err != nil {
				logf("stop %s: %v", t.Name(), err)
			}
			res.Log = rt.Log
		}()
		measure(ctx, t, rt, s, cfg, logf, &res)
	}()
	if res.Err != "" {
		return res
	}
	if res.SRT != nil {
		// The server logs each SRT connection's counters as it ends; by
		// now every one has.
		res.SRT.Server = readSRTServerLog(res.Log)
	}
	judge(&res, cfg)
	return res
}

// protocolOf names the ingest protocol of a publisher URL.
func protocolOf(u *url.URL) string {
	if u.Scheme == "srt" {
		return "srt"
	}
	return "rtmp"
}

// measure is Run's part between start and stop: it fills res, or sets
// res.Err.
func measure(ctx context.Context, t Target, rt *Running, s *Sample, cfg RunConfig, logf func(string, ...any), res *RunResult) {
	proc := Proc{Root: "/proc"}

	// Idle: after the slots exist, before anyone publishes.
	idleFrom := time.Now().Add(time.Second)
	idle := sampleWindow(ctx, proc, rt.PID, idleFrom, idleFrom.Add(cfg.Idle))
	if idle.err != nil {
		res.Err = fmt.Sprintf("idle measurement: %v", idle.err)
		return
	}
	idleRSS := idle.rssSum / idle.rssN
	res.IdleRSSMiB = float64(idle.rssSum) / float64(idle.rssN) / mib
	res.IdleCPUPct = pct(idle.last.CPU-idle.first.CPU, idle.last.At.Sub(idle.first.At))

	// Publishers start one GOP apart in all, so keyframes (and segment
	// cuts) spread evenly as with independent encoders, and connect a
	// second before their first frame.
	gop := s.Loop / time.Duration(s.Keyframes)
	t0 := time.Now().Add(time.Second)
	pubs := make([]publisher, cfg.N)
	for i := range pubs {
		start := t0.Add(gop * time.Duration(i) / time.Duration(cfg.N))
		pubs[i] = newPublisher(i, rt.URLs[i], s, start, start.Add(cfg.Duration))
	}
	winFrom := t0.Add(gop + cfg.Warmup)
	winTo := t0.Add(cfg.Duration)
	if !winTo.After(winFrom.Add(time.Second)) {
		res.Err = fmt.Sprintf("--duration %v leaves no measurement window after --warmup %v", cfg.Duration, cfg.Warmup)
		return
	}
	// SRT runs over UDP: what the kernel drops at the server's socket is
	// loss no protocol counter at the server sees arrive.
	udpPort := -1
	if res.Protocol == "srt" {
		if p, err := strconv.Atoi(rt.URLs[0].Port()); err == nil {
			udpPort = p
		}
	}
	udpBefore := proc.udpDrops(udpPort)

	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var apps Appearances
	var wg sync.WaitGroup
	if rt.SegmentDirs != nil {
		res.Watched = true
		w := &Watcher{Dirs: rt.SegmentDirs, Interval: cfg.Poll, Leaf: rt.SegmentLeaf}
		wg.Go(func() { apps = w.Run(wctx) })
	}
	var win usageWindow
	var sg sync.WaitGroup
	sg.Go(func() { win = sampleWindow(ctx, proc, rt.PID, winFrom, winTo) })
	var prof *ProfileResult
	if cfg.ProfileDir != "" {
		sg.Go(func() { prof = captureProfiles(ctx, rt, cfg.ProfileDir, cfg.ProfileName, winFrom, winTo) })
	}
	results := make([]PubResult, cfg.N)
	var pg sync.WaitGroup
	for i, p := range pubs {
		pg.Go(func() { results[i] = p.Run(ctx) })
	}
	logf("%s N=%d: publishing for %v", t.Name(), cfg.N, cfg.Duration)
	pg.Wait()
	sg.Wait()
	if rt.SegmentDirs != nil || rt.Scan != nil {
		// The last judged cut is cutMargin before the end; give it a
		// segment duration (the late limit) and a poll to show up.
		sleepUntil(ctx, time.Now().Add(rt.SegmentDuration+2*cfg.Poll))
		stopWatch()
		wg.Wait()
	}
	var judgeFrom []int
	if rt.Scan != nil {
		res.Watched = true
		apps, judgeFrom = matchRecorded(results, rt.Scan(), rt.SegmentDuration)
	}
	udpAfter := proc.udpDrops(udpPort)
	res.Profile = prof
	if rt.After != nil {
		res.Note = rt.After()
	}
	if win.err != nil {
		res.Err = fmt.Sprintf("load measurement: %v", win.err)
		return
	}

	elapsed := win.last.At.Sub(win.first.At)
	res.WindowS = elapsed.Seconds()
	cpu := win.last.CPU - win.first.CPU
	res.CPUPct = pct(cpu, elapsed)
	res.CPUmsPerSS = float64(cpu.Milliseconds()) / (float64(cfg.N) * elapsed.Seconds())
	res.RSSMiB = float64(win.rssSum) / float64(win.rssN) / mib
	res.PeakRSSMiB = float64(win.rssMax) / mib
	res.RSSPerMiB = (res.RSSMiB - res.IdleRSSMiB) / float64(cfg.N)
	res.Procs = win.last.Procs
	res.Minutes, res.Trend = perMinute(win.series, cfg.N, idleRSS)
	res.GenCPUPct = pct(win.selfB-win.selfA, elapsed) / float64(runtime.NumCPU())

	summarizePublishers(res, results)
	if res.Protocol == "srt" {
		addSRT(res, results)
		if udpBefore >= 0 && udpAfter >= 0 {
			res.SRT.UDPDrops = udpAfter - udpBefore
		}
	}
	if apps != nil {
		judgeSegments(res, results, apps, rt.SegmentDuration, judgeFrom)
	}
}

func pct(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu.Seconds() / wall.Seconds()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func summarizePublishers(res *RunResult, results []PubResult) {
	var wake, write Histogram
	var bytes int64
	var first, last time.Time
	for _, r := range results {
		wake.Merge(&r.WakeLag)
		write.Merge(&r.WriteLag)
		res.Frames += int64(r.Frames)
		res.LateFrames += int64(r.Behind)
		bytes += r.Bytes
		if r.Err != nil {
			res.Failed++
			if len(res.Errors) < 5 {
				res.Errors = append(res.Errors, fmt.Sprintf("publisher %d: %v", r.Index, r.Err))
			}
		}
		if r.MaxLag > fellBehind {
			res.Behind++
		}
		if !r.Started.IsZero() && (first.IsZero() || r.Started.Before(first)) {
			first = r.Started
		}
		if r.Stopped.After(last) {
			last = r.Stopped
		}
	}
	if d := last.Sub(first); d > 0 && !first.IsZero() {
		res.IngestMbps = float64(bytes*8) / d.Seconds() / 1e6
	}
	res.GenWakeP99ms, res.GenWakeMaxms = ms(wake.Quantile(99)), ms(wake.Max)
	res.WriteP99ms, res.WriteMaxms = ms(write.Quantile(99)), ms(write.Max)
	res.GenBottleneck = wake.Quantile(99) > generatorLate || res.GenCPUPct > 90
}

// Cuts models the segmenter's cut rule (edge/segment: a segment ends at the
// first video keyframe at least segDur after the segment's first one) over
// the keyframes a publisher sent: cut j closes segment seq j.
func Cuts(keys []KeySent, segDur time.Duration) []KeySent {
	if len(keys) == 0 {
		return nil
	}
	var cuts []KeySent
	start := keys[0].DTS
	for _, k := range keys[1:] {
		if k.DTS-start >= segDur {
			cuts = append(cuts, k)
			start = k.DTS
		}
	}
	return cuts
}

// judgeSegments matches each publisher's cuts to the segments that
// appeared: latency = appearance − send time of the closing keyframe.
// from, when set, is per publisher the first seq judged: a server that
// starts recording late (matchRecorded) is judged from its first segment.
func judgeSegments(res *RunResult, results []PubResult, apps Appearances, segDur time.Duration, from []int) {
	var lats []time.Duration
	for i, r := range results {
		cuts := Cuts(r.Keys, segDur)
		seen := apps[i]
		for j, c := range cuts {
			if c.Sent.After(r.Stopped.Add(-cutMargin)) {
				break
			}
			if from != nil && j < from[i] {
				res.SegNotRecorded++
				continue
			}
			res.SegExpected++
			if j >= len(seen) || seen[j].IsZero() {
				res.SegMissing++
				continue
			}
			res.SegFound++
			lat := seen[j].Sub(c.Sent)
			lats = append(lats, lat)
			if lat > segDur {
				res.SegLate++
			}
		}
		// A session's end flushes its last partial segment: one more than
		// the cuts is normal.
		if extra := len(seen) - len(cuts) - 1; extra > 0 {
			res.SegExtra += extra
		}
	}
	res.LatP50ms = ms(Percentile(lats, 50))
	res.LatP99ms = ms(Percentile(lats, 99))
	if len(lats) > 0 {
		res.LatMaxms = ms(Percentile(lats, 100))
	}
}

// RecordedSegment is one segment file a recording server wrote: when its
// media starts (the server's clock, from the file name) and when the file
// was complete.
type RecordedSegment struct {
	Start, Done time.Time
}

// matchRecorded maps each publisher's recorded segments to the cut model:
// segment seq j starts at keyframe 0 (j = 0) or at cut j−1, and a file
// is the segment whose starting keyframe was sent nearest its start time.
// A recorder's first segment starts wherever it began (MediaMTX: at the
// first sample of any track once it knows the tracks, which may fall just
// after a keyframe, so that segment runs to the cut after next): from is,
// per publisher, the seq of its second recorded segment, the first one
// judged (every seq when it recorded fewer than two).
func matchRecorded(results []PubResult, recs [][]RecordedSegment, segDur time.Duration) (Appearances, []int) {
	apps := make(Appearances, len(results))
	from := make([]int, len(results))
	for i, r := range results {
		if len(r.Keys) == 0 {
			continue
		}
		starts := []time.Time{r.Keys[0].Sent}
		for _, c := range Cuts(r.Keys, segDur) {
			starts = append(starts, c.Sent)
		}
		from[i] = len(starts)
		if i >= len(recs) {
			continue
		}
		for n, rec := range recs[i] {
			j := 0
			for k, s := range starts {
				if absDur(s.Sub(rec.Start)) < absDur(starts[j].Sub(rec.Start)) {
					j = k
				}
			}
			for len(apps[i]) <= j {
				apps[i] = append(apps[i], time.Time{})
			}
			if apps[i][j].IsZero() {
				apps[i][j] = rec.Done
			}
			if n == 1 {
				from[i] = j
			}
		}
	}
	return apps, from
}

// judge decides whether the run was clean and says why not.
func judge(res *RunResult, cfg RunConfig) {
	why := func(f string, a ...any) { res.Why = append(res.Why, fmt.Sprintf(f, a...)) }
	if res.Failed > 0 {
		why("%d publisher(s) failed", res.Failed)
	}
	if res.Behind > 0 {
		why("%d publisher(s) fell behind real time (lag > %v)", res.Behind, fellBehind)
	}
	if res.SegMissing > 0 {
		why("%d segment(s) missing", res.SegMissing)
	}
	if res.SegLate > 0 {
		why("%d segment(s) late", res.SegLate)
	}
	if sv := res.SRT.serverLog(); sv != nil && sv.TSDecodeErrors > 0 {
		// Retransmissions are SRT doing its job. Media lost for good shows
		// only here: gosrt's receiver skips a packet it gave up on without
		// counting it, and the demuxer sees the gap in the MPEG-TS
		// continuity counters.
		why("%d MPEG-TS decode error(s) at the server: media lost on the way", sv.TSDecodeErrors)
	}
	if res.Watched && res.SegExpected == 0 {
		why("no segment expected: the run was too short to judge")
	}
	if limit := 100 * cleanCPUShare * float64(cfg.CPUCores); res.CPUPct >= limit {
		why("server CPU %.0f%% ≥ %.0f%%", res.CPUPct, limit)
	}
	if res.GenBottleneck {
		why("the generator was the bottleneck (wake-up p99 %.0f ms, CPU %.0f%%)", res.GenWakeP99ms, res.GenCPUPct)
	}
	res.Clean = len(res.Why) == 0 && res.Err == ""
}
