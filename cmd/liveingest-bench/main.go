// Command liveingest-bench is the ingest load benchmark (issue 5): it
// replays one pre-encoded H.264 + AAC clip to N concurrent RTMP publishers
// in real time and measures the server: CPU per ingested stream-second, RSS
// per stream, and, for liveingest, keyframe → segment-visible latency in its
// disk store, late and missing segments. The same load can be pointed at
// nginx-rtmp or any RTMP server by URL and PID, so one run yields ratios.
//
// With --protocol srt the publishers are SRT callers sending MPEG-TS to
// liveingest's SRT listener instead; --compare rtmp then runs the same N
// over RTMP into the same binary, so the ratios are the price of SRT.
//
// It is its own binary so that the product binary carries no load
// generator. See docs/performance.md for the method and the numbers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config is the command line.
type Config struct {
	// Target is the server under test: liveingest, nginx, mediamtx or url. Default: liveingest.
	Target string
	// N are the publisher counts to run, ascending. Default: 16.
	N []int
	// Protocol is the publishers' protocol: rtmp, or srt (--target
	// liveingest only). Default: rtmp.
	Protocol string
	// Compare runs the same N against a reference: "nginx" (nginx-rtmp,
	// for RTMP), "mediamtx" (MediaMTX recording fMP4, for RTMP), "rtmp"
	// (for SRT: the same liveingest binary over RTMP),
	// "disk" (for --store s3: the same binary and protocol into dev's disk
	// store) or "" (none). Default: "".
	Compare string
	// Store is where liveingest writes segments: disk (dev's embedded
	// store) or s3 (the edge role into a MinIO started here, with Redis and
	// an origin; target_s3.go). Default: disk.
	Store string
	// FindMax raises N through Steps until a run is not clean. Default: false.
	FindMax bool
	// Steps are the N of --find-max. Default: 8,16,32,64,96,128,160,192,256,320,384.
	Steps []int
	// Duration is how long every publisher publishes per run. Default: 40s.
	Duration time.Duration
	// LongDuration, when not 0, adds one long run of the main target at
	// LongN after the others, whose minute-by-minute CPU shows a cost that
	// grows with time. Default: 0 (none).
	LongDuration time.Duration
	// LongN is the long run's publisher count. Default: 64.
	LongN int
	// Pprof is the directory for the runs' CPU and heap profiles (targets
	// that serve Go's pprof: liveingest); "" profiles nothing. Default: "".
	Pprof string
	// Warmup is skipped after the last publisher started before CPU and
	// RSS are measured. Default: 6s.
	Warmup time.Duration
	// Idle is how long the idle server is measured. Default: 3s.
	Idle time.Duration
	// CPUs is the taskset CPU list the started servers are pinned to. Default: "" (not pinned).
	CPUs string
	// Binary is the liveingest binary. Default: bin/liveingest.
	Binary string
	// URL and PID name an external server (--target url).
	URL string
	PID int
	// Nginx and NginxModule locate nginx-rtmp. Default: found in PATH and the module directories.
	Nginx, NginxModule string
	// NginxHLS has nginx-rtmp write HLS segments too. Default: true.
	NginxHLS bool
	// Mediamtx is the MediaMTX binary (--target mediamtx). Default: mediamtx in PATH.
	Mediamtx string
	// SegmentDuration is the slots' segment_duration in seconds. Default: 2.
	SegmentDuration int
	// BitrateKbps is the slots' ingest_bitrate_kbps, far above the sample. Default: 20000.
	BitrateKbps int
	// Poll is the segment watcher's interval. Default: 25ms.
	Poll time.Duration
	// Sample is the clip. Defaults: see SampleSpec.
	Sample SampleSpec
	// CacheDir keeps encoded clips. Default: the user cache dir/liveingest-bench.
	CacheDir string
	// WorkDir holds the servers' temporary directories. Default: os.TempDir().
	WorkDir string
	// Keep leaves liveingest's data directory in place. Default: false.
	Keep bool
	// JSON and Doc are where the report goes ("" = nowhere). Default: "".
	JSON, Doc string
}

type intList []int

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	*l = nil
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return err
		}
		*l = append(*l, n)
	}
	return nil
}

// ParseFlags fills a Config from args.
func ParseFlags(args []string, stderr io.Writer) (*Config, error) {
	c := &Config{N: intList{16}, Steps: intList{8, 16, 32, 64, 96, 128, 160, 192, 256, 320, 384}}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	fs := flag.NewFlagSet("liveingest-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Target, "target", "liveingest", "server under test: liveingest (started here), nginx (nginx-rtmp, started here), mediamtx (MediaMTX recording fMP4, started here; --mediamtx) or url (--url, --pid)")
	fs.Var((*intList)(&c.N), "n", "publisher counts, comma-separated")
	fs.StringVar(&c.Protocol, "protocol", "rtmp", "publishers' protocol: rtmp, or srt (SRT callers sending MPEG-TS; --target liveingest only)")
	fs.StringVar(&c.Compare, "compare", "", `run the same N against a reference: "nginx" (RTMP), "mediamtx" (RTMP; --mediamtx), "rtmp" (with --protocol srt: the same liveingest over RTMP) or "disk" (with --store s3: the same liveingest into its disk store)`)
	fs.StringVar(&c.Store, "store", "disk", "liveingest's store: disk (dev, embedded) or s3 (the edge role into a MinIO started here; --target liveingest only)")
	fs.BoolVar(&c.FindMax, "find-max", false, "raise N through --steps until a run is not clean; report the highest clean N")
	fs.Var((*intList)(&c.Steps), "steps", "N steps of --find-max")
	fs.DurationVar(&c.Duration, "duration", 40*time.Second, "publishing time per run")
	fs.DurationVar(&c.LongDuration, "long-duration", 0, "also one long run of the main target at --long-n for this long (1m-1h; 0: none), reported minute by minute")
	fs.IntVar(&c.LongN, "long-n", 64, "publisher count of the long run")
	fs.StringVar(&c.Pprof, "pprof", "", "directory for a CPU profile of each run's window and a heap profile at its end (liveingest, started with --pprof); empty: none")
	fs.DurationVar(&c.Warmup, "warmup", 6*time.Second, "time after the last publisher started before CPU/RSS are measured")
	fs.DurationVar(&c.Idle, "idle", 3*time.Second, "idle measurement before publishing")
	fs.StringVar(&c.CPUs, "cpus", "", "taskset CPU list for the servers started here (e.g. 0: one core)")
	fs.StringVar(&c.Binary, "binary", "bin/liveingest", "liveingest binary (--target liveingest)")
	fs.StringVar(&c.URL, "url", "", "rtmp://host:port/app of an external server (--target url)")
	fs.IntVar(&c.PID, "pid", 0, "PID of the external server (--target url)")
	fs.StringVar(&c.Nginx, "nginx", "", "nginx binary (default: PATH, /usr/sbin/nginx)")
	fs.StringVar(&c.NginxModule, "nginx-module", "", "ngx_rtmp_module.so (default: found in the usual module directories)")
	fs.BoolVar(&c.NginxHLS, "nginx-hls", true, "nginx-rtmp also writes 2 s HLS segments to disk (false: relay only)")
	fs.StringVar(&c.Mediamtx, "mediamtx", "", "MediaMTX binary (--target mediamtx; default: mediamtx in PATH)")
	fs.IntVar(&c.SegmentDuration, "segment-duration", 2, "slot segment_duration, seconds")
	fs.IntVar(&c.BitrateKbps, "bitrate-kbps", 20000, "slot ingest_bitrate_kbps")
	fs.DurationVar(&c.Poll, "poll", 25*time.Millisecond, "segment watcher poll interval")
	fs.StringVar(&c.Sample.Size, "size", "1280x720", "sample frame size")
	fs.IntVar(&c.Sample.FPS, "fps", 25, "sample frame rate")
	fs.IntVar(&c.Sample.VideoKbps, "video-kbps", 2500, "sample H.264 bitrate")
	fs.DurationVar(&c.Sample.GOP, "gop", 2*time.Second, "sample keyframe interval")
	fs.DurationVar(&c.Sample.Length, "sample-length", 20*time.Second, "sample clip length (looped)")
	fs.BoolVar(&c.Sample.NoBFrames, "no-bframes", false, "encode the sample without B-frames (x264 -bf 0; the veryfast preset has 3): MediaMTX v1.15.3 cannot record B-frames from RTMP")
	fs.StringVar(&c.CacheDir, "cache-dir", filepath.Join(cache, "liveingest-bench"), "where encoded samples are kept")
	fs.StringVar(&c.WorkDir, "work-dir", os.TempDir(), "parent of the servers' temporary directories")
	fs.BoolVar(&c.Keep, "keep", false, "keep liveingest's data directory")
	fs.StringVar(&c.JSON, "json", "", "write the JSON report here")
	fs.StringVar(&c.Doc, "doc", "", "update the generated section of this Markdown file (docs/performance.md)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, c.Validate()
}

// Validate names the first bad flag.
func (c *Config) Validate() error {
	switch c.Target {
	case "liveingest", "nginx", "mediamtx":
	case "url":
		if c.URL == "" || c.PID <= 0 {
			return errors.New("--target url: needs --url and --pid")
		}
		if _, err := streamURL(c.URL, "k"); err != nil {
			return fmt.Errorf("--url: %w", err)
		}
	default:
		return fmt.Errorf("--target: want liveingest, nginx, mediamtx or url, got %q", c.Target)
	}
	switch c.Compare {
	case "", "nginx", "rtmp", "disk":
	case "mediamtx":
		if c.Protocol != "rtmp" || c.Store != "disk" {
			return errors.New("--compare mediamtx: an RTMP reference recording to disk; it needs --protocol rtmp and --store disk")
		}
	default:
		return fmt.Errorf(`--compare: want "nginx", "mediamtx", "rtmp", "disk" or nothing, got %q`, c.Compare)
	}
	switch c.Store {
	case "disk":
		if c.Compare == "disk" {
			return errors.New("--compare disk: the disk reference of an S3 run; it needs --store s3")
		}
	case "s3":
		if c.Target != "liveingest" {
			return fmt.Errorf("--store s3: only --target liveingest has a store to choose, got --target %s", c.Target)
		}
	default:
		return fmt.Errorf("--store: want disk or s3, got %q", c.Store)
	}
	switch c.Protocol {
	case "rtmp":
		if c.Compare == "rtmp" {
			return errors.New("--compare rtmp: the RTMP reference of an SRT run; it needs --protocol srt (an RTMP run compares with --compare nginx)")
		}
	case "srt":
		if c.Target != "liveingest" {
			return fmt.Errorf("--protocol srt: only --target liveingest serves SRT here (nginx-rtmp has no SRT, --target url is RTMP only), got --target %s", c.Target)
		}
		if c.Compare == "nginx" {
			return errors.New("--compare nginx: nginx has no SRT ingest; with --protocol srt use --compare rtmp (the same liveingest binary over RTMP, same N)")
		}
	default:
		return fmt.Errorf("--protocol: want rtmp or srt, got %q", c.Protocol)
	}
	for _, l := range []struct {
		name string
		v    []int
	}{{"--n", c.N}, {"--steps", c.Steps}} {
		if len(l.v) == 0 {
			return fmt.Errorf("%s: empty", l.name)
		}
		for _, n := range l.v {
			if n < 1 || n > 2000 {
				return fmt.Errorf("%s: %d outside 1-2000", l.name, n)
			}
		}
	}
	switch {
	case c.Duration < 5*time.Second || c.Duration > 10*time.Minute:
		return fmt.Errorf("--duration: want 5s-10m, got %v", c.Duration)
	case c.LongDuration != 0 && (c.LongDuration < time.Minute || c.LongDuration > time.Hour):
		return fmt.Errorf("--long-duration: want 0 (none) or 1m-1h, got %v", c.LongDuration)
	case c.LongDuration != 0 && (c.LongN < 1 || c.LongN > 2000):
		return fmt.Errorf("--long-n: %d outside 1-2000", c.LongN)
	case c.Warmup < 0 || c.Idle < time.Second:
		return errors.New("--warmup must be ≥ 0 and --idle ≥ 1s")
	case c.SegmentDuration < 1 || c.SegmentDuration > 10:
		return fmt.Errorf("--segment-duration: want 1-10, got %d", c.SegmentDuration)
	case c.Poll < time.Millisecond || c.Poll > time.Second:
		return fmt.Errorf("--poll: want 1ms-1s, got %v", c.Poll)
	}
	return c.Sample.Validate()
}

// cpuCount is how many CPUs a taskset list names (1 for "0", 2 for "0,2"
// or "0-1"); 0 when unpinned.
func cpuCount(list string) int {
	n := 0
	for part := range strings.SplitSeq(list, ",") {
		a, b, isRange := strings.Cut(part, "-")
		x, err1 := strconv.Atoi(a)
		y, err2 := strconv.Atoi(b)
		switch {
		case part == "":
		case isRange && err1 == nil && err2 == nil && y >= x:
			n += y - x + 1
		default:
			n++
		}
	}
	return n
}

// target is the Target a --target or --compare value names.
func (c *Config) target(name string) Target {
	switch name {
	case "nginx":
		return &Nginx{Binary: c.Nginx, Module: c.NginxModule, CPUs: c.CPUs, WorkDir: c.WorkDir, HLS: c.NginxHLS}
	case "url":
		return &External{URL: c.URL, PID: c.PID}
	case "mediamtx":
		return &Mediamtx{Binary: c.Mediamtx, CPUs: c.CPUs, WorkDir: c.WorkDir, SegmentDuration: c.SegmentDuration}
	case "rtmp":
		// The RTMP reference of an SRT run: the same binary and slots,
		// named apart from the SRT rows.
		return &Liveingest{Protocol: "rtmp", Label: "liveingest-rtmp", Binary: c.Binary, CPUs: c.CPUs, WorkDir: c.WorkDir,
			Keep: c.Keep, SegmentDuration: c.SegmentDuration, BitrateKbps: c.BitrateKbps, Store: c.Store, Pprof: c.Pprof != ""}
	case "disk":
		// The disk reference of an S3 run: the same binary and protocol.
		return &Liveingest{Protocol: c.Protocol, Binary: c.Binary, CPUs: c.CPUs, WorkDir: c.WorkDir,
			Keep: c.Keep, SegmentDuration: c.SegmentDuration, BitrateKbps: c.BitrateKbps, Store: "disk", Pprof: c.Pprof != ""}
	default:
		return &Liveingest{Protocol: c.Protocol, Binary: c.Binary, CPUs: c.CPUs, WorkDir: c.WorkDir,
			Keep: c.Keep, SegmentDuration: c.SegmentDuration, BitrateKbps: c.BitrateKbps, Store: c.Store, Pprof: c.Pprof != ""}
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "liveingest-bench:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := ParseFlags(args, stderr)
	if err != nil {
		return err
	}
	logf := func(f string, a ...any) { fmt.Fprintf(stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }
	path, err := EnsureSample(ctx, c.CacheDir, c.Sample)
	if err != nil {
		return err
	}
	s, err := LoadSample(path)
	if err != nil {
		return err
	}
	logf("sample %s: %dx%d, %.0f kb/s, %v loop, %d keyframes", path, s.Width, s.Height, s.Kbps(), s.Loop, s.Keyframes)
	rep := &Report{
		Generated: time.Now().UTC(), Protocol: c.Protocol, Store: c.Store, Command: commandLine(args), Source: gitSource(), Machine: ReadMachine(c.WorkDir), ServerCPU: c.CPUs,
		DurationS: c.Duration.Seconds(), LongDurationS: c.LongDuration.Seconds(), ProfileDir: c.Pprof,
		Sample: SampleInfo{Width: s.Width, Height: s.Height, FPS: c.Sample.FPS, GOPS: c.Sample.GOP.Seconds(),
			LoopS: s.Loop.Seconds(), Kbps: s.Kbps(), Frames: len(s.Frames), VideoKbps: c.Sample.VideoKbps, NoBFrames: c.Sample.NoBFrames},
	}
	if c.Compare != "" {
		rep.Reference = c.target(c.Compare).Name()
	}
	cores := max(1, cpuCount(c.CPUs))
	if c.CPUs == "" && c.Target == "url" {
		cores = 1 // an external server's share is still reported against one core
	}
	runCfg := func(t Target, n int, long bool) RunConfig {
		rc := RunConfig{N: n, Duration: c.Duration, Warmup: c.Warmup, Idle: c.Idle, Poll: c.Poll, CPUCores: cores,
			Long: long, ProfileDir: c.Pprof, ProfileName: fmt.Sprintf("%s-n%d", t.Name(), n)}
		if long {
			rc.Duration = c.LongDuration
			rc.ProfileName += "-long"
		}
		return rc
	}
	primary := c.target(c.Target)
	doRun := func(t Target, n int, long bool) RunResult {
		rc := runCfg(t, n, long)
		logf("run %s N=%d for %v", t.Name(), n, rc.Duration)
		r := Run(ctx, t, s, rc, logf)
		if r.Err != "" {
			logf("%s N=%d: %s", t.Name(), n, r.Err)
		}
		rep.Runs = append(rep.Runs, r)
		return r
	}
	do := func(t Target, n int) RunResult { return doRun(t, n, false) }
	byN := map[int]RunResult{}
	for _, n := range c.N {
		if ctx.Err() != nil {
			break
		}
		r := do(primary, n)
		byN[n] = r
		if c.Compare != "" && ctx.Err() == nil {
			do(c.target(c.Compare), n)
		}
	}
	if c.FindMax && ctx.Err() == nil {
		rep.FindMax = findMax(ctx, primary.Name(), c.Steps, byN, func(n int) RunResult { return do(primary, n) })
	}
	if c.LongDuration > 0 && ctx.Err() == nil {
		doRun(primary, c.LongN, true)
	}
	rep.Runs = orderRuns(rep.Runs, primary.Name())
	if c.Compare != "" {
		rep.AddRatios(primary.Name(), rep.Reference)
	}
	rep.WriteTable(stdout)
	if c.JSON != "" {
		if err := rep.WriteJSON(c.JSON); err != nil {
			return err
		}
	}
	if c.Doc != "" {
		if err := UpdateDoc(c.Doc, rep.DocSection(), rep.Markdown()); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// findMax walks steps upward and stops at the first run that is not clean,
// reusing runs already made at the same N.
func findMax(ctx context.Context, target string, steps []int, done map[int]RunResult, run func(int) RunResult) *FindMax {
	steps = slices.Sorted(slices.Values(steps))
	fm := &FindMax{Target: target, Steps: steps}
	for _, n := range steps {
		if ctx.Err() != nil {
			break
		}
		r, ok := done[n]
		if !ok {
			r = run(n)
		}
		if r.Skipped {
			fm.Pending = r.Err
			return fm
		}
		if !r.Clean {
			fm.StopN = n
			fm.StopWhy = strings.Join(r.Why, "; ")
			if r.Err != "" {
				fm.StopWhy = r.Err
			}
			if r.GenBottleneck {
				fm.Limited = "generator"
			}
			return fm
		}
		fm.MaxClean = n
	}
	return fm
}

// orderRuns sorts by N, the main target before the reference at equal N,
// the long run last.
func orderRuns(runs []RunResult, main string) []RunResult {
	slices.SortStableFunc(runs, func(a, b RunResult) int {
		if a.Long != b.Long {
			if a.Long {
				return 1
			}
			return -1
		}
		if a.N != b.N {
			return a.N - b.N
		}
		ai, bi := a.Target != main, b.Target != main
		switch {
		case ai == bi:
			return 0
		case bi:
			return -1
		default:
			return 1
		}
	})
	return runs
}

// commandLine is the invocation as a copyable shell line.
func commandLine(args []string) string {
	q := []string{"liveingest-bench"}
	if len(os.Args) > 0 {
		q[0] = os.Args[0]
	}
	for _, a := range args {
		if strings.ContainsAny(a, " \t\"'$*?") {
			a = strconv.Quote(a)
		}
		q = append(q, a)
	}
	return strings.Join(q, " ")
}
