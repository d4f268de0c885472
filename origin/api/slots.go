package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
)

// SlotList is the body of GET /api/v1/slots. An object rather than a bare
// array, so that paging can be added without breaking clients.
type SlotList struct {
	Slots []slots.View `json:"slots"`
}

// CloneRequest is the body of POST /api/v1/slots/{id}/clone.
type CloneRequest struct {
	Name *string `json:"name"`
}

// Live is the body of GET /api/v1/slots/{id}/live (R-API-1 live status):
// whether anyone publishes to the slot now, and each publisher's session.
// Sessions is [] (never null) when nobody publishes.
type Live struct {
	Live     bool            `json:"live"`
	Sessions []coord.Session `json:"sessions"` // publishing now
	// Recent are sessions that ended, and publishes refused, with a reason
	// in the last minutes, newest first: why the slot is not live.
	Recent []coord.Session `json:"recent"`
}

// listParams are the query parameters of GET /api/v1/slots. Any other
// parameter is refused: a typo (?regoin=eu) must not silently list all.
var listParams = []string{"region", "type", "sort", "order"}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for name, vals := range q {
		if !slices.Contains(listParams, name) {
			a.fail(w, r, badRequest(name, "is not a query parameter of this endpoint ("+strings.Join(listParams, ", ")+")"))
			return
		}
		if len(vals) > 1 {
			a.fail(w, r, badRequest(name, "may be given once"))
			return
		}
	}
	o := slots.ListOptions{Region: q.Get("region"), Type: slots.Type(q.Get("type")), Sort: q.Get("sort"), Order: q.Get("order")}
	var fe *slots.FieldError
	if err := o.Validate(); errors.As(err, &fe) {
		// A query parameter, not a slot field: the request is malformed.
		a.fail(w, r, badRequest(fe.Field, fe.Message))
		return
	}
	if _, ok := a.slots.Deployment().Region(o.Region); o.Region != "" && !ok {
		a.fail(w, r, badRequest("region", "must be one of "+strings.Join(a.slots.Deployment().RegionIDs(), ", ")))
		return
	}
	list, err := a.slots.List(r.Context(), o)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	dep := a.slots.Deployment()
	out := SlotList{Slots: make([]slots.View, 0, len(list))}
	for _, s := range list {
		out.Slots = append(out.Slots, s.View(dep, ""))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	in, err := decodeInput(r)
	if err == nil && in.Name == nil {
		err = badRequest("name", "is required")
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := a.slots.Create(r.Context(), in)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeCreated(w, c)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	id, err := slotID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	s, err := a.slots.Get(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeSlot(w, http.StatusOK, s, "")
}

// update is PATCH: fields absent from the body keep their values. If-Match
// makes it conditional on the version; without If-Match the update is
// unconditional (last writer wins), which is what a script that owns its
// slots wants — clients that edit what they read should send the ETag.
func (a *API) update(w http.ResponseWriter, r *http.Request) {
	id, err := slotID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	version, err := ifMatch(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	in, err := decodeInput(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	s, err := a.slots.Update(r.Context(), id, version, in)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeSlot(w, http.StatusOK, s, "")
}

// delete removes the slot (conditional on If-Match when given) and answers
// 204.
func (a *API) delete(w http.ResponseWriter, r *http.Request) {
	id, err := slotID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	version, err := ifMatch(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.slots.Delete(r.Context(), id, version); err != nil {
		if !errors.Is(err, slots.ErrMediaCleanup) {
			a.fail(w, r, err)
			return
		}
		// The slot is gone, as asked; left-over media expire by lifecycle.
		a.log.Warn("slot deleted, its media not all removed", "slot", id, "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) clone(w http.ResponseWriter, r *http.Request) {
	id, err := slotID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req CloneRequest
	if err := decodeStrict(r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if req.Name == nil || *req.Name == "" {
		a.fail(w, r, badRequest("name", "is required: a clone needs a new name"))
		return
	}
	c, err := a.slots.Clone(r.Context(), id, *req.Name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeCreated(w, c)
}

func (a *API) rotateKey(w http.ResponseWriter, r *http.Request) {
	id, err := slotID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	c, err := a.slots.RotateKey(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeSlot(w, http.StatusOK, c.Slot, c.StreamKey.Reveal())
}

func (a *API) live(w http.ResponseWriter, r *http.Request) {
	id, err := slotID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if _, err := a.slots.Get(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	ss, err := a.reg.List(r.Context(), string(id)) // the registry lists sessions by slot id
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := Live{Sessions: []coord.Session{}, Recent: []coord.Session{}}
	for _, s := range ss {
		if s.Ended.IsZero() {
			out.Sessions = append(out.Sessions, s)
		} else {
			out.Recent = append(out.Recent, s)
		}
	}
	slices.Reverse(out.Recent)
	out.Live = len(out.Sessions) > 0
	writeJSON(w, http.StatusOK, out)
}

func (a *API) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(len(openAPIDoc)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDoc)
}

// writeCreated answers a new slot (create, clone): 201, Location, ETag, and
// the view with the stream key — the one time it is shown.
func (a *API) writeCreated(w http.ResponseWriter, c *slots.Created) {
	w.Header().Set("Location", Prefix+"/slots/"+string(c.Slot.ID))
	a.writeSlot(w, http.StatusCreated, c.Slot, c.StreamKey.Reveal())
}

func (a *API) writeSlot(w http.ResponseWriter, status int, s *slots.Slot, streamKey string) {
	w.Header().Set("ETag", etag(s.Version))
	writeJSON(w, status, s.View(a.slots.Deployment(), streamKey))
}

// etag is the slot's ETag: its version, quoted (RFC 9110 §8.8.3).
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// ifMatch returns the version If-Match requires, 0 for none. It accepts the
// ETag as sent ("3"), its weak form (W/"3"), a bare version (3) and "*".
// "*" means "any current version", which for an existing slot is the same
// as no condition; the repository answers 404 for a missing one either way.
func ifMatch(r *http.Request) (int64, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return 0, nil
	}
	v = strings.TrimPrefix(v, "W/")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, badRequest("If-Match", `must be one ETag of this API ("3"), a version (3) or *`)
	}
	if n <= 0 {
		// No slot has such a version; 0 would mean "any" to the repository.
		return 0, slots.ErrVersionMismatch
	}
	return n, nil
}

// slotID parses the {id} path segment; a malformed id names no slot (404).
func slotID(r *http.Request) (keys.SlotID, error) {
	id, err := keys.ParseSlotID(r.PathValue("id"))
	if err != nil {
		return "", slots.ErrNotFound
	}
	return id, nil
}

// readBody reads the whole (MaxBytesReader-capped) body, so that an
// oversize body is 413 whatever the decoder had read when it stopped.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return nil, err
	}
	if err != nil {
		return nil, badRequest("", "reading the request body: "+err.Error())
	}
	return b, nil
}

// decodeInput decodes a slot Input. Every decoding problem — malformed JSON,
// unknown field, wrong JSON type — is the request's fault: 400, with the
// field when slots.DecodeInput can name it.
func decodeInput(r *http.Request) (slots.Input, error) {
	b, err := readBody(r)
	if err != nil {
		return slots.Input{}, err
	}
	in, err := slots.DecodeInput(bytes.NewReader(b))
	if err != nil {
		var fe *slots.FieldError
		if errors.As(err, &fe) {
			return slots.Input{}, badRequest(fe.Field, fe.Message)
		}
		return slots.Input{}, badRequest("", err.Error())
	}
	return in, nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields.
func decodeStrict(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return badRequest(strings.Trim(f, `"`), "is not a field of this request")
		}
		return badRequest("", "invalid JSON: "+err.Error())
	}
	if dec.More() {
		return badRequest("", "body must hold one JSON object")
	}
	return nil
}
