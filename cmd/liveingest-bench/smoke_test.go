package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
)

// TestSmokeNginx runs the whole load path for a few seconds: two publishers
// against a real nginx-rtmp started by the bench, measured by PID. It checks
// that things happened, never how fast.
func TestSmokeNginx(t *testing.T) {
	if os.Getenv(testenv.SkipEnv) == "1" {
		t.Skip(testenv.SkipEnv + "=1")
	}
	ng := &Nginx{WorkDir: t.TempDir()}
	if _, _, _, err := ng.locate(); errors.Is(err, ErrUnavailable) {
		t.Skipf("%v (make test does not install nginx; make bench-deps does)", err)
	}
	_, s := tinySample(t)
	testenv.VerifyNoLeaks(t)
	logf := func(f string, a ...any) { t.Logf(f, a...) }
	res := Run(t.Context(), ng, s, RunConfig{N: 2, Duration: 5 * time.Second, Warmup: 0, Idle: time.Second,
		Poll: 25 * time.Millisecond, CPUCores: 1}, logf)
	if res.Err != "" {
		t.Fatalf("run: %s", res.Err)
	}
	if res.Failed != 0 {
		t.Fatalf("publishers failed: %v", res.Errors)
	}
	if res.Frames < 2*40 || res.IngestMbps <= 0 {
		t.Errorf("sent %d frames at %.2f Mb/s: want about 5 s of two streams", res.Frames, res.IngestMbps)
	}
	if res.IdleRSSMiB <= 0 || res.RSSMiB <= 0 || res.WindowS <= 0 || res.Procs != 1 {
		t.Errorf("server measurement missing: %+v", res)
	}
	if res.Watched {
		t.Error("nginx has no store to watch")
	}
}

// tlog writes the bench's progress lines into the test log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestSmokeSRT runs SRT mode end to end as `make bench-srt` does, at toy
// scale: liveingest built from this tree, two SRT publishers for five
// seconds, then the same two over RTMP (--compare rtmp), the JSON report,
// and the SRT section of a doc that already has an RTMP one. It checks
// that things happened — segments appeared, no publisher failed, both
// ends of the SRT link counted — never how fast.
func TestSmokeSRT(t *testing.T) {
	if os.Getenv(testenv.SkipEnv) == "1" {
		t.Skip(testenv.SkipEnv + "=1")
	}
	if testing.Short() {
		t.Skip("-short: builds liveingest and runs two 5 s benchmarks")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make deps installs it)")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build liveingest with")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "liveingest")
	if out, err := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, "github.com/liveingest/liveingest/cmd/liveingest").CombinedOutput(); err != nil {
		t.Fatalf("go build liveingest: %v\n%s", err, out)
	}
	rb, re := docMarkers("bench")
	doc := filepath.Join(dir, "performance.md")
	rtmpSection := "# Performance\n\n" + rb + "\n\nthe RTMP numbers\n" + re + "\n"
	if err := os.WriteFile(doc, []byte(rtmpSection), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.json")
	testenv.VerifyNoLeaks(t)

	var stdout strings.Builder
	err = run(t.Context(), []string{"--protocol", "srt", "--compare", "rtmp", "--binary", bin,
		"--n", "2", "--duration", "5s", "--warmup", "0s", "--idle", "1s", "--segment-duration", "1",
		"--size", "160x96", "--fps", "10", "--video-kbps", "200", "--gop", "1s", "--sample-length", "3s",
		"--cache-dir", dir, "--work-dir", dir, "--json", report, "--doc", doc, "--pprof", filepath.Join(dir, "pprof")}, &stdout, tlog{t})
	t.Log("\n" + stdout.String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	// --pprof: both runs profiled by the binary built from this tree.
	for _, r := range rep.Runs {
		pr := r.Profile
		if pr == nil || pr.Note != "" || pr.CPUSeconds < 1 {
			t.Errorf("%s: profile %+v", r.Target, pr)
			continue
		}
		for _, f := range []string{pr.CPU, pr.Heap} {
			if fi, err := os.Stat(f); err != nil || fi.Size() == 0 || filepath.Dir(f) != filepath.Join(dir, "pprof") {
				t.Errorf("%s: profile file %s: %v", r.Target, f, err)
			}
		}
	}
	if rep.Protocol != "srt" || rep.Reference != "liveingest-rtmp" || len(rep.Runs) != 2 ||
		rep.Runs[0].Target != "liveingest-srt" || rep.Runs[1].Target != "liveingest-rtmp" {
		t.Fatalf("report: protocol %q, reference %q, %d runs", rep.Protocol, rep.Reference, len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.Err != "" {
			t.Fatalf("%s: %s", r.Target, r.Err)
		}
		if r.Failed != 0 {
			t.Errorf("%s: publishers failed: %v", r.Target, r.Errors)
		}
		if r.Frames < 2*40 || !r.Watched || r.SegFound == 0 || r.SegMissing != 0 || r.WindowS <= 0 || r.RSSMiB <= 0 {
			t.Errorf("%s: %d frames, segments found %d missing %d of %d, window %.1fs, RSS %.1f MiB",
				r.Target, r.Frames, r.SegFound, r.SegMissing, r.SegExpected, r.WindowS, r.RSSMiB)
		}
	}
	srt, rtmp := rep.Runs[0], rep.Runs[1]
	if srt.Protocol != "srt" || rtmp.Protocol != "rtmp" || rtmp.SRT != nil {
		t.Errorf("protocols %q and %q", srt.Protocol, rtmp.Protocol)
	}
	q := srt.SRT
	if q == nil || q.Sent == 0 || q.Sent != q.Packets || q.UDPDrops < 0 || q.TSOverheadPct <= 0 {
		t.Fatalf("SRT link, caller side: %+v", q)
	}
	if sv := q.Server; sv == nil || sv.Closed != 2 || sv.Reasons[srtPublisherLeft] != 2 || sv.Received == 0 {
		t.Errorf("SRT link, server side (from its log): %+v", sv)
	}
	if len(rep.Ratios) != 1 || rep.Ratios[0].Latency == nil || rep.Ratios[0].CPURatio <= 0 {
		t.Errorf("ratios %+v", rep.Ratios)
	}
	if !strings.Contains(stdout.String(), "ratio liveingest-srt/liveingest-rtmp N=2") {
		t.Error("the table lacks the SRT/RTMP ratio")
	}
	got, _ := os.ReadFile(doc)
	sb, se := docMarkers("bench-srt")
	if !strings.HasPrefix(string(got), rtmpSection) || !strings.Contains(string(got), sb) || !strings.HasSuffix(string(got), se+"\n") ||
		!strings.Contains(string(got), "| liveingest-srt | 2 |") {
		t.Errorf("doc:\n%s", got)
	}
}

// TestExternalNeedsALivePID: --target url measures a PID it did not start.
func TestExternalNeedsALivePID(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	rt, err := (&External{URL: "rtmp://127.0.0.1:1/live", PID: pid}).Start(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if rt.PID != pid || len(rt.URLs) != 3 || rt.URLs[2].Fragment != "bench-2" || rt.SegmentDirs != nil {
		t.Errorf("running %+v", rt)
	}
	if _, err := (&External{URL: "rtmp://127.0.0.1:1/live", PID: 1 << 30}).Start(t.Context(), 1); err == nil {
		t.Error("a PID that does not exist: no error")
	}
}

// TestSmokeS3 runs `make bench-s3` at toy scale: liveingest built from this
// tree as an edge writing to a MinIO (with Redis and an origin, all started
// by the tool), two RTMP publishers for five seconds, then the same two
// into dev's disk store (--compare disk), the report and the doc's S3
// section. It checks that segments were seen appearing in MinIO's data
// directory, both runs were clean of failures and the ratio exists, never
// how fast.
func TestSmokeS3(t *testing.T) {
	if os.Getenv(testenv.SkipEnv) == "1" {
		t.Skip(testenv.SkipEnv + "=1")
	}
	if testing.Short() {
		t.Skip("-short: builds liveingest and runs two 5 s benchmarks")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make deps installs it)")
	}
	if _, err := minioBinary(); err != nil {
		t.Skip(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build liveingest with")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "liveingest")
	if out, err := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, "github.com/liveingest/liveingest/cmd/liveingest").CombinedOutput(); err != nil {
		t.Fatalf("go build liveingest: %v\n%s", err, out)
	}
	doc := filepath.Join(dir, "performance.md")
	report := filepath.Join(dir, "report.json")
	testenv.VerifyNoLeaks(t)

	var stdout strings.Builder
	err = run(t.Context(), []string{"--store", "s3", "--compare", "disk", "--binary", bin,
		"--n", "2", "--duration", "5s", "--warmup", "0s", "--idle", "1s", "--segment-duration", "1",
		"--size", "160x96", "--fps", "10", "--video-kbps", "200", "--gop", "1s", "--sample-length", "3s",
		"--cache-dir", dir, "--work-dir", dir, "--json", report, "--doc", doc}, &stdout, tlog{t})
	t.Log("\n" + stdout.String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Store != "s3" || rep.Reference != "liveingest" || len(rep.Runs) != 2 ||
		rep.Runs[0].Target != "liveingest-s3" || rep.Runs[1].Target != "liveingest" {
		t.Fatalf("report: store %q, reference %q, %d runs", rep.Store, rep.Reference, len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.Err != "" {
			t.Fatalf("%s: %s", r.Target, r.Err)
		}
		if r.Failed != 0 {
			t.Errorf("%s: publishers failed: %v", r.Target, r.Errors)
		}
		if r.Frames < 2*40 || !r.Watched || r.SegFound == 0 || r.SegMissing != 0 || r.WindowS <= 0 || r.RSSMiB <= 0 {
			t.Errorf("%s: %d frames, segments found %d missing %d of %d, window %.1fs, RSS %.1f MiB",
				r.Target, r.Frames, r.SegFound, r.SegMissing, r.SegExpected, r.WindowS, r.RSSMiB)
		}
	}
	if len(rep.Ratios) != 1 || rep.Ratios[0].Latency == nil || rep.Ratios[0].CPURatio <= 0 {
		t.Errorf("ratios %+v", rep.Ratios)
	}
	got, _ := os.ReadFile(doc)
	sb, se := docMarkers("bench-s3")
	if !strings.Contains(string(got), sb) || !strings.Contains(string(got), se) || !strings.Contains(string(got), "| liveingest-s3 | 2 |") ||
		!strings.Contains(string(got), "make bench-s3") {
		t.Errorf("doc:\n%s", got)
	}
}

// TestSmokeMediamtx runs --target mediamtx at toy scale when a MediaMTX
// binary is at hand (LIVEINGEST_MEDIAMTX_BIN or mediamtx in PATH; the
// bench never installs it): two publishers of a clip without B-frames for
// eight seconds, the recordings read back as segments. It checks that
// MediaMTX recorded and the segments matched the cut model, never how
// fast.
func TestSmokeMediamtx(t *testing.T) {
	if os.Getenv(testenv.SkipEnv) == "1" {
		t.Skip(testenv.SkipEnv + "=1")
	}
	bin := os.Getenv("LIVEINGEST_MEDIAMTX_BIN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("mediamtx"); err != nil {
			t.Skip("no mediamtx (set LIVEINGEST_MEDIAMTX_BIN; docs/performance.md says how to build it)")
		}
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make deps installs it)")
	}
	spec := tinySpec
	spec.NoBFrames = true
	path, err := EnsureSample(t.Context(), t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSample(path)
	if err != nil {
		t.Fatal(err)
	}
	testenv.VerifyNoLeaks(t)
	logf := func(f string, a ...any) { t.Logf(f, a...) }
	res := Run(t.Context(), &Mediamtx{Binary: bin, WorkDir: t.TempDir(), SegmentDuration: 1}, s,
		RunConfig{N: 2, Duration: 8 * time.Second, Idle: time.Second, Poll: 25 * time.Millisecond, CPUCores: 1}, logf)
	if res.Err != "" {
		t.Fatalf("run: %s", res.Err)
	}
	if res.Failed != 0 || !res.Watched || res.SegExpected == 0 || res.SegMissing != 0 || res.SegNotRecorded == 0 ||
		!strings.HasPrefix(res.Note, "recorded ") || !strings.HasSuffix(res.Note, "for 2 of 2 streams") || !strings.HasPrefix(res.Version, "MediaMTX v") {
		t.Errorf("run: %+v", res)
	}
}
