package srt

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/origin/store/disk"
)

// knownPanics are the places in gosrt v0.11.0 where a datagram is known to
// panic the library (each recovered by Server.accept): the panic's first
// frame in gosrt and its file and line.
//
//	packet.go:605, :606   CIFHandshake.Unmarshal reads a 4-byte extension
//	                      header from the 1–3 bytes left after the CIF or
//	                      after an extension (issue 13; no cookie needed;
//	                      seed issue13-conclusion-stray-byte)
//	packet.go:456         (*pkt).MarshalCIF on a nil payload: newConnRequest
//	                      answers a conclusion whose MTU is below 76 bytes
//	                      with a rejection but does not return, and the
//	                      packet it sent (and returned to the pool) is
//	                      marshalled again by a later rejection (wrong
//	                      version, no HSREQ, flags, …; conn_request.go:144
//	                      then :149–257). Needs a valid SYN cookie, so not
//	                      spoofable (seed conclusion-small-mtu-marshal-after-send)
var knownPanics = []struct{ frame, at string }{
	{"github.com/datarhei/gosrt/packet.(*CIFHandshake).Unmarshal(", "gosrt@v0.11.0/packet/packet.go:605 "},
	{"github.com/datarhei/gosrt/packet.(*CIFHandshake).Unmarshal(", "gosrt@v0.11.0/packet/packet.go:606 "},
	{"github.com/datarhei/gosrt/packet.(*pkt).MarshalCIF(", "gosrt@v0.11.0/packet/packet.go:456 "},
}

// FuzzHandshake sends each input as one UDP datagram to a real Server on
// loopback (one per fuzzing process, reused across inputs) and then checks
// that the server still answers a valid induction handshake; the process
// must not panic, and a panic the server recovered must be a known one
// (knownPanics): a new one fails the input, so that it is looked at and its
// crasher committed under testdata/fuzz/FuzzHandshake.
//
// A conclusion handshake whose SYN cookie is 0 is sent with the cookie the
// server gave the fuzzing socket just before, as a caller that did the
// induction would: inputs then reach past gosrt's cookie check into its
// whole conclusion handling, the stream id, admission and the rejection.
// Before the next input, every connection the input made has ended.
func FuzzHandshake(f *testing.F) {
	for _, b := range handshakeSeeds() {
		f.Add(b)
	}
	h := startFuzzServer(f)
	f.Fuzz(func(t *testing.T, b []byte) { h.run(t, b) })
}

// fuzzServer is FuzzHandshake's server and its client socket.
type fuzzServer struct {
	srv    *Server
	p      *prober
	panics *panicRecorder
}

func startFuzzServer(f *testing.F) *fuzzServer {
	st, err := disk.New(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	w := ingesttest.NewWorld(f, st)
	quiet := slog.New(slog.DiscardHandler)
	co := ingesttest.MemoryCoord(f)
	rec := &panicRecorder{}
	srv, err := New(Config{Addr: "127.0.0.1:0"}, Deps{
		Admitter: w.Admission(f, "edge-fuzz", co, quiet), Segmenter: w.Segmenter(f, quiet), Logger: slog.New(rec),
	})
	if err != nil {
		f.Fatal(err)
	}
	// Log every recovered panic, so that each input's are seen.
	srv.handshakePanicLog.every, srv.connPanicLog.every = 0, 0
	if err := srv.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			f.Errorf("Close: %v", err)
		}
	})
	return &fuzzServer{srv: srv, p: newProber(f, srv.Addr()), panics: rec}
}

func (h *fuzzServer) run(t *testing.T, b []byte) {
	cookie, err := h.p.induce(10 * time.Second)
	if err != nil {
		t.Fatalf("before the input: %v", err)
	}
	b = b[:min(len(b), 1500)] // what gosrt reads of a datagram (its MSS)
	if isConclusion(b) && binary.BigEndian.Uint32(b[16+28:]) == 0 {
		b = append([]byte(nil), b...)
		binary.BigEndian.PutUint32(b[16+28:], cookie)
	}
	h.p.send(t, b)
	// The listener handles handshakes in order on one goroutine: once it
	// answered this induction, it handled the input (and added any
	// connection the input made).
	if _, err := h.p.induce(10 * time.Second); err != nil {
		t.Fatalf("the server no longer answers an induction after %x: %v", b, err)
	}
	ingesttest.WaitFor(t, "the input's connections to end", 15*time.Second, func() bool {
		n := 0
		h.srv.conns.Each(func(*conn) { n++ })
		return n == 0
	})
	for _, p := range h.panics.take() {
		if !p.known() {
			t.Fatalf("new panic on %x (recovered; add it to knownPanics once understood): %s: %s\n%s", b, p.msg, p.value, p.stack)
		}
	}
}

// isConclusion reports whether b is a conclusion handshake to a caller
// not connected yet, long enough to hold the CIF.
func isConclusion(b []byte) bool {
	return len(b) >= 64 && binary.BigEndian.Uint16(b[0:]) == 0x8000 && binary.BigEndian.Uint32(b[12:]) == 0 &&
		binary.BigEndian.Uint32(b[16+20:]) == hsConclusion
}

// panicRecorder is a log handler that keeps the panics the server logged
// (the records with a stack) and drops everything else.
type panicRecorder struct {
	mu  sync.Mutex
	got []recordedPanic
}

type recordedPanic struct{ msg, value, stack string }

// known reports whether the panic is at one of knownPanics: its first
// frame in gosrt (standard-library frames inlined into it come first).
func (p recordedPanic) known() bool {
	lines := strings.Split(p.stack, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "github.com/datarhei/gosrt") {
			continue
		}
		for _, k := range knownPanics {
			if strings.HasPrefix(lines[i], k.frame) && strings.Contains(lines[i+1]+" ", k.at) {
				return true
			}
		}
		return false
	}
	return false
}

func (r *panicRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *panicRecorder) Handle(_ context.Context, rec slog.Record) error {
	p := recordedPanic{msg: rec.Message}
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "panic":
			p.value = a.Value.String()
		case "stack":
			p.stack = a.Value.String()
		}
		return true
	})
	if p.stack != "" {
		r.mu.Lock()
		r.got = append(r.got, p)
		r.mu.Unlock()
	}
	return nil
}

func (r *panicRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *panicRecorder) WithGroup(string) slog.Handler      { return r }

// take returns the panics recorded since the last call.
func (r *panicRecorder) take() []recordedPanic {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}
