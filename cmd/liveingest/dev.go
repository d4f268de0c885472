package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/push"
	"github.com/liveingest/liveingest/edge/tlsauto"
	"github.com/liveingest/liveingest/edge/whip/page"
	"github.com/liveingest/liveingest/functions/expire"
	"github.com/liveingest/liveingest/origin/api"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/memory"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/disk"
	"github.com/liveingest/liveingest/origin/store/storemetrics"
)

// DevCmd runs everything in one process: the embedded disk store, in-memory
// coordination and every server (R-OPS-1). Its flags are SPEC §8's.
type DevCmd struct {
	// Data is the directory of the embedded store and local state. Default: ./data.
	Data string `help:"Directory of the embedded store and local state." default:"./data" type:"path"`
	// HTTP is the plain HTTP address: API, UI, playback, health, metrics. Default: :8080.
	HTTP string `name:"http" help:"HTTP address (API, UI, playback, /healthz, /readyz, /metrics)." default:":8080"`
	// HTTPS is the HTTPS address: push, WHIP, API, UI, playback. Default: :8443.
	HTTPS string `name:"https" help:"HTTPS address (push, WHIP, API, UI, playback)." default:":8443"`
	// The stream-key protocols' listen addresses (protocols.go).
	DevIngestFlags `embed:""`
	// PublicHost is the host name used in generated URLs. Default: localhost.
	PublicHost string `help:"Host name used in generated ingest and playback URLs." default:"localhost"`
	// Region is this node's region id. Default: local.
	Region string `help:"Region id of this node." default:"local"`
	// AdminToken is the bearer token of the admin API; generated when empty.
	// Prefer the LIVEINGEST_ADMIN_TOKEN variable over the flag, which other
	// users of the machine can read in the process list. Default: generated.
	AdminToken secret.String `help:"Admin API bearer token (prefer LIVEINGEST_ADMIN_TOKEN); generated when empty." hidden:""`
	// Profile is the optional /debug/pprof listener (pprof.go).
	Profile ProfileFlags `embed:""`
}

// Validate checks every field and names the first bad one.
func (c *DevCmd) Validate() error {
	if c.Data == "" {
		return errors.New("--data: required")
	}
	for _, a := range []struct{ field, addr string }{{"--http", c.HTTP}, {"--https", c.HTTPS}} {
		if err := checkAddr(a.field, a.addr); err != nil {
			return err
		}
	}
	if err := c.DevIngestFlags.validate(); err != nil {
		return err
	}
	if err := c.Profile.validate(); err != nil {
		return err
	}
	if !validHostname(c.PublicHost) {
		return fmt.Errorf("--public-host: invalid host name %q", c.PublicHost)
	}
	if err := checkRegion("--region", c.Region); err != nil {
		return err
	}
	if !c.AdminToken.IsZero() && len(c.AdminToken.Reveal()) < 16 {
		return errors.New("--admin-token: must be at least 16 characters")
	}
	return nil
}

// Run starts dev mode and blocks until ctx ends.
func (c *DevCmd) Run(ctx context.Context, e env) error {
	logger := e.logger.With("service", "dev", "region", c.Region)
	st, err := disk.New(filepath.Join(c.Data, "store"))
	if err != nil {
		return fmt.Errorf("--data: %w", err)
	}
	token, generated := c.AdminToken, false
	if token.IsZero() {
		if token, err = newToken(); err != nil {
			return err
		}
		generated = true
	}
	cert, err := tlsauto.LoadOrCreate(filepath.Join(c.Data, "tls"), certHosts(c.PublicHost), time.Now())
	if err != nil {
		return fmt.Errorf("--data: dev certificate: %w", err)
	}

	// Bind first: the URLs a slot shows must carry the ports really bound
	// (an address like 127.0.0.1:0 picks one).
	httpL, err := listen("http", c.HTTP, nil)
	if err != nil {
		return err
	}
	httpsL, err := listen("https", c.HTTPS, nil)
	if err != nil {
		httpL.ln.Close()
		return err
	}
	deployment := slots.Deployment{
		Regions:   []slots.Region{{ID: c.Region, PublicHost: c.PublicHost}},
		HTTPPort:  httpL.port(),
		HTTPSPort: httpsL.port(),
	}
	ingest := c.DevIngestFlags.config(cert.TLSConfig())
	if err := bindPorts(&ingest, &deployment); err != nil {
		httpL.ln.Close()
		httpsL.ln.Close()
		return err
	}
	co := memory.New(nil)
	o := newOps("dev", logger, check{"store", storeReachable(st)})
	measured, err := storemetrics.Wrap(st, o.registry)
	if err != nil {
		httpL.ln.Close()
		httpsL.ln.Close()
		return err
	}
	svc, err := devService(measured, co, deployment, token, ingest, o.registry, logger)
	if err != nil {
		httpL.ln.Close()
		httpsL.ln.Close()
		return err
	}
	mux := http.NewServeMux()
	o.register(mux)
	mux.Handle("/", svc.handler)
	httpL.srv = newHTTPServer(mux, logger)
	httpsL.srv = newHTTPServer(mux, logger)
	httpsL.srv.TLSConfig = cert.TLSConfig()

	pl, err := c.Profile.listener(logger)
	if err != nil {
		httpL.ln.Close()
		httpsL.ln.Close()
		_ = svc.close(context.Background())
		return err
	}

	printDevSummary(e.stdout, c, deployment, ingest, token, generated, cert)
	logger.Info("started", append([]any{"http", httpL.ln.Addr().String(), "https", httpsL.ln.Addr().String(), "data", c.Data}, svc.logAttrs...)...)
	return serveWith(ctx, o, logger, svc, withProfile([]*listener{httpL, httpsL}, pl)...)
}

// publishPagePath is where dev serves the WHIP publish page.
const publishPagePath = "/publish"

// devExpireInterval is how often dev sweeps expired segments: one second, so
// short file_expiry settings behave as configured.
const devExpireInterval = time.Second

// devExpireRescan is how often dev's sweeper lists every slot's media. Its
// index hears of every segment dev writes (expire.Observe), so the rescan
// only catches what something else put into the data directory.
const devExpireRescan = 10 * time.Minute

// devService is every tier in one: the origin (API, playback), the edge's
// Live Push ingest, and the expiry sweeper.
func devService(st store.Store, co *memory.Coord, d slots.Deployment, token secret.String, ingest ingestConfig, reg prometheus.Registerer, logger *slog.Logger) (roleService, error) {
	repo, err := newRepo(st, d, logger)
	if err != nil {
		return roleService{}, err
	}
	apiFails, err := co.NewLimiter(api.DefaultAuthFailRate)
	if err != nil {
		return roleService{}, err
	}
	mux, err := originMux(repo, st, co, apiFails, token, logger, reg)
	if err != nil {
		return roleService{}, err
	}
	sw, err := newSweeper(repo, st, devExpireInterval, devExpireRescan, reg, logger)
	if err != nil {
		return roleService{}, err
	}
	// The writers' store tells the sweeper of every segment they store, so
	// that a pass deletes what is due without listing the store.
	written := expire.Observe(st, sw)
	// dev is one PoP: it takes the primary role (backup URLs name the same host).
	is, err := startIngest(edgeDeps{
		repo: repo, store: written, locker: co, registry: co, node: "dev", role: keys.Primary, logger: logger, metrics: reg,
		newLimiter: func(r coord.Rate) (coord.Limiter, error) { return co.NewLimiter(r) },
	}, ingest)
	if err != nil {
		return roleService{}, err
	}
	ps, err := newPush(is.admission, written, "dev", keys.Primary, logger, reg)
	if err != nil {
		_ = is.close(context.Background())
		return roleService{}, err
	}
	mux.Handle(push.PathPrefix, ps.Handler())
	is.mount(mux)
	// The browser publish page (camera and microphone → WHIP); on plain
	// HTTP it works from this machine only, as WHIP does.
	mux.Handle(publishPagePath, page.Handler())
	return roleService{handler: mux, background: []func(context.Context){sw.Run}, close: closeAll(is.close, ps.Close), logAttrs: is.bound()}, nil
}

// closeAll closes in order and returns the first error: the stream-key
// ingest first, so its sessions store their last segment while storage is
// up.
func closeAll(closers ...func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		var first error
		for _, c := range closers {
			if err := c(ctx); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
}

// concreteAddr replaces port 0 with a port of network ("tcp" or "udp")
// that is free now, so that the ingest URLs of slots can name it before the
// server binds. (Another process could take it in between; port 0 is for
// tests, which then fail loudly.)
func concreteAddr(network, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != "0" {
		return addr, err
	}
	var bound net.Addr
	if network == "udp" {
		pc, err := net.ListenPacket(network, addr)
		if err != nil {
			return "", err
		}
		defer pc.Close()
		bound = pc.LocalAddr()
	} else {
		l, err := net.Listen(network, addr)
		if err != nil {
			return "", err
		}
		defer l.Close()
		bound = l.Addr()
	}
	_, port, err = net.SplitHostPort(bound.String())
	return net.JoinHostPort(host, port), err
}

// certHosts are the names the dev certificate covers: the public host and
// the loopback names a local client uses.
func certHosts(publicHost string) []string {
	hosts := []string{publicHost}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// addrPort is the port of a validated listen address.
func addrPort(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// storeReachable is the readiness probe of a store: a Stat that reaches the
// backend. A missing probe object is the normal answer.
func storeReachable(st store.Store) func(ctx context.Context) error {
	key, err := keys.Probe("readiness")
	if err != nil {
		panic(err) // a constant name: cannot fail
	}
	return func(ctx context.Context) error {
		if _, err := st.Stat(ctx, key); err != nil && !errors.Is(err, store.ErrNotExist) {
			return err
		}
		return nil
	}
}

// newToken makes an admin token with 256 bits from crypto/rand.
func newToken() (secret.String, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	return secret.String(base64.RawURLEncoding.EncodeToString(b[:])), nil
}

// printDevSummary tells the person at the terminal where everything is. The
// admin token is printed here on purpose (SPEC §8): dev mode is local, and
// the summary goes to stdout, never to the log.
func printDevSummary(w io.Writer, c *DevCmd, d slots.Deployment, ingest ingestConfig, token secret.String, generated bool, cert *tlsauto.SelfSigned) {
	abs, err := filepath.Abs(c.Data)
	if err != nil {
		abs = c.Data
	}
	httpBase := fmt.Sprintf("http://%s", net.JoinHostPort(c.PublicHost, strconv.Itoa(d.HTTPPort)))
	httpsBase := fmt.Sprintf("https://%s", net.JoinHostPort(c.PublicHost, strconv.Itoa(d.HTTPSPort)))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "liveingest dev %s: everything in one process\n", buildVersion())
	fmt.Fprintf(tw, "  region\t%s\n", c.Region)
	fmt.Fprintf(tw, "  data\t%s (embedded store)\n", abs)
	fmt.Fprintf(tw, "  coordination\tin memory\n")
	fmt.Fprintf(tw, "  http\t%s\n", httpBase)
	fmt.Fprintf(tw, "  https\t%s\n", httpsBase)
	for _, l := range devSummaryLines(devEndpoints{host: c.PublicHost, ports: d, httpsBase: httpsBase, config: ingest}) {
		fmt.Fprintf(tw, "  %s\t%s\n", l[0], l[1])
	}
	fmt.Fprintf(tw, "  publish page\t%s%s?slot=<slot id>  (camera and microphone over WHIP)\n", httpBase, publishPagePath)
	fmt.Fprintf(tw, "  api\t%s/api/v1  (OpenAPI: /api/v1/openapi.json)\n", httpBase)
	fmt.Fprintf(tw, "  health\t%s/healthz  /readyz  /metrics\n", httpBase)
	fmt.Fprintf(tw, "  certificate\t%s (self-signed, sha256 %s)\n", cert.CertPath, cert.Fingerprint)
	note := "(configured)"
	if generated {
		note = "(generated for this run; set LIVEINGEST_ADMIN_TOKEN to keep one)"
	}
	fmt.Fprintf(tw, "  admin token\t%s %s\n", token.Reveal(), note)
	fmt.Fprintf(tw, "\ntry: LIVEINGEST_ADMIN_TOKEN=%s liveingest slots --server %s create --name cam-1\n", token.Reveal(), httpBase)
	_ = tw.Flush()
	if f, ok := w.(*os.File); ok {
		_ = f.Sync()
	}
}
