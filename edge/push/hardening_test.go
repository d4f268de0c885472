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
	"testing"
	"time"
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

// TestAuthLimiterIPv6Slash64: the failed-login budget is per IPv4 address
// or IPv6 /64, as edge admission counts: the addresses of one /64 share it,
// the next /64 has its own.
func TestAuthLimiterIPv6Slash64(t *testing.T) {
	for _, c := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"fe80::1%eth0", "fe80::2"},
		{"192.0.2.1", "::ffff:192.0.2.1"},
	} {
		ka, kb := limiterKey(sourceOf(netip.MustParseAddr(c.a))), limiterKey(sourceOf(netip.MustParseAddr(c.b)))
		if ka != kb {
			t.Errorf("%s and %s have different budgets: %s, %s", c.a, c.b, ka, kb)
		}
	}
	for _, c := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
		{"192.0.2.1", "192.0.2.2"},
	} {
		if limiterKey(sourceOf(netip.MustParseAddr(c.a))) == limiterKey(sourceOf(netip.MustParseAddr(c.b))) {
			t.Errorf("%s and %s share a budget", c.a, c.b)
		}
	}
	if got := limiterKey(sourceOf(netip.MustParseAddr("2001:db8:1:2:3:4:5:6"))); got != "push-auth:2001:db8:1:2::/64" {
		t.Errorf("key %q", got)
	}

	// Through authenticate: ten failures spread over one /64 use up the
	// budget of every address in it, not of the next /64.
	e := newEnv(t, teststoresDisk(t))
	try := func(ip, pass string) int {
		r := httptest.NewRequest(http.MethodPut, e.url(e.id, "seg.ts"), nil)
		r.SetBasicAuth(testUser, pass)
		_, _, rej := e.srv.authenticate(t.Context(), r, e.id, netip.MustParseAddr(ip))
		if rej == nil {
			return http.StatusOK
		}
		return rej.status
	}
	for i := range DefaultAuthFailRate.Burst {
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
	if got := try("2001:db8:1:3::1", testPass); got != http.StatusOK {
		t.Fatalf("right password from the next /64 = %d, want 200", got)
	}
	if got := try("2001:db8:1:3::1", "wrong"); got != http.StatusUnauthorized {
		t.Fatalf("wrong password from the next /64 = %d, want 401", got)
	}
}
