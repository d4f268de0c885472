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
	"slices"
	"strings"
	"sync"
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
	shutdownTimeout   = 15 * time.Second
)

// Readiness timing. A probe answers within readyTimeout whatever its
// dependencies do (load balancers give a probe 1-2 s and count a slow answer
// as a failure anyway); a dependency check keeps running in the background
// for up to checkTimeout, and later probes wait on that run rather than
// start another.
const (
	readyTimeout = 600 * time.Millisecond
	checkTimeout = 5 * time.Second
	// maxCheckError caps the error text a probe reports per dependency.
	maxCheckError = 300
)

// check is one readiness probe: a dependency the process cannot serve
// without. fn must honour ctx; a fn that does not still cannot delay an
// answer or pile up goroutines (see dependency), but it holds its one run
// until it returns.
type check struct {
	name string
	fn   func(ctx context.Context) error
}

// ops serves /healthz, /readyz and /metrics for a role.
type ops struct {
	registry *prometheus.Registry
	deps     []*dependency
	draining atomic.Bool // set at shutdown so load balancers stop sending work
	logger   *slog.Logger

	// ctx bounds every dependency check; cancelled once the servers stopped.
	ctx    context.Context
	cancel context.CancelFunc
	runs   sync.WaitGroup // dependency checks in flight

	mu        sync.Mutex
	lastState string // failing dependency names of the last probe, for transition logs
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
	o := &ops{registry: reg, logger: logger}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	for _, c := range checks {
		o.deps = append(o.deps, &dependency{check: c, timeout: checkTimeout, ops: o})
	}
	return o
}

// register adds the ops endpoints to mux.
func (o *ops) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", o.healthz)
	mux.HandleFunc("GET /readyz", o.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.registry, promhttp.HandlerOpts{Registry: o.registry}))
}

// healthz answers 200 while the process serves requests at all (liveness).
// It never looks at a dependency: a store outage must take the node out of
// the load balancer (readyz), not get it restarted.
func (o *ops) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 when every dependency answered within readyTimeout,
// else 503 naming each dependency that failed or did not answer in time, so
// a load balancer takes the node out while Redis or the store is
// unreachable or hung, and while the process drains at shutdown. The checks
// run concurrently under one deadline; the answer never waits longer.
//
//	200 {"status":"ok","checks":{"store":"ok","redis":"ok"}}
//	503 {"status":"unavailable","failed":{"store":"no answer within 600ms"},"checks":{…}}
func (o *ops) readyz(w http.ResponseWriter, r *http.Request) {
	failed := map[string]string{}
	checks := map[string]string{}
	if o.draining.Load() {
		failed["shutdown"] = "draining"
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		runs := make([]*checkRun, len(o.deps))
		for i, d := range o.deps {
			runs[i] = d.start() // all at once: the waits below share the deadline
		}
		for i, d := range o.deps {
			if err := runs[i].wait(ctx); err != nil {
				msg := err.Error()
				if len(msg) > maxCheckError {
					msg = msg[:maxCheckError] + "…"
				}
				failed[d.name], checks[d.name] = msg, msg
			} else {
				checks[d.name] = "ok"
			}
		}
		o.logTransition(failed)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "unavailable", "failed": failed, "checks": checks})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "checks": checks})
}

// logTransition logs when the set of failing dependencies changes (a load
// balancer probes every few seconds: a line per probe would bury the cause).
func (o *ops) logTransition(failed map[string]string) {
	names := make([]string, 0, len(failed))
	for n := range failed {
		names = append(names, n)
	}
	slices.Sort(names)
	state := strings.Join(names, ",")
	o.mu.Lock()
	prev := o.lastState
	o.lastState = state
	o.mu.Unlock()
	switch {
	case state == prev:
	case state != "":
		o.logger.Warn("not ready", "failed", failed)
	default:
		o.logger.Info("ready again", "was_failing", prev)
	}
}

// stopChecks cancels the dependency checks in flight and waits for them.
func (o *ops) stopChecks() {
	o.cancel()
	o.runs.Wait()
}

// dependency is one check with at most one run in flight. A probe that
// finds a run in flight waits on it (up to the probe's own deadline)
// instead of starting another, so probes arriving faster than a hung
// dependency answers cost one goroutine per dependency, not one each.
type dependency struct {
	check
	timeout time.Duration
	ops     *ops

	mu  sync.Mutex
	run *checkRun // in flight, or nil
}

// checkRun is one call of a check's fn.
type checkRun struct {
	started time.Time
	done    chan struct{}
	err     error // valid once done is closed
}

// start returns the run in flight, starting one if there is none. The run
// is detached from any request (probes share it) and bounded by the
// dependency's timeout and by shutdown.
func (d *dependency) start() *checkRun {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.run != nil {
		return d.run
	}
	run := &checkRun{started: time.Now(), done: make(chan struct{})}
	d.run = run
	d.ops.runs.Add(1)
	go func() {
		defer d.ops.runs.Done()
		ctx, cancel := context.WithTimeout(d.ops.ctx, d.timeout)
		defer cancel()
		err := d.fn(ctx)
		if err == nil && ctx.Err() != nil {
			err = ctx.Err() // answered, but too late to count as an answer
		}
		run.err = err
		d.mu.Lock()
		d.run = nil
		d.mu.Unlock()
		close(run.done)
	}()
	return run
}

// wait returns the run's result, or an error saying how long the
// dependency has not answered once ctx ends first.
func (run *checkRun) wait(ctx context.Context) error {
	select {
	case <-run.done:
		return run.err
	case <-ctx.Done():
		return fmt.Errorf("no answer within %s", time.Since(run.started).Round(time.Millisecond))
	}
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
	o.stopChecks()
	return first
}
