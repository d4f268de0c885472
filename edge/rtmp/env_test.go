package rtmp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/edge/tlsauto"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/memory"
	coordredis "github.com/liveingest/liveingest/origin/coord/redis"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/playback"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// coordination is one edge process's view of a coordination service.
type coordination struct {
	locker   coord.Locker
	registry coord.Registry
	limiter  func(coord.Rate) coord.Limiter
}

func memoryCoord(t *testing.T) coordination {
	c := memory.New(nil)
	return coordination{locker: c, registry: c, limiter: func(r coord.Rate) coord.Limiter {
		l, err := c.NewLimiter(r)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}}
}

// redisCoords returns a factory of edges sharing one namespace on the real
// redis-server: each call is another process.
func redisCoords(t *testing.T) func() coordination {
	addr := testenv.Redis(t).Addr
	var b [6]byte
	_, _ = rand.Read(b[:])
	ns := "rtmp-" + hex.EncodeToString(b[:])
	return func() coordination {
		c, err := coordredis.New(coordredis.Config{Addr: addr, Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return coordination{locker: c, registry: c, limiter: func(r coord.Rate) coord.Limiter {
			l, err := c.NewLimiter(r)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}}
	}
}

// edge is one edge process: admission + segmenter + RTMP/RTMPS server on
// loopback ports chosen at run time.
type edge struct {
	srv  *Server
	co   coordination
	logs *logSink
}

func (e *edge) url(key string) string { return "rtmp://" + e.srv.Addr().String() + "/live/" + key }
func (e *edge) tlsURL(key string) string {
	return "rtmps://" + e.srv.TLSAddr().String() + "/live/" + key
}

type world struct {
	st   store.Store
	repo *slots.Repo
}

func newWorld(t *testing.T, st store.Store) *world {
	repo, err := slots.New(st, slots.Options{BcryptCost: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return &world{st: st, repo: repo}
}

// slot creates a transmux slot and returns its id and stream key.
func (w *world) slot(t *testing.T, name string) (keys.SlotID, string) {
	t.Helper()
	typ := slots.TypeTransmux
	c, err := w.repo.Create(t.Context(), slots.Input{Name: &name, Type: &typ})
	if err != nil {
		t.Fatal(err)
	}
	return c.Slot.ID, c.StreamKey.Reveal()
}

func (w *world) edge(t *testing.T, edgeID string, co coordination) *edge {
	t.Helper()
	logs := &logSink{t: t}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("edge", edgeID)
	acfg := admit.Config{EdgeID: edgeID, LeaseTTL: 3 * time.Second, HeartbeatTTL: 1500 * time.Millisecond}.WithDefaults()
	adm, err := admit.New(acfg, admit.Deps{
		Slots: w.repo, Locker: co.locker, Registry: co.registry,
		KeyLimiter: co.limiter(acfg.KeyRate), AuthLimiter: co.limiter(acfg.AuthFailRate), Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	seg, err := segment.New(segment.Config{SegmentDuration: 2 * time.Second, DVRWindow: 60 * time.Second}, segment.Deps{Store: w.st, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsauto.LoadOrCreate(t.TempDir(), []string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSConfig: cert.TLSConfig()},
		Deps{Admitter: adm, Segmenter: seg, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
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
	return &edge{srv: srv, co: co, logs: logs}
}

// logSink sends logs to the test log and keeps them for assertions.
type logSink struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed (apt-get install ffmpeg)", bin)
		}
	}
}

// ffmpeg is one ffmpeg publisher.
type ffmpeg struct {
	stderr *bytes.Buffer
	exited chan struct{} // closed once ffmpeg exited; err is set then
	err    error
}

// publish starts ffmpeg publishing secs of testsrc2+sine (H.264 with a 2 s
// GOP, AAC unless codec args override) to url in real time. The test's
// cleanup kills it if it still runs.
func publish(t *testing.T, url string, secs int, codecArgs ...string) *ffmpeg {
	t.Helper()
	needFFmpeg(t)
	if len(codecArgs) == 0 {
		codecArgs = []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac"}
	}
	args := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(secs)}, codecArgs...)
	args = append(args, "-f", "flv", url)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+60)*time.Second)
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	f := &ffmpeg{stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = f.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { f.err = cmd.Wait(); cancel(); close(f.exited) }()
	t.Cleanup(func() { cancel(); <-f.exited })
	return f
}

// wait returns ffmpeg's exit error and its stderr.
func (f *ffmpeg) wait(t *testing.T) (string, error) {
	t.Helper()
	<-f.exited
	return f.stderr.String(), f.err
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// live lists the slot's sessions that are publishing now; records of
// refusals and reasoned ends (Ended set) are not live.
func live(t *testing.T, reg coord.Registry, id keys.SlotID) []coord.Session {
	t.Helper()
	ss, err := reg.List(t.Context(), string(id))
	if err != nil {
		t.Fatal(err)
	}
	var out []coord.Session
	for _, s := range ss {
		if s.Ended.IsZero() {
			out = append(out, s)
		}
	}
	return out
}

// playbackURL serves the store through origin/playback.
func (w *world) playbackURL(t *testing.T, id keys.SlotID) string {
	srv, err := playback.New(playback.Config{}, playback.Deps{Slots: w.repo, Store: w.st})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL + "/live/" + string(id) + "/"
}

func (w *world) get(t *testing.T, id keys.SlotID, rel string) string {
	t.Helper()
	rc, _, err := w.st.Get(t.Context(), keys.Media(id, keys.Primary, keys.RelPath(rel)))
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

func (w *world) exists(t *testing.T, id keys.SlotID, rel string) bool {
	t.Helper()
	_, err := w.st.Stat(t.Context(), keys.Media(id, keys.Primary, keys.RelPath(rel)))
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// checkPlaylist is a mediastreamvalidator-style check of one HLS media
// playlist: target duration ≥ every EXTINF, segment durations within 10 %
// of target except the last, contiguous sequence numbers (EXT-X-MEDIA-
// SEQUENCE then one per segment), every URI and EXT-X-MAP present in the
// store, and EXT-X-ENDLIST once the publish ended.
func (w *world) checkPlaylist(t *testing.T, id keys.SlotID, name string, target time.Duration, wantEnd bool) int {
	t.Helper()
	text := w.get(t, id, name)
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
		if i < len(durs)-1 && (d < ts*0.9 || d > ts*1.1) {
			t.Errorf("%s: segment %d lasts %vs, not within 10%% of %vs", name, i, d, ts)
		}
	}
	// Numbered URIs (<token>/<seq>.m4s) must be contiguous.
	prev := -1
	for _, u := range uris {
		if !w.exists(t, id, u) {
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

func mustContain(t *testing.T, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s does not contain %q:\n%s", what, s, text)
		}
	}
}

var _ = fmt.Sprintf
