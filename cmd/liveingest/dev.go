package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/disk"
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
	// RTMP is the RTMP ingest address. Default: :1935.
	RTMP string `name:"rtmp" help:"RTMP ingest address." default:":1935"`
	// RTMPS is the RTMPS ingest address. Default: :1936.
	RTMPS string `name:"rtmps" help:"RTMPS ingest address." default:":1936"`
	// SRT is the SRT ingest address (UDP). Default: :9000.
	SRT string `name:"srt" help:"SRT ingest address (UDP)." default:":9000"`
	// WebRTCUDP is the one UDP port of all WebRTC sessions (ICE mux). Default: :8189.
	WebRTCUDP string `name:"webrtc-udp" help:"UDP address for all WebRTC (WHIP) sessions." default:":8189"`
	// PublicHost is the host name used in generated URLs. Default: localhost.
	PublicHost string `help:"Host name used in generated ingest and playback URLs." default:"localhost"`
	// Region is this node's region id. Default: local.
	Region string `help:"Region id of this node." default:"local"`
	// AdminToken is the bearer token of the admin API; generated when empty.
	// Prefer the LIVEINGEST_ADMIN_TOKEN variable over the flag, which other
	// users of the machine can read in the process list. Default: generated.
	AdminToken secret.String `help:"Admin API bearer token (prefer LIVEINGEST_ADMIN_TOKEN); generated when empty." hidden:""`
}

// Validate checks every field and names the first bad one.
func (c *DevCmd) Validate() error {
	if c.Data == "" {
		return errors.New("--data: required")
	}
	for _, a := range []struct{ field, addr string }{
		{"--http", c.HTTP}, {"--https", c.HTTPS}, {"--rtmp", c.RTMP}, {"--rtmps", c.RTMPS},
		{"--srt", c.SRT}, {"--webrtc-udp", c.WebRTCUDP},
	} {
		if err := checkAddr(a.field, a.addr); err != nil {
			return err
		}
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
	logger := e.logger.With("role", "dev", "region", c.Region)
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

	o := newOps("dev", logger, check{"store", storeReachable(st)})
	mux := http.NewServeMux()
	o.register(mux)
	httpL, err := listen("http", c.HTTP, newHTTPServer(mux, logger))
	if err != nil {
		return err
	}
	printDevSummary(e.stdout, c, httpL.ln.Addr(), token, generated)
	logger.Info("started", "http", httpL.ln.Addr().String(), "data", c.Data)
	return serve(ctx, o, logger, httpL)
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
func printDevSummary(w io.Writer, c *DevCmd, httpAddr net.Addr, token secret.String, generated bool) {
	abs, err := filepath.Abs(c.Data)
	if err != nil {
		abs = c.Data
	}
	port := httpAddr.(*net.TCPAddr).Port
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "liveingest dev %s: everything in one process\n", buildVersion())
	fmt.Fprintf(tw, "  region\t%s\n", c.Region)
	fmt.Fprintf(tw, "  data\t%s (embedded store)\n", abs)
	fmt.Fprintf(tw, "  coordination\tin memory\n")
	fmt.Fprintf(tw, "  http\thttp://%s:%d\n", c.PublicHost, port)
	fmt.Fprintf(tw, "  health\thttp://%s:%d/healthz  /readyz  /metrics\n", c.PublicHost, port)
	note := "(configured)"
	if generated {
		note = "(generated for this run; set LIVEINGEST_ADMIN_TOKEN to keep one)"
	}
	fmt.Fprintf(tw, "  admin token\t%s %s\n", token.Reveal(), note)
	_ = tw.Flush()
	if f, ok := w.(*os.File); ok {
		_ = f.Sync()
	}
}
