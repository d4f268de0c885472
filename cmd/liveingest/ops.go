package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server timeouts. Handlers that stream long bodies (segment uploads, later)
// extend their own deadlines with http.ResponseController.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 64 << 10
	checkTimeout      = 2 * time.Second
	shutdownTimeout   = 15 * time.Second
)

// check is one readiness probe: a dependency the process cannot serve without.
type check struct {
	name string
	fn   func(ctx context.Context) error
}

// ops serves /healthz, /readyz and /metrics for a role.
type ops struct {
	registry *prometheus.Registry
	checks   []check
	draining atomic.Bool // set at shutdown so load balancers stop sending work
	logger   *slog.Logger
}

func newOps(role string, logger *slog.Logger, checks ...check) *ops {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "liveingest_build_info",
			Help:        "Build information; always 1.",
			ConstLabels: prometheus.Labels{"version": buildVersion(), "goversion": runtime.Version(), "role": role},
		}, func() float64 { return 1 }),
	)
	return &ops{registry: reg, checks: checks, logger: logger}
}

// register adds the ops endpoints to mux.
func (o *ops) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", o.healthz)
	mux.HandleFunc("GET /readyz", o.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.registry, promhttp.HandlerOpts{Registry: o.registry}))
}

// healthz answers 200 while the process serves requests at all (liveness).
func (o *ops) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 when every dependency answers, else 503 with the failing
// checks, so a load balancer takes the node out while Redis or the store is
// unreachable, and while the process drains at shutdown.
func (o *ops) readyz(w http.ResponseWriter, r *http.Request) {
	failed := map[string]string{}
	if o.draining.Load() {
		failed["shutdown"] = "draining"
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		type result struct {
			name string
			err  error
		}
		results := make(chan result, len(o.checks))
		for _, c := range o.checks {
			go func() { results <- result{c.name, c.fn(ctx)} }()
		}
		for range o.checks {
			if res := <-results; res.err != nil {
				failed[res.name] = res.err.Error()
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if len(failed) > 0 {
		o.logger.Warn("not ready", "failed", failed)
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "unavailable", "failed": failed})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok"})
}

// newHTTPServer is the one place HTTP servers get their limits.
func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// listener is a bound server waiting to be served.
type listener struct {
	name string
	ln   net.Listener
	srv  *http.Server
}

// port is the bound TCP port.
func (l *listener) port() int { return l.ln.Addr().(*net.TCPAddr).Port }

// listen binds addr now, so that a taken port fails start-up with a clear
// error before anything is announced. srv may be set later, before serve.
func listen(name, addr string, srv *http.Server) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--%s: listen on %s: %w", name, addr, err)
	}
	return &listener{name: name, ln: ln, srv: srv}, nil
}

// serve runs the servers until ctx ends or one fails, then shuts all down
// gracefully: readiness turns 503 first, in-flight requests get
// shutdownTimeout to finish.
func serve(ctx context.Context, o *ops, logger *slog.Logger, ls ...*listener) error {
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() {
			var err error
			if l.srv.TLSConfig != nil {
				err = l.srv.ServeTLS(l.ln, "", "") // certificates come from TLSConfig
			} else {
				err = l.srv.Serve(l.ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			} else if err != nil {
				err = fmt.Errorf("%s server: %w", l.name, err)
			}
			errc <- err
		}()
	}
	var first error
	pending := len(ls)
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "cause", context.Cause(ctx))
	case first = <-errc:
		pending--
		logger.Error("server failed", "err", first)
	}
	o.draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, l := range ls {
		if err := l.srv.Shutdown(sctx); err != nil && first == nil {
			first = fmt.Errorf("%s server shutdown: %w", l.name, err)
		}
	}
	for ; pending > 0; pending-- {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}
