package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/tlsauto"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/disk"
	"github.com/liveingest/liveingest/origin/store/s3"
)

// apiCall sends one admin API request and decodes the JSON answer.
func apiCall(t *testing.T, base, token, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+"/api/v1"+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := http.Client{Timeout: 30 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

// pushSlot creates a live-push slot and returns its id.
func pushSlot(t *testing.T, base, token, name string, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"name": name, "type": "live-push",
		"credentials": []map[string]string{{"username": "enc1", "password": "push-secret-1"}}}
	for k, v := range extra {
		body[k] = v
	}
	var v struct {
		ID string `json:"id"`
	}
	if code := apiCall(t, base, token, "POST", "/slots", body, &v); code != http.StatusCreated {
		t.Fatalf("create %s: %d", name, code)
	}
	return v.ID
}

// encoder is a running ffmpeg publisher.
type encoder struct {
	cmd  *exec.Cmd
	out  *testenv.Buffer
	done chan error
}

// startEncoder runs ffmpeg pushing seconds of H.264+AAC test media in real
// time to url with the given muxer arguments.
func startEncoder(t *testing.T, seconds int, muxer []string, url string) *encoder {
	t.Helper()
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k"}
	args = append(append(args, muxer...), url)
	cmd := exec.Command("ffmpeg", args...)
	e := &encoder{cmd: cmd, out: &testenv.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = e.out, e.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	go func() { e.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-e.done
	})
	return e
}

// wait waits for the encoder to finish and fails the test if it failed.
func (e *encoder) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-e.done:
		e.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("ffmpeg failed: %v\n%s", err, e.out.String())
		}
	case <-time.After(timeout):
		t.Fatalf("ffmpeg still running after %s\n%s", timeout, e.out.String())
	}
}

// waitStatus polls url until it answers want.
func waitStatus(t *testing.T, url string, want int, timeout time.Duration) {
	t.Helper()
	waitStatusWhile(t, url, want, timeout, nil)
}

// waitStatusWhile is waitStatus that, with enc, also gives up once the
// encoder ended without url answering want. On giving up it reports what it
// last saw: the status and the start of the body, or the request's error,
// and the encoder's output, so that a failure on a loaded machine says why.
func waitStatusWhile(t *testing.T, url string, want int, timeout time.Duration, enc *encoder) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	c := http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	last := "no answer"
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = fmt.Sprintf("%d %q", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		if enc != nil {
			select {
			case err := <-enc.done:
				enc.done <- err
				t.Fatalf("%s last answered %s, not %d, and the encoder ended (%v):\n%s", url, last, want, err, enc.out.String())
			default:
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	var said string
	if enc != nil {
		said = "; the encoder said:\n" + enc.out.String()
	}
	t.Fatalf("%s last answered %s, not %d, within %s%s", url, last, want, timeout, said)
}

// probeLive probes url while enc runs, in short attempts: a live DASH
// reader starts at the segment the wall clock says is newest, which an
// encoder running late on a loaded machine may not have uploaded yet; a later
// attempt finds it. It fails when no attempt decoded before the encoder ended.
func probeLive(t *testing.T, url string, enc *encoder) map[string]int {
	t.Helper()
	var last error
	for {
		got, _, err := tryProbe(url, false, 6*time.Second)
		if err == nil {
			return got
		}
		last = err
		select {
		case err := <-enc.done:
			enc.done <- err
			_, manifest := get(t, url)
			t.Fatalf("no ffprobe of %s decoded while the encoder ran: %v\nthe manifest now:\n%s", url, last, manifest)
		default:
		}
	}
}

// probe runs ffprobe on url and returns the streams it found with their
// decoded frame counts (when count is set). Anything the decoders report
// fails the test: over TCP and from files nothing may be lost.
func probe(t *testing.T, url string, count bool, timeout time.Duration) map[string]int {
	t.Helper()
	got, complaints, err := tryProbe(url, count, timeout)
	if err == nil && complaints != "" {
		err = fmt.Errorf("ffprobe %s: the decoders reported errors:\n%s", url, complaints)
	}
	if err != nil {
		_, manifest := get(t, url)
		t.Fatalf("%v\nthe manifest now:\n%s", err, manifest)
	}
	return got
}

// probeLossy is probe for media that came over RTP on UDP (WebRTC): a lost
// packet leaves frames that reference a missing picture until the keyframe
// the edge asks for, and the decoders say so. Those reports are logged,
// not failed; the frame counts still have to be met.
func probeLossy(t *testing.T, url string, timeout time.Duration) map[string]int {
	t.Helper()
	got, complaints, err := tryProbe(url, true, timeout)
	if err != nil {
		_, manifest := get(t, url)
		t.Fatalf("%v\nthe manifest now:\n%s", err, manifest)
	}
	if complaints != "" {
		t.Logf("ffprobe %s: the decoders reported (packet loss on the WebRTC leg):\n%s", url, complaints)
	}
	return got
}

// tryProbe returns the streams, the decoders' complaints (ffprobe's
// stderr at -v error) and whether ffprobe ran and printed its JSON.
func tryProbe(url string, count bool, timeout time.Duration) (map[string]int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := []string{"-v", "error", "-show_entries", "stream=codec_type,codec_name,nb_read_frames", "-of", "json"}
	if count {
		args = append(args, "-count_frames")
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffprobe", append(args, url)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("ffprobe %s: %v\n%s%s", url, err, stderr.Bytes(), out)
	}
	var res struct {
		Streams []struct {
			Type   string `json:"codec_type"`
			Name   string `json:"codec_name"`
			Frames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, "", fmt.Errorf("ffprobe output: %v\n%s", err, out)
	}
	got := map[string]int{}
	for _, s := range res.Streams {
		n, _ := strconv.Atoi(s.Frames)
		got[s.Type+"/"+s.Name] = n
	}
	return got, strings.TrimSpace(stderr.String()), nil
}

// checkDecodes asserts H.264 video and AAC audio, and with frames > 0 at
// least that many decoded video frames.
func checkDecodes(t *testing.T, got map[string]int, frames int) {
	t.Helper()
	v, okV := got["video/h264"]
	_, okA := got["audio/aac"]
	if !okV || !okA {
		t.Fatalf("streams = %v, want video/h264 and audio/aac", got)
	}
	if frames > 0 && v < frames {
		t.Fatalf("decoded %d video frames, want at least %d", v, frames)
	}
}

// pushVariants are the encoder outputs Live Push must take: HLS with MPEG-TS
// segments, HLS with fMP4 (CMAF) segments, and DASH.
var pushVariants = []struct {
	name, manifest string
	muxer          []string
}{
	{"hls-ts", "index.m3u8", []string{"-f", "hls", "-method", "PUT", "-hls_time", "2", "-hls_list_size", "5", "-http_persistent", "0"}},
	{"hls-fmp4", "index.m3u8", []string{"-f", "hls", "-method", "PUT", "-hls_time", "2", "-hls_list_size", "5", "-hls_segment_type", "fmp4", "-http_persistent", "0"}},
	{"dash", "manifest.mpd", []string{"-f", "dash", "-method", "PUT", "-seg_duration", "2", "-window_size", "5", "-http_persistent", "0"}},
}

// runPushVariants pushes every variant to pushBase and checks that the
// playback at playBase decodes while the encoder runs and after it ended.
func runPushVariants(t *testing.T, apiBase, token, pushBase, playBase string, seconds int) {
	for _, v := range pushVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			id := pushSlot(t, apiBase, token, "push-"+v.name, nil)
			target := fmt.Sprintf("%s/push/%s/%s", strings.Replace(pushBase, "https://", "https://enc1:push-secret-1@", 1), id, v.manifest)
			enc := startEncoder(t, seconds, v.muxer, target)
			play := fmt.Sprintf("%s/live/%s/%s", playBase, id, v.manifest)
			// Sized for a loaded machine (once 30 s were not enough), and
			// cut short if the encoder ends first.
			waitStatusWhile(t, play, http.StatusOK, 90*time.Second, enc)
			checkDecodes(t, probeLive(t, play, enc), 0) // while it runs
			enc.wait(t, time.Duration(seconds)*time.Second+60*time.Second)
			if w := enc.out.String(); w != "" {
				t.Logf("encoder said:\n%s", w)
			}
			// After the end the playlist holds the last five segments (10 s).
			checkDecodes(t, probe(t, play, true, 60*time.Second), 150)
		})
	}
}

// TestLivePushDev: ffmpeg pushes HLS (TS and fMP4) and DASH over HTTPS with
// Basic Auth to dev (embedded disk store), and ffprobe decodes the playback
// URL while the encoder runs and after.
func TestLivePushDev(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	base, httpsBase, token, _ := startDev(t)
	runPushVariants(t, base, token, httpsBase, base, 20)
}

// startRole runs a deployed role in-process until the test ends and returns
// its logged addresses ("http", and "https" when served).
func startRole(t *testing.T, args []string) (httpBase, httpsBase string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var logs testenv.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, &logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s returned %v", args[0], err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop", args[0])
		}
		if t.Failed() { // what the role had to say about it
			for line := range strings.SplitSeq(logs.String(), "\n") {
				if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
					t.Logf("%s: %s", args[0], line)
				}
			}
		}
	})
	httpBase = "http://" + waitLogged(t, &logs, done, "http")
	if strings.Contains(strings.Join(args, " "), "--https") {
		httpsBase = "https://" + waitLogged(t, &logs, done, "https")
	}
	return httpBase, httpsBase
}

// TestLivePushS3: the deployed shape — an edge takes the pushes over HTTPS
// and writes to S3 (real MinIO) under a Redis lease; the origin serves the
// API and the playback from the same bucket.
func TestLivePushS3(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	cert, err := tlsauto.LoadOrCreate(t.TempDir(), []string{"localhost", "127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bucket := testenv.MinIO(t).NewBucket(t)
	originBase, _ := startRole(t, roleArgsOn(t, "origin", bucket))
	edgeArgs := append(roleArgsOn(t, "edge", bucket), "--https", "127.0.0.1:0",
		"--tls-cert", cert.CertPath, "--tls-key", filepath.Join(filepath.Dir(cert.CertPath), tlsauto.KeyFile))
	_, edgeHTTPS := startRole(t, edgeArgs)
	runPushVariants(t, originBase, roleTestToken, edgeHTTPS, originBase, 20)
}

// TestLivePushExpiry: with file_expiry 6 s, each segment disappears within
// about 2 s of its due time while the manifests stay; once the encoder
// stopped and every segment is gone, the manifests go after the expiry.
func TestLivePushExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	base, httpsBase, token, data := startDev(t)
	id := pushSlot(t, base, token, "push-expiry", map[string]any{"file_expiry": 6, "segment_duration": 2, "dvr_window": 6})
	target := fmt.Sprintf("%s/push/%s/index.m3u8", strings.Replace(httpsBase, "https://", "https://enc1:push-secret-1@", 1), id)
	enc := startEncoder(t, 10, []string{"-f", "hls", "-method", "PUT", "-hls_time", "2", "-hls_list_size", "2", "-http_persistent", "0"}, target)

	// A second reader of dev's store directory: listings only.
	st, err := disk.New(filepath.Join(data, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const expiry, slack = 6 * time.Second, 2500 * time.Millisecond // 2 s + one poll
	sid, _ := keys.ParseSlotID(id)
	seen := map[string]time.Time{} // segment key → written
	segmentsSeen, manifestSeen, manifestGoneAt := 0, false, time.Time{}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		now := time.Now()
		present := map[string]bool{}
		manifests := 0
		err := st.List(context.Background(), keys.MediaPrefix(sid), func(i store.Info) error {
			present[i.Key] = true
			switch lifecycle.ClassOf(i.Key) {
			case store.ClassSegment:
				if _, ok := seen[i.Key]; !ok {
					seen[i.Key] = i.Modified
					segmentsSeen++
				}
				if late := now.Sub(i.Modified.Add(expiry)); late > slack {
					t.Errorf("segment %s still there %s after its due time", i.Key, late)
				}
			default:
				manifests++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		segments := len(present) - manifests
		manifestSeen = manifestSeen || manifests > 0
		// (A segment is uploaded before the first playlist names it.)
		if segments > 0 && manifests == 0 && manifestSeen {
			t.Fatalf("manifests removed while %d segments remain", segments)
		}
		select {
		case err := <-enc.done:
			enc.done <- err
		default:
			if len(present) == 0 && segmentsSeen > 0 {
				t.Fatal("everything expired while the encoder still runs")
			}
		}
		if len(present) == 0 && segmentsSeen > 0 {
			manifestGoneAt = now
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	enc.wait(t, time.Minute)
	if segmentsSeen < 3 {
		t.Fatalf("saw only %d segments", segmentsSeen)
	}
	if manifestGoneAt.IsZero() {
		t.Fatal("the manifests were never removed after the stream ended")
	}
	// The playlist is gone from playback too.
	waitStatus(t, fmt.Sprintf("%s/live/%s/index.m3u8", base, id), http.StatusNotFound, 10*time.Second)
}

// TestBackupEdgeWritesBackupPrefix: an edge of a backup PoP (--ingest-role
// backup) stores what it receives under the backup role's prefix, apart from
// the primary's.
func TestBackupEdgeWritesBackupPrefix(t *testing.T) {
	cert, err := tlsauto.LoadOrCreate(t.TempDir(), []string{"localhost", "127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := testenv.MinIO(t)
	bucket := m.NewBucket(t)
	originBase, _ := startRole(t, roleArgsOn(t, "origin", bucket))
	edgeArgs := append(roleArgsOn(t, "edge", bucket), "--ingest-role", "backup", "--https", "127.0.0.1:0",
		"--tls-cert", cert.CertPath, "--tls-key", filepath.Join(filepath.Dir(cert.CertPath), tlsauto.KeyFile))
	_, edgeHTTPS := startRole(t, edgeArgs)
	id := pushSlot(t, originBase, roleTestToken, "backup-push", map[string]any{"backup": true})

	req, _ := http.NewRequest("PUT", edgeHTTPS+"/push/"+id+"/seg1.ts", strings.NewReader("segment bytes"))
	req.SetBasicAuth("enc1", "push-secret-1")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool()}}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT = %d, want 201", resp.StatusCode)
	}
	st, err := s3.New(context.Background(), s3.Config{Endpoint: m.Endpoint, Region: m.Region, Bucket: bucket, PathStyle: true,
		AccessKey: m.AccessKey, SecretKey: secret.String(m.SecretKey)})
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := keys.ParseSlotID(id)
	rel, _ := keys.ParseRelPath("seg1.ts")
	if _, err := st.Stat(context.Background(), keys.Media(sid, keys.Backup, rel)); err != nil {
		t.Fatalf("not stored under the backup prefix: %v", err)
	}
	if _, err := st.Stat(context.Background(), keys.Media(sid, keys.Primary, rel)); err == nil {
		t.Fatal("a backup edge wrote under the primary prefix")
	}
}
