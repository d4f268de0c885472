package push

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/origin/slots"
)

// TestLiveStatusFFmpeg: while ffmpeg pushes HLS, the slot's live status
// lists one session with protocol push, this edge, the encoder's address
// and the measured bitrate of its segments — one session from the first
// request to the last; once ffmpeg stopped, the session ends after the idle
// timeout and frees the slot.
func TestLiveStatusFFmpeg(t *testing.T) {
	const idle = 5 * time.Second // over the 2 s segments and x264's start
	e := newEnv(t, teststoresDisk(t), func(c *Config, a *admit.Config) {
		c.IdleTimeout = idle
		a.HeartbeatTTL = 1500 * time.Millisecond // a heartbeat, with the bitrate, every 0.5 s
	})
	wait := startFFmpeg(t, e, 12, "index.m3u8", "-f", "hls", "-hls_time", "2", "-hls_list_size", "5")
	// Every session id the live status shows while ffmpeg runs.
	ids, stop, stopped := map[string]bool{}, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			if l, err := e.coord.List(context.Background(), string(e.id)); err == nil {
				for _, s := range l {
					if s.Ended.IsZero() {
						ids[s.ID] = true
					}
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	waitFor(t, "the live status to show the push session with a bitrate", 60*time.Second, func() bool {
		l := e.live(t, e.id)
		if len(l) != 1 {
			return false
		}
		s := l[0]
		if s.Protocol != "push" || s.Edge != "edge-test" || s.Role != "primary" || !strings.HasPrefix(s.Remote, "127.0.0.1:") || s.Started.IsZero() {
			t.Fatalf("live entry %+v", s)
		}
		return s.BitrateKbps > 0
	})
	if l := e.live(t, e.id); l[0].BitrateKbps > 5000 {
		t.Fatalf("bitrate %d kbps for a 320x180 test picture", l[0].BitrateKbps)
	} else {
		t.Logf("live status: %s session %s from %s, %d kbps", l[0].Protocol, l[0].ID, l[0].Remote, l[0].BitrateKbps)
	}
	if e.leaseFree(t, e.id) {
		t.Fatal("the slot's lease is free while ffmpeg publishes")
	}
	wait()
	ended := time.Now()
	close(stop)
	<-stopped
	if len(ids) != 1 {
		t.Fatalf("%d sessions for one ffmpeg run, want 1: %v", len(ids), ids)
	}
	waitFor(t, "the session to end after ffmpeg stopped", 60*time.Second, func() bool {
		return len(e.live(t, e.id)) == 0 && e.leaseFree(t, e.id)
	})
	t.Logf("slot free %s after ffmpeg exited (idle timeout %s)", time.Since(ended).Round(10*time.Millisecond), idle)
}

// TestIdleTimeout: the session lives while an upload is in flight however
// long it takes, and ends the idle timeout after the last request finished.
func TestIdleTimeout(t *testing.T) {
	const idle = 500 * time.Millisecond
	e := newEnv(t, teststoresDisk(t), func(c *Config, _ *admit.Config) { c.IdleTimeout = idle })
	pr, pw := io.Pipe()
	answered := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, e.url(e.id, "slow.ts"), pr)
		req.SetBasicAuth(testUser, testPass)
		resp, err := e.c.Do(req)
		if err != nil {
			answered <- reply{status: -1, body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- reply{status: resp.StatusCode, body: string(b)}
	}()
	// Four idle timeouts of a slow upload: the session must stay.
	waitFor(t, "the session to start", 30*time.Second, func() bool { return len(e.live(t, e.id)) == 1 })
	for range 20 {
		if _, err := pw.Write([]byte(strings.Repeat("x", 100))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(idle / 5) // the upload's pace, not a wait for a condition
	}
	if len(e.live(t, e.id)) != 1 || e.leaseFree(t, e.id) {
		t.Fatal("the session ended during an upload")
	}
	pw.Close()
	if r := <-answered; r.status != http.StatusCreated {
		t.Fatalf("slow PUT = %d %q", r.status, r.body)
	}
	done := time.Now()
	waitFor(t, "the idle session to end", 30*time.Second, func() bool {
		return len(e.live(t, e.id)) == 0 && e.leaseFree(t, e.id)
	})
	if d := time.Since(done); d < idle {
		t.Fatalf("the session ended %s after its last request, before the idle timeout %s", d, idle)
	}
}

// TestEndedByAdmission: a session admission ends (here: the bitrate stayed
// over the slot's limit) frees the slot; the publisher's next request is
// answered with the reason once, the one after is admitted afresh.
func TestEndedByAdmission(t *testing.T) {
	e := newEnv(t, teststoresDisk(t), func(c *Config, a *admit.Config) {
		c.IdleTimeout = time.Hour
		a.BitrateWindow = 200 * time.Millisecond
	})
	if _, err := e.repo.Update(t.Context(), e.id, 0, slots.Input{IngestBitrateKbps: ptr(1)}); err != nil {
		t.Fatal(err)
	}
	seg := strings.Repeat("x", 64<<10) // 64 KiB per segment: far over 1 kbps
	var r reply
	n := 0
	waitFor(t, "the bitrate to end the session", 30*time.Second, func() bool {
		n++
		r = e.put(t, fmt.Sprintf("seg%d.ts", n), seg)
		return r.status != http.StatusCreated
	})
	if r.status != http.StatusUnprocessableEntity || !strings.HasPrefix(r.body, "bitrate-exceeded: bitrate ") || !strings.Contains(r.body, "over the slot limit of 1 kbps") {
		t.Fatalf("PUT after the end = %d %q", r.status, r.body)
	}
	if l := e.live(t, e.id); len(l) != 0 {
		t.Fatalf("live status after the end = %+v", l)
	}
	if r := e.put(t, "again.ts", "x"); r.status != http.StatusCreated {
		t.Fatalf("next PUT = %d %q, want a new session", r.status, r.body)
	}
	if l := e.live(t, e.id); len(l) != 1 {
		t.Fatalf("live status of the new session = %+v", l)
	}
}
