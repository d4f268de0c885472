package push

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
)

// TestRefusedEndlessBody: a PUT refused before its body is read — no
// credentials, a wrong password, an unknown slot — gets its answer at once
// although the body never ends (Content-Length not reached, or a chunked
// body without its last chunk), with or without Expect: 100-continue, and
// the connection is closed rather than drained (net/http reads up to
// 256 KiB of an unread body before and after the handler, which for a body
// that never ends lasts until the server's ReadTimeout).
func TestRefusedEndlessBody(t *testing.T) {
	e := newEnv(t, teststoresDisk(t))
	cases := []struct {
		name, path, auth string
		status           int
	}{
		{"no credentials", string(e.id), "", http.StatusUnauthorized},
		{"wrong password", string(e.id), basic(testUser, "wrong-Pass"), http.StatusUnauthorized},
		{"unknown slot", "nosuchslot", basic(testUser, testPass), http.StatusNotFound},
	}
	for _, c := range cases {
		for _, framing := range []string{"Content-Length: 200000", "Transfer-Encoding: chunked"} {
			for _, expect := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/expect=%v", c.name, strings.Fields(framing)[0], expect)
				t.Run(name, func(t *testing.T) {
					hdr := framing + "\r\n"
					if c.auth != "" {
						hdr += "Authorization: " + c.auth + "\r\n"
					}
					if expect {
						hdr += "Expect: 100-continue\r\n"
					}
					status, closed := endlessPut(t, e.ts.Listener.Addr().String(), PathPrefix+c.path+"/seg.ts", hdr, !expect)
					if status != c.status {
						t.Fatalf("status %d, want %d", status, c.status)
					}
					if !closed {
						t.Fatal("the connection stayed open: the server is draining the body")
					}
				})
			}
		}
	}
}

// endlessPut sends a PUT's header (and, with sendSome, the first bytes of a
// body that never ends), then returns the answer's status and whether the
// server closed the connection soon after. It fails t if no answer came
// within a few seconds.
func endlessPut(t *testing.T, addr, path, hdr string, sendSome bool) (status int, closed bool) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "PUT " + path + " HTTP/1.1\r\nHost: a\r\nContent-Type: video/mp2t\r\n" + hdr + "\r\n"
	if sendSome {
		if strings.Contains(hdr, "chunked") {
			req += fmt.Sprintf("%x\r\n%s\r\n", 1000, strings.Repeat("x", 1000))
		} else {
			req += strings.Repeat("x", 1000)
		}
	}
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(5 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("answered after %s", d.Round(time.Millisecond))
	}
	if !resp.Close {
		t.Error("no Connection: close")
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// The server must hang up rather than wait for the body: the next read
	// ends (EOF or reset), it does not time out.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = br.ReadByte()
	var ne net.Error
	return resp.StatusCode, err != nil && !(errors.As(err, &ne) && ne.Timeout()) && !errors.Is(err, os.ErrDeadlineExceeded)
}

// serveFrom runs one request through the handler as if it came from
// remote (the TCP peer cannot be chosen in a test), over TLS.
func (e *env) serveFrom(t *testing.T, method, remote string, id keys.SlotID, user, pass string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "https://push.example"+PathPrefix+string(id)+"/seg.ts", strings.NewReader("x"))
	r.RemoteAddr = remote
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, r)
	return w
}

// TestAuthLimiterIPv6Slash64: the failed-login budget is admission's, per
// IPv4 address or IPv6 /64: the addresses of one /64 share it, the next /64
// has its own.
func TestAuthLimiterIPv6Slash64(t *testing.T) {
	e := newEnv(t, teststoresDisk(t))
	try := func(ip, pass string) int {
		return e.serveFrom(t, http.MethodPut, netip.AddrPortFrom(netip.MustParseAddr(ip), 443).String(), e.id, testUser, pass).Code
	}
	for i := range admit.DefaultAuthFailRate.Burst {
		if got := try(fmt.Sprintf("2001:db8:1:2::%x", i+1), "wrong"); got != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d", i+1, got)
		}
	}
	if got := try("2001:db8:1:2:aaaa::1", "wrong"); got != http.StatusTooManyRequests {
		t.Fatalf("another address of the /64 = %d, want 429", got)
	}
	if got := try("2001:db8:1:2::99", testPass); got != http.StatusTooManyRequests {
		t.Fatalf("right password from the blocked /64 = %d, want 429", got)
	}
	if got := try("2001:db8:1:3::1", testPass); got != http.StatusCreated {
		t.Fatalf("right password from the next /64 = %d, want 201", got)
	}
	if got := try("2001:db8:1:3::1", "wrong"); got != http.StatusUnauthorized {
		t.Fatalf("wrong password from the next /64 = %d, want 401", got)
	}
}

// TestAuthBudgetSharedWithRTMP: wrong stream keys over RTMP and wrong Live
// Push passwords from one address spend one budget (admission's), and the
// blocked address is refused before bcrypt runs; the success cache spares
// bcrypt for every segment after the first, until the slot changes.
func TestAuthBudgetSharedWithRTMP(t *testing.T) {
	e := newEnv(t, teststoresDisk(t))
	var bcrypts atomic.Int32
	check := e.srv.checkPassword
	e.srv.checkPassword = func(sl *slots.Slot, user, pw string) error { bcrypts.Add(1); return check(sl, user, pw) }

	// The success cache: one bcrypt for ten segments from the encoder.
	for i := range 10 {
		if r := e.put(t, fmt.Sprintf("seg%d.ts", i), "x"); r.status != http.StatusCreated {
			t.Fatalf("PUT %d = %d %s", i, r.status, r.body)
		}
	}
	if n := bcrypts.Load(); n != 1 {
		t.Fatalf("%d bcrypt checks for 10 segments, want 1", n)
	}
	// A configuration change invalidates it.
	if _, err := e.repo.Update(t.Context(), e.id, 0, slots.Input{Description: ptr("changed")}); err != nil {
		t.Fatal(err)
	}
	if r := e.put(t, "seg10.ts", "x"); r.status != http.StatusCreated || bcrypts.Load() != 2 {
		t.Fatalf("after an update: %d, %d bcrypt checks", r.status, bcrypts.Load())
	}

	const attacker = "192.0.2.9"
	rtmp := func() admit.Reason {
		_, err := e.adm.Admit(t.Context(), admit.Request{Protocol: admit.ProtocolRTMP, StreamKey: "sk_not-a-key-0123456789",
			Role: keys.Primary, Remote: netip.MustParseAddrPort(attacker + ":50000")})
		return admit.ReasonOf(err)
	}
	for i := range admit.DefaultAuthFailRate.Burst {
		if i%2 == 0 {
			if got := rtmp(); got != admit.ReasonUnauthorized {
				t.Fatalf("failure %d over RTMP = %s", i+1, got)
			}
		} else if got := e.serveFrom(t, http.MethodPut, attacker+":443", e.id, testUser, "wrong").Code; got != http.StatusUnauthorized {
			t.Fatalf("failure %d over push = %d", i+1, got)
		}
	}
	w := e.serveFrom(t, http.MethodPut, attacker+":443", e.id, testUser, "wrong")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.HasPrefix(w.Body.String(), "rate-limited: ") {
		t.Fatalf("11th failure (push) = %d %q Retry-After=%q", w.Code, w.Body.String(), w.Header().Get("Retry-After"))
	}
	// From now on the address is refused before its credentials are looked at.
	before := bcrypts.Load()
	if w := e.serveFrom(t, http.MethodPut, attacker+":443", e.id, testUser, testPass); w.Code != http.StatusTooManyRequests {
		t.Fatalf("blocked address, right password, PUT = %d", w.Code)
	}
	if w := e.serveFrom(t, "PROPFIND", attacker+":443", e.id, testUser, testPass); w.Code != http.StatusTooManyRequests {
		t.Fatalf("blocked address, right password, PROPFIND = %d", w.Code)
	}
	if got := rtmp(); got != admit.ReasonRateLimited {
		t.Fatalf("blocked address over RTMP = %s", got)
	}
	if n := bcrypts.Load() - before; n != 0 {
		t.Fatalf("%d bcrypt checks for a blocked address", n)
	}
}

func ptr[T any](v T) *T { return &v }
