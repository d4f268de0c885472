package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
)

// TestRedisOutage (issue 13, item 5): an RTMP and an SRT publisher on an
// edge (real redis-server, real MinIO) publish 45 s; 10 s in, Redis is
// killed and 20 s later restarted empty on the same port. The publishers run
// to their end with exit 0, the stored media playlist lists every segment of
// the 45 s from one writer (one token, contiguous sequence numbers, no
// EXT-X-DISCONTINUITY); a second publisher with the same key is refused
// storage-unavailable during the outage, and busy once the first session
// re-established its lease and registry entry. The two protocols run in
// parallel, each on its own Redis, bucket, origin and edge.
func TestRedisOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	type world struct {
		redis            *testenv.RedisServer
		origin, edgeArgs []string
	}
	protos := []string{"rtmp", "srt"}
	worlds := map[string]world{}
	// Built here: roleArgsOn sets the environment, which a parallel
	// subtest may not.
	for _, p := range protos {
		bucket := testenv.MinIO(t).NewBucket(t)
		r := testenv.NewRedis(t)
		worlds[p] = world{r, outageArgs(roleArgsOn(t, "origin", bucket), r.Addr, "origin-"+p),
			outageArgs(roleArgsOn(t, "edge", bucket), r.Addr, "edge-"+p)}
	}
	for _, p := range protos {
		t.Run(p, func(t *testing.T) {
			t.Parallel()
			w := worlds[p]
			testRedisOutage(t, p, w.redis, w.origin, w.edgeArgs)
		})
	}
}

// The outage's timeline, from the encoder's start.
const (
	outageSeconds    = 45               // the publish
	outageKillAt     = 10 * time.Second // Redis killed
	outageDowntime   = 20 * time.Second // then restarted empty
	outageSegmentDur = 2                // the slot's segment_duration (and the encoder's GOP)
)

func testRedisOutage(t *testing.T, proto string, redis *testenv.RedisServer, originArgs, edgeArgs []string) {
	originBase, _ := startRole(t, originArgs)
	var created struct {
		ID        string `json:"id"`
		StreamKey string `json:"stream_key"`
	}
	if code := apiCall(t, originBase, roleTestToken, "POST", "/slots",
		map[string]any{"name": "outage-" + proto, "region": "eu", "segment_duration": outageSegmentDur}, &created); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	edge := startOutageEdge(t, edgeArgs)
	streamID := "#!::r=" + created.StreamKey + ",m=publish"
	var pubURL string
	var muxer []string
	switch proto {
	case "rtmp":
		pubURL, muxer = "rtmp://"+edge.rtmp+"/live/"+created.StreamKey, []string{"-f", "flv"}
	case "srt":
		pubURL, muxer = "srt://"+edge.srt+"?streamid="+url.QueryEscape(streamID), []string{"-f", "mpegts"}
	}
	// A second publisher with the same key; it must be refused with want.
	refused := func(when, want string) {
		t.Helper()
		switch proto {
		case "rtmp":
			second := startEncoder(t, 4, muxer, pubURL)
			select {
			case err := <-second.done:
				second.done <- err
				if err == nil || !strings.Contains(second.out.String(), want) {
					t.Fatalf("second RTMP publisher %s: err=%v, want a %s refusal; ffmpeg said:\n%s", when, err, want, second.out.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("second RTMP publisher %s: not refused within 30 s", when)
			}
		case "srt":
			code := map[string]int{"storage-unavailable": 1503, "busy": 1409}[want]
			if got := ingesttest.SRTRejectCode(t, edge.srt, streamID); got != code {
				t.Fatalf("second SRT caller %s: reject reason %d, want %d (%s)", when, got, code, want)
			}
		}
	}

	enc := startEncoder(t, outageSeconds, muxer, pubURL)
	began := time.Now()
	running := func(when string) {
		t.Helper()
		select {
		case err := <-enc.done:
			enc.done <- err
			t.Fatalf("the publisher ended %s: %v\n%s", when, err, enc.out.String())
		default:
		}
	}
	sessID := waitOutageLive(t, originBase, created.ID, "", time.Minute, enc)
	if d := time.Until(began.Add(outageKillAt)); d > 0 {
		time.Sleep(d)
	}

	redis.Kill()
	killed := time.Now()
	t.Logf("redis killed %v into the publish", killed.Sub(began).Round(time.Millisecond))
	refused("during the outage", "storage-unavailable")
	t.Logf("second publisher refused storage-unavailable %v into the outage", time.Since(killed).Round(time.Millisecond))
	// The lease lapses (TTL 10 s) while Redis is away; the session publishes on.
	lapsed := waitOutageMetric(t, edge.http, 1, killed.Add(outageDowntime-time.Second))
	t.Logf("lease lapsed; session publishing without a lease %v into the outage", lapsed.Sub(killed).Round(time.Millisecond))
	if d := time.Until(killed.Add(outageDowntime)); d > 0 {
		time.Sleep(d)
	}
	running("during the outage")

	redis.Restart(t)
	restarted := time.Now()
	t.Logf("redis restarted empty after %v", restarted.Sub(killed).Round(time.Millisecond))
	// Re-established: the edge counts no session without a lease, and the
	// live status lists the same session again.
	deadline := restarted.Add(30 * time.Second)
	for {
		if outageMetric(t, edge.http) == 0 && outageLiveID(t, originBase, created.ID) == sessID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease or registry entry not re-established 30 s after the restart: metric %v, live session %q (want %q)",
				outageMetric(t, edge.http), outageLiveID(t, originBase, created.ID), sessID)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("lease and live status re-established %v after the restart", time.Since(restarted).Round(time.Millisecond))
	running("after the restart")
	refused("after the restart", "busy")

	enc.wait(t, 2*time.Minute)
	t.Logf("publisher exited 0 after %v", time.Since(began).Round(time.Millisecond))
	playlist := originBase + "/live/" + created.ID + "/video.m3u8"
	waitEnded(t, playlist)
	n := checkOutagePlaylist(t, playlist, outageSeconds, outageSegmentDur)
	t.Logf("stored playlist lists %d segments, %d expected for %d s", n, (outageSeconds+outageSegmentDur-1)/outageSegmentDur, outageSeconds)
	if code, _ := get(t, originBase+"/live/"+created.ID+"/index.m3u8"); code != http.StatusOK {
		t.Errorf("index.m3u8: %d", code)
	}

	logs := edge.logs.String()
	if a, b := strings.Count(logs, `"msg":"coordination unavailable; the session publishes on`),
		strings.Count(logs, `"msg":"coordination reachable again; slot lease re-established"`); a != 1 || b != 1 {
		t.Errorf("the outage was logged %d times at its start and %d at its end, want once each", a, b)
	}
}

// outageArgs points role args at redisAddr and names the node.
func outageArgs(args []string, redisAddr, node string) []string {
	args = append([]string(nil), args...)
	for i, a := range args {
		switch a {
		case "--redis-addr":
			args[i+1] = redisAddr
		case "--node-id":
			args[i+1] = node
		}
	}
	return args
}

// outageEdge is a running edge role.
type outageEdge struct {
	http, rtmp, srt string // http base URL; RTMP and SRT listen addresses
	logs            *testenv.Buffer
}

// startOutageEdge runs the edge role in-process until the test ends.
func startOutageEdge(t *testing.T, args []string) *outageEdge {
	t.Helper()
	e := &outageEdge{logs: &testenv.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, e.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("edge returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("edge did not stop")
		}
		if t.Failed() {
			for line := range strings.SplitSeq(e.logs.String(), "\n") {
				if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) ||
					strings.Contains(line, "lease") || strings.Contains(line, "session") {
					t.Logf("edge: %s", line)
				}
			}
		}
	})
	e.http = "http://" + waitLogged(t, e.logs, done, "http")
	for key, dst := range map[string]*string{"rtmp": &e.rtmp, "srt": &e.srt} {
		m := regexp.MustCompile(`"` + key + `":"([^"]+)"`).FindStringSubmatch(e.logs.String())
		if m == nil {
			t.Fatalf("the edge logged no %s address:\n%s", key, e.logs.String())
		}
		*dst = m[1]
	}
	return e
}

// outageLiveID is the id of the slot's one live session, or "" (none, more
// than one, or the API could not list them).
func outageLiveID(t *testing.T, base, slot string) string {
	t.Helper()
	var live struct {
		Sessions []struct {
			ID string `json:"id"`
		} `json:"sessions"`
	}
	if code := apiCall(t, base, roleTestToken, "GET", "/slots/"+slot+"/live", nil, &live); code != http.StatusOK || len(live.Sessions) != 1 {
		return ""
	}
	return live.Sessions[0].ID
}

// waitOutageLive waits until the live status lists one session (want, if
// set) and returns its id.
func waitOutageLive(t *testing.T, base, slot, want string, within time.Duration, enc *encoder) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if id := outageLiveID(t, base, slot); id != "" && (want == "" || id == want) {
			return id
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live status never listed the session; last seen %q; encoder:\n%s", outageLiveID(t, base, slot), enc.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var withoutLeaseMetric = regexp.MustCompile(`(?m)^liveingest_ingest_sessions_without_lease(?:\{[^}]*\})? (\S+)$`)

// outageMetric reads the edge's count of sessions without a lease (-1 when
// it cannot).
func outageMetric(t *testing.T, edgeBase string) float64 {
	t.Helper()
	code, body := get(t, edgeBase+"/metrics")
	m := withoutLeaseMetric.FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// waitOutageMetric waits until the edge counts want sessions without a
// lease, and returns when it saw it.
func waitOutageMetric(t *testing.T, edgeBase string, want float64, deadline time.Time) time.Time {
	t.Helper()
	for {
		v := outageMetric(t, edgeBase)
		if v == want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("liveingest_ingest_sessions_without_lease = %v, want %v", v, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var outageSegURI = regexp.MustCompile(`^v/([0-9]+)/([0-9]+)\.m4s$`)

// checkOutagePlaylist checks the finished media playlist of a publish of
// seconds cut every segDur seconds: one writer (token), sequence numbers
// contiguous from the media sequence, no discontinuity, every segment
// served, and together they last the publish. It returns the segment count.
func checkOutagePlaylist(t *testing.T, playlist string, seconds, segDur int) int {
	t.Helper()
	code, body := get(t, playlist)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d", playlist, code)
	}
	var (
		mediaSeq = -1
		tokens   = map[string]bool{}
		uris     []string
		seqs     []int
		total    float64
		ended    bool
	)
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			mediaSeq, _ = strconv.Atoi(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.HasPrefix(l, "#EXT-X-DISCONTINUITY"):
			t.Errorf("playlist has %s: the session was interrupted", l)
		case l == "#EXT-X-ENDLIST":
			ended = true
		case extinf.MatchString(l):
			d, _ := strconv.ParseFloat(extinf.FindStringSubmatch(l)[1], 64)
			total += d
		case l != "" && !strings.HasPrefix(l, "#"):
			m := outageSegURI.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("segment URI %q\n%s", l, body)
			}
			tokens[m[1]] = true
			n, _ := strconv.Atoi(m[2])
			seqs = append(seqs, n)
			uris = append(uris, l)
		}
	}
	if !ended || mediaSeq < 0 {
		t.Fatalf("playlist not finished (ended=%v, media sequence %d):\n%s", ended, mediaSeq, body)
	}
	if len(tokens) != 1 {
		t.Errorf("segments of %d writers (tokens %v), want one", len(tokens), tokens)
	}
	for i, n := range seqs {
		if n != mediaSeq+i {
			t.Errorf("segment %d has sequence number %d, want %d (contiguous from %d)", i, n, mediaSeq+i, mediaSeq)
			break
		}
	}
	want := (seconds + segDur - 1) / segDur
	if len(seqs) < want-1 || len(seqs) > want+1 {
		t.Errorf("%d segments, want %d ± 1 for %d s", len(seqs), want, seconds)
	}
	// The tail may be a little short (SRT live mode drops what is late).
	if total < float64(seconds)-3 || total > float64(seconds)+1 {
		t.Errorf("segments last %.3f s together, want about %d s", total, seconds)
	}
	dir := playlist[:strings.LastIndexByte(playlist, '/')+1]
	for _, u := range uris {
		if code, _ := get(t, dir+u); code != http.StatusOK {
			t.Errorf("segment %s: %d", u, code)
		}
	}
	if t.Failed() {
		t.Logf("playlist:\n%s", body)
	}
	return len(seqs)
}
