package playback

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

const (
	allowMethods = "GET, HEAD, OPTIONS"
	// exposeHeaders lets players' JavaScript read what they need for
	// ranged and cached fetches (hls.js, dash.js, Shaka).
	exposeHeaders = "Content-Length, Content-Range, ETag"
	// notFoundCache keeps a CDN from hammering the origin for a segment
	// that is about to appear, without hiding it once it does.
	notFoundCache = "public, max-age=1"
	// retryAfter is sent with 503: store outages are usually short.
	retryAfter = "2"
	// maxAttempts bounds the Stat/GetRange retries when an object is
	// overwritten between the two (live manifests are).
	maxAttempts = 3
)

// contentTypes by lower-case extension. The stored content type is ignored
// for these: encoders send odd ones (text/plain manifests, octet-stream
// segments) and players are strict.
var contentTypes = map[string]string{
	".m3u8":   "application/vnd.apple.mpegurl",
	".mpd":    "application/dash+xml",
	".m4s":    "video/iso.segment",
	".mp4":    "video/mp4",
	".m4a":    "audio/mp4",
	".m4v":    "video/mp4",
	".ts":     "video/mp2t",
	".aac":    "audio/aac",
	".vtt":    "text/vtt",
	".webvtt": "text/vtt",
}

// ContentType is the Content-Type served for a media path. Unknown
// extensions are application/octet-stream, never the stored type: that was
// chosen by a publisher, and text/html from a publisher would run script
// in the origin's name.
func ContentType(rel string) string {
	if ct, ok := contentTypes[strings.ToLower(path.Ext(rel))]; ok {
		return ct
	}
	return "application/octet-stream"
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", s.cfg.AllowOrigin)
	h.Set("Access-Control-Expose-Headers", exposeHeaders)
	h.Set("X-Content-Type-Options", "nosniff")

	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		// CORS preflight (a ranged fetch with a Range header needs one).
		h.Set("Access-Control-Allow-Methods", allowMethods)
		h.Set("Access-Control-Allow-Headers", "Range, If-None-Match, If-Modified-Since")
		h.Set("Access-Control-Max-Age", "86400")
		h.Set("Allow", allowMethods)
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		h.Set("Allow", allowMethods)
		s.fail(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}

	id, rel, ok := parsePath(r.URL.Path)
	if !ok {
		s.fail(w, http.StatusBadRequest, "invalid path")
		return
	}
	if !publicName(rel) {
		s.notFound(w) // an internal object: as if there were none (public.go)
		return
	}
	slot, err := s.slots.Lookup(r.Context(), id)
	switch {
	case errors.Is(err, slots.ErrNotFound):
		s.notFound(w)
		return
	case err != nil:
		s.storeError(w, r, err, "look up slot", id)
		return
	}
	if reason := viewerDenied(slot, r.RemoteAddr); reason != "" {
		s.fail(w, http.StatusForbidden, reason)
		return
	}
	key := keys.Media(id, s.cfg.Role, rel)
	h.Set("Cache-Control", s.cacheControl(slot, rel))
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", ContentType(string(rel)))

	for range maxAttempts {
		if done := s.serveObject(w, r, key); done {
			return
		}
	}
	// The object changed between Stat and GetRange on every attempt.
	s.unavailable(w, "object is being rewritten")
}

// parsePath splits "/live/<id>/<rel>" and validates both parts. The path is
// the once-decoded r.URL.Path: ParseRelPath refuses "..", backslashes, NUL
// and any '%' left by double encoding, so nothing outside the slot's
// prefix can be named.
func parsePath(p string) (keys.SlotID, keys.RelPath, bool) {
	rest, ok := strings.CutPrefix(p, PathPrefix)
	if !ok {
		return "", "", false
	}
	idPart, relPart, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", false
	}
	id, err := keys.ParseSlotID(idPart)
	if err != nil {
		return "", "", false
	}
	rel, err := keys.ParseRelPath(relPart)
	if err != nil {
		return "", "", false
	}
	return id, rel, true
}

// viewerDenied applies the slot's viewer IP lists to the peer address and
// returns the reason for a 403, or "". The peer is the TCP peer: behind a
// CDN that is the CDN, so viewer lists need a trusted-proxy setting first
// (not done yet; see the package report).
func viewerDenied(slot *slots.Slot, remoteAddr string) string {
	if len(slot.ViewerIPAllow) == 0 && len(slot.ViewerIPDeny) == 0 {
		return ""
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return "viewer address unknown; this slot restricts viewer addresses"
	}
	if !slot.ViewerAllowed(ap.Addr()) {
		return "viewer address " + ap.Addr().Unmap().String() + " is not allowed to watch this slot"
	}
	return ""
}

// cacheControl picks the header by the object's class: manifests change
// with every segment, segments and init files never change under a name.
func (s *Server) cacheControl(slot *slots.Slot, rel keys.RelPath) string {
	if lifecycle.ClassOf(string(rel)) == store.ClassManifest {
		maxAge := s.cfg.ManifestMaxAge
		if maxAge == 0 {
			maxAge = time.Duration(slot.SegmentDuration) * time.Second / 2
		}
		return "public, max-age=" + seconds(max(maxAge, time.Second))
	}
	return "public, max-age=" + seconds(s.cfg.SegmentMaxAge) + ", immutable"
}

func seconds(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

// serveObject answers for one version of the object; it returns false
// only when the object changed between Stat and GetRange (try again).
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, key string) bool {
	ctx := r.Context()
	rangeHdr := r.Header.Get("Range")
	if r.Method == http.MethodGet && rangeHdr == "" && !conditional(r) {
		// The common case, one store request: the whole object.
		body, info, err := s.store.Get(ctx, key)
		if err != nil {
			s.storeError(w, r, err, "get", key)
			return true
		}
		defer body.Close()
		if !publicClass(info.Class) {
			s.notFound(w)
			return true
		}
		setValidators(w, info)
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
		w.WriteHeader(http.StatusOK)
		s.copy(w, body, key)
		return true
	}

	info, err := s.store.Stat(ctx, key)
	if err != nil {
		s.storeError(w, r, err, "stat", key)
		return true
	}
	if !publicClass(info.Class) {
		s.notFound(w)
		return true
	}
	setValidators(w, info)
	if notModified(r, info) {
		// RFC 9110 §15.4.5: a 304 carries the validators and caching
		// headers, no content headers.
		w.Header().Del("Content-Type")
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	var rng byteRange
	ranged := false
	if rangeHdr != "" && ifRangeHolds(r, info) {
		var satisfiable bool
		rng, ranged, satisfiable = parseRange(rangeHdr, info.Size)
		if !satisfiable {
			w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(info.Size, 10))
			w.Header().Del("Content-Type")
			s.fail(w, http.StatusRequestedRangeNotSatisfiable, "range not satisfiable")
			return true
		}
	}
	if !ranged {
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return true
		}
		body, got, err := s.store.Get(ctx, key)
		if err != nil {
			s.storeError(w, r, err, "get", key)
			return true
		}
		defer body.Close()
		if got.ETag != info.ETag {
			return false
		}
		w.WriteHeader(http.StatusOK)
		s.copy(w, body, key)
		return true
	}

	w.Header().Set("Content-Range", rng.contentRange(info.Size))
	w.Header().Set("Content-Length", strconv.FormatInt(rng.length, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusPartialContent)
		return true
	}
	body, got, err := s.store.GetRange(ctx, key, rng.start, rng.length)
	if errors.Is(err, store.ErrRange) {
		return false // shrunk since Stat: a new version
	}
	if err != nil {
		s.storeError(w, r, err, "get range", key)
		return true
	}
	defer body.Close()
	if got.ETag != info.ETag || got.Size != info.Size {
		return false
	}
	w.WriteHeader(http.StatusPartialContent)
	s.copy(w, body, key)
	return true
}

// copy streams the body; once the status is sent an error can only cut
// the response short (the client sees fewer bytes than Content-Length).
func (s *Server) copy(w http.ResponseWriter, body io.Reader, key string) {
	if _, err := io.Copy(w, body); err != nil {
		s.log.Debug("response cut short", "key", key, "err", err)
	}
}

func setValidators(w http.ResponseWriter, info store.Info) {
	if info.ETag != "" {
		w.Header().Set("ETag", info.ETag)
	}
	if !info.Modified.IsZero() {
		w.Header().Set("Last-Modified", info.Modified.UTC().Format(http.TimeFormat))
	}
}

func (s *Server) notFound(w http.ResponseWriter) {
	w.Header().Del("Accept-Ranges")
	s.fail(w, http.StatusNotFound, "not found")
}

func (s *Server) unavailable(w http.ResponseWriter, reason string) {
	w.Header().Set("Retry-After", retryAfter)
	s.fail(w, http.StatusServiceUnavailable, reason)
}

// storeError maps a store or slot-lookup error. Details go to the log, the
// client gets a generic message.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error, op, what any) {
	switch {
	case errors.Is(err, store.ErrNotExist):
		s.notFound(w)
	case r.Context().Err() != nil:
		// The viewer went away; nobody reads the answer.
	case errors.Is(err, store.ErrUnavailable):
		s.log.Warn("store unavailable", "op", op, "object", what, "err", err)
		s.unavailable(w, "storage temporarily unavailable")
	default:
		s.log.Error("playback failed", "op", op, "object", what, "err", err)
		s.fail(w, http.StatusInternalServerError, "internal error")
	}
}

// fail writes a short plain-text reason (players show it in their logs).
// Only a 404 may be cached, briefly; the others depend on the viewer (403)
// or on a passing condition (5xx).
func (s *Server) fail(w http.ResponseWriter, code int, reason string) {
	h := w.Header()
	for _, k := range []string{"ETag", "Last-Modified", "Content-Length"} {
		h.Del(k)
	}
	if code == http.StatusNotFound {
		h.Set("Cache-Control", notFoundCache)
	} else {
		h.Set("Cache-Control", "no-store")
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, reason+"\n")
}
