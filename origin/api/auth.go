package api

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
)

// The admin token is checked with two guards in front of it:
//
//   - a budget of FAILED attempts per source (coord.Limiter, shared by every
//     origin through Redis): a missing or wrong token spends one unit; when
//     none is left the answer is 429 with Retry-After. The source is the
//     client's IPv4 address or IPv6 /64 (what one subscriber gets), as
//     edge admission groups them, so walking through a /64 buys nothing.
//   - an in-process block list of sources the limiter refused, checked
//     BEFORE the token is compared: a flood from a blocked source costs
//     neither a comparison nor a coordination round trip, and a blocked
//     source is refused even with the right token until its retry-after.
//
// A correct token from another source is never affected. The source is the
// TCP peer (Request.RemoteAddr): there is no trusted-proxy support, so
// behind a load balancer that does not preserve client addresses every
// client shares one budget.

// DefaultAuthFailRate is the default budget of failed admin-token attempts
// per source: a burst of 10, then one per 10 s (360 an hour), so the 11th
// wrong token within a few seconds is refused with 429. Deps.AuthLimiter is
// built with it unless the caller chooses another rate.
var DefaultAuthFailRate = coord.Rate{Burst: 10, Interval: 10 * time.Second}

// authLogInterval is the most often a failed attempt is logged at Warn: a
// guessing client would otherwise write one line per guess. Every failure is
// counted in liveingest_api_auth_failures_total and logged at Debug.
const authLogInterval = time.Minute

// maxBlocked bounds the in-process block list.
const maxBlocked = 10000

// remoteAddr parses Request.RemoteAddr ("host:port", or a bare host from
// some test harnesses).
func remoteAddr(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// bearerToken returns the credentials of "Authorization: Bearer <token>":
// the scheme in any case (RFC 9110 §11.1), any spaces or tabs around and
// between.
func bearerToken(h string) (string, bool) {
	h = strings.TrimSpace(h)
	i := strings.IndexAny(h, " \t")
	if i < 0 || !strings.EqualFold(h[:i], "Bearer") {
		return "", false
	}
	tok := strings.TrimSpace(h[i+1:])
	return tok, tok != ""
}

// authGuard is the failed-token limiter, block list, metric and throttled
// log of one API. Safe for concurrent use.
type authGuard struct {
	lim      coord.Limiter
	log      *slog.Logger
	now      func() time.Time
	failures *prometheus.CounterVec // nil: not counted

	mu         sync.Mutex
	blocked    map[netip.Prefix]time.Time // source → refused until
	lastLog    time.Time
	suppressed int // failures not logged at Warn since lastLog
}

func newAuthGuard(lim coord.Limiter, log *slog.Logger, reg prometheus.Registerer) (*authGuard, error) {
	g := &authGuard{lim: lim, log: log, now: time.Now, blocked: map[netip.Prefix]time.Time{}}
	if reg != nil {
		g.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveingest_api_auth_failures_total",
			Help: "Admin API requests refused for a missing or wrong token, by result (unauthorized, rate_limited).",
		}, []string{"result"})
		if err := reg.Register(g.failures); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// blockedFor returns how long src stays refused (0: not blocked).
func (g *authGuard) blockedFor(src netip.Prefix) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.blocked[src]
	if !ok {
		return 0
	}
	if d := until.Sub(g.now()); d > 0 {
		return d
	}
	delete(g.blocked, src)
	return 0
}

func (g *authGuard) block(src netip.Prefix, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if len(g.blocked) >= maxBlocked {
		for k, t := range g.blocked {
			if !t.After(now) {
				delete(g.blocked, k)
			}
		}
		if len(g.blocked) >= maxBlocked {
			clear(g.blocked) // the shared limiter still holds the truth
		}
	}
	g.blocked[src] = now.Add(d)
}

// failed spends one unit of src's budget and returns the retry-after when
// the budget is used up (0: answer 401). A limiter that cannot be reached
// fails open: the token was wrong either way, and the answer is still 401.
func (g *authGuard) failed(ctx context.Context, src netip.Prefix) time.Duration {
	wait, err := g.lim.Allow(ctx, keys.APIAuthFailLimit(src))
	if err != nil {
		g.log.Debug("admin-token failure limiter unavailable", "err", err)
		return 0
	}
	if wait > 0 {
		g.block(src, wait)
	}
	return wait
}

// record counts one refusal and logs it: at Debug always, at Warn at most
// once per authLogInterval with the number of refusals since the last Warn.
// Never the header: it may hold a real token of another system, or a near
// miss of ours.
func (g *authGuard) record(r *http.Request, src netip.Prefix, result string) {
	if g.failures != nil {
		g.failures.WithLabelValues(result).Inc()
	}
	g.log.Debug("api request with a missing or wrong admin token", "remote", r.RemoteAddr, "result", result)
	g.mu.Lock()
	now := g.now()
	if !g.lastLog.IsZero() && now.Sub(g.lastLog) < authLogInterval {
		g.suppressed++
		g.mu.Unlock()
		return
	}
	suppressed := g.suppressed
	g.lastLog, g.suppressed = now, 0
	g.mu.Unlock()
	g.log.Warn("api request with a missing or wrong admin token", "remote", r.RemoteAddr, "source", src.String(),
		"result", result, "refused_since_last_line", suppressed)
}

// requireToken lets a request through only with "Authorization: Bearer
// <AdminToken>", compared in constant time, from a source that has not used
// up its budget of failed attempts:
//
//	source blocked (checked first)  429 + Retry-After
//	token missing or wrong          401 + WWW-Authenticate, one unit spent;
//	                                429 + Retry-After once none is left
func (a *API) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr, ok := remoteAddr(r)
		if !ok {
			writeError(w, http.StatusBadRequest, "cannot parse the client address", "")
			return
		}
		src := keys.AuthSource(addr)
		if wait := a.guard.blockedFor(src); wait > 0 {
			a.guard.record(r, src, "rate_limited")
			tooManyFailures(w, wait)
			return
		}
		tok, ok := bearerToken(r.Header.Get("Authorization"))
		if ok && a.cfg.AdminToken.Equal(tok) {
			next.ServeHTTP(w, r)
			return
		}
		if wait := a.guard.failed(r.Context(), src); wait > 0 {
			a.guard.record(r, src, "rate_limited")
			tooManyFailures(w, wait)
			return
		}
		a.guard.record(r, src, "unauthorized")
		w.Header().Set("WWW-Authenticate", `Bearer realm="liveingest"`)
		writeError(w, http.StatusUnauthorized, "missing or invalid bearer token", "")
	})
}

// tooManyFailures answers 429 with Retry-After in whole seconds, rounded up.
func tooManyFailures(w http.ResponseWriter, wait time.Duration) {
	secs := int64((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeError(w, http.StatusTooManyRequests, "too many requests with a wrong admin token from this address; retry after "+strconv.FormatInt(secs, 10)+" s", "")
}
