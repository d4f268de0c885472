package whip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

// videoFeedback is what the answer offers the publisher's video sender:
// NACK (retransmission), PLI and FIR (keyframe requests, how segments get
// cut on time) and REMB/transport-cc (bandwidth estimation; transport-cc
// feedback comes from the default interceptors).
var videoFeedback = []webrtc.RTCPFeedback{
	{Type: webrtc.TypeRTCPFBGoogREMB}, {Type: webrtc.TypeRTCPFBTransportCC},
	{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"}, {Type: webrtc.TypeRTCPFBNACK}, {Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
}

// h264Profiles are the H.264 profiles taken, all with packetization mode 1
// (single NAL units, STAP-A and FU-A: what browsers send). pion matches
// offers on the profile, not the level, so one entry per profile serves
// every level. Mode 0 is left out: one NAL unit per packet caps the frame
// size at the MTU.
var h264Profiles = []struct {
	pt, rtx webrtc.PayloadType
	fmtp    string
}{
	{106, 107, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, // constrained baseline
	{102, 103, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"}, // baseline
	{127, 125, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f"}, // main
	{112, 113, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"}, // high
}

// opusPT is the Opus payload type of the answer when the offer leaves the
// choice to us (a browser's offer decides).
const opusPT = 111

// mediaEngine registers the codecs the segmenter can carry from WebRTC:
// H.264 and Opus. VP8, VP9, AV1 and H.265 are negotiated away (not in the
// answer), so a publisher offering them with H.264 sends H.264.
func mediaEngine() (*webrtc.MediaEngine, error) {
	me := &webrtc.MediaEngine{}
	for _, p := range h264Profiles {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: p.fmtp, RTCPFeedback: videoFeedback,
			},
			PayloadType: p.pt,
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
		// RTX: retransmissions on their own SSRC; pion folds them back
		// into the track.
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{
				MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: fmt.Sprintf("apt=%d", p.pt),
			},
			PayloadType: p.rtx,
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: opusPT,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	return me, nil
}

// newAPI builds the pion API all sessions share: the codecs above, the
// default interceptors (NACK generation, receiver reports, transport-cc
// feedback so the publisher's congestion control can ramp up), and ICE over
// mux — one UDP socket for every session.
func newAPI(cfg Config, mux ice.UDPMux, bound net.IP, logger *slog.Logger) (*webrtc.API, error) {
	me, err := mediaEngine()
	if err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{LoggerFactory: pionLogs{logger}}
	se.SetICEUDPMux(mux)
	// Host candidates only, on the mux's address: no STUN gathering on the
	// server (the public address is configured), no mDNS.
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if !bound.IsUnspecified() {
		se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(bound) })
	}
	// A loopback listener (dev, tests) must offer its loopback address.
	se.SetIncludeLoopbackCandidate(bound.IsLoopback())
	if len(cfg.PublicIPs) > 0 {
		// Behind a load balancer or 1:1 NAT the host candidate carries the
		// public address instead of the private one.
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: cfg.PublicIPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return nil, fmt.Errorf("whip: Config.PublicIPs: %w", err)
		}
	}
	// A publisher whose path breaks is noticed by the media timeout; ICE's
	// own failure detection ends it a little later at most.
	se.SetICETimeouts(cfg.MediaTimeout/2, cfg.MediaTimeout, 2*time.Second)
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// pionLogs sends pion's own logs to slog at debug level (errors at warn):
// they describe individual packets and peers, which is noise at the info
// level.
type pionLogs struct{ l *slog.Logger }

func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{p.l.With("pion", scope)}
}

type pionLogger struct{ l *slog.Logger }

func (p pionLogger) log(level slog.Level, msg string) {
	p.l.Log(context.Background(), level, msg)
}

func (p pionLogger) Trace(string)          {}
func (p pionLogger) Tracef(string, ...any) {}
func (p pionLogger) Debug(msg string)      { p.log(slog.LevelDebug, msg) }
func (p pionLogger) Debugf(format string, args ...any) {
	p.log(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (p pionLogger) Info(msg string) { p.log(slog.LevelDebug, msg) }
func (p pionLogger) Infof(format string, args ...any) {
	p.log(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (p pionLogger) Warn(msg string) { p.log(slog.LevelDebug, msg) }
func (p pionLogger) Warnf(format string, args ...any) {
	p.log(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (p pionLogger) Error(msg string) { p.log(slog.LevelWarn, msg) }
func (p pionLogger) Errorf(format string, args ...any) {
	p.log(slog.LevelWarn, fmt.Sprintf(format, args...))
}
