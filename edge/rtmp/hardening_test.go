package rtmp

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

// The bug reports' attacks, against a running server: each must end the
// attacker's connection only, and the server must go on serving ffmpeg.

// TestDeepConnect: a connect whose first argument nests 600,000 objects
// (the report's 4.2 MB message; gortmplib's %+v overflowed the stack, a
// fatal error) is refused at its header for its size, and one that nests
// 9,000 levels within 64 KiB is refused at depth 33; each connection is
// closed, the process survives (a stack overflow would end this test
// binary), the log names the limit, and the server still answers.
func TestDeepConnect(t *testing.T) {
	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t))
	for _, tc := range []struct {
		levels int
		chunk  uint32
		want   string
	}{
		{600_000, 128, "AMF message of 4200023 bytes exceeds Config.MaxAMFMessageSize (65536)"},
		{9_000, 65536, "AMF nesting deeper than Config.MaxAMFDepth (32)"},
	} {
		in := newWire()
		if tc.chunk != initChunkSize {
			in.setChunkSize(tc.chunk)
		}
		in.msg(3, typeCommandAMF0, 0, 0, deepConnect(tc.levels, true))
		_, closed := exchange(t, e.srv.Addr().String(), in.bytes(), 30*time.Second)
		if !closed {
			t.Fatalf("%d levels: the server did not close the connection", tc.levels)
		}
		ingesttest.WaitFor(t, "the refusal in the log", 10*time.Second, func() bool {
			return strings.Contains(e.logs.String(), tc.want)
		})
	}
	if !answersHandshake(t, e.srv.Addr().String(), 10*time.Second) {
		t.Fatal("the server no longer answers a handshake")
	}
}

// TestAmplification: 100 connections each send SetChunkSize 10 MiB and one
// chunk header announcing a 10 MiB message, then hold the connection open
// (gortmplib allocated the 10 MiB at once and held it until the read
// deadline: 1 GiB for 100 connections). The heap may grow by less than 64
// MiB over the whole attack, sampled while it lasts; every connection is
// closed by the server; then ffmpeg publishes through the same server.
func TestAmplification(t *testing.T) {
	ingesttest.NeedFFmpeg(t)
	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t))
	addr := e.srv.Addr().String()

	base := heapInUse()
	attack := amplification()
	const conns = 100
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed int
	)
	stop := make(chan struct{})
	peak := make(chan uint64)
	go func() { // the heap, sampled while the attack lasts
		var max uint64
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				max = maxU(max, ms.HeapInuse)
			case <-stop:
				peak <- max
				return
			}
		}
	}()
	for range conns {
		nc := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
			if _, err := nc.Write(attack); err != nil {
				mu.Lock()
				closed++ // refused and closed before the last byte
				mu.Unlock()
				return
			}
			// The attacker holds the connection open; the server must
			// close it (an error other than this deadline).
			buf := make([]byte, 1<<16)
			for {
				_, err := nc.Read(buf)
				if err == nil {
					continue
				}
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					mu.Lock()
					closed++
					mu.Unlock()
				}
				return
			}
		}()
	}
	wg.Wait()
	close(stop)
	growth := int64(<-peak) - int64(base)
	t.Logf("heap in use: %d MiB before, peak growth %.1f MiB over %d connections; %d closed by the server",
		base>>20, float64(growth)/(1<<20), conns, closed)
	if growth >= 64<<20 {
		t.Errorf("the heap grew by %d MiB during the attack, want < 64 MiB", growth>>20)
	}
	if closed != conns {
		t.Errorf("the server closed %d of %d attacking connections", closed, conns)
	}

	_, key := w.Slot(t, "after-attack")
	if stderr, err := publish(t, e.url(key), 4).Wait(t); err != nil {
		t.Fatalf("ffmpeg after the attack: %v\n%s", err, stderr)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// panicAdmitter panics on every Admit: a bug behind a connection.
type panicAdmitter struct{}

func (panicAdmitter) Admit(context.Context, admit.Request) (*admit.Session, error) {
	panic("admit bug")
}

// TestConnectionPanic: a panic while serving one connection ends that
// connection only; it is logged with its stack, the panic value by its type
// (it may hold client text), and the server still accepts.
func TestConnectionPanic(t *testing.T) {
	w := newWorld(t, teststores.Disk(t))
	p := w.Edge(t, "edge-a", ingesttest.MemoryCoord(t))
	srv, err := New(Config{Addr: "127.0.0.1:0"}, Deps{Admitter: panicAdmitter{}, Segmenter: p.Segmenter, Logger: p.Logger})
	if err != nil {
		t.Fatal(err)
	}
	ingesttest.Serve(t, srv)
	for i := range 3 {
		_, closed := exchange(t, srv.Addr().String(), publishSeq("rtmp://h/live", "live", "secret-key").bytes(), 30*time.Second)
		if !closed {
			t.Fatalf("connection %d: not closed after the panic", i)
		}
	}
	ingesttest.WaitFor(t, "three panics logged", 10*time.Second, func() bool {
		return strings.Count(p.Logs.String(), "panic value of type string") == 3
	})
	logs := p.Logs.String()
	ingesttest.MustContain(t, "log", logs, "internal error", "stack", "hardening_test.go")
	if strings.Contains(logs, "secret-key") || strings.Contains(logs, "admit bug") {
		t.Error("the log carries the key or the raw panic value")
	}
	if !answersHandshake(t, srv.Addr().String(), 10*time.Second) {
		t.Fatal("the server no longer answers a handshake")
	}
}

// TestRTMPERefused: an RTMPE handshake (C0 version 6) is closed without a
// reply and logged as such.
func TestRTMPERefused(t *testing.T) {
	w := newWorld(t, teststores.Disk(t))
	e := w.edge(t, "edge-a", ingesttest.MemoryCoord(t))
	out, closed := exchange(t, e.srv.Addr().String(), append([]byte{6}, bytes.Repeat([]byte{1}, 1536)...), 30*time.Second)
	if !closed || len(out) != 0 {
		t.Fatalf("closed %v after %d bytes, want a close without a reply", closed, len(out))
	}
	ingesttest.WaitFor(t, "the refusal in the log", 10*time.Second, func() bool {
		return strings.Contains(e.logs.String(), "RTMPE is not supported")
	})
}
