package push

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/store"
)

// Read deadlines for PUT bodies: the HTTP server's ReadTimeout (60 s in
// cmd) is sized for small requests; a 64 MiB segment over a slow uplink
// needs more. The deadline grows with the announced size at a floor rate of
// minUploadRate and is capped at maxUploadTime.
const (
	baseUploadTime = 60 * time.Second
	minUploadRate  = 256 << 10 // bytes per second
	maxUploadTime  = 10 * time.Minute
)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Plain HTTP first, before the Authorization header is even looked at:
	// the credentials already crossed the network in clear, so say why and
	// do not use them (R-PUSH-1).
	if r.TLS == nil {
		s.writeRejection(w, r, reject(http.StatusForbidden, ErrHTTPSRequired,
			"Live Push requires HTTPS: use https:// for this ingest URL (plain HTTP is refused; change the credentials if they were sent)"))
		return
	}
	if s.isClosed() {
		rej := reject(http.StatusServiceUnavailable, ErrUnavailable, "edge shutting down; retry")
		rej.retryAfter = time.Second
		s.writeRejection(w, r, rej)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		// RFC 4918 §10.1: DAV: 1 — class 1 (no locking) is all this server
		// implements. No authentication: the answer reveals nothing.
		w.Header().Set("DAV", "1")
		w.Header().Set("Allow", allowed)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	case http.MethodPut, "MKCOL", http.MethodDelete, "PROPFIND":
	default:
		s.writeRejection(w, r, reject(http.StatusMethodNotAllowed, ErrMethod, "method %s is not supported; allowed: %s", sanitizeMethod(r.Method), allowed))
		return
	}
	t, rej := parseTarget(r)
	if rej != nil {
		s.writeRejection(w, r, rej)
		return
	}
	remote, ok := remoteAddr(r)
	if !ok {
		s.writeRejection(w, r, reject(http.StatusBadRequest, ErrBadPath, "cannot parse the remote address"))
		return
	}
	user, pw, ok := r.BasicAuth()
	if !ok || user == "" {
		// A client without credentials is usually asking for the challenge
		// (RFC 7617 §2); it costs nothing, so it is not counted. ffmpeg
		// sends every request without credentials first: logged at Debug,
		// or each segment would cost an Info line.
		rej := reject(http.StatusUnauthorized, ErrUnauthorized, "credentials required (Basic)")
		rej.level = slog.LevelDebug
		s.writeRejection(w, r, rej, "slot", string(t.id))
		return
	}
	// Admission works on a context of its own: a client that hung up
	// cannot leave a half-made admission behind, and the timeout bounds a
	// coordination service that does not answer.
	actx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.AdmitTimeout)
	defer cancel()
	req := admit.Request{Protocol: admit.ProtocolPush, SlotID: t.id, Role: s.cfg.Role, Remote: remote, Verify: s.verifier(user, pw)}
	if r.Method == "PROPFIND" {
		// Listing needs the credentials, not the session: a monitoring
		// client never displaces or blocks the encoder.
		if _, err := s.adm.Check(actx, req); err != nil {
			s.writeRejection(w, r, admissionRejection(err))
			return
		}
		cancel()
		if rej := s.propfind(w, r, t); rej != nil {
			s.writeRejection(w, r, rej, "slot", string(t.id))
		}
		return
	}
	// Writes need the session (one publisher per slot and role).
	p, err := s.sessions.begin(actx, req, user)
	cancel()
	if err != nil {
		s.writeRejection(w, r, admissionRejection(err))
		return
	}
	defer s.sessions.finish(p)
	switch r.Method {
	case http.MethodPut:
		rej = s.put(w, r, t, p.sess)
	case "MKCOL":
		rej = s.mkcol(w, r, t)
	case http.MethodDelete:
		rej = s.delete(w, r, t)
	}
	if rej != nil {
		s.writeRejection(w, r, rej, "slot", string(t.id), "session", p.sess.ID())
	}
}

// remoteAddr is the client's address, IPv4-mapped IPv6 unmapped so that
// allow-lists and failed-auth budgets see one form.
func remoteAddr(r *http.Request) (netip.AddrPort, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()), true
}

// sanitizeMethod keeps a client-chosen method printable and short for the
// body and the log.
func sanitizeMethod(m string) string {
	if len(m) > 16 {
		m = m[:16]
	}
	return strconv.Quote(m)
}

// put stores the body under the target key (RFC 9110 §9.3.4; RFC 4918 §9.7).
// The answer (201 created, 204 replaced) is written only after Store.Put
// returned nil: the object is then whole and durable (R-STORE-2).
//
// The bodies of segments and init files feed the session's bitrate meter as
// they arrive: the live status shows what the publisher uploads, and the
// slot's ingest_bitrate_kbps holds for Live Push as for every protocol.
func (s *Server) put(w http.ResponseWriter, r *http.Request, t target, sess *admit.Session) *rejection {
	if t.rel == "" || t.dir {
		return reject(http.StatusMethodNotAllowed, ErrMethod, "PUT needs a file path, not a collection")
	}
	size := r.ContentLength // -1: chunked / unknown
	if size > s.cfg.MaxObjectBytes {
		return reject(http.StatusRequestEntityTooLarge, ErrTooLarge, "body of %d bytes exceeds the limit of %d bytes", size, s.cfg.MaxObjectBytes)
	}
	d := s.extendReadDeadline(w, size)
	// The store work runs on a context detached from the client's
	// connection: encoders such as ffmpeg half-close their side right after
	// the last body byte, which makes net/http cancel r.Context() while the
	// store is still committing the complete body. A body cut short still
	// fails the Put through the reader's error, so an interrupted upload is
	// never visible; the timeout bounds a stuck store.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), d+time.Minute)
	defer cancel()
	key := t.key(s.cfg.Role)
	if s.dirs.has(t.id, s.cfg.Role, t.rel) {
		return reject(http.StatusMethodNotAllowed, ErrMethod, "%s is a collection", t.rel)
	}
	existed := true
	if _, err := s.st.Stat(ctx, key); errors.Is(err, store.ErrNotExist) {
		existed = false
	} else if err != nil {
		return storeRejection(err)
	}
	class := lifecycle.ClassOf(string(t.rel))
	m := store.Meta{ContentType: mediaType(r.Header.Get("Content-Type")), Class: class}
	if size > 0 {
		m.Size = size // the store fails the Put if fewer bytes arrive
	}
	body := &countingReader{r: http.MaxBytesReader(w, r.Body, s.cfg.MaxObjectBytes)}
	if class != store.ClassManifest {
		body.observe = sess.ObserveBytes
	}
	info, err := s.st.Put(ctx, key, body, m)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(body.err, &mbe):
			return reject(http.StatusRequestEntityTooLarge, ErrTooLarge, "body exceeds the limit of %d bytes; nothing stored", s.cfg.MaxObjectBytes)
		case body.err != nil && !errors.Is(body.err, io.EOF):
			return reject(http.StatusBadRequest, ErrAborted, "upload interrupted after %d bytes; nothing stored", body.n)
		}
		return storeRejection(err)
	}
	s.dirs.dropAncestors(t.id, s.cfg.Role, t.rel) // now implied by the object's key
	s.m.stored(string(class))
	if info.ETag != "" {
		w.Header().Set("ETag", info.ETag)
	}
	w.Header().Set("Content-Length", "0")
	if existed {
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
	return nil
}

// extendReadDeadline gives big bodies time beyond the server's ReadTimeout.
func (s *Server) extendReadDeadline(w http.ResponseWriter, size int64) time.Duration {
	if size < 0 {
		size = s.cfg.MaxObjectBytes
	}
	d := min(baseUploadTime+time.Duration(size/minUploadRate)*time.Second, maxUploadTime)
	// ErrNotSupported (e.g. a wrapped writer) just keeps the server default.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
	return d
}

// mediaType keeps a Content-Type only when it parses (RFC 9110 §8.3.1).
func mediaType(v string) string {
	if v == "" {
		return ""
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return mime.FormatMediaType(mt, params)
}

// countingReader remembers how much was read and the first read error that
// was not io.EOF, to tell a client abort or an oversize body from a store
// failure, and hands each chunk's size to observe (if set).
type countingReader struct {
	r       io.Reader
	n       int64
	err     error
	observe func(int)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.observe != nil && n > 0 {
		c.observe(n)
	}
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// storeRejection maps a store error to a status.
func storeRejection(err error) *rejection {
	switch {
	case errors.Is(err, keys.ErrInvalid):
		return reject(http.StatusBadRequest, ErrBadPath, "%v", err)
	case errors.Is(err, store.ErrSize):
		return reject(http.StatusBadRequest, ErrAborted, "body length does not match Content-Length; nothing stored")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return reject(http.StatusBadRequest, ErrAborted, "request ended before the store finished; nothing stored")
	}
	rej := reject(http.StatusServiceUnavailable, ErrUnavailable, "storage error; retry")
	rej.retryAfter = time.Second
	rej.cause = err
	return rej
}
