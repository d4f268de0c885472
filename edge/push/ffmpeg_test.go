package push

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/store"
)

// runFFmpeg pushes ~6 s of live test media to e's slot with the given
// muxer arguments and output name, and fails t on a non-zero exit.
func runFFmpeg(t *testing.T, e *env, out string, muxArgs ...string) {
	t.Helper()
	startFFmpeg(t, e, 6, out, muxArgs...)()
}

// startFFmpeg starts pushing seconds of live test media to e's slot and
// returns a function that waits for the end and fails t on a non-zero exit
// or an HTTP error reported by ffmpeg.
func startFFmpeg(t *testing.T, e *env, seconds int, out string, muxArgs ...string) (wait func()) {
	t.Helper()
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed")
	}
	u := strings.Replace(e.url(e.id, out), "https://", "https://"+testUser+":"+testPass+"@", 1)
	args := []string{"-hide_banner", "-loglevel", "warning", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", strconv.Itoa(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "50",
		"-c:a", "aac", "-method", "PUT", "-http_persistent", "0"}
	args = append(append(args, muxArgs...), u)
	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(seconds)*time.Second+60*time.Second)
	cmd := exec.CommandContext(ctx, ff, args...)
	var stderr testenv.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("ffmpeg: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cancel(); <-done; done <- nil })
	return func() {
		t.Helper()
		err := <-done
		done <- err
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, stderr.String())
		}
		if s := stderr.String(); strings.Contains(s, "HTTP error") || strings.Contains(s, "Server returned") {
			t.Fatalf("ffmpeg reported HTTP errors:\n%s", s)
		}
	}
}

func (e *env) read(t *testing.T, key string) string {
	t.Helper()
	rc, _, err := e.st.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkStored asserts that every object under the role prefix has the class
// its name implies, and returns them.
func checkStored(t *testing.T, e *env) map[string]store.Info {
	t.Helper()
	root := keys.RolePrefix(e.id, keys.Primary)
	objs := e.objects(t, "live/")
	for k := range objs {
		if !strings.HasPrefix(k, root) {
			t.Errorf("object outside the slot's role prefix: %s", k)
		}
		i, ok := e.stat(t, k)
		if !ok {
			t.Fatalf("listed %s vanished", k)
		}
		if want := lifecycle.ClassOf(k); i.Class != want {
			t.Errorf("%s stored with class %s, want %s", k, i.Class, want)
		}
	}
	return objs
}

// playlistURIs are the non-tag lines of an HLS playlist.
func playlistURIs(pl string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(pl))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestFFmpegHLS(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		runFFmpeg(t, e, "index.m3u8", "-f", "hls", "-hls_time", "2", "-hls_list_size", "5")
		root := keys.RolePrefix(e.id, keys.Primary)
		objs := checkStored(t, e)
		pl := e.read(t, root+"index.m3u8")
		segs := playlistURIs(pl)
		if len(segs) < 2 {
			t.Fatalf("playlist lists %d segments:\n%s", len(segs), pl)
		}
		for _, s := range segs {
			if !strings.HasSuffix(s, ".ts") {
				t.Errorf("unexpected segment %q", s)
			}
			if _, ok := objs[root+s]; !ok {
				t.Errorf("playlist lists %s, not in store", s)
			}
		}
	})
}

func TestFFmpegHLSfMP4(t *testing.T) {
	e := newEnv(t, teststoresDisk(t))
	runFFmpeg(t, e, "index.m3u8", "-f", "hls", "-hls_time", "2", "-hls_list_size", "5", "-hls_segment_type", "fmp4")
	root := keys.RolePrefix(e.id, keys.Primary)
	objs := checkStored(t, e)
	if i, ok := objs[root+"init.mp4"]; !ok {
		t.Fatalf("no init.mp4 in %v", objs)
	} else if got, _ := e.stat(t, i.Key); got.Class != store.ClassInit {
		t.Fatalf("init.mp4 class %s", got.Class)
	}
	pl := e.read(t, root+"index.m3u8")
	for _, s := range playlistURIs(pl) {
		if _, ok := objs[root+s]; !ok {
			t.Errorf("playlist lists %s, not in store", s)
		}
	}
}

func TestFFmpegDASH(t *testing.T) {
	e := newEnv(t, teststoresDisk(t))
	runFFmpeg(t, e, "manifest.mpd", "-f", "dash", "-seg_duration", "2", "-window_size", "5")
	root := keys.RolePrefix(e.id, keys.Primary)
	objs := checkStored(t, e)
	mpd := e.read(t, root+"manifest.mpd")
	if !strings.Contains(mpd, "<MPD") {
		t.Fatalf("manifest.mpd is not an MPD:\n%s", mpd)
	}
	inits := 0
	for k := range objs {
		if strings.HasPrefix(k[len(root):], "init") {
			inits++
		}
	}
	if inits == 0 || len(objs) < 4 {
		t.Fatalf("DASH stored %d objects, %d init: %v", len(objs), inits, objs)
	}
	// Every SegmentTemplate's init file exists.
	for _, m := range regexp.MustCompile(`initialization="([^"]+)"`).FindAllStringSubmatch(mpd, -1) {
		name := strings.ReplaceAll(m[1], "$RepresentationID$", "0")
		if strings.Contains(name, "$") {
			continue
		}
		if _, ok := objs[root+name]; !ok {
			t.Errorf("MPD names %s, not in store", name)
		}
	}
}
