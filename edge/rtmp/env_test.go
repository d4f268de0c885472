package rtmp

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/tlsauto"
	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// edge is one edge process: admission + segmenter + RTMP/RTMPS server on
// loopback ports chosen at run time.
type edge struct {
	srv     *Server
	co      ingesttest.Coord
	logs    *ingesttest.LogSink
	metrics *prometheus.Registry
}

func (e *edge) url(key string) string { return "rtmp://" + e.srv.Addr().String() + "/live/" + key }
func (e *edge) tlsURL(key string) string {
	return "rtmps://" + e.srv.TLSAddr().String() + "/live/" + key
}

type world struct{ *ingesttest.World }

func newWorld(t *testing.T, st store.Store) *world { return &world{ingesttest.NewWorld(t, st)} }

// edge builds and serves an edge; opts change its server before Start.
func (w *world) edge(t *testing.T, edgeID string, co ingesttest.Coord, opts ...func(*Server)) *edge {
	t.Helper()
	p := w.Edge(t, edgeID, co)
	cert, err := tlsauto.LoadOrCreate(t.TempDir(), []string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSConfig: cert.TLSConfig()},
		Deps{Admitter: p.Admission, Segmenter: p.Segmenter, Logger: p.Logger, Metrics: p.Metrics})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(srv)
	}
	ingesttest.Serve(t, srv)
	return &edge{srv: srv, co: co, logs: p.Logs, metrics: p.Metrics}
}

// publish starts ffmpeg publishing secs of testsrc2+sine over RTMP (see
// ingesttest.Publish).
func publish(t *testing.T, url string, secs int, codecArgs ...string) *ingesttest.FFmpeg {
	t.Helper()
	return ingesttest.Publish(t, "flv", url, secs, codecArgs...)
}
