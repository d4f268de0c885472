package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func keysAt(base time.Time, secs ...float64) []KeySent {
	var ks []KeySent
	for _, s := range secs {
		d := time.Duration(s * float64(time.Second))
		ks = append(ks, KeySent{DTS: d, Sent: base.Add(d)})
	}
	return ks
}

func dtsOf(ks []KeySent) []time.Duration {
	var out []time.Duration
	for _, k := range ks {
		out = append(out, k.DTS)
	}
	return out
}

func TestCuts(t *testing.T) {
	base := time.Unix(1000, 0)
	for _, c := range []struct {
		name   string
		keys   []float64
		segDur time.Duration
		want   []float64
	}{
		{"gop equals segment", []float64{0, 2, 4, 6}, 2 * time.Second, []float64{2, 4, 6}},
		{"gop half the segment", []float64{0, 1, 2, 3, 4, 5}, 2 * time.Second, []float64{2, 4}},
		{"gop longer than segment", []float64{0, 3, 6}, 2 * time.Second, []float64{3, 6}},
		{"irregular", []float64{0, 1.5, 2.5, 3, 4.6}, 2 * time.Second, []float64{2.5, 4.6}},
		{"one keyframe", []float64{0}, 2 * time.Second, nil},
		{"none", nil, 2 * time.Second, nil},
	} {
		got := dtsOf(Cuts(keysAt(base, c.keys...), c.segDur))
		want := dtsOf(keysAt(base, c.want...))
		if !slices.Equal(got, want) {
			t.Errorf("%s: cuts %v, want %v", c.name, got, want)
		}
	}
}

func TestJudgeSegments(t *testing.T) {
	base := time.Unix(1000, 0)
	pub := PubResult{Keys: keysAt(base, 0, 2, 4, 6, 8, 10), Stopped: base.Add(10200 * time.Millisecond)}
	// cuts at 2, 4, 6, 8 are judged; 10 is within cutMargin of the end.
	seen := []time.Time{
		base.Add(2*time.Second + 30*time.Millisecond),   // seq 0: 30ms
		base.Add(4*time.Second + 50*time.Millisecond),   // seq 1: 50ms
		base.Add(6*time.Second + 2500*time.Millisecond), // seq 2: late
	} // seq 3 missing
	var res RunResult
	res.Watched = true
	judgeSegments(&res, []PubResult{pub}, Appearances{seen}, 2*time.Second, nil)
	if res.SegExpected != 4 || res.SegFound != 3 || res.SegMissing != 1 || res.SegLate != 1 {
		t.Errorf("expected/found/missing/late %d/%d/%d/%d, want 4/3/1/1", res.SegExpected, res.SegFound, res.SegMissing, res.SegLate)
	}
	if res.LatP50ms != 50 || res.LatMaxms != 2500 {
		t.Errorf("p50 %v max %v, want 50 and 2500", res.LatP50ms, res.LatMaxms)
	}
	judge(&res, RunConfig{CPUCores: 1})
	if res.Clean || len(res.Why) != 2 {
		t.Errorf("clean %v why %q: want two reasons", res.Clean, res.Why)
	}
}

func TestJudgeCPU(t *testing.T) {
	res := RunResult{CPUPct: 96}
	judge(&res, RunConfig{CPUCores: 1})
	if res.Clean || !strings.Contains(strings.Join(res.Why, ";"), "CPU") {
		t.Errorf("96%% of one core: clean %v, why %q", res.Clean, res.Why)
	}
	res = RunResult{CPUPct: 96}
	judge(&res, RunConfig{CPUCores: 2})
	if !res.Clean {
		t.Errorf("96%% of two cores: not clean: %q", res.Why)
	}
}

func TestFindMax(t *testing.T) {
	ran := []int{}
	run := func(n int) RunResult {
		ran = append(ran, n)
		r := RunResult{N: n, Clean: n <= 32}
		if !r.Clean {
			r.Why = []string{"2 segment(s) late"}
		}
		return r
	}
	done := map[int]RunResult{16: {N: 16, Clean: true}}
	fm := findMax(t.Context(), "liveingest", []int{64, 8, 16, 32, 128}, done, run)
	if fm.MaxClean != 32 || fm.StopN != 64 || fm.StopWhy != "2 segment(s) late" {
		t.Errorf("got %+v", fm)
	}
	if !slices.Equal(ran, []int{8, 32, 64}) {
		t.Errorf("ran %v, want 8 32 64 (16 reused, 128 never)", ran)
	}
}

// TestWatcher renames segment files into a fake store the way the disk
// store does and checks that the watcher finds them in order, across a new
// session's token directory.
func TestWatcher(t *testing.T) {
	v := t.TempDir()
	tmp := t.TempDir()
	put := func(tok string, seq int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(v, tok), 0o755); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(tmp, "x")
		if err := os.WriteFile(f, []byte("seg"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f, filepath.Join(v, tok, strconv.Itoa(seq)+".m4s")); err != nil {
			t.Fatal(err)
		}
	}
	put("7", 0)
	put("7", 1)
	ctx, cancel := context.WithCancel(t.Context())
	w := &Watcher{Dirs: []string{v, filepath.Join(t.TempDir(), "never")}, Interval: time.Millisecond}
	out := make(chan Appearances)
	go func() { out <- w.Run(ctx) }()
	put("7", 2)
	put("12", 3)                        // a reconnect: the next session continues the numbering
	put("7", 9)                         // not the next number: never counted
	time.Sleep(1200 * time.Millisecond) // longer than listEvery, so "12" is listed
	cancel()
	got := <-out
	if len(got) != 2 || len(got[0]) != 4 || len(got[1]) != 0 {
		t.Fatalf("appearances %v: want 4 in the first dir, none in the second", got)
	}
	for i, at := range got[0] {
		if at.IsZero() || at.After(time.Now()) {
			t.Errorf("seq %d: time %v", i, at)
		}
	}
}
