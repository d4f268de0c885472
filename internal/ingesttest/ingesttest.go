// Package ingesttest is the test world of the segmenting ingest protocols
// (edge/rtmp, edge/srt, edge/whip): a store with a slot repository, the
// admission and segmenter an edge runs, coordination in memory or on a
// real redis-server, and the checks every protocol makes of its output
// (live status, playlists, playback).
//
// It is imported by tests only.
package ingesttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/memory"
	coordredis "github.com/liveingest/liveingest/origin/coord/redis"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/playback"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

// Coord is one edge process's view of a coordination service.
type Coord struct {
	Locker   coord.Locker
	Registry coord.Registry
	Limiter  func(coord.Rate) coord.Limiter
}

// MemoryCoord is coordination in this process only.
func MemoryCoord(t testing.TB) Coord {
	c := memory.New(nil)
	return Coord{Locker: c, Registry: c, Limiter: func(r coord.Rate) coord.Limiter {
		l, err := c.NewLimiter(r)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}}
}

// RedisCoords returns a factory of edges sharing one namespace on the real
// redis-server: each call is another process.
func RedisCoords(t testing.TB) func() Coord {
	addr := testenv.Redis(t).Addr
	var b [6]byte
	_, _ = rand.Read(b[:])
	ns := "ingest-" + hex.EncodeToString(b[:])
	return func() Coord {
		c, err := coordredis.New(coordredis.Config{Addr: addr, Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return Coord{Locker: c, Registry: c, Limiter: func(r coord.Rate) coord.Limiter {
			l, err := c.NewLimiter(r)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}}
	}
}

// World is a store and its slot repository.
type World struct {
	Store store.Store
	Repo  *slots.Repo
	// Queue is the segmenters' upload queue configuration (zero fields:
	// segment's defaults). Set it before building an Edge.
	Queue segment.QueueConfig
}

// NewWorld builds a repository on st (cheap bcrypt: tests only).
func NewWorld(t testing.TB, st store.Store) *World {
	repo, err := slots.New(st, slots.Options{BcryptCost: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return &World{Store: st, Repo: repo}
}

// Slot creates a transmux slot named name, with in's other fields, and
// returns its id and stream key.
func (w *World) Slot(t testing.TB, name string, in ...slots.Input) (keys.SlotID, string) {
	t.Helper()
	var i slots.Input
	if len(in) > 0 {
		i = in[0]
	}
	typ := slots.TypeTransmux
	i.Name = &name
	if i.Type == nil {
		i.Type = &typ
	}
	c, err := w.Repo.Create(t.Context(), i)
	if err != nil {
		t.Fatal(err)
	}
	return c.Slot.ID, c.StreamKey.Reveal()
}

// Admission is an edge's admission with short lease and heartbeat times,
// so that tests see ends and takeovers quickly.
func (w *World) Admission(t testing.TB, edgeID string, co Coord, logger *slog.Logger) *admit.Admission {
	t.Helper()
	return w.admission(t, edgeID, co, logger, nil)
}

func (w *World) admission(t testing.TB, edgeID string, co Coord, logger *slog.Logger, reg prometheus.Registerer) *admit.Admission {
	t.Helper()
	cfg := admit.Config{EdgeID: edgeID, LeaseTTL: 3 * time.Second, HeartbeatTTL: 1500 * time.Millisecond}.WithDefaults()
	adm, err := admit.New(cfg, admit.Deps{
		Slots: w.Repo, Locker: co.Locker, Registry: co.Registry,
		KeyLimiter: co.Limiter(cfg.KeyRate), AuthLimiter: co.Limiter(cfg.AuthFailRate), Logger: logger, Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return adm
}

// Segmenter writes to the world's store with 2 s segments by default (a
// slot's own segment_duration wins) and the world's Queue.
func (w *World) Segmenter(t testing.TB, logger *slog.Logger) *segment.Segmenter {
	t.Helper()
	return w.segmenter(t, logger, nil)
}

func (w *World) segmenter(t testing.TB, logger *slog.Logger, reg prometheus.Registerer) *segment.Segmenter {
	t.Helper()
	seg, err := segment.New(segment.Config{SegmentDuration: 2 * time.Second, DVRWindow: 60 * time.Second, Queue: w.Queue},
		segment.Deps{Store: w.Store, Logger: logger, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

// LogSink sends logs to the test log and keeps them for assertions.
type LogSink struct {
	T   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger is a text logger at level info writing to l, tagged with the edge.
func (l *LogSink) Logger(edgeID string) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo})).With("edge", edgeID)
}

func (l *LogSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	l.T.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (l *LogSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// WaitFor polls cond until it holds or d passes.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Live lists the slot's sessions that are publishing now; records of
// refusals and reasoned ends (Ended set) are not live.
func Live(t testing.TB, reg coord.Registry, id keys.SlotID) []coord.Session {
	t.Helper()
	return listed(t, reg, id, false)
}

// Ended lists the slot's records of refusals and reasoned ends.
func Ended(t testing.TB, reg coord.Registry, id keys.SlotID) []coord.Session {
	t.Helper()
	return listed(t, reg, id, true)
}

func listed(t testing.TB, reg coord.Registry, id keys.SlotID, ended bool) []coord.Session {
	t.Helper()
	ss, err := reg.List(t.Context(), string(id))
	if err != nil {
		t.Fatal(err)
	}
	var out []coord.Session
	for _, s := range ss {
		if s.Ended.IsZero() != ended {
			out = append(out, s)
		}
	}
	return out
}

// PlaybackURL serves the store through origin/playback and returns the
// slot's playback base URL (ending in "/").
func (w *World) PlaybackURL(t testing.TB, id keys.SlotID) string {
	srv, err := playback.New(playback.Config{}, playback.Deps{Slots: w.Repo, Store: w.Store})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL + "/live/" + string(id) + "/"
}

// Get reads the primary role's media file rel.
func (w *World) Get(t testing.TB, id keys.SlotID, rel string) string {
	t.Helper()
	rc, _, err := w.Store.Get(t.Context(), keys.Media(id, keys.Primary, keys.RelPath(rel)))
	if err != nil {
		t.Fatalf("get %s: %v", rel, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Exists reports whether the primary role's media file rel is stored.
func (w *World) Exists(t testing.TB, id keys.SlotID, rel string) bool {
	t.Helper()
	_, err := w.Store.Stat(t.Context(), keys.Media(id, keys.Primary, keys.RelPath(rel)))
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// CheckPlaylist is a mediastreamvalidator-style check of one HLS media
// playlist: target duration ≥ every EXTINF, segment durations within
// tolerance (0.1 = 10 %) of target except the last, contiguous sequence
// numbers, every URI and EXT-X-MAP present in the store, and EXT-X-ENDLIST
// once the publish ended. It returns the number of segments listed.
func (w *World) CheckPlaylist(t testing.TB, id keys.SlotID, name string, target time.Duration, tolerance float64, wantEnd bool) int {
	t.Helper()
	text := w.Get(t, id, name)
	var (
		tgt   float64
		durs  []float64
		uris  []string
		ended bool
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "#EXT-X-TARGETDURATION:"):
			tgt, _ = strconv.ParseFloat(strings.TrimPrefix(l, "#EXT-X-TARGETDURATION:"), 64)
		case strings.HasPrefix(l, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(l, "#EXTINF:"), ",")
			d, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: bad EXTINF %q", name, l)
			}
			durs = append(durs, d)
		case strings.HasPrefix(l, "#EXT-X-MAP:"):
			_, u, _ := strings.Cut(l, `URI="`)
			u, _, _ = strings.Cut(u, `"`)
			uris = append(uris, u)
		case l == "#EXT-X-ENDLIST":
			ended = true
		case l != "" && !strings.HasPrefix(l, "#"):
			uris = append(uris, l)
		}
	}
	if len(durs) == 0 {
		t.Fatalf("%s lists no segment:\n%s", name, text)
	}
	if ended != wantEnd {
		t.Errorf("%s: EXT-X-ENDLIST present=%v, want %v", name, ended, wantEnd)
	}
	ts := target.Seconds()
	for i, d := range durs {
		if d > tgt+1e-9 && float64(int(d+0.5)) > tgt {
			t.Errorf("%s: EXTINF %v above EXT-X-TARGETDURATION %v", name, d, tgt)
		}
		if i < len(durs)-1 && (d < ts*(1-tolerance) || d > ts*(1+tolerance)) {
			t.Errorf("%s: segment %d lasts %vs, not within %.0f%% of %vs", name, i, d, tolerance*100, ts)
		}
	}
	// Numbered URIs (<token>/<seq>.m4s) must be contiguous.
	prev := -1
	for _, u := range uris {
		if !w.Exists(t, id, u) {
			t.Errorf("%s references %s, which is not in the store", name, u)
		}
		base := u[strings.LastIndex(u, "/")+1:]
		n, err := strconv.Atoi(strings.TrimSuffix(base, ".m4s"))
		if err != nil {
			continue
		}
		if prev >= 0 && n != prev+1 {
			t.Errorf("%s: sequence jumps from %d to %d", name, prev, n)
		}
		prev = n
	}
	return len(durs)
}

// MustContain fails the test unless text contains every one of subs.
func MustContain(t testing.TB, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s does not contain %q:\n%s", what, s, text)
		}
	}
}

// NeedFFmpeg skips the test when ffmpeg or ffprobe is missing.
func NeedFFmpeg(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (make deps)", bin)
		}
	}
}

// FFmpeg is one ffmpeg publisher.
type FFmpeg struct {
	stderr *bytes.Buffer
	exited chan struct{} // closed once ffmpeg exited; err is set then
	err    error
}

// DefaultCodecArgs are H.264 with a 2 s GOP (25 fps) and AAC.
var DefaultCodecArgs = []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac"}

// Publish starts ffmpeg publishing secs of testsrc2 (640x360, 25 fps) and a
// sine tone in real time to url in format ("flv", "mpegts"), encoded with
// codecArgs (DefaultCodecArgs when none). The test's cleanup kills it if
// it still runs.
func Publish(t testing.TB, format, url string, secs int, codecArgs ...string) *FFmpeg {
	t.Helper()
	NeedFFmpeg(t)
	if len(codecArgs) == 0 {
		codecArgs = DefaultCodecArgs
	}
	args := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(secs)}, codecArgs...)
	args = append(args, "-f", format, url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+60)*time.Second)
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	f := &FFmpeg{stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = f.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { f.err = cmd.Wait(); cancel(); close(f.exited) }()
	t.Cleanup(func() { cancel(); <-f.exited })
	return f
}

// Wait returns ffmpeg's exit error and its stderr once it exited.
func (f *FFmpeg) Wait(t testing.TB) (string, error) {
	t.Helper()
	<-f.exited
	return f.stderr.String(), f.err
}

// Exited is closed once ffmpeg exited.
func (f *FFmpeg) Exited() <-chan struct{} { return f.exited }

// CheckCloseFlushes is the graceful-shutdown check of a protocol server
// while a publisher of slot id is live: once the first segment is listed it
// calls closeServer, then the segment in flight and the final playlists
// (EXT-X-ENDLIST) must be stored, the registry must be empty and the lease
// free.
func (w *World) CheckCloseFlushes(t testing.TB, co Coord, id keys.SlotID, closeServer func(context.Context) error) {
	t.Helper()
	WaitFor(t, "a first segment", 20*time.Second, func() bool { return w.Exists(t, id, "video.m3u8") })
	// A cut is made when the next keyframe arrives, and that keyframe opens
	// the next segment: from the first listed segment on, one is in flight.
	before := strings.Count(w.Get(t, id, "video.m3u8"), "#EXTINF")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := closeServer(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	w.CheckPlaylist(t, id, "video.m3u8", 2*time.Second, 0.1, true)
	if after := strings.Count(w.Get(t, id, "video.m3u8"), "#EXTINF"); after <= before {
		t.Errorf("the segment in flight was not flushed: %d segments listed before Close, %d after", before, after)
	}
	MustContain(t, "audio.m3u8", w.Get(t, id, "audio.m3u8"), "#EXT-X-ENDLIST")
	if n := len(Live(t, co.Registry, id)); n != 0 {
		t.Errorf("%d sessions still listed after Close", n)
	}
	l, err := co.Locker.Acquire(t.Context(), keys.SlotLease(id, keys.Primary), time.Second, coord.Owner{ID: "probe", Edge: "test", Protocol: "probe"})
	if err != nil {
		t.Fatalf("the lease was not released: %v", err)
	}
	_ = l.Release(t.Context())
}

// Metric reads the counter or gauge name whose labels include labels from
// g (a server's registry) — of a histogram, its number of observations;
// false when no such series exists.
func Metric(t testing.TB, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// Edge is what a protocol server under test is built from: one edge's
// admission and segmenter on the world, its logs and its metrics registry
// (which the admission and the segmenter register into too).
type Edge struct {
	Coord     Coord
	Admission *admit.Admission
	Segmenter *segment.Segmenter
	Logs      *LogSink
	Logger    *slog.Logger
	Metrics   *prometheus.Registry
}

// Edge builds the parts of edge edgeID on coordination co.
func (w *World) Edge(t testing.TB, edgeID string, co Coord) Edge {
	t.Helper()
	logs := &LogSink{T: t}
	logger := logs.Logger(edgeID)
	reg := prometheus.NewRegistry()
	return Edge{Coord: co, Admission: w.admission(t, edgeID, co, logger, reg), Segmenter: w.segmenter(t, logger, reg),
		Logs: logs, Logger: logger, Metrics: reg}
}

// Server is a protocol server's life cycle.
type Server interface {
	Start() error
	Close(ctx context.Context) error
}

// Serve starts srv and, at t's cleanup, closes it gracefully (30 s),
// failing t if the close fails.
func Serve(t testing.TB, srv Server) {
	t.Helper()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}
