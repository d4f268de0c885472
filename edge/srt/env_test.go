package srt

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/store"
)

func TestMain(m *testing.M) {
	testenv.Main(m, func() {
		if callerDir != "" {
			_ = os.RemoveAll(callerDir)
		}
	})
}

// edge is one edge process: admission + segmenter + the SRT server on a
// loopback UDP port chosen at run time.
type edge struct {
	srv  *Server
	co   ingesttest.Coord
	logs *ingesttest.LogSink
	reg  *prometheus.Registry
}

type world struct{ *ingesttest.World }

func newWorld(t *testing.T, st store.Store) *world { return &world{ingesttest.NewWorld(t, st)} }

func (w *world) edge(t *testing.T, edgeID string, co ingesttest.Coord, cfg Config) *edge {
	t.Helper()
	logs := &ingesttest.LogSink{T: t}
	logger := logs.Logger(edgeID)
	reg := prometheus.NewRegistry()
	cfg.Addr = "127.0.0.1:0"
	srv, err := New(cfg, Deps{Admitter: w.Admission(t, edgeID, co, logger), Segmenter: w.Segmenter(t, logger), Logger: logger, Metrics: reg})
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
	return &edge{srv: srv, co: co, logs: logs, reg: reg}
}

func (e *edge) hostPort() (string, string) {
	a := e.srv.Addr().(*net.UDPAddr)
	return a.IP.String(), strconv.Itoa(a.Port)
}

// url is the caller URL ffmpeg takes: the stream id query-escaped, as the
// slot's ingest URL carries it.
func (e *edge) url(streamID string, opts ...string) string {
	q := "streamid=" + url.QueryEscape(streamID)
	for _, o := range opts {
		q += "&" + o
	}
	return "srt://" + e.srv.Addr().String() + "?" + q
}

func acID(key string) string { return "#!::r=" + key + ",m=publish" }

// publish starts ffmpeg sending secs of H.264 + AAC in MPEG-TS over SRT.
func publish(t *testing.T, url string, secs int, codecArgs ...string) *ingesttest.FFmpeg {
	t.Helper()
	return ingesttest.Publish(t, "mpegts", url, secs, codecArgs...)
}

var (
	callerOnce sync.Once
	callerDir  string // removed by TestMain
	callerBin  string
	callerErr  error
)

// srtcaller builds testdata/srtcaller.c against libsrt once per run: the
// reference implementation's own report of a handshake rejection
// (srt_getrejectreason), which ffmpeg and srt-live-transmit only print as
// text.
func srtcaller(t *testing.T) string {
	t.Helper()
	callerOnce.Do(func() {
		flags, err := exec.Command("pkg-config", "--cflags", "--libs", "srt").Output()
		if err != nil {
			callerErr = fmt.Errorf("pkg-config srt: %v (install libsrt-gnutls-dev and pkg-config: make deps)", err)
			return
		}
		dir, err := os.MkdirTemp("", "srtcaller")
		if err != nil {
			callerErr = err
			return
		}
		callerDir = dir
		bin := filepath.Join(dir, "srtcaller")
		args := append([]string{"-O1", "-o", bin, "testdata/srtcaller.c"}, strings.Fields(string(flags))...)
		if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			callerErr = fmt.Errorf("gcc srtcaller: %v\n%s", err, out)
			return
		}
		callerBin = bin
	})
	if callerErr != nil {
		t.Fatal(callerErr)
	}
	return callerBin
}

// call runs srtcaller against e with streamID and extra arguments
// (passphrase, key length, -send) and returns its output line and exit
// code. stdin feeds -send.
// With stdin, kbps > 0 paces it (SRTCALLER_KBPS).
func (e *edge) call(t *testing.T, stdin []byte, kbps int, streamID string, args ...string) (string, int) {
	t.Helper()
	host, port := e.hostPort()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, srtcaller(t), append([]string{host, port, streamID}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	if kbps > 0 {
		cmd.Env = append(os.Environ(), "SRTCALLER_KBPS="+strconv.Itoa(kbps))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("srtcaller: %v", err)
	}
	if code == 1 {
		t.Fatalf("srtcaller failed: %s", stderr.String())
	}
	return strings.TrimSpace(string(out)), code
}

// rejectCode runs srtcaller and returns the reject reason libsrt reported;
// it fails the test if the caller was accepted.
func (e *edge) rejectCode(t *testing.T, streamID string, args ...string) int {
	t.Helper()
	out, code := e.call(t, nil, 0, streamID, args...)
	if code != 2 {
		t.Fatalf("srtcaller %q: %q (exit %d), want a rejection", streamID, out, code)
	}
	var n int
	if _, err := fmt.Sscanf(out, "rejected %d", &n); err != nil {
		t.Fatalf("srtcaller output %q", out)
	}
	return n
}

// metric reads a gauge or counter with the given labels from e's registry.
func (e *edge) metric(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := e.reg.Gather()
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
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}
