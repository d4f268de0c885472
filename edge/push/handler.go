package push

import (
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/slots"
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
	ip, ok := remoteIP(r)
	if !ok {
		s.writeRejection(w, r, reject(http.StatusBadRequest, ErrBadPath, "cannot parse the remote address"))
		return
	}
	ctx := r.Context()
	sl, user, rej := s.authenticate(ctx, r, t.id, ip)
	if rej != nil {
		s.writeRejection(w, r, rej, "slot", string(t.id))
		return
	}
	if sl.Type != slots.TypeLivePush {
		s.writeRejection(w, r, reject(http.StatusForbidden, ErrNotLivePush, "slot %s is of type %s, not %s", t.id, sl.Type, slots.TypeLivePush), "slot", string(t.id))
		return
	}
	if !sl.PublisherAllowed(ip) {
		s.writeRejection(w, r, reject(http.StatusForbidden, ErrIPNotAllowed, "publishing from %s is not allowed by the slot's publish_ip_allow list", ip), "slot", string(t.id))
		return
	}
	if r.Method != "PROPFIND" {
		// Writes need the session lease (one publisher per slot and role);
		// listing does not, so a monitoring client with valid credentials
		// never displaces or blocks the encoder.
		owner := coord.Owner{ID: "push:" + user + "@" + ip.String(), Edge: s.cfg.EdgeID, Protocol: "push", Remote: ip.String()}
		if rej := s.sessions.admit(ctx, t.id, s.cfg.Role, owner); rej != nil {
			s.writeRejection(w, r, rej, "slot", string(t.id), "user", user)
			return
		}
	}
	var err *rejection
	switch r.Method {
	case http.MethodPut:
		err = s.put(w, r, t)
	case "MKCOL":
		err = s.mkcol(w, r, t)
	case http.MethodDelete:
		err = s.delete(w, r, t)
	case "PROPFIND":
		err = s.propfind(w, r, t)
	}
	if err != nil {
		s.writeRejection(w, r, err, "slot", string(t.id), "user", user)
	}
}

// remoteIP is the client's address without port, IPv4-mapped IPv6 unmapped
// so that allow-lists and limiter keys see one form.
func remoteIP(r *http.Request) (netip.Addr, bool) {
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
func (s *Server) put(w http.ResponseWriter, r *http.Request, t target) *rejection {
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
// failure.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
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
