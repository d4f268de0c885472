package whip

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/slots"
)

// Media types of RFC 9725.
const (
	typeSDP      = "application/sdp"
	typeFragment = "application/trickle-ice-sdpfrag"
)

// CORS for browser publishers on other origins: the stream key travels in
// the Authorization header, never in a cookie, so any origin may call.
const (
	corsMethods = "POST, PATCH, DELETE, OPTIONS"
	corsHeaders = "Authorization, Content-Type, If-Match"
	corsExpose  = "Location, ETag, Link, Accept-Patch, Retry-After"
)

// Handler serves PathPrefix: the endpoint /whip/<slot> and the session
// resources /whip/<slot>/<session>.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(s.serveHTTP)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", corsExpose)
	rest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	slotText, sessionID, isSession := strings.Cut(rest, "/")
	id, err := keys.ParseSlotID(slotText)
	if !ok || err != nil || (isSession && (sessionID == "" || strings.Contains(sessionID, "/"))) {
		s.refuse(w, r, badRequest(http.StatusNotFound, "no WHIP endpoint here: publish to /whip/<slot id>"))
		return
	}
	if r.Method == http.MethodOptions {
		s.options(w, isSession)
		return
	}
	// Plain HTTP leaks the stream key to the network: only a publisher on
	// this machine (dev, tests) may use it. Checked before the
	// Authorization header is read.
	if r.TLS == nil && !loopback(r.RemoteAddr) {
		s.refuse(w, r, badRequest(http.StatusForbidden, "WHIP requires HTTPS: use the https:// URL (plain HTTP is only served to this machine); change the stream key if it was sent"))
		return
	}
	switch {
	case !isSession && r.Method == http.MethodPost:
		s.post(w, r, id)
	case isSession && r.Method == http.MethodDelete:
		s.delete(w, r, id, sessionID)
	case isSession && r.Method == http.MethodPatch:
		s.patch(w, r, id, sessionID)
	default:
		allow := "POST, OPTIONS"
		if isSession {
			allow = "PATCH, DELETE, OPTIONS"
		}
		h.Set("Allow", allow)
		s.refuse(w, r, badRequest(http.StatusMethodNotAllowed, "%s is not supported here (allowed: %s)", r.Method, allow))
	}
}

// options answers a CORS preflight (RFC 9725 §4.1 lets clients send one).
func (s *Server) options(w http.ResponseWriter, isSession bool) {
	h := w.Header()
	if isSession {
		h.Set("Allow", "PATCH, DELETE, OPTIONS")
		h.Set("Accept-Patch", typeFragment)
	} else {
		h.Set("Allow", "POST, OPTIONS")
		h.Set("Accept-Post", typeSDP)
	}
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// post creates a session: checks the request and the offer, admits, and
// answers with every candidate gathered (RFC 9725 §4.2).
func (s *Server) post(w http.ResponseWriter, r *http.Request, slot keys.SlotID) {
	body, rerr := readBody(w, r, typeSDP, s.cfg.MaxOfferBytes)
	if rerr != nil {
		s.refuse(w, r, rerr)
		return
	}
	key, ok := bearer(r)
	if !ok {
		s.refuse(w, r, badRequest(http.StatusUnauthorized, "missing stream key: send it as 'Authorization: Bearer <stream key>'"))
		return
	}
	off, rerr := parseOffer(body)
	if rerr != nil {
		s.refuse(w, r, rerr)
		return
	}
	api, ok := s.ready()
	if !ok {
		w.Header().Set("Retry-After", "5")
		s.refuse(w, r, badRequest(http.StatusServiceUnavailable, "this edge is not accepting WHIP sessions now; retry"))
		return
	}
	remote, _ := netip.ParseAddrPort(r.RemoteAddr)
	actx, cancel := context.WithTimeout(r.Context(), s.cfg.AdmitTimeout)
	sess, err := s.deps.Admitter.Admit(actx, admit.Request{
		Protocol: admit.ProtocolWHIP, StreamKey: key, Role: s.cfg.Role, Remote: remote,
		Verify: func(sl *slots.Slot) error {
			// The key names a slot; the URL must name the same one, so a
			// key cannot publish to another slot's endpoint by accident.
			if sl.ID != slot {
				return errors.New("this stream key belongs to another slot: use the WHIP URL of its slot")
			}
			return nil
		},
	})
	cancel()
	if err != nil {
		s.refuseAdmission(w, r, admit.AsRejection(err))
		return
	}
	ss, answer, err := s.startSession(api, sess, off, key, remote)
	if err != nil {
		var re *requestError
		if !errors.As(err, &re) {
			re = badRequest(http.StatusInternalServerError, "could not set up the WebRTC session")
		}
		s.log.Warn("WHIP session setup failed", "slot", string(slot), "remote", r.RemoteAddr, "err", err)
		s.refuse(w, r, re)
		return
	}
	h := w.Header()
	h.Set("Content-Type", typeSDP)
	h.Set("Location", PathPrefix+string(slot)+"/"+ss.id)
	h.Set("ETag", ss.etag)
	h.Set("Accept-Patch", typeFragment)
	for _, l := range s.iceLinks() {
		h.Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
	s.metrics.requests.WithLabelValues(r.Method, "201").Inc()
}

// delete ends a session (RFC 9725 §4.2): the reply comes once the last
// segment is stored and the slot is free, so the publisher can start again
// at once.
func (s *Server) delete(w http.ResponseWriter, r *http.Request, slot keys.SlotID, id string) {
	ss, rerr := s.authorizedSession(r, slot, id)
	if rerr != nil {
		s.refuse(w, r, rerr)
		return
	}
	ss.stop(closeReason{msg: "publisher sent DELETE", label: "delete", level: slog.LevelInfo})
	select {
	case <-ss.done:
	case <-r.Context().Done():
		return
	}
	w.WriteHeader(http.StatusOK)
	s.metrics.requests.WithLabelValues(r.Method, "200").Inc()
}

// patch adds trickled candidates (RFC 9725 §4.3.1). ICE restarts are not
// supported — the session's media state cannot move to a new ICE session —
// so a fragment with new credentials is refused with 422, as §4.3.1 asks
// of a server that trickles but does not restart.
func (s *Server) patch(w http.ResponseWriter, r *http.Request, slot keys.SlotID, id string) {
	body, rerr := readBody(w, r, typeFragment, s.cfg.MaxOfferBytes)
	if rerr != nil {
		s.refuse(w, r, rerr)
		return
	}
	ss, rerr := s.authorizedSession(r, slot, id)
	if rerr != nil {
		s.refuse(w, r, rerr)
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" && m != ss.etag {
		s.refuse(w, r, badRequest(http.StatusPreconditionFailed, "If-Match %s does not match the ICE session %s", m, ss.etag))
		return
	}
	frag, err := parseFragment(body)
	if err != nil {
		s.refuse(w, r, badRequest(http.StatusBadRequest, "malformed trickle-ice-sdpfrag: %v", err))
		return
	}
	if (frag.ufrag != "" && frag.ufrag != ss.ufrag) || r.Header.Get("If-Match") == "*" {
		s.refuse(w, r, badRequest(http.StatusUnprocessableEntity, "ICE restart is not supported: end this session (DELETE) and POST a new offer"))
		return
	}
	for _, c := range frag.candidates {
		init := webrtc.ICECandidateInit{Candidate: c.value}
		if c.mid != "" {
			init.SDPMid = &c.mid
		}
		if err := ss.pc.AddICECandidate(init); err != nil {
			s.refuse(w, r, badRequest(http.StatusBadRequest, "candidate refused: %v", err))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
	s.metrics.requests.WithLabelValues(r.Method, "204").Inc()
}

// authorizedSession finds the session and checks that the request carries
// the stream key that created it (compared as hashes in constant time).
// An unknown session and a wrong key are told apart only after the key is
// checked for presence, so a missing header never reveals a session.
func (s *Server) authorizedSession(r *http.Request, slot keys.SlotID, id string) (*session, *requestError) {
	key, ok := bearer(r)
	if !ok {
		return nil, badRequest(http.StatusUnauthorized, "missing stream key: send the one the session was created with as 'Authorization: Bearer <stream key>'")
	}
	ss := s.session(id)
	if ss == nil || ss.slot != slot {
		return nil, badRequest(http.StatusNotFound, "no such WHIP session (it ended, or never existed)")
	}
	sum := sha256.Sum256([]byte(key.Reveal()))
	if subtle.ConstantTimeCompare(sum[:], ss.keyHash[:]) != 1 {
		return nil, badRequest(http.StatusUnauthorized, "this is not the stream key the session was created with")
	}
	return ss, nil
}

// readBody checks the Content-Type and reads at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, want string, limit int64) ([]byte, *requestError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != want {
		return nil, badRequest(http.StatusUnsupportedMediaType, "Content-Type must be %s", want)
	}
	if r.ContentLength > limit {
		return nil, badRequest(http.StatusRequestEntityTooLarge, "body of %d bytes is over the limit of %d", r.ContentLength, limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, badRequest(http.StatusRequestEntityTooLarge, "body is over the limit of %d bytes", limit)
	case err != nil:
		return nil, badRequest(http.StatusBadRequest, "could not read the body")
	}
	return body, nil
}

// bearer is the Authorization: Bearer token (RFC 6750 §2.1).
func bearer(r *http.Request) (secret.String, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return secret.String(tok), true
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// iceLinks are the Link headers of the configured ICE servers (RFC 9725
// §4.6).
func (s *Server) iceLinks() []string {
	var out []string
	for _, is := range s.cfg.ICEServers {
		l := "<" + is.URL + `>; rel="ice-server"`
		if is.Username != "" {
			l += `; username=` + strconv.Quote(is.Username) + `; credential=` + strconv.Quote(is.Credential.Reveal()) + `; credential-type="password"`
		}
		out = append(out, l)
	}
	return out
}

// refuse writes a refusal with a text/plain reason and logs it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, e *requestError) {
	h := w.Header()
	if e.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="liveingest whip"`)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	_, _ = io.WriteString(w, e.msg+"\n")
	s.metrics.requests.WithLabelValues(r.Method, strconv.Itoa(e.status)).Inc()
	level := slog.LevelInfo
	if e.status >= 500 {
		level = slog.LevelWarn
	}
	s.log.Log(r.Context(), level, "WHIP request refused", "method", r.Method, pathAttr(r.URL.Path),
		"remote", r.RemoteAddr, "status", e.status, "reason", e.msg)
}

// pathAttr is the request path for the log when it has the shape of a WHIP
// resource (a slot id, and a session id of ours: neither can be a stream
// key, whose alphabet has upper case), else only its fingerprint: a
// publisher that put its key in the URL must not find it in the log.
func pathAttr(p string) slog.Attr {
	rest, ok := strings.CutPrefix(p, PathPrefix)
	slotText, sessionID, isSession := strings.Cut(rest, "/")
	_, err := keys.ParseSlotID(slotText)
	if ok && err == nil && (!isSession || isSessionID(sessionID)) {
		return slog.String("path", p)
	}
	return slog.String("path_fp", secret.Fingerprint(p))
}

// isSessionID reports whether s has the form newID gives.
func isSessionID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// refuseAdmission maps an admission refusal to HTTP (admit.Reason
// HTTPStatus; Retry-After when the client may come back). Admission has
// logged and counted it already.
func (s *Server) refuseAdmission(w http.ResponseWriter, r *http.Request, rej *admit.Rejection) {
	h := w.Header()
	if rej.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((rej.RetryAfter+time.Second-1)/time.Second), 10))
	} else if rej.Reason == admit.ReasonStorageUnavailable {
		h.Set("Retry-After", "5")
	}
	status := rej.Reason.HTTPStatus()
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="liveingest whip", error="invalid_token"`)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "%s: %s\n", rej.Reason, rej.Message)
	s.metrics.requests.WithLabelValues(r.Method, strconv.Itoa(status)).Inc()
}

// newID is 128 random bits in hex: a session id that cannot be guessed.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
