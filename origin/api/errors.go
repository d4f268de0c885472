package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

const contentTypeJSON = "application/json; charset=utf-8"

// retryAfter is the Retry-After (seconds) of a 503: the store's and coord's
// own retries already took about a second.
const retryAfter = 5

// Error is the body of every error response (SPEC §8). Field names the JSON
// field, query parameter or header at fault, when there is one.
type Error struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// requestError is returned by the request parsing helpers when the request
// itself is unusable (as opposed to a slot rule it breaks, which is a
// *slots.FieldError and 422).
type requestError struct {
	status int
	field  string
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(field, msg string) error {
	return &requestError{status: http.StatusBadRequest, field: field, msg: msg}
}

// fail answers err with its status (the OpenAPI document lists the same
// statuses per route):
//
//	*requestError                    its status (400: malformed request)
//	*http.MaxBytesError              413
//	*slots.FieldError                422, field named
//	slots.ErrNotFound                404
//	slots.ErrNameTaken               409, field "name"
//	slots.ErrVersionMismatch         412, field "If-Match"
//	store/coord unavailable, ctx end 503 + Retry-After
//	anything else                    500, detail logged, generic message sent
//
// 401 (requireToken), 415 (requireJSON), 404/405 (noRoute) are answered
// before a handler runs.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		re *requestError
		mb *http.MaxBytesError
		fe *slots.FieldError
	)
	switch {
	case errors.As(err, &re):
		writeError(w, re.status, re.msg, re.field)
	case errors.As(err, &mb):
		writeError(w, http.StatusRequestEntityTooLarge, "request body larger than "+strconv.FormatInt(mb.Limit, 10)+" bytes", "")
	case errors.As(err, &fe):
		writeError(w, http.StatusUnprocessableEntity, fe.Message, fe.Field)
	case errors.Is(err, slots.ErrNotFound):
		writeError(w, http.StatusNotFound, "slot not found", "")
	case errors.Is(err, slots.ErrNameTaken):
		writeError(w, http.StatusConflict, "slot name is taken", "name")
	case errors.Is(err, slots.ErrVersionMismatch):
		writeError(w, http.StatusPreconditionFailed, "slot version does not match If-Match (it was changed): read it again", "If-Match")
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, coord.ErrUnavailable),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		a.log.Warn("api request failed, retriable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		writeError(w, http.StatusServiceUnavailable, "temporarily unavailable, retry later", "")
	default:
		a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error", "")
	}
}

func writeError(w http.ResponseWriter, status int, msg, field string) {
	writeJSON(w, status, Error{Error: msg, Field: field})
}

// writeJSON encodes v before writing anything, so an encoding failure can
// still be answered 500, and sets Content-Length.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"internal error"}` + "\n")
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// requireJSON answers 415 unless the body is declared JSON. Routes without
// a body (rotate-key) accept a request without Content-Type, but not one
// that declares something else. PATCH also accepts
// application/merge-patch+json, which is what its semantics are (RFC 7396:
// absent fields stay as they are).
func requireJSON(next http.Handler, body bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct := r.Header.Get("Content-Type")
		if ct == "" && !body {
			next.ServeHTTP(w, r)
			return
		}
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !(mt == "application/merge-patch+json" && r.Method == http.MethodPatch)) {
			writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json", "Content-Type")
			return
		}
		next.ServeHTTP(w, r)
	})
}
