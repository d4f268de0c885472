package whip

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/store"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// edge is one edge process: admission + segmenter + the WHIP server, its
// HTTP side on a loopback httptest server and ICE on a loopback UDP port.
type edge struct {
	srv  *Server
	http *httptest.Server
	co   ingesttest.Coord
	logs *ingesttest.LogSink
	reg  *prometheus.Registry
}

type world struct{ *ingesttest.World }

func newWorld(t *testing.T, st store.Store) *world { return &world{ingesttest.NewWorld(t, st)} }

func (w *world) edge(t *testing.T, edgeID string, co ingesttest.Coord, cfg Config) *edge {
	t.Helper()
	p := w.Edge(t, edgeID, co)
	if cfg.UDPAddr == "" {
		cfg.UDPAddr = "127.0.0.1:0"
	}
	srv, err := New(cfg, Deps{Admitter: p.Admission, Segmenter: p.Segmenter, Logger: p.Logger, Metrics: p.Metrics})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(PathPrefix, srv.Handler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close) // after the server's Close (cleanups run last first)
	ingesttest.Serve(t, srv)
	return &edge{srv: srv, http: hs, co: co, logs: p.Logs, reg: p.Metrics}
}

// endpoint is the slot's WHIP URL on e.
func (e *edge) endpoint(id keys.SlotID) string { return e.http.URL + PathPrefix + string(id) }

// request sends one HTTP request and returns the status, body and headers.
func request(t *testing.T, method, url, contentType, key string, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// metric reads a counter or gauge with the given labels from e's registry
// (0 when there is none).
func (e *edge) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := ingesttest.Metric(t, e.reg, name, labels)
	return v
}
