package whip

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/ingest"
	"github.com/liveingest/liveingest/edge/media"
	"github.com/liveingest/liveingest/edge/segment"
)

// refuseAll is an admission that refuses every key: the fuzzer drives the
// request checks and the offer parsing in front of it, never a session.
type refuseAll struct{}

func (refuseAll) Admit(context.Context, admit.Request) (*admit.Session, error) {
	return nil, &admit.Rejection{Reason: admit.ReasonUnauthorized, Message: "unknown stream key"}
}

type noSegmenter struct{}

func (noSegmenter) Start(context.Context, segment.Stream, []media.Track) (*segment.Writer, error) {
	panic("no session can start behind refuseAll")
}

var _ ingest.Segmenter = noSegmenter{}

// FuzzRequest sends arbitrary methods, paths, headers and bodies (SDP
// offers and trickle fragments) through the handler. It must answer every
// one with a status and a text reason, never panic, and never answer 201.
func FuzzRequest(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.sdp")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add("POST", "slot-1", typeSDP, "Bearer k", b)
	}
	f.Add("POST", "slot-1", typeSDP, "Bearer k", []byte(sdpOffer(h264Section, opusSection)))
	f.Add("POST", "x/../../y", "application/sdp; charset=x", "Basic a", []byte("v=0\r\n"))
	f.Add("PATCH", "slot-1/abc", typeFragment, "Bearer k", []byte("a=ice-ufrag:x\r\na=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\n"))
	f.Add("DELETE", "slot-1/abc", "", "bearer  ", []byte(nil))
	f.Add("OPTIONS", "", "", "", []byte(nil))

	srv, err := New(Config{UDPAddr: "127.0.0.1:0", MaxOfferBytes: 4096}, Deps{
		Admitter: refuseAll{}, Segmenter: noSegmenter{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close(context.Background()) })
	h := srv.Handler()

	f.Fuzz(func(t *testing.T, method, path, ctype, auth string, body []byte) {
		req, err := http.NewRequest(method, "http://edge"+PathPrefix+path, bytes.NewReader(body))
		if err != nil {
			return // not a request line a client could send
		}
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		b, _ := io.ReadAll(res.Body)
		switch {
		case res.StatusCode == http.StatusCreated:
			t.Fatalf("a session was created behind an admission that refuses everything")
		case res.StatusCode == http.StatusNoContent:
			if method != http.MethodOptions {
				t.Fatalf("%s answered 204", method)
			}
		case len(bytes.TrimSpace(b)) == 0:
			t.Fatalf("%d without a reason", res.StatusCode)
		case res.StatusCode >= 500 && res.StatusCode != http.StatusServiceUnavailable:
			t.Fatalf("%s answered %d %q", method, res.StatusCode, b)
		}
	})
}
