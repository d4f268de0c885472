package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mediamtx starts MediaMTX (github.com/bluenviron/mediamtx) with RTMP
// ingest only and fMP4 recording to disk: the Go server closest to
// liveingest's work, side by side on the same core (docs/performance.md).
//
// Its recorder writes a segment as one file under
// <rec>/<path>/<start time>.mp4: created at its first part (after
// recordPartDuration), appended a part at a time, and completed at the
// next cut keyframe, when the segment's duration is written into its
// header and the file is closed. The cut rule is ours (the first keyframe
// at least recordSegmentDuration after the segment's start). So after the
// run each file is matched, by the start time in its name, with the
// segment of its stream that began at the keyframe sent nearest that
// time, and the file's last modification is when that segment was
// complete: the "visible" time of the latency here (Running.Scan). The
// recorder starts a stream's first segment only once MediaMTX has found
// its tracks, a GOP or two in, and that segment may span two GOPs: the
// segments up to its second file are not judged (RunResult.SegNotRecorded).
type Mediamtx struct {
	Binary          string // "" looks up mediamtx in PATH
	CPUs            string
	WorkDir         string
	SegmentDuration int // recordSegmentDuration, seconds
}

// Name implements Target.
func (*Mediamtx) Name() string { return "mediamtx" }

var _ Target = (*Mediamtx)(nil)

// mediamtxConfig is the mediamtx.yml of a run: RTMP on addr, every other
// protocol and API off, every path recorded as fMP4 under rec.
func mediamtxConfig(addr, rec string, segDur int) string {
	return fmt.Sprintf(`logLevel: warn
logDestinations: [stdout]
api: no
metrics: no
pprof: no
playback: no
rtsp: no
rtmp: yes
rtmpAddress: %s
hls: no
webrtc: no
srt: no
pathDefaults:
  record: yes
  recordPath: %s/%%path/%%Y-%%m-%%d_%%H-%%M-%%S-%%f
  recordFormat: fmp4
  recordPartDuration: 1s
  recordSegmentDuration: %ds
  recordDeleteAfter: 0s
paths:
  all_others:
`, addr, rec, segDur)
}

// Start implements Target.
func (m *Mediamtx) Start(ctx context.Context, n int) (_ *Running, err error) {
	bin := m.Binary
	if bin == "" {
		if bin, err = exec.LookPath("mediamtx"); err != nil {
			return nil, fmt.Errorf("%w: no mediamtx binary (--mediamtx PATH; docs/performance.md says how to build v1.15.3)", ErrUnavailable)
		}
	}
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %s --version: %v", ErrUnavailable, bin, err)
	}
	dir, err := os.MkdirTemp(m.WorkDir, "mediamtx-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	port, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	rec := filepath.Join(dir, "rec")
	conf := filepath.Join(dir, "mediamtx.yml")
	if err := os.WriteFile(conf, []byte(mediamtxConfig(addr, rec, m.SegmentDuration)), 0o644); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "mediamtx.log")
	p, err := startProcess(m.CPUs, logPath, nil, nil, bin, conf)
	if err != nil {
		return nil, err
	}
	if err := waitTCP(ctx, addr, p, 10*time.Second); err != nil {
		p.stop()
		b, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("mediamtx: %w: %s", err, strings.TrimSpace(string(b)))
	}
	r := &Running{PID: p.cmd.Process.Pid, Version: "MediaMTX " + strings.TrimSpace(string(out)), Log: logPath,
		SegmentDuration: time.Duration(m.SegmentDuration) * time.Second}
	var streamDirs []string
	for i := range n {
		key := fmt.Sprintf("bench-%d", i)
		u, err := streamURL("rtmp://"+addr+"/live", key)
		if err != nil {
			p.stop()
			return nil, err
		}
		r.URLs = append(r.URLs, u)
		streamDirs = append(streamDirs, filepath.Join(rec, "live", key))
	}
	r.Scan = func() [][]RecordedSegment { return scanRecordings(streamDirs) }
	r.After = func() string { return recordedNote(rec, n) }
	r.Stop = func() error {
		p.stop()
		last := filepath.Join(m.WorkDir, "mediamtx-bench-last.log")
		if os.Rename(logPath, last) == nil {
			r.Log = last
		}
		return os.RemoveAll(dir)
	}
	return r, nil
}

// parseRecordedName reads the start time of a segment named by
// recordPath's %Y-%m-%d_%H-%M-%S-%f (the server's local time; %f is in
// microseconds, after a dash, which time.Parse has no layout for).
func parseRecordedName(stem string) (time.Time, error) {
	i := strings.LastIndexByte(stem, '-')
	if i < 0 || len(stem)-i-1 != 6 {
		return time.Time{}, fmt.Errorf("%q: no microseconds", stem)
	}
	us, err := strconv.Atoi(stem[i+1:])
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.ParseInLocation("2006-01-02_15-04-05", stem[:i], time.Local)
	return t.Add(time.Duration(us) * time.Microsecond), err
}

// scanRecordings lists each stream directory's .mp4 segments: the start
// time in the name, the last modification as the moment the segment was
// complete.
func scanRecordings(dirs []string) [][]RecordedSegment {
	recs := make([][]RecordedSegment, len(dirs))
	for i, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			stem, ok := strings.CutSuffix(e.Name(), ".mp4")
			if !ok {
				continue
			}
			start, err := parseRecordedName(stem)
			if err != nil {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			recs[i] = append(recs[i], RecordedSegment{Start: start, Done: fi.ModTime()})
		}
		slices.SortFunc(recs[i], func(a, b RecordedSegment) int { return a.Start.Compare(b.Start) })
	}
	return recs
}

// recordedNote says what MediaMTX recorded: the proof that it did the
// recording work, not only relayed.
func recordedNote(rec string, n int) string {
	var files, streams int
	var bytes int64
	seen := map[string]bool{}
	_ = filepath.WalkDir(rec, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".mp4") {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			files++
			bytes += fi.Size()
			if dir := filepath.Dir(path); !seen[dir] {
				seen[dir] = true
				streams++
			}
		}
		return nil
	})
	return fmt.Sprintf("recorded %d fMP4 segment files, %.0f MiB, for %d of %d streams", files, float64(bytes)/mib, streams, n)
}
