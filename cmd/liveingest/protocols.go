package main

// The stream-key protocols of an edge, registered once. Each entry of
// ingestProtocols says which listen addresses it takes from the flags, how
// it is built from the edge's shared admission and segmenter, how it starts,
// how it closes and what it bound; dev and edge both run every entry whose
// addresses are set. A new protocol is its flags in DevIngestFlags and
// EdgeIngestFlags, its values in ingestConfig and its entry below: this
// file only. (Its public port in slot URLs, for edge and origin, is the
// deployment's: DeploymentFlags and slots.Deployment.)

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/rtmp"
	"github.com/liveingest/liveingest/edge/segment"
	"github.com/liveingest/liveingest/edge/srt"
	"github.com/liveingest/liveingest/edge/whip"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
)

// DevIngestFlags are dev's listen addresses of the stream-key protocols.
// dev runs every protocol, so none may be empty.
type DevIngestFlags struct {
	// RTMP is the RTMP ingest address. Default: :1935.
	RTMP string `name:"rtmp" help:"RTMP ingest address." default:":1935"`
	// RTMPS is the RTMPS ingest address. Default: :1936.
	RTMPS string `name:"rtmps" help:"RTMPS ingest address." default:":1936"`
	// SRT is the SRT ingest address (UDP). Default: :9000.
	SRT string `name:"srt" help:"SRT ingest address (UDP)." default:":9000"`
	// WebRTCUDP is the one UDP port of all WebRTC sessions (ICE mux). Default: :8189.
	WebRTCUDP string `name:"webrtc-udp" help:"UDP address for all WebRTC (WHIP) sessions." default:":8189"`
}

// config is the protocols' configuration from dev's flags; tlsConfig
// serves RTMPS (dev's own certificate).
func (f DevIngestFlags) config(tlsConfig *tls.Config) ingestConfig {
	return ingestConfig{RTMP: f.RTMP, RTMPS: f.RTMPS, TLS: tlsConfig, SRT: f.SRT, WebRTCUDP: f.WebRTCUDP}
}

// validate checks every address and names the first bad one.
func (f DevIngestFlags) validate() error {
	c := f.config(nil)
	for _, p := range ingestProtocols {
		for _, l := range p.listens(&c) {
			if err := checkAddr(l.flag, *l.addr); err != nil {
				return err
			}
		}
	}
	return nil
}

// EdgeIngestFlags are an edge's stream-key protocols; an empty address
// turns its listener off.
type EdgeIngestFlags struct {
	// RTMP is the RTMP ingest address; empty turns it off. Default: :1935.
	RTMP string `name:"rtmp" help:"RTMP ingest address; empty: off." default:":1935"`
	// RTMPS is the RTMPS ingest address (needs --tls-cert and --tls-key);
	// empty turns it off. Default: "".
	RTMPS string `name:"rtmps" help:"RTMPS ingest address (needs --tls-cert/--tls-key); empty: off."`
	// SRT is the SRT ingest address (UDP); empty turns it off. Default: :9000.
	SRT string `name:"srt" help:"SRT ingest address (UDP); empty: off." default:":9000"`
	// WebRTCUDP is the one UDP address of every WHIP session's ICE traffic
	// (WHIP's HTTP side is served on --https, and on --http to this machine
	// only); empty turns WHIP off. Default: :8189.
	WebRTCUDP string `name:"webrtc-udp" help:"UDP address of all WebRTC (WHIP) sessions; empty: WHIP off." default:":8189"`
	// WebRTCPublicIPs are the addresses publishers reach --webrtc-udp on,
	// put in WHIP answers instead of the local ones (behind a load
	// balancer or 1:1 NAT). Default: none.
	WebRTCPublicIPs []string `name:"webrtc-public-ips" help:"Public IPs of --webrtc-udp for WHIP answers (behind a load balancer/NAT)."`
	// WebRTCICEServers are STUN/TURN URLs offered to WHIP publishers in
	// Link headers. Default: none.
	WebRTCICEServers []string `name:"webrtc-ice-servers" help:"STUN/TURN URLs offered to WHIP publishers (Link headers)."`
}

// config is the protocols' configuration from the edge's flags; tlsConfig
// serves RTMPS (nil when --rtmps is off).
func (f EdgeIngestFlags) config(tlsConfig *tls.Config) ingestConfig {
	return ingestConfig{RTMP: f.RTMP, RTMPS: f.RTMPS, TLS: tlsConfig, SRT: f.SRT, WebRTCUDP: f.WebRTCUDP,
		WebRTCPublicIPs: f.WebRTCPublicIPs, WebRTCICEServers: f.WebRTCICEServers}
}

// validate checks every field and names the first bad one; haveCert says
// whether --tls-cert and --tls-key are given.
func (f EdgeIngestFlags) validate(haveCert bool) error {
	c := f.config(nil)
	for _, p := range ingestProtocols {
		for _, l := range p.listens(&c) {
			if *l.addr == "" {
				continue
			}
			if err := checkAddr(l.flag, *l.addr); err != nil {
				return err
			}
		}
	}
	for _, ip := range f.WebRTCPublicIPs {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("--webrtc-public-ips: %q is not an IP address", ip)
		}
	}
	for _, u := range f.WebRTCICEServers {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			return fmt.Errorf("--webrtc-ice-servers: %q is not a stun:, turn: or turns: URL", u)
		}
	}
	if f.RTMPS != "" && !haveCert {
		return errors.New("--rtmps: needs --tls-cert and --tls-key")
	}
	return nil
}

// ingestConfig is what the protocols take from the command line, from
// dev's flags or an edge's.
type ingestConfig struct {
	RTMP, RTMPS      string      // TCP
	TLS              *tls.Config // serves RTMPS; required with RTMPS
	SRT              string      // UDP
	WebRTCUDP        string      // UDP: ICE of every WHIP session (WHIP's HTTP side is on the role's mux)
	WebRTCPublicIPs  []string    // the addresses WHIP answers advertise instead of the local ones
	WebRTCICEServers []string    // STUN/TURN URLs offered to WHIP publishers
}

// listenAddr is one listen address a protocol takes from the flags.
type listenAddr struct {
	flag    string  // the flag that sets it, for errors: "--rtmp"
	network string  // "tcp" or "udp"
	addr    *string // the value in the ingestConfig; "" is off (edge only)
	// port is the slots.Deployment port that slot URLs show for it, which
	// dev takes from the address it binds; nil when URLs name none.
	port func(*slots.Deployment) *int
}

// protocolDeps are what every protocol server of an edge is built from: one
// admission (R-EDGE-ADMIT: one lease, rate limit and live registry per slot
// whatever the protocol) and one segmenter (R-SEG-1).
type protocolDeps struct {
	admitter  *admit.Admission
	segmenter *segment.Segmenter
	role      keys.Role // the role every publish to this edge writes as
	logger    *slog.Logger
	metrics   prometheus.Registerer
}

// runningProtocol is a protocol server that start bound.
type runningProtocol struct {
	// close ends the server gracefully within ctx: its sessions flush
	// their last segments and release their leases.
	close func(ctx context.Context) error
	// bound are the addresses really bound as log attributes ("rtmp",
	// "127.0.0.1:1935", …), for the start-up line.
	bound []any
	// mount adds the protocol's HTTP side to the role's mux; nil: none.
	mount func(mux *http.ServeMux)
}

// ingestProtocol is one entry of the list.
type ingestProtocol struct {
	// listens are the protocol's addresses in c; when all are empty the
	// protocol is off.
	listens func(c *ingestConfig) []listenAddr
	// start builds the server from the shared deps and binds it, so that a
	// bind error stops start-up at once.
	start func(c ingestConfig, d protocolDeps) (runningProtocol, error)
	// summary is what dev's start-up summary prints for it: label and
	// what to publish to.
	summary func(e devEndpoints) [][2]string
}

// devEndpoints is what dev's summary builds publish URLs from.
type devEndpoints struct {
	host      string           // --public-host
	ports     slots.Deployment // the ports bound
	httpsBase string           // https://host:port
	config    ingestConfig     // the addresses bound
}

func (e devEndpoints) hostPort(port int) string { return net.JoinHostPort(e.host, strconv.Itoa(port)) }

// ingestProtocols are the stream-key protocols, in start order.
var ingestProtocols = []ingestProtocol{
	{ // RTMP and RTMPS: one server, two listeners.
		listens: func(c *ingestConfig) []listenAddr {
			return []listenAddr{
				{"--rtmp", "tcp", &c.RTMP, func(d *slots.Deployment) *int { return &d.RTMPPort }},
				{"--rtmps", "tcp", &c.RTMPS, func(d *slots.Deployment) *int { return &d.RTMPSPort }},
			}
		},
		start: func(c ingestConfig, d protocolDeps) (runningProtocol, error) {
			s, err := rtmp.New(rtmp.Config{Addr: c.RTMP, TLSAddr: c.RTMPS, TLSConfig: c.TLS, Role: d.role},
				rtmp.Deps{Admitter: d.admitter, Segmenter: d.segmenter, Logger: d.logger, Metrics: d.metrics})
			if err == nil {
				err = s.Start()
			}
			if err != nil {
				return runningProtocol{}, err
			}
			var bound []any
			if a := s.Addr(); a != nil {
				bound = append(bound, "rtmp", a.String())
			}
			if a := s.TLSAddr(); a != nil {
				bound = append(bound, "rtmps", a.String())
			}
			return runningProtocol{close: s.Close, bound: bound}, nil
		},
		summary: func(e devEndpoints) [][2]string {
			return [][2]string{
				{"rtmp", "rtmp://" + e.hostPort(e.ports.RTMPPort) + "/live/<stream key>"},
				{"rtmps", "rtmps://" + e.hostPort(e.ports.RTMPSPort) + "/live/<stream key>"},
			}
		},
	},
	{ // SRT
		listens: func(c *ingestConfig) []listenAddr {
			return []listenAddr{{"--srt", "udp", &c.SRT, func(d *slots.Deployment) *int { return &d.SRTPort }}}
		},
		start: func(c ingestConfig, d protocolDeps) (runningProtocol, error) {
			s, err := srt.New(srt.Config{Addr: c.SRT, Role: d.role},
				srt.Deps{Admitter: d.admitter, Segmenter: d.segmenter, Logger: d.logger, Metrics: d.metrics})
			if err == nil {
				err = s.Start()
			}
			if err != nil {
				return runningProtocol{}, err
			}
			return runningProtocol{close: s.Close, bound: []any{"srt", s.Addr().String()}}, nil
		},
		summary: func(e devEndpoints) [][2]string {
			return [][2]string{{"srt", "srt://" + e.hostPort(e.ports.SRTPort) + "?streamid=#!::r=<stream key>,m=publish"}}
		},
	},
	{ // WHIP: ICE on one UDP port; its HTTP side on the role's mux.
		listens: func(c *ingestConfig) []listenAddr {
			return []listenAddr{{"--webrtc-udp", "udp", &c.WebRTCUDP, nil}}
		},
		start: func(c ingestConfig, d protocolDeps) (runningProtocol, error) {
			var servers []whip.ICEServer
			for _, u := range c.WebRTCICEServers {
				servers = append(servers, whip.ICEServer{URL: u})
			}
			s, err := whip.New(whip.Config{UDPAddr: c.WebRTCUDP, PublicIPs: c.WebRTCPublicIPs, ICEServers: servers, Role: d.role},
				whip.Deps{Admitter: d.admitter, Segmenter: d.segmenter, Logger: d.logger, Metrics: d.metrics})
			if err == nil {
				err = s.Start()
			}
			if err != nil {
				return runningProtocol{}, err
			}
			return runningProtocol{
				close: s.Close, bound: []any{"webrtc_udp", s.UDPAddr().String()},
				mount: func(mux *http.ServeMux) { mux.Handle(whip.PathPrefix, s.Handler()) },
			}, nil
		},
		summary: func(e devEndpoints) [][2]string {
			return [][2]string{{"whip", fmt.Sprintf("%s%s<slot id>  (Authorization: Bearer <stream key>; ICE on UDP %d)",
				e.httpsBase, whip.PathPrefix, addrPort(e.config.WebRTCUDP))}}
		},
	},
}

// bindPorts makes every port 0 of c concrete (see concreteAddr) and sets
// the ports slot URLs show in d, so that dev's URLs name the ports bound.
func bindPorts(c *ingestConfig, d *slots.Deployment) error {
	for _, p := range ingestProtocols {
		for _, l := range p.listens(c) {
			a, err := concreteAddr(l.network, *l.addr)
			if err != nil {
				return fmt.Errorf("%s: %w", l.flag, err)
			}
			*l.addr = a
			if l.port != nil {
				*l.port(d) = addrPort(a)
			}
		}
	}
	return nil
}

// ingestServers are an edge's running protocol servers.
type ingestServers struct {
	admission *admit.Admission // the protocols' one admission, also Live Push's
	running   []runningProtocol
}

// startProtocols starts every protocol of ingestProtocols whose addresses
// c sets. On error the ones started are closed and the error names the
// protocol's flags.
func startProtocols(d protocolDeps, c ingestConfig) (*ingestServers, error) {
	s := &ingestServers{}
	for _, p := range ingestProtocols {
		var flags []string
		for _, l := range p.listens(&c) {
			if *l.addr != "" {
				flags = append(flags, l.flag)
			}
		}
		if len(flags) == 0 {
			continue
		}
		r, err := p.start(c, d)
		if err != nil {
			_ = s.close(context.Background())
			return nil, fmt.Errorf("%s: %w", strings.Join(flags, "/"), err)
		}
		s.running = append(s.running, r)
	}
	return s, nil
}

// mount adds the HTTP side of the protocols (WHIP) to mux.
func (s *ingestServers) mount(mux *http.ServeMux) {
	for _, r := range s.running {
		if r.mount != nil {
			r.mount(mux)
		}
	}
}

// close ends every server gracefully (each flushes its sessions' last
// segments), all at once so that one slow flush does not eat the others'
// shutdown time.
func (s *ingestServers) close(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.running))
	for i, r := range s.running {
		wg.Go(func() { errs[i] = r.close(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// bound lists the addresses really bound, for the start-up log line.
func (s *ingestServers) bound() []any {
	var out []any
	for _, r := range s.running {
		out = append(out, r.bound...)
	}
	return out
}

// devSummaryLines are the protocols' lines of dev's summary.
func devSummaryLines(e devEndpoints) [][2]string {
	var out [][2]string
	for _, p := range ingestProtocols {
		out = append(out, p.summary(e)...)
	}
	return out
}
