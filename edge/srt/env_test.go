package srt

import (
	"net"
	"net/url"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

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
	p := w.Edge(t, edgeID, co)
	cfg.Addr = "127.0.0.1:0"
	srv, err := New(cfg, Deps{Admitter: p.Admission, Segmenter: p.Segmenter, Logger: p.Logger, Metrics: p.Metrics})
	if err != nil {
		t.Fatal(err)
	}
	ingesttest.Serve(t, srv)
	return &edge{srv: srv, co: co, logs: p.Logs, reg: p.Metrics}
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

// call runs srtcaller against e (see ingesttest.SRTCall).
func (e *edge) call(t *testing.T, stdin []byte, kbps int, streamID string, args ...string) (string, int) {
	t.Helper()
	return ingesttest.SRTCall(t, e.srv.Addr().String(), stdin, kbps, streamID, args...)
}

// rejectCode is the reject reason libsrt reports for streamID on e.
func (e *edge) rejectCode(t *testing.T, streamID string, args ...string) int {
	t.Helper()
	return ingesttest.SRTRejectCode(t, e.srv.Addr().String(), streamID, args...)
}

// metric reads a gauge or counter with the given labels from e's registry.
func (e *edge) metric(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	return ingesttest.Metric(t, e.reg, name, labels)
}
