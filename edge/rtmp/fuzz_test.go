package rtmp

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/origin/store/disk"
)

// FuzzServerConn sends each input, after a valid handshake, as one TCP
// connection's bytes to a real Server on loopback (one per fuzzing process,
// reused across inputs; admission with memory coordination, so connects and
// publishes with made-up keys are refused as unknown). Before the next
// input every connection has ended; the process must not crash (a stack
// overflow in gortmplib's error formatting is fatal), no connection may
// panic (each panic is recovered and logged with its stack: any fails the
// input), and the server must still answer a handshake.
//
// Seeds: testdata/fuzz/FuzzServerConn (the bug reports' attacks: the
// 600,000-deep connect's first 4 KiB, SetChunkSize 10 MiB with a 10 MiB
// header; a connect nested 2,000 deep; an ffmpeg publish), and every guard
// test case.
func FuzzServerConn(f *testing.F) {
	for _, tc := range guardCases() {
		if len(tc.in) > hs && tc.in[0] == 3 && len(tc.in) < 256<<10 {
			f.Add(tc.in[hs:])
		}
	}
	h := startFuzzServer(f)
	f.Fuzz(func(t *testing.T, b []byte) { h.run(t, b) })
}

type fuzzServer struct {
	srv   *Server
	stack *stackRecorder
}

func startFuzzServer(f *testing.F) *fuzzServer {
	st, err := disk.New(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	w := ingesttest.NewWorld(f, st)
	quiet := slog.New(slog.DiscardHandler)
	rec := &stackRecorder{}
	srv, err := New(Config{Addr: "127.0.0.1:0", ReadTimeout: 2 * time.Second}, Deps{
		Admitter:  w.Admission(f, "edge-fuzz", ingesttest.MemoryCoord(f), quiet),
		Segmenter: w.Segmenter(f, quiet), Logger: slog.New(rec),
	})
	if err != nil {
		f.Fatal(err)
	}
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
	return &fuzzServer{srv: srv, stack: rec}
}

func (h *fuzzServer) run(t *testing.T, b []byte) {
	b = b[:min(len(b), 1<<20)]
	addr := h.srv.Addr().String()
	// exchange half-closes after the input, so the server sees its end at
	// once instead of waiting for the read deadline.
	if _, closed := exchange(t, addr, append(handshake(), b...), 30*time.Second); !closed {
		t.Fatalf("the server did not close the connection on %x", b)
	}
	ingesttest.WaitFor(t, "the input's connection to end", 15*time.Second, func() bool {
		n := 0
		h.srv.conns.Each(func(*conn) { n++ })
		return n == 0
	})
	if s := h.stack.take(); s != "" {
		t.Fatalf("a connection panicked on %x:\n%s", b, s)
	}
	if !answersHandshake(t, addr, 10*time.Second) {
		t.Fatalf("the server no longer answers a handshake after %x", b)
	}
}

// stackRecorder is a log handler that keeps the stacks the server logged
// (recovered panics) and drops everything else.
type stackRecorder struct {
	mu  sync.Mutex
	got string
}

func (r *stackRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *stackRecorder) Handle(_ context.Context, rec slog.Record) error {
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "stack" {
			r.mu.Lock()
			r.got += rec.Message + "\n" + a.Value.String() + "\n"
			r.mu.Unlock()
		}
		return true
	})
	return nil
}

func (r *stackRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *stackRecorder) WithGroup(string) slog.Handler      { return r }

func (r *stackRecorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.got
	r.got = ""
	return s
}
