package main

import (
	"errors"
	"os"
	"os/exec"
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
