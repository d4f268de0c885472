package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Machine are the facts a number needs next to it.
type Machine struct {
	NProc     int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	MemTotal  string `json:"mem_total"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	// GenCPUs are the CPUs the generator (this process) may run on.
	GenCPUs string `json:"generator_cpus"`
	// WorkFS is the file system of --work-dir, where liveingest's disk
	// store lives: its fsync cost is part of every segment.
	WorkFS string `json:"work_dir_fs,omitempty"`
}

// fsNames are statfs(2) magic numbers of the usual Linux file systems.
var fsNames = map[int64]string{0xEF53: "ext4", 0x01021994: "tmpfs", 0x58465342: "xfs",
	0x9123683E: "btrfs", 0x794c7630: "overlayfs", 0x6969: "nfs", 0x2FC12FC1: "zfs"}

// fsType names the file system holding dir.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return ""
	}
	if n, ok := fsNames[int64(st.Type)]; ok {
		return n
	}
	return fmt.Sprintf("fs type 0x%x", st.Type)
}

// ReadMachine reads /proc; missing facts stay empty.
func ReadMachine(workDir string) Machine {
	m := Machine{GoVersion: runtime.Version(), WorkFS: fsType(workDir)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			k, v, ok := strings.Cut(line, ":")
			switch k = strings.TrimSpace(k); {
			case !ok:
			case k == "processor":
				m.NProc++
			case k == "model name" && m.CPUModel == "":
				m.CPUModel = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				m.GenCPUs = strings.TrimSpace(rest)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				f := strings.Fields(rest)
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					m.MemTotal = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	return m
}

// SampleInfo describes the replayed clip as measured, not as requested.
type SampleInfo struct {
	Width     int     `json:"width"`
	Height    int     `json:"height"`
	FPS       int     `json:"fps"`
	GOPS      float64 `json:"gop_s"`
	LoopS     float64 `json:"loop_s"`
	Kbps      float64 `json:"kbps"`
	Frames    int     `json:"frames_per_loop"`
	VideoKbps int     `json:"video_kbps_target"`
	// NoBFrames is --no-bframes.
	NoBFrames bool `json:"no_bframes,omitempty"`
}

// gitSource names the commit the numbers belong to, and says when the
// working tree differs from it; "" outside a git checkout.
func gitSource() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	s := "commit " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		s += " with uncommitted changes"
	}
	return s
}

// Ratio compares the main target with the reference at one N.
type Ratio struct {
	N        int     `json:"n"`
	CPUOurs  float64 `json:"cpu_ms_per_stream_s"`
	CPURef   float64 `json:"ref_cpu_ms_per_stream_s"`
	CPURatio float64 `json:"cpu_ratio"`
	RSSOurs  float64 `json:"rss_per_stream_mib"`
	RSSRef   float64 `json:"ref_rss_per_stream_mib"`
	RSSRatio float64 `json:"rss_ratio"`
	// Keyframe → segment latency, when both runs watched a store (SRT
	// against RTMP, both into liveingest; nginx has no store to watch).
	Latency *LatencyRatio `json:"latency,omitempty"`
}

// LatencyRatio compares keyframe → segment-visible latency, in ms.
type LatencyRatio struct {
	P50Ours  float64 `json:"p50_ms"`
	P50Ref   float64 `json:"ref_p50_ms"`
	P50Ratio float64 `json:"p50_ratio"`
	P99Ours  float64 `json:"p99_ms"`
	P99Ref   float64 `json:"ref_p99_ms"`
	P99Ratio float64 `json:"p99_ratio"`
}

// FindMax is the outcome of --find-max.
type FindMax struct {
	Target   string `json:"target"`
	Steps    []int  `json:"steps"`
	MaxClean int    `json:"max_clean"` // 0: not even the first step
	StopN    int    `json:"stopped_at,omitempty"`
	StopWhy  string `json:"stopped_because,omitempty"`
	Limited  string `json:"limited_by,omitempty"` // "generator" when the bench, not the server, gave out
	Pending  string `json:"pending,omitempty"`    // the target could not run here
}

// Report is the whole output of one invocation.
type Report struct {
	Generated time.Time  `json:"generated"`
	Protocol  string     `json:"protocol,omitempty"` // of the main target's publishers: rtmp or srt
	Store     string     `json:"store,omitempty"`    // liveingest's store: disk or s3
	Command   string     `json:"command"`
	Source    string     `json:"source,omitempty"` // git commit of the working tree
	Machine   Machine    `json:"machine"`
	ServerCPU string     `json:"server_cpus,omitempty"` // taskset list
	Sample    SampleInfo `json:"sample"`
	DurationS float64    `json:"duration_s"`
	// LongDurationS is the long run's publishing time; 0 without one.
	LongDurationS float64 `json:"long_duration_s,omitempty"`
	// ProfileDir is where --pprof put the runs' profiles.
	ProfileDir string      `json:"profile_dir,omitempty"`
	Reference  string      `json:"reference,omitempty"`
	Runs       []RunResult `json:"runs"`
	Ratios     []Ratio     `json:"ratios,omitempty"`
	FindMax    *FindMax    `json:"find_max,omitempty"`
}

// AddRatios pairs runs of main and ref at equal N.
func (r *Report) AddRatios(main, ref string) {
	for _, a := range r.Runs {
		if a.Target != main || a.Err != "" || a.Long {
			continue
		}
		for _, b := range r.Runs {
			if b.Target != ref || b.N != a.N || b.Err != "" || b.Long {
				continue
			}
			q := Ratio{N: a.N,
				CPUOurs: a.CPUmsPerSS, CPURef: b.CPUmsPerSS, CPURatio: div(a.CPUmsPerSS, b.CPUmsPerSS),
				RSSOurs: a.RSSPerMiB, RSSRef: b.RSSPerMiB, RSSRatio: div(a.RSSPerMiB, b.RSSPerMiB)}
			if a.Watched && b.Watched && a.SegFound > 0 && b.SegFound > 0 {
				q.Latency = &LatencyRatio{
					P50Ours: a.LatP50ms, P50Ref: b.LatP50ms, P50Ratio: div(a.LatP50ms, b.LatP50ms),
					P99Ours: a.LatP99ms, P99Ref: b.LatP99ms, P99Ratio: div(a.LatP99ms, b.LatP99ms)}
			}
			r.Ratios = append(r.Ratios, q)
			break
		}
	}
}

// latRatio writes a latency ratio; none against a reference under 1 ms
// (MediaMTX closes a segment as its keyframe arrives: its latency is 0 ± the
// kernel's coarse clock, and a ratio to it says nothing).
func latRatio(ratio, ref float64) string {
	if ref < 1 {
		return "n/a (reference under 1 ms)"
	}
	return f2(ratio) + "×"
}

func div(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// latency formats p50/p99; "—" where the target has no store to watch.
func latency(r RunResult) string {
	if !r.Watched {
		return "—"
	}
	return f1(r.LatP50ms) + " / " + f1(r.LatP99ms)
}

func segs(r RunResult) string {
	if !r.Watched {
		return "—"
	}
	return fmt.Sprintf("%d / %d of %d", r.SegLate, r.SegMissing, r.SegExpected)
}

func cleanCell(r RunResult) string {
	if r.Clean {
		return "yes"
	}
	return "no: " + strings.Join(r.Why, "; ")
}

// WriteTable prints the human summary.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tN\tCPU %\tCPU ms/stream-s\tRSS idle MiB\tRSS load MiB\tRSS/stream MiB\tlat p50/p99 ms\tlate/missing of\tfailed/behind\tgen wake p99 ms\tclean\t")
	for _, x := range r.Runs {
		if x.Err != "" {
			fmt.Fprintf(tw, "%s\t%d\t\t\t\t\t\t\t\t\t\terror (below)\t\n", runName(x), x.N)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t\n", runName(x), x.N,
			f1(x.CPUPct), f2(x.CPUmsPerSS), f1(x.IdleRSSMiB), f1(x.RSSMiB), f2(x.RSSPerMiB),
			latency(x), segs(x), x.Failed, x.Behind, f1(x.GenWakeP99ms), cleanCell(x))
	}
	_ = tw.Flush()
	for _, x := range r.Runs {
		if x.Err != "" {
			fmt.Fprintf(w, "  %s N=%d: %s\n", x.Target, x.N, x.Err)
		}
		for _, e := range x.Errors {
			fmt.Fprintf(w, "  %s N=%d: %s\n", x.Target, x.N, e)
		}
		if x.GenBottleneck {
			fmt.Fprintf(w, "WARNING: %s N=%d: the generator was the bottleneck (wake-up p99 %s ms, generator CPU %s%%): its numbers say nothing about the server\n",
				runName(x), x.N, f1(x.GenWakeP99ms), f1(x.GenCPUPct))
		}
	}
	for _, x := range r.Runs {
		if q := x.SRT; q != nil {
			fmt.Fprintf(w, "  %s N=%d: SRT %s\n", x.Target, x.N, srtLine(q))
		}
	}
	for _, x := range r.Runs {
		if x.Note != "" {
			fmt.Fprintf(w, "  %s N=%d: %s\n", runName(x), x.N, x.Note)
		}
		if x.SegNotRecorded > 0 {
			fmt.Fprintf(w, "  %s N=%d: %d segment(s) up to each stream's second recorded one not judged\n", runName(x), x.N, x.SegNotRecorded)
		}
		if len(x.Minutes) > 1 {
			fmt.Fprintf(w, "  %s N=%d per minute: %s\n", runName(x), x.N, minutesLine(x))
		}
		if pr := x.Profile; pr != nil {
			fmt.Fprintf(w, "  %s N=%d profiles: %s\n", runName(x), x.N, profileLine(pr))
		}
	}
	for _, q := range r.Ratios {
		fmt.Fprintf(w, "ratio %s/%s N=%d: CPU ms per stream-second %s× (%s / %s), RSS per stream %s× (%s / %s MiB)",
			mainTarget(r), r.Reference, q.N, f2(q.CPURatio), f2(q.CPUOurs), f2(q.CPURef), f2(q.RSSRatio), f2(q.RSSOurs), f2(q.RSSRef))
		if l := q.Latency; l != nil {
			fmt.Fprintf(w, ", segment latency p50 %s (%s / %s ms), p99 %s (%s / %s ms)",
				latRatio(l.P50Ratio, l.P50Ref), f1(l.P50Ours), f1(l.P50Ref), latRatio(l.P99Ratio, l.P99Ref), f1(l.P99Ours), f1(l.P99Ref))
		}
		fmt.Fprintln(w)
	}
	if fm := r.FindMax; fm != nil {
		fmt.Fprintln(w, findMaxLine(fm))
	}
}

func mainTarget(r *Report) string {
	if len(r.Runs) > 0 {
		return r.Runs[0].Target
	}
	return ""
}

func findMaxLine(fm *FindMax) string {
	if fm.Pending != "" {
		return fmt.Sprintf("highest clean N for %s: pending (%s)", fm.Target, fm.Pending)
	}
	s := fmt.Sprintf("highest clean N for %s: %d (steps %v)", fm.Target, fm.MaxClean, fm.Steps)
	if fm.StopN > 0 {
		s += fmt.Sprintf("; N=%d was not clean: %s", fm.StopN, fm.StopWhy)
	} else {
		s += "; every step was clean"
	}
	if fm.Limited != "" {
		s += "; limited by the " + fm.Limited + ", so the server's real limit is higher"
	}
	return s
}

// docMarkers delimit one generated section of docs/performance.md: name
// "bench" is the RTMP section (make bench), "bench-srt" the SRT one (make
// bench-srt). The prose around them is written by hand and kept.
func docMarkers(name string) (begin, end string) {
	return "<!-- " + name + ":begin — generated by cmd/liveingest-bench; edits up to " + name + ":end are overwritten -->",
		"<!-- " + name + ":end -->"
}

// DocSection is the name of the report's section in the doc: each
// protocol, store and the MediaMTX comparison has its own, so an SRT, S3
// or MediaMTX run never overwrites the RTMP numbers on disk.
func (r *Report) DocSection() string {
	name := "bench"
	if r.Protocol == "srt" {
		name += "-srt"
	}
	if r.Reference == "mediamtx" {
		name += "-mediamtx"
	}
	if r.Store == "s3" {
		name += "-s3"
	}
	return name
}

// makeTarget is the make target that writes the report's section.
func (r *Report) makeTarget() string { return "make " + r.DocSection() }

// Markdown is the generated results section.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	m := r.Machine
	p("### Results of %s\n\n", r.Generated.Format("2006-01-02 15:04 MST"))
	p("Command (what `%s` ran):\n\n```sh\n%s\n```\n\n", r.makeTarget(), r.Command)
	if r.Source != "" {
		p("- Source: %s.\n", r.Source)
	}
	p("- Machine: %d × %s, %s RAM, Linux %s, %s; the servers' files on %s.\n", m.NProc, m.CPUModel, m.MemTotal, m.Kernel, m.GoVersion, m.WorkFS)
	if r.ServerCPU != "" {
		p("- Server pinned with `taskset -c %s`; the generator (this tool) on CPUs %s. Percentages are of one core.\n", r.ServerCPU, m.GenCPUs)
	} else {
		p("- Server not pinned; the generator on CPUs %s. Percentages are of one core.\n", m.GenCPUs)
	}
	s := r.Sample
	bf := ""
	if s.NoBFrames {
		bf = ", no B-frames"
	}
	p("- Sample: %dx%d %d fps H.264 (%.0f s GOP%s, %d kb/s target) + AAC, %.0f kb/s measured, a %.0f s clip looped; each publisher sends it in real time for %.0f s",
		s.Width, s.Height, s.FPS, s.GOPS, bf, s.VideoKbps, s.Kbps, s.LoopS, r.DurationS)
	for _, x := range r.Runs {
		if x.Long {
			p(", in the long run for %s", durText(x.DurationS))
			break
		}
	}
	p(".\n")
	versions := map[string]bool{}
	for _, x := range r.Runs {
		if x.Version != "" && !versions[x.Target] {
			versions[x.Target] = true
			p("- %s: %s.\n", x.Target, x.Version)
		}
	}
	p("\n| target | N | CPU %% of a core | CPU ms / stream-s | RSS idle → load MiB | RSS / stream MiB | keyframe → segment p50 / p99 ms | late / missing of expected | publishers failed / behind | clean |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, x := range r.Runs {
		switch {
		case x.Skipped && strings.HasPrefix(x.Target, "liveingest"):
			// The liveingest rows wait for a build whose dev serves the protocol.
			proto := "RTMP"
			if x.Target == "liveingest-srt" {
				proto = "SRT"
			}
			p("| %s | %d | pending: run `%s` once %s ingest is wired into `liveingest dev` ||||||||\n", runName(x), x.N, r.makeTarget(), proto)
		case x.Err != "":
			p("| %s | %d | error: %s ||||||||\n", runName(x), x.N, mdEscape(x.Err))
		default:
			p("| %s | %d | %s | %s | %s → %s | %s | %s | %s | %d / %d | %s |\n", runName(x), x.N,
				f1(x.CPUPct), f2(x.CPUmsPerSS), f1(x.IdleRSSMiB), f1(x.RSSMiB), f2(x.RSSPerMiB),
				latency(x), segs(x), x.Failed, x.Behind, mdEscape(cleanCell(x)))
		}
	}
	p("\n")
	r.srtMarkdown(p)
	if len(r.Ratios) > 0 {
		switch {
		case r.Store == "s3":
			p("Ratios, %s / %s (the same edge and load, segments to MinIO over S3 against the disk store; 1.00× costs the same):\n\n", mainTarget(r), r.Reference)
		case r.Protocol == "srt":
			p("Ratios, %s / %s (the same server and load, SRT against RTMP; 1.00× costs the same):\n\n", mainTarget(r), r.Reference)
		default:
			p("Ratios, %s / %s (lower is better for us):\n\n", mainTarget(r), r.Reference)
		}
		for _, q := range r.Ratios {
			p("- N=%d: CPU ms per stream-second **%s×** (%s / %s); RSS per stream **%s×** (%s / %s MiB)",
				q.N, f2(q.CPURatio), f2(q.CPUOurs), f2(q.CPURef), f2(q.RSSRatio), f2(q.RSSOurs), f2(q.RSSRef))
			if l := q.Latency; l != nil {
				p("; keyframe → segment p50 **%s** (%s / %s ms, %+.0f ms), p99 **%s** (%s / %s ms)",
					latRatio(l.P50Ratio, l.P50Ref), f1(l.P50Ours), f1(l.P50Ref), l.P50Ours-l.P50Ref, latRatio(l.P99Ratio, l.P99Ref), f1(l.P99Ours), f1(l.P99Ref))
			}
			p(".\n")
		}
		p("\n")
	} else if r.Reference != "" {
		p("Ratios: pending (needs a clean pair of runs at the same N).\n\n")
	}
	if fm := r.FindMax; fm != nil && fm.Pending != "" {
		p("Highest clean N on the pinned core: pending: run `%s` once %s can run here.\n\n", r.makeTarget(), fm.Target)
	} else if fm != nil {
		p("Highest clean N on the pinned core: **%d** (steps %v)", fm.MaxClean, fm.Steps)
		if fm.StopN > 0 {
			p("; N=%d was not clean: %s", fm.StopN, mdEscape(fm.StopWhy))
		}
		if fm.Limited != "" {
			p("; limited by the %s, so the server's real limit is higher", fm.Limited)
		}
		p(".\n\n")
	}
	r.minutesMarkdown(p)
	r.profilesMarkdown(p)
	for _, x := range r.Runs {
		if x.Note != "" {
			p("%s N=%d: %s.\n\n", runName(x), x.N, mdEscape(strings.TrimSuffix(x.Note, ".")))
		}
		if x.SegNotRecorded > 0 {
			p("%s N=%d: %d segment(s) up to each stream's second recorded one were not judged (the recorder starts once it knows the tracks).\n\n", runName(x), x.N, x.SegNotRecorded)
		}
	}
	for _, x := range r.Runs {
		if x.GenBottleneck {
			p("Warning: %s N=%d was limited by the generator (wake-up p99 %s ms, generator CPU %s%%).\n\n", runName(x), x.N, f1(x.GenWakeP99ms), f1(x.GenCPUPct))
		}
	}
	return b.String()
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// UpdateDoc replaces the generated section name (docMarkers) of the
// Markdown file at path, or appends one, keeping everything outside its
// markers, other sections included.
func UpdateDoc(path, name, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	markBegin, markEnd := docMarkers(name)
	block := markBegin + "\n\n" + section + markEnd + "\n"
	doc := string(old)
	i := strings.Index(doc, markBegin)
	j := strings.Index(doc, markEnd)
	switch {
	case i >= 0 && j > i:
		doc = doc[:i] + block + strings.TrimPrefix(doc[j+len(markEnd):], "\n")
	default:
		if doc != "" && !strings.HasSuffix(doc, "\n\n") {
			doc = strings.TrimRight(doc, "\n") + "\n\n"
		}
		doc += block
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// srtLine is one run's SRT link summary for the terminal.
func srtLine(q *SRTRun) string {
	s := fmt.Sprintf("callers sent %d packets, %d retransmitted, %d unacknowledged > 1.2 s, %d at close; kernel UDP drops at the server %s; MPEG-TS +%s%%",
		q.Sent, q.Retransmitted, q.Dropped, q.Unacked, udpDropsCell(q.UDPDrops), f1(q.TSOverheadPct))
	if sv := q.Server; sv != nil {
		s += fmt.Sprintf("; server: %d connections closed (%s), received %d, gaps %d, retransmitted %d, discarded %d, TS decode errors %d, log %d warnings / %d errors",
			sv.Closed, reasonsCell(sv.Reasons), sv.Received, sv.Lost, sv.Retransmitted, sv.Dropped, sv.TSDecodeErrors, sv.Warnings, sv.Errors)
		if sv.FirstProblem != "" {
			s += " (first: " + sv.FirstProblem + ")"
		}
	}
	return s
}

func udpDropsCell(d int64) string {
	if d < 0 {
		return "unknown"
	}
	return strconv.FormatInt(d, 10)
}

// reasonsCell lists close reasons by count, most frequent first.
func reasonsCell(m map[string]int) string {
	type rc struct {
		r string
		n int
	}
	var l []rc
	for r, n := range m {
		l = append(l, rc{r, n})
	}
	slices.SortFunc(l, func(a, b rc) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return strings.Compare(a.r, b.r)
	})
	var parts []string
	for _, x := range l {
		parts = append(parts, fmt.Sprintf("%d× %s", x.n, x.r))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// srtMarkdown is the SRT link table: both ends' counters per SRT run.
func (r *Report) srtMarkdown(p func(string, ...any)) {
	hasSRT := false
	for _, x := range r.Runs {
		hasSRT = hasSRT || x.SRT != nil
	}
	if !hasSRT {
		return
	}
	p("SRT link of the SRT runs, from both ends (over loopback nothing should need a retransmission; media lost for good shows as MPEG-TS decode errors):\n\n")
	p("| target | N | packets sent | retransmitted | kernel UDP drops at the server socket | server: gaps detected / late or duplicate discarded | MPEG-TS decode errors | callers: unacknowledged > 1.2 s | caller RTT max ms | connections closed | server log warnings / errors |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n")
	for _, x := range r.Runs {
		q := x.SRT
		if q == nil {
			continue
		}
		lost, decode, closed, logc := "—", "—", "—", "—"
		if sv := q.Server; sv != nil {
			lost = fmt.Sprintf("%d / %d", sv.Lost, sv.Dropped)
			decode = strconv.FormatInt(sv.TSDecodeErrors, 10)
			closed = fmt.Sprintf("%d: %s", sv.Closed, reasonsCell(sv.Reasons))
			logc = fmt.Sprintf("%d / %d", sv.Warnings, sv.Errors)
		}
		p("| %s | %d | %d | %d | %s | %s | %s | %d | %s | %s | %s |\n", x.Target, x.N, q.Sent, q.Retransmitted,
			udpDropsCell(q.UDPDrops), lost, decode, q.Dropped, f1(q.RTTmsMax), mdEscape(closed), logc)
	}
	p("\n")
	for _, x := range r.Runs {
		if sv := x.SRT.serverLog(); sv != nil && sv.FirstProblem != "" {
			p("%s N=%d, first warning in the server log: %s.\n\n", x.Target, x.N, mdEscape(sv.FirstProblem))
		}
	}
}

// runName is a run's name in tables: the target, and for the long run its
// length.
func runName(x RunResult) string {
	if x.Long {
		return x.Target + ", " + durText(x.DurationS) + " run"
	}
	return x.Target
}

// durText writes whole minutes as "10 min", anything else in seconds.
func durText(secs float64) string {
	if secs >= 60 && int(secs)%60 == 0 {
		return fmt.Sprintf("%d min", int(secs)/60)
	}
	return fmt.Sprintf("%.0f s", secs)
}

// minuteLabel names a row of the minute table: "3", or "10 (partial, 51 s)".
func minuteLabel(m MinuteUsage) string {
	if m.Partial {
		return fmt.Sprintf("%d (partial, %.0f s)", m.Minute, m.ToS-m.FromS)
	}
	return strconv.Itoa(m.Minute)
}

// trendVerdict says whether a trend meets issue 15's target.
func trendVerdict(t *MinuteTrend) string {
	if t.Ratio <= minuteTrendLimit {
		return fmt.Sprintf("within the %.2f× target", minuteTrendLimit)
	}
	return fmt.Sprintf("above the %.2f× target", minuteTrendLimit)
}

// minutesLine is the per-minute CPU (and RSS) of a run for the terminal.
func minutesLine(x RunResult) string {
	var cpu, rss []string
	for _, m := range x.Minutes {
		c := f2(m.CPUmsPerSS)
		if m.Partial {
			c += "*"
		}
		cpu = append(cpu, c)
		rss = append(rss, f1(m.RSSMiB))
	}
	s := "CPU ms/stream-s " + strings.Join(cpu, " ") + "; RSS MiB " + strings.Join(rss, " ")
	if x.Minutes[len(x.Minutes)-1].Partial {
		s += " (* partial minute)"
	}
	if t := x.Trend; t != nil {
		s += fmt.Sprintf("; last 60 s / minute 2: %s× (%s / %s), %s", f2(t.Ratio), f2(t.LastCPUmsPerSS), f2(t.SecondCPUmsPerSS), trendVerdict(t))
	}
	return s
}

// minutesMarkdown is a minute table for every run whose window spans more
// than one minute (the long run; every run when --duration is long).
func (r *Report) minutesMarkdown(p func(string, ...any)) {
	for _, x := range r.Runs {
		if x.Err != "" || len(x.Minutes) < 2 {
			continue
		}
		p("Minute by minute, %s N=%d (CPU over each minute of the %.0f s window, RSS at its end):\n\n", runName(x), x.N, x.WindowS)
		p("| minute | s of the window | CPU %% of a core | CPU ms / stream-s | RSS MiB | RSS / stream MiB |\n")
		p("|---|---:|---:|---:|---:|---:|\n")
		for _, m := range x.Minutes {
			p("| %s | %.0f–%.0f | %s | %s | %s | %s |\n", minuteLabel(m), m.FromS, m.ToS, f1(m.CPUPct), f2(m.CPUmsPerSS), f1(m.RSSMiB), f2(m.RSSPerMiB))
		}
		p("\n")
		if t := x.Trend; t != nil {
			p("Last minute against the second: CPU ms per stream-second **%s×** (%s in the last 60 s, from %.0f s, / %s in minute 2), %s; RSS %s → %s MiB.\n\n",
				f2(t.Ratio), f2(t.LastCPUmsPerSS), t.LastFromS, f2(t.SecondCPUmsPerSS), trendVerdict(t), f1(t.SecondRSSMiB), f1(t.LastRSSMiB))
		}
	}
}

// profileLine names a run's profiles for the terminal.
func profileLine(pr *ProfileResult) string {
	var parts []string
	if pr.CPU != "" {
		parts = append(parts, fmt.Sprintf("CPU %s (%d s)", pr.CPU, pr.CPUSeconds))
	}
	if pr.Heap != "" {
		parts = append(parts, "heap "+pr.Heap)
	}
	if pr.Note != "" {
		parts = append(parts, pr.Note)
	}
	return strings.Join(parts, "; ")
}

// profilesMarkdown names the profile files of the runs (kept under bin/,
// not committed) or why a run has none.
func (r *Report) profilesMarkdown(p func(string, ...any)) {
	has := false
	for _, x := range r.Runs {
		has = has || x.Profile != nil
	}
	if !has {
		return
	}
	p("Profiles of these runs (`go tool pprof`; written by `--pprof %s`, not committed):\n\n", r.ProfileDir)
	for _, x := range r.Runs {
		pr := x.Profile
		if pr == nil {
			continue
		}
		var parts []string
		if pr.CPU != "" {
			parts = append(parts, fmt.Sprintf("CPU `%s` (%d s of the window)", pr.CPU, pr.CPUSeconds))
		}
		if pr.Heap != "" {
			parts = append(parts, fmt.Sprintf("heap `%s` (at the window's end)", pr.Heap))
		}
		if pr.Note != "" {
			parts = append(parts, mdEscape(pr.Note))
		}
		p("- %s N=%d: %s.\n", runName(x), x.N, strings.Join(parts, "; "))
	}
	p("\n")
}
