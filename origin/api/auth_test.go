package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/memory"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

// authEnv is an API whose limiter and block list run on a manual clock;
// requests go straight to the handler so that any client address can be
// used.
type authEnv struct {
	clock *memory.ManualClock
	api   *API
	reg   *prometheus.Registry
	logs  *testenv.Buffer
}

func newAuthEnv(t *testing.T, lim coord.Limiter) *authEnv {
	t.Helper()
	repo, err := slots.New(teststores.Disk(t), slots.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	clock := memory.NewManualClock(time.Unix(1_700_000_000, 0))
	co := memory.New(clock)
	if lim == nil {
		if lim, err = co.NewLimiter(DefaultAuthFailRate); err != nil {
			t.Fatal(err)
		}
	}
	e := &authEnv{clock: clock, reg: prometheus.NewRegistry(), logs: &testenv.Buffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, nil)) // Info: the Debug lines stay out
	if e.api, err = New(Config{AdminToken: testToken}, Deps{Slots: repo, Registry: co, AuthLimiter: lim, Logger: log, Metrics: e.reg}); err != nil {
		t.Fatal(err)
	}
	e.api.guard.now = clock.Now
	return e
}

// get sends GET /api/v1/slots from remote with the Authorization header auth.
func (e *authEnv) get(remote, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, Prefix+"/slots", nil)
	req.RemoteAddr = remote
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	e.api.Handler().ServeHTTP(rec, req)
	return rec
}

func (e *authEnv) want(t *testing.T, remote, auth string, status int) *httptest.ResponseRecorder {
	t.Helper()
	rec := e.get(remote, auth)
	if rec.Code != status {
		t.Fatalf("from %s with %q: %d %s, want %d", remote, auth, rec.Code, rec.Body, status)
	}
	if status == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
		t.Fatalf("429 without Retry-After")
	}
	return rec
}

func (e *authEnv) count(t *testing.T, result string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "liveingest_api_auth_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

const (
	good  = "Bearer " + testToken
	wrong = "Bearer wrong-token-0123456789"
)

// TestAdminTokenFailuresLimited: a source's 11th wrong token within the
// burst is refused with 429 and Retry-After, and so is its right token (the
// block is checked before the comparison) until the retry-after passed; a
// right token from another source is never affected.
func TestAdminTokenFailuresLimited(t *testing.T) {
	e := newAuthEnv(t, nil)
	const a, b = "192.0.2.1:40000", "192.0.2.2:40001"
	for i := range DefaultAuthFailRate.Burst {
		if rec := e.get(a, wrong); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, rec.Code)
		}
	}
	rec := e.want(t, a, wrong, http.StatusTooManyRequests)
	if got := rec.Header().Get("Retry-After"); got != "10" {
		t.Fatalf("Retry-After %q, want 10 (one interval)", got)
	}
	if ct := rec.Header().Get("Content-Type"); ct != contentTypeJSON {
		t.Fatalf("429 Content-Type %q", ct)
	}
	e.want(t, a, good, http.StatusTooManyRequests)                      // blocked before the comparison
	e.want(t, "[::ffff:192.0.2.1]:1", good, http.StatusTooManyRequests) // the same IPv4 source
	e.want(t, b, good, http.StatusOK)
	e.want(t, b, wrong, http.StatusUnauthorized)

	// After one interval the source may try once more.
	e.clock.Advance(DefaultAuthFailRate.Interval)
	e.want(t, a, good, http.StatusOK)
	e.want(t, a, wrong, http.StatusUnauthorized)
	e.want(t, a, wrong, http.StatusTooManyRequests)

	if got := e.count(t, "rate_limited"); got != 4 {
		t.Errorf("rate_limited counted %v, want 4", got)
	}
	if got := e.count(t, "unauthorized"); got != 12 {
		t.Errorf("unauthorized counted %v, want 12", got)
	}
	// One Warn line for all of them (the clock moved 10 s, not a minute),
	// naming the address and never a token.
	logs := e.logs.String()
	if n := strings.Count(logs, "missing or wrong admin token"); n != 1 {
		t.Errorf("%d log lines for the failures, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs, "remote=192.0.2.1") || strings.Contains(logs, "wrong-token") || strings.Contains(logs, testToken) {
		t.Errorf("log: %s", logs)
	}
	e.clock.Advance(authLogInterval)
	e.want(t, b, wrong, http.StatusUnauthorized)
	if logs := e.logs.String(); strings.Count(logs, "missing or wrong admin token") != 2 || !strings.Contains(logs, "refused_since_last_line=15") {
		t.Errorf("want a second line counting the 15 refusals in between:\n%s", logs)
	}
}

// TestAdminTokenIPv6Slash64: the addresses of one IPv6 /64 share a budget;
// the next /64 has its own.
func TestAdminTokenIPv6Slash64(t *testing.T) {
	e := newAuthEnv(t, nil)
	for i := range DefaultAuthFailRate.Burst {
		e.want(t, "[2001:db8:1:2::"+strings.Repeat("f", i%4+1)+"]:5000", wrong, http.StatusUnauthorized)
	}
	e.want(t, "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:5000", wrong, http.StatusTooManyRequests)
	e.want(t, "[2001:db8:1:2::1%eth0]:5000", good, http.StatusTooManyRequests)
	e.want(t, "[2001:db8:1:3::1]:5000", good, http.StatusOK)
	e.want(t, "[2001:db8:1:3::1]:5000", wrong, http.StatusUnauthorized)

	for _, c := range []struct {
		addr, want string
	}{
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	} {
		if got := keys.AuthSource(netip.MustParseAddr(c.addr)).String(); got != c.want {
			t.Errorf("keys.AuthSource(%s) = %s, want %s", c.addr, got, c.want)
		}
	}
}

// TestAdminTokenSchemeAndSpaces: the scheme in any case, spaces and tabs
// around and between; anything else is a failure.
func TestAdminTokenSchemeAndSpaces(t *testing.T) {
	e := newAuthEnv(t, nil)
	for _, h := range []string{good, "bearer " + testToken, "BEARER   " + testToken, "Bearer\t" + testToken + "  ", "  bEaReR " + testToken} {
		e.want(t, "192.0.2.9:1", h, http.StatusOK)
	}
	for _, h := range []string{"", "Bearer", "Bearer ", "Basic " + testToken, "Bearer" + testToken, "Bearer " + testToken + "x", "Token " + testToken} {
		rec := e.want(t, "192.0.2.10:1", h, http.StatusUnauthorized)
		if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="liveingest"` {
			t.Fatalf("WWW-Authenticate %q", got)
		}
	}
}

// failingLimiter is a coordination outage.
type failingLimiter struct{}

func (failingLimiter) Allow(context.Context, string) (time.Duration, error) {
	return 0, errors.Join(coord.ErrUnavailable, errors.New("redis down"))
}

// TestAdminTokenLimiterDown: without the limiter a wrong token is still 401
// (never a 5xx that invites a retry), and the right one still works.
func TestAdminTokenLimiterDown(t *testing.T) {
	e := newAuthEnv(t, failingLimiter{})
	for range 20 {
		e.want(t, "192.0.2.1:1", wrong, http.StatusUnauthorized)
	}
	e.want(t, "192.0.2.1:1", good, http.StatusOK)
}
