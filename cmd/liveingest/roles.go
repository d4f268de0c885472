package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/push"
	"github.com/liveingest/liveingest/origin/api"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"

	coordredis "github.com/liveingest/liveingest/origin/coord/redis"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/store/s3"
	"github.com/liveingest/liveingest/origin/store/storemetrics"
)

// S3Flags configure the S3 store of a deployed role. The env tags are
// explicit because kong's default naming splits "s3" into "S_3".
type S3Flags struct {
	// Endpoint is the S3 endpoint URL; empty means AWS. Default: "".
	Endpoint string `name:"s3-endpoint" env:"LIVEINGEST_S3_ENDPOINT" help:"S3 endpoint URL (MinIO, LocalStack); empty for AWS."`
	// Region is the bucket's region. Default: us-east-1.
	Region string `name:"s3-region" env:"LIVEINGEST_S3_REGION" help:"S3 region." default:"us-east-1"`
	// Bucket holds segments, manifests and slot configuration. Default: none (required).
	Bucket string `name:"s3-bucket" env:"LIVEINGEST_S3_BUCKET" help:"S3 bucket (required)."`
	// PathStyle selects path-style addressing. Default: false.
	PathStyle bool `name:"s3-path-style" env:"LIVEINGEST_S3_PATH_STYLE" help:"Use path-style addressing (MinIO, LocalStack)."`
	// AccessKey is a static access key id; empty means the AWS credential chain. Default: "".
	AccessKey string `name:"s3-access-key" env:"LIVEINGEST_S3_ACCESS_KEY" help:"Static access key id; empty for the AWS credential chain."`
	// SecretKey goes with AccessKey; prefer LIVEINGEST_S3_SECRET_KEY. Default: "".
	SecretKey secret.String `name:"s3-secret-key" env:"LIVEINGEST_S3_SECRET_KEY" help:"Static secret key (prefer LIVEINGEST_S3_SECRET_KEY)." hidden:""`
}

func (f S3Flags) config() s3.Config {
	return s3.Config{
		Endpoint: f.Endpoint, Region: f.Region, Bucket: f.Bucket, PathStyle: f.PathStyle,
		AccessKey: f.AccessKey, SecretKey: f.SecretKey,
	}
}

// RedisFlags configure the coordination service of a deployed role.
type RedisFlags struct {
	// Addr is the Redis address. Default: 127.0.0.1:6379.
	Addr string `name:"redis-addr" help:"Redis address host:port." default:"127.0.0.1:6379"`
	// Password is the Redis AUTH password; prefer LIVEINGEST_REDIS_PASSWORD. Default: none.
	Password secret.String `name:"redis-password" help:"Redis password (prefer LIVEINGEST_REDIS_PASSWORD)." hidden:""`
	// DB is the Redis database number. Default: 0.
	DB int `name:"redis-db" help:"Redis database number." default:"0"`
	// TLS connects with TLS. Default: false.
	TLS bool `name:"redis-tls" help:"Connect to Redis with TLS."`
	// Namespace prefixes every Redis key. Default: liveingest.
	Namespace string `name:"redis-namespace" help:"Prefix of every Redis key." default:"liveingest"`
}

func (f RedisFlags) config() coordredis.Config {
	return coordredis.Config{Addr: f.Addr, Password: f.Password.Reveal(), DB: f.DB, TLS: f.TLS, Namespace: f.Namespace}
}

// DeploymentFlags describe the public face of the deployment, from which
// slots' ingest and playback URLs are built (R-SLOT-11, R-GEO-1).
type DeploymentFlags struct {
	// PublicHost is the ingest host name of this node's region. Default: localhost.
	PublicHost string `help:"Public ingest host name of this node's region." default:"localhost"`
	// IngestRegions lists every region as ID=HOST or ID=HOST/BACKUP_HOST; empty
	// means this node's region at --public-host only. Default: none.
	IngestRegions []string `name:"ingest-regions" help:"Regions as ID=HOST[/BACKUP_HOST] (repeatable or comma-separated); default this node's region."`
	// Public ports encoders and players connect to (behind load balancers they
	// differ from the listen ports). Defaults: 1935, 1936, 9000, 8080, 8443.
	PublicRTMPPort  int `name:"public-rtmp-port" help:"Public RTMP port in generated URLs." default:"1935"`
	PublicRTMPSPort int `name:"public-rtmps-port" help:"Public RTMPS port in generated URLs." default:"1936"`
	PublicSRTPort   int `name:"public-srt-port" help:"Public SRT port in generated URLs." default:"9000"`
	PublicHTTPPort  int `name:"public-http-port" help:"Public HTTP port in generated URLs." default:"8080"`
	PublicHTTPSPort int `name:"public-https-port" help:"Public HTTPS port in generated URLs." default:"8443"`
}

// deployment builds the slots.Deployment; region is this node's region.
func (f DeploymentFlags) deployment(region string) (slots.Deployment, error) {
	d := slots.Deployment{
		RTMPPort: f.PublicRTMPPort, RTMPSPort: f.PublicRTMPSPort, SRTPort: f.PublicSRTPort,
		HTTPPort: f.PublicHTTPPort, HTTPSPort: f.PublicHTTPSPort,
	}
	if !validHostname(f.PublicHost) {
		return d, fmt.Errorf("--public-host: invalid host name %q", f.PublicHost)
	}
	if len(f.IngestRegions) == 0 {
		d.Regions = []slots.Region{{ID: region, PublicHost: f.PublicHost}}
	}
	for _, spec := range f.IngestRegions {
		id, hosts, ok := strings.Cut(spec, "=")
		primary, backup, _ := strings.Cut(hosts, "/")
		if !ok || checkRegion("--ingest-regions", id) != nil || !validHostname(primary) || (backup != "" && !validHostname(backup)) {
			return d, fmt.Errorf("--ingest-regions: %q is not ID=HOST[/BACKUP_HOST]", spec)
		}
		d.Regions = append(d.Regions, slots.Region{ID: id, PublicHost: primary, BackupHost: backup})
	}
	if _, ok := d.Region(region); !ok {
		return d, fmt.Errorf("--ingest-regions: this node's region %q is not listed", region)
	}
	for name, p := range map[string]int{"--public-rtmp-port": f.PublicRTMPPort, "--public-rtmps-port": f.PublicRTMPSPort,
		"--public-srt-port": f.PublicSRTPort, "--public-http-port": f.PublicHTTPPort, "--public-https-port": f.PublicHTTPSPort} {
		if p < 1 || p > 65535 {
			return d, fmt.Errorf("%s: %d is not a port", name, p)
		}
	}
	return d, d.Validate()
}

// RoleFlags are common to edge, origin and functions.
type RoleFlags struct {
	// HTTP serves health, readiness, metrics and the role's HTTP service. Default: :8080.
	HTTP string `name:"http" help:"HTTP address (/healthz, /readyz, /metrics and the role's service)." default:":8080"`
	// Region is this node's region id. Default: local.
	Region string `help:"Region id of this node." default:"local"`
	// HTTPS serves the role's service over TLS with --tls-cert/--tls-key;
	// empty turns it off. Default: "".
	HTTPS string `name:"https" help:"HTTPS address for the role's service (needs --tls-cert and --tls-key); empty: off."`
	// TLSCert and TLSKey are PEM files of the HTTPS certificate and key. Default: "".
	TLSCert string `name:"tls-cert" help:"PEM certificate (chain) for --https." type:"path"`
	TLSKey  string `name:"tls-key" help:"PEM private key for --https." type:"path"`
	// NodeID names this node in leases and live status. Default: the host name.
	NodeID string `help:"Id of this node in leases and live status; default the host name."`

	S3         S3Flags         `embed:""`
	Redis      RedisFlags      `embed:""`
	Deployment DeploymentFlags `embed:""`
	Profile    ProfileFlags    `embed:""`
}

// Validate checks every field and names the first bad one.
func (r *RoleFlags) Validate() error {
	if err := checkAddr("--http", r.HTTP); err != nil {
		return err
	}
	if err := checkRegion("--region", r.Region); err != nil {
		return err
	}
	if err := r.Profile.validate(); err != nil {
		return err
	}
	if r.HTTPS != "" {
		if err := checkAddr("--https", r.HTTPS); err != nil {
			return err
		}
		if r.TLSCert == "" || r.TLSKey == "" {
			return errors.New("--https: needs --tls-cert and --tls-key")
		}
	}
	if r.NodeID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return errors.New("--node-id: required (no host name to default to)")
		}
		r.NodeID = h
	}
	if !validHostname(r.NodeID) {
		return fmt.Errorf("--node-id: invalid id %q (letters, digits, '-', '.')", r.NodeID)
	}
	if _, err := r.Deployment.deployment(r.Region); err != nil {
		return err
	}
	if err := r.S3.config().Validate(); err != nil {
		return err
	}
	return r.Redis.config().Validate()
}

// roleDeps are what a deployed role's service is built from.
type roleDeps struct {
	store   store.Store // s3, measured (liveingest_store_operation_seconds)
	s3      *s3.Store   // the same store unwrapped, for what only S3 has
	coord   *coordredis.Coord
	node    string
	metrics prometheus.Registerer
	logger  *slog.Logger
}

// roleService is a role's own work beside the ops endpoints.
type roleService struct {
	handler    http.Handler                    // mounted at "/" on the role's servers; nil: ops only
	background []func(ctx context.Context)     // run until the role stops (sweepers)
	close      func(ctx context.Context) error // after the servers stopped; may be nil
	logAttrs   []any                           // added to the "started" line (e.g. bound addresses)
}

// runRole connects a deployed role to S3 and Redis and serves its ops
// endpoints and its service until ctx ends. Start-up fails with a clear
// error when either dependency is missing or unsuitable, so a broken
// deployment never reports ready.
func runRole(ctx context.Context, e env, role string, r *RoleFlags, build func(roleDeps) (roleService, error)) error {
	logger := e.logger.With("service", role, "region", r.Region, "node", r.NodeID)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := s3.New(sctx, r.S3.config())
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	co, err := coordredis.New(r.Redis.config())
	if err != nil {
		return fmt.Errorf("coordination: %w", err)
	}
	defer co.Close()
	if err := co.Ping(sctx); err != nil {
		return fmt.Errorf("coordination: %w", err)
	}
	o := newOps(role, logger, check{"store", storeReachable(st)}, check{"redis", co.Ping})
	measured, err := storemetrics.Wrap(st, o.registry)
	if err != nil {
		return err
	}
	svc, err := build(roleDeps{store: measured, s3: st, coord: co, node: r.NodeID, metrics: o.registry, logger: logger})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	o.register(mux)
	if svc.handler != nil {
		mux.Handle("/", svc.handler)
	}
	ls := []*listener{}
	l, err := listen("http", r.HTTP, newHTTPServer(mux, logger))
	if err != nil {
		return err
	}
	ls = append(ls, l)
	if r.HTTPS != "" {
		cert, err := tls.LoadX509KeyPair(r.TLSCert, r.TLSKey)
		if err != nil {
			l.ln.Close()
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tl, err := listen("https", r.HTTPS, newHTTPServer(mux, logger))
		if err != nil {
			l.ln.Close()
			return err
		}
		tl.srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		ls = append(ls, tl)
	}
	attrs := []any{"http", l.ln.Addr().String(), "bucket", r.S3.Bucket, "redis", r.Redis.Addr}
	if len(ls) > 1 {
		attrs = append(attrs, "https", ls[1].ln.Addr().String())
	}
	pl, err := r.Profile.listener(logger)
	if err != nil {
		for _, l := range ls {
			l.ln.Close()
		}
		return err
	}
	ls = withProfile(ls, pl)
	logger.Info("started", append(attrs, svc.logAttrs...)...)
	return serveWith(ctx, o, logger, svc, ls...)
}

// serveWith runs svc's background work beside the servers and stops it,
// then closes svc, after the servers shut down.
func serveWith(ctx context.Context, o *ops, logger *slog.Logger, svc roleService, ls ...*listener) error {
	bctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, run := range svc.background {
		wg.Go(func() { run(bctx) })
	}
	err := serve(ctx, o, logger, ls...)
	stop()
	wg.Wait()
	if svc.close != nil {
		cctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if cerr := svc.close(cctx); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

// EdgeCmd runs an ingest edge.
type EdgeCmd struct {
	RoleFlags `embed:""`
	// IngestRole is the role publishers to this edge write as: the edges of
	// a region's backup PoP run with backup (R-SLOT-3). Default: primary.
	IngestRole string `help:"Ingest role of this edge: primary, or backup for a backup PoP." default:"primary" enum:"primary,backup"`
	// The stream-key protocols (protocols.go).
	EdgeIngestFlags `embed:""`
}

// Validate checks the edge's own fields after the common ones.
func (c *EdgeCmd) Validate() error {
	if err := c.RoleFlags.Validate(); err != nil {
		return err
	}
	return c.EdgeIngestFlags.validate(c.TLSCert != "" && c.TLSKey != "")
}

// Run starts the edge.
func (c *EdgeCmd) Run(ctx context.Context, e env) error {
	d, err := c.Deployment.deployment(c.Region)
	if err != nil {
		return err
	}
	return runRole(ctx, e, "edge", &c.RoleFlags, func(rd roleDeps) (roleService, error) {
		repo, err := newRepo(rd.store, d, rd.logger)
		if err != nil {
			return roleService{}, err
		}
		var tlsConfig *tls.Config
		if c.RTMPS != "" {
			cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
			if err != nil {
				return roleService{}, fmt.Errorf("--tls-cert/--tls-key: %w", err)
			}
			tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		}
		is, err := startIngest(edgeDeps{
			repo: repo, store: rd.store, locker: rd.coord, registry: rd.coord, node: rd.node,
			role: keys.Role(c.IngestRole), logger: rd.logger, metrics: rd.metrics,
			newLimiter: func(r coord.Rate) (coord.Limiter, error) { return rd.coord.NewLimiter(r) },
		}, c.EdgeIngestFlags.config(tlsConfig))
		if err != nil {
			return roleService{}, err
		}
		ps, err := newPush(is.admission, rd.store, rd.node, keys.Role(c.IngestRole), rd.logger, rd.metrics)
		if err != nil {
			_ = is.close(context.Background())
			return roleService{}, err
		}
		mux := http.NewServeMux()
		mux.Handle(push.PathPrefix, ps.Handler())
		is.mount(mux)
		return roleService{handler: mux, close: closeAll(is.close, ps.Close), logAttrs: is.bound()}, nil
	})
}

// OriginCmd runs the origin: the slots API (and, as they land, playback and
// the configuration UI).
type OriginCmd struct {
	RoleFlags `embed:""`
	// AdminToken is the API's bearer token; prefer LIVEINGEST_ADMIN_TOKEN.
	// Default: none (required, at least 16 characters).
	AdminToken secret.String `help:"Admin API bearer token (prefer LIVEINGEST_ADMIN_TOKEN)." hidden:""`
}

// Validate checks the origin's own fields after the common ones.
func (c *OriginCmd) Validate() error {
	if err := c.RoleFlags.Validate(); err != nil {
		return err
	}
	if len(c.AdminToken.Reveal()) < 16 {
		return errors.New("--admin-token: required, at least 16 characters (set LIVEINGEST_ADMIN_TOKEN)")
	}
	return nil
}

// Run starts the origin.
func (c *OriginCmd) Run(ctx context.Context, e env) error {
	d, err := c.Deployment.deployment(c.Region)
	if err != nil {
		return err
	}
	return runRole(ctx, e, "origin", &c.RoleFlags, func(rd roleDeps) (roleService, error) {
		repo, err := newRepo(rd.store, d, rd.logger)
		if err != nil {
			return roleService{}, err
		}
		authFails, err := rd.coord.NewLimiter(api.DefaultAuthFailRate)
		if err != nil {
			return roleService{}, err
		}
		mux, err := originMux(repo, rd.store, rd.coord, authFails, c.AdminToken, rd.logger, rd.metrics)
		return roleService{handler: mux}, err
	})
}

// FunctionsCmd runs the function worker: today the expiry sweeper, and the
// bucket lifecycle backstop it installs at start-up.
type FunctionsCmd struct {
	RoleFlags `embed:""`
	// ExpireInterval is how often expired segments are swept; a pass
	// deletes what its index says is due and lists nothing while a slot has
	// indexed segments. Default: 2s.
	ExpireInterval time.Duration `help:"How often expired segments are deleted." default:"2s"`
	// ExpireRescan is how often every slot's media is listed in full, so
	// that the sweeper indexes the segments the edges (other processes)
	// wrote: a segment due before the rescan after its write can be late by
	// up to this much. Each rescan costs a listing of everything stored.
	// Default: 1m.
	ExpireRescan time.Duration `help:"How often the expiry index is reconciled with a full listing of the store." default:"1m"`
}

// Validate checks the worker's own fields after the common ones.
func (c *FunctionsCmd) Validate() error {
	if err := c.RoleFlags.Validate(); err != nil {
		return err
	}
	if c.ExpireInterval < 100*time.Millisecond || c.ExpireInterval > time.Hour {
		return fmt.Errorf("--expire-interval: %s is outside 100ms..1h", c.ExpireInterval)
	}
	if c.ExpireRescan < time.Second || c.ExpireRescan > 24*time.Hour {
		return fmt.Errorf("--expire-rescan: %s is outside 1s..24h", c.ExpireRescan)
	}
	return nil
}

// Run starts the worker.
func (c *FunctionsCmd) Run(ctx context.Context, e env) error {
	d, err := c.Deployment.deployment(c.Region)
	if err != nil {
		return err
	}
	return runRole(ctx, e, "functions", &c.RoleFlags, func(rd roleDeps) (roleService, error) {
		// The day-granular backstop (R-EXPIRE-1): segments the sweeper
		// missed (a worker down for days) still go; manifests never match.
		st := rd.s3
		var rules []s3.LifecycleRule
		for _, r := range lifecycle.S3Rules(slots.MaxFileExpiry * time.Second) {
			rules = append(rules, s3.LifecycleRule(r))
		}
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := st.InstallLifecycle(lctx, rules); err != nil {
			return roleService{}, fmt.Errorf("storage: install lifecycle rules: %w", err)
		}
		repo, err := newRepo(rd.store, d, rd.logger)
		if err != nil {
			return roleService{}, err
		}
		sw, err := newSweeper(repo, rd.store, c.ExpireInterval, c.ExpireRescan, rd.metrics, rd.logger)
		if err != nil {
			return roleService{}, err
		}
		return roleService{background: []func(context.Context){sw.Run}}, nil
	})
}
