// Package api is the control plane's REST API, /api/v1 (SPEC §2 R-API-1,
// §8): slots — create, list, get, update, clone, delete, rotate the stream
// key — and their live status, behind an admin bearer token, with the
// OpenAPI document that describes it served at /api/v1/openapi.json.
// Failed admin-token attempts are limited per client address (auth.go).
//
// Every response is JSON (Content-Type application/json; charset=utf-8) and
// Cache-Control: no-store, errors included: {"error": "…", "field": "…"}.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/slots"
)

// Prefix is the path every route of the API lives under.
const Prefix = "/api/v1"

// minTokenLen is the shortest admin token New accepts: a shorter one could
// be guessed online.
const minTokenLen = 16

// Config configures an API.
type Config struct {
	// AdminToken is the bearer token every request but the OpenAPI document
	// must carry. Required, at least 16 characters. Default: none.
	AdminToken secret.String
	// MaxBodyBytes caps a request body; a longer one is answered 413.
	// Default: 1 MiB.
	MaxBodyBytes int64
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.AdminToken.IsZero() {
		return errors.New("Config.AdminToken: required")
	}
	if len(c.AdminToken.Reveal()) < minTokenLen {
		return fmt.Errorf("Config.AdminToken: must be at least %d characters", minTokenLen)
	}
	if c.MaxBodyBytes < 0 {
		return errors.New("Config.MaxBodyBytes: must not be negative")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	return c
}

// Slots is what the API needs of the slot repository; *slots.Repo satisfies
// it. The methods keep the repository's contracts (see slots.Repo): errors
// are *slots.FieldError, slots.ErrNotFound, slots.ErrNameTaken,
// slots.ErrVersionMismatch, or store errors (store.ErrUnavailable when worth
// retrying). It is one interface rather than several because every handler
// needs Deployment to render a view and the handlers share one value.
type Slots interface {
	Create(ctx context.Context, in slots.Input) (*slots.Created, error)
	Get(ctx context.Context, id keys.SlotID) (*slots.Slot, error)
	List(ctx context.Context, o slots.ListOptions) ([]*slots.Slot, error)
	Update(ctx context.Context, id keys.SlotID, version int64, in slots.Input) (*slots.Slot, error)
	Clone(ctx context.Context, id keys.SlotID, name string) (*slots.Created, error)
	Delete(ctx context.Context, id keys.SlotID, version int64) error
	RotateKey(ctx context.Context, id keys.SlotID) (*slots.Created, error)
	Deployment() slots.Deployment
}

// Deps are the API's collaborators.
type Deps struct {
	// Slots is the durable slot repository. Required.
	Slots Slots
	// Registry lists live ingest sessions for the live status. Required.
	Registry coord.Registry
	// AuthLimiter counts requests with a missing or wrong admin token per
	// source (IPv4 address or IPv6 /64, keys "api:authfail:<prefix>"); over
	// its budget the answer is 429 (see requireToken). Build it with
	// DefaultAuthFailRate, on Redis where several origins serve the API.
	// Required.
	AuthLimiter coord.Limiter
	// Metrics registers liveingest_api_auth_failures_total{result}.
	// Default: nil, no metrics.
	Metrics prometheus.Registerer
	// Logger gets one line per failed request worth an operator's look
	// (refused tokens: one Warn line a minute with a count, each at Debug);
	// never a token or secret. Default: slog.Default().
	Logger *slog.Logger
}

// API serves /api/v1. It holds no per-request state and is safe for
// concurrent use.
type API struct {
	cfg    Config
	slots  Slots
	reg    coord.Registry
	log    *slog.Logger
	guard  *authGuard
	routes []route
	mux    *http.ServeMux
}

// New validates cfg and deps and returns a ready API.
func New(cfg Config, deps Deps) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Slots == nil {
		return nil, errors.New("Deps.Slots: required")
	}
	if deps.Registry == nil {
		return nil, errors.New("Deps.Registry: required")
	}
	if deps.AuthLimiter == nil {
		return nil, errors.New("Deps.AuthLimiter: required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	log := deps.Logger.With("component", "api")
	guard, err := newAuthGuard(deps.AuthLimiter, log, deps.Metrics)
	if err != nil {
		return nil, fmt.Errorf("Deps.Metrics: %w", err)
	}
	a := &API{
		cfg:   cfg.withDefaults(),
		slots: deps.Slots,
		reg:   deps.Registry,
		log:   log,
		guard: guard,
		mux:   http.NewServeMux(),
	}
	a.routes = a.routeTable()
	for _, rt := range a.routes {
		var h http.Handler = rt.handler
		if rt.method == http.MethodPost || rt.method == http.MethodPatch {
			h = requireJSON(h, rt.body)
		}
		if !rt.public {
			h = a.requireToken(h)
		}
		a.mux.Handle(rt.method+" "+rt.pattern, h)
	}
	// Anything else under the prefix: 405 if the path exists for another
	// method, else 404 — in JSON, which the mux's own answers are not.
	a.mux.HandleFunc(Prefix+"/", a.noRoute)
	return a, nil
}

// route is one endpoint. The table in routeTable is the single list of
// endpoints: New registers it and the OpenAPI test checks the document
// against it.
type route struct {
	method  string
	pattern string // ServeMux path pattern, with Prefix
	handler http.HandlerFunc
	public  bool // served without the admin token
	body    bool // takes a JSON body (Content-Type checked, 415)
}

func (a *API) routeTable() []route {
	return []route{
		{method: http.MethodGet, pattern: Prefix + "/openapi.json", handler: a.openAPI, public: true},
		{method: http.MethodGet, pattern: Prefix + "/slots", handler: a.list},
		{method: http.MethodPost, pattern: Prefix + "/slots", handler: a.create, body: true},
		{method: http.MethodGet, pattern: Prefix + "/slots/{id}", handler: a.get},
		{method: http.MethodPatch, pattern: Prefix + "/slots/{id}", handler: a.update, body: true},
		{method: http.MethodDelete, pattern: Prefix + "/slots/{id}", handler: a.delete},
		{method: http.MethodPost, pattern: Prefix + "/slots/{id}/clone", handler: a.clone, body: true},
		{method: http.MethodPost, pattern: Prefix + "/slots/{id}/rotate-key", handler: a.rotateKey},
		{method: http.MethodGet, pattern: Prefix + "/slots/{id}/live", handler: a.live},
	}
}

// Handler returns the handler of every route under /api/v1/. Mount it at
// "/api/v1/" (or at "/": it answers 404 only under the prefix and leaves
// nothing else reachable).
func (a *API) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentTypeJSON)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes)
		}
		a.mux.ServeHTTP(w, r)
	})
}

// noRoute answers requests no route matched. To tell 405 from 404 it asks
// the mux which pattern each method of the table would have matched.
func (a *API) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	seen := map[string]bool{}
	for _, rt := range a.routes {
		if seen[rt.method] {
			continue
		}
		seen[rt.method] = true
		probe := r.Clone(r.Context())
		probe.Method = rt.method
		if _, pattern := a.mux.Handler(probe); pattern != Prefix+"/" && pattern != "" {
			allow = append(allow, rt.method)
		}
	}
	if len(allow) == 0 {
		writeError(w, http.StatusNotFound, "no such endpoint", "")
		return
	}
	if slices.Contains(allow, http.MethodGet) {
		allow = append(allow, http.MethodHead)
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed", "")
}
