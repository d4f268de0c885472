package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// ProfileFlags expose Go's runtime profiles for an operator who measures a
// node (docs/performance.md). Off by default: a profile is cheap to ask for
// and costly to serve, and its stacks describe the binary, so the listener
// must stay on loopback or a management network.
type ProfileFlags struct {
	// Pprof is the address of the /debug/pprof endpoints; empty: off. Default: "".
	Pprof string `name:"pprof" help:"Address of Go's /debug/pprof profiling endpoints (keep it on loopback, e.g. 127.0.0.1:6060); empty: off."`
}

// profileWriteTimeout bounds one profile response: a CPU profile of
// ?seconds=N writes after N seconds, and the bench asks for up to 10 minutes.
const profileWriteTimeout = 11 * time.Minute

func (f ProfileFlags) validate() error {
	if f.Pprof == "" {
		return nil
	}
	return checkAddr("--pprof", f.Pprof)
}

// listener binds the profiling address, or returns nil when it is off.
func (f ProfileFlags) listener(logger *slog.Logger) (*listener, error) {
	if f.Pprof == "" {
		return nil, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	srv := newHTTPServer(mux, logger)
	srv.WriteTimeout = profileWriteTimeout
	l, err := listen("pprof", f.Pprof, srv)
	if err != nil {
		return nil, err
	}
	if host, _, _ := net.SplitHostPort(l.ln.Addr().String()); !net.ParseIP(host).IsLoopback() {
		logger.Warn("profiling endpoints are reachable beyond this machine", "pprof", l.ln.Addr().String())
	}
	return l, nil
}

// withProfile appends the profiling listener to ls when there is one.
func withProfile(ls []*listener, p *listener) []*listener {
	if p == nil {
		return ls
	}
	return append(ls, p)
}
