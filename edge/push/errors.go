package push

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/admit"
)

// Sentinel reasons. Every rejection wraps one of them; the text after the
// reason (the detail) is safe to show to the client and to log: it never
// holds a password, a hash or an Authorization header.
var (
	// ErrHTTPSRequired is returned when a request arrives over plain HTTP.
	ErrHTTPSRequired = errors.New("https required")
	// ErrBadPath is returned when the URL path is not /push/<slot id>/<rel>
	// with rel valid under keys.ParseRelPath (traversal, encoded separators…).
	ErrBadPath = errors.New("bad path")
	// ErrUnauthorized is returned when a request carries no Basic
	// credentials. (Wrong ones are admission's to refuse: see
	// admissionReason.)
	ErrUnauthorized = errors.New("unauthorized")
	// ErrTooLarge is returned when a body exceeds Config.MaxObjectBytes or
	// a PROPFIND body exceeds its cap.
	ErrTooLarge = errors.New("body too large")
	// ErrMethod is returned for a method this server does not implement, or
	// one not allowed on the target (PUT on a collection, MKCOL on an
	// existing resource: RFC 4918 §9.3.1).
	ErrMethod = errors.New("method not allowed")
	// ErrNotFound is returned when the target resource does not exist.
	ErrNotFound = errors.New("not found")
	// ErrForbidden is returned for operations refused on purpose (deleting
	// the slot root, PROPFIND Depth: infinity).
	ErrForbidden = errors.New("forbidden")
	// ErrUnsupported is returned for a MKCOL with a body (RFC 4918 §9.3).
	ErrUnsupported = errors.New("unsupported media type")
	// ErrUnavailable is returned when the store or coordination cannot be
	// reached, or the server is shutting down; retriable.
	ErrUnavailable = errors.New("unavailable")
	// ErrAborted is returned when the client stopped sending a body.
	ErrAborted = errors.New("upload aborted")
)

// admissionReason is the reason of a refusal admission decided (unknown
// slot, wrong credentials, blocked address, busy, …): its admit.Reason word,
// the word every protocol shows.
type admissionReason admit.Reason

func (r admissionReason) Error() string { return string(r) }

// allowed is the Allow header value (RFC 9110 §10.2.1) of every resource.
const allowed = "OPTIONS, PROPFIND, MKCOL, PUT, DELETE"

// rejection is one refused request: the status, the reason, and what to tell
// the client.
type rejection struct {
	status     int
	reason     error // one of the sentinels above
	detail     string
	retryAfter time.Duration // > 0: Retry-After in whole seconds, rounded up
	level      slog.Level
	body       string // when set, sent instead of the text body (XML)
	cause      error  // logged, never sent: may name internal keys
	logged     bool   // admission logged it already
}

func (r *rejection) Error() string { return r.reason.Error() + ": " + r.detail }
func (r *rejection) Unwrap() error { return r.reason }

func reject(status int, reason error, format string, args ...any) *rejection {
	lvl := slog.LevelInfo
	if status >= 500 {
		lvl = slog.LevelWarn
	}
	return &rejection{status: status, reason: reason, detail: fmt.Sprintf(format, args...), level: lvl}
}

// reasonLabel is the metric label of a reason: short, fixed vocabulary
// (push's own reasons, then admission's, whose set admit.Reasons bounds).
func reasonLabel(err error) string {
	var ar admissionReason
	if errors.As(err, &ar) {
		return strings.ReplaceAll(string(ar), "-", "_")
	}
	for _, r := range []struct {
		err   error
		label string
	}{
		{ErrHTTPSRequired, "https_required"}, {ErrBadPath, "bad_path"}, {ErrUnauthorized, "unauthorized"},
		{ErrTooLarge, "too_large"},
		{ErrMethod, "method"}, {ErrNotFound, "not_found"}, {ErrForbidden, "forbidden"},
		{ErrUnsupported, "unsupported"}, {ErrUnavailable, "unavailable"}, {ErrAborted, "aborted"},
	} {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}

// write sends the rejection: text/plain reason (R-EDGE-4), Retry-After when
// set, Allow on 405, the Basic challenge on 401 (RFC 7617 §2, with the
// charset parameter of §2.1).
//
// A refused request that carries a body (Content-Length > 0, or chunked)
// over HTTP/1.x also closes the connection, at once: the body is not
// wanted, and net/http would otherwise read up to 256 KiB of it before
// sending the answer (so that the connection can be reused) and again after
// the handler returns — for a body that never ends, until the server's
// ReadTimeout (60 s), with the client waiting for its 401. "Connection:
// close" skips the read before the answer; the read deadline set in the
// past ends the one after it. (HTTP/2 resets just the stream.)
func (s *Server) writeRejection(w http.ResponseWriter, r *http.Request, rej *rejection, attrs ...any) {
	h := w.Header()
	dropBody := r.ProtoMajor == 1 && r.ContentLength != 0
	if dropBody {
		h.Set("Connection", "close")
	}
	switch rej.status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Basic realm="liveingest push", charset="UTF-8"`)
	case http.StatusMethodNotAllowed:
		h.Set("Allow", allowed)
	}
	if rej.retryAfter > 0 {
		secs := int64((rej.retryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if rej.body != "" {
		h.Set("Content-Type", "application/xml; charset=utf-8")
		w.WriteHeader(rej.status)
		_, _ = w.Write([]byte(rej.body))
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(rej.status)
		_, _ = fmt.Fprintf(w, "%s: %s\n", rej.reason, rej.detail)
	}
	if dropBody {
		rc := http.NewResponseController(w)
		_ = rc.Flush()                     // the answer goes out now
		_ = rc.SetReadDeadline(time.Now()) // and nothing more is read
	}
	s.m.rejected(reasonLabel(rej.reason))
	if rej.logged {
		return
	}
	args := append([]any{"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr,
		"status", rej.status, "reason", rej.reason.Error(), "detail", rej.detail}, attrs...)
	if rej.cause != nil {
		args = append(args, "err", rej.cause)
	}
	s.log.Log(r.Context(), rej.level, "push request rejected", args...)
}

// metrics are optional Prometheus counters; a nil *metrics counts nothing.
type metrics struct {
	rejections *prometheus.CounterVec
	objects    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveingest_push_rejections_total", Help: "Live Push requests rejected, by reason.",
		}, []string{"reason"}),
		objects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liveingest_push_objects_total", Help: "Live Push objects stored, by class.",
		}, []string{"class"}),
	}
	for _, c := range []prometheus.Collector{m.rejections, m.objects} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("push: Deps.Metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) rejected(reason string) {
	if m != nil {
		m.rejections.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) stored(class string) {
	if m != nil {
		m.objects.WithLabelValues(class).Inc()
	}
}
