package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// With --pprof DIR the bench starts liveingest with `--pprof
// 127.0.0.1:<free port>` (cmd/liveingest/pprof.go) and, for every run,
// fetches a CPU profile over the measurement window and a heap profile at
// its end, so a number in the report comes with where its time and memory
// went. A build from before --pprof refuses the flag; it is then started
// without it and the report says that run was not profiled.

// ProfileResult names the profiles of one run; Note says why one is
// missing.
type ProfileResult struct {
	CPU        string `json:"cpu,omitempty"`
	CPUSeconds int    `json:"cpu_seconds,omitempty"`
	Heap       string `json:"heap,omitempty"`
	Note       string `json:"note,omitempty"`
}

// maxProfileSeconds caps the CPU profile of a long window: liveingest's
// profiling listener lets a response take 11 minutes (profileWriteTimeout
// in cmd/liveingest/pprof.go).
const maxProfileSeconds = 600

// profileSeconds is the CPU profile length for a window: whole seconds
// within it, at least 1, at most maxProfileSeconds.
func profileSeconds(window time.Duration) int {
	return min(max(1, int(window/time.Second)), maxProfileSeconds)
}

// profileFiles are the paths of a run's profiles in dir.
func profileFiles(dir, name string) (cpu, heap string) {
	return filepath.Join(dir, name+"-cpu.pprof"), filepath.Join(dir, name+"-heap.pprof")
}

// captureProfiles fetches the CPU profile from `from` for the window (or
// maxProfileSeconds) and the heap profile at `to`. It returns nil for a
// target that serves no profiles and never said why (nginx, --target url).
func captureProfiles(ctx context.Context, rt *Running, dir, name string, from, to time.Time) *ProfileResult {
	if rt.Pprof == "" {
		if rt.ProfileNote == "" {
			return nil
		}
		return &ProfileResult{Note: rt.ProfileNote}
	}
	res := &ProfileResult{}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.Note = err.Error()
		return res
	}
	cpuPath, heapPath := profileFiles(dir, name)
	base := "http://" + rt.Pprof + "/debug/pprof/"
	if !sleepUntil(ctx, from) {
		res.Note = "interrupted"
		return res
	}
	secs := profileSeconds(to.Sub(from))
	// The response comes when the profile is complete: secs, plus time to
	// write it out.
	if err := fetchProfile(ctx, base+"profile?seconds="+strconv.Itoa(secs), cpuPath, time.Duration(secs)*time.Second+time.Minute); err != nil {
		res.Note = "CPU profile: " + err.Error()
	} else {
		res.CPU, res.CPUSeconds = cpuPath, secs
	}
	if !sleepUntil(ctx, to) {
		return res
	}
	// The heap profile as of the last GC: asking for one (?gc=1) would put
	// a collection into the server's CPU at the window's end.
	if err := fetchProfile(ctx, base+"heap", heapPath, time.Minute); err != nil {
		if res.Note != "" {
			res.Note += "; "
		}
		res.Note += "heap profile: " + err.Error()
	} else {
		res.Heap = heapPath
	}
	return res
}

// fetchProfile GETs u into path, which it leaves only when complete.
func fetchProfile(ctx context.Context, u, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	tmp := path + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
