package whip

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/pion/sdp/v3"
)

// maxMediaSections caps the m= sections of an offer: a publisher sends one
// video and one audio track (a browser may add a data channel); hundreds
// would only make pion allocate transceivers.
const maxMediaSections = 8

// requestError is a refusal of the request itself (before or beside
// admission), with the HTTP status and the text the client reads.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(status int, format string, args ...any) *requestError {
	return &requestError{status: status, msg: fmt.Sprintf(format, args...)}
}

// offer is what the checks found in an SDP offer.
type offer struct {
	sdp   string
	audio bool // an Opus audio section is offered
	// ufrag is the offer's ICE username fragment: a PATCH with another one
	// asks for an ICE restart.
	ufrag string
}

// parseOffer checks an SDP offer before anything is admitted or
// allocated (RFC 9725 §4.2): it must parse, have ICE credentials, and
// offer H.264 video in packetization mode 1 — the only video the segmenter
// takes from WebRTC. Opus audio is optional. Errors: 400 for a malformed
// offer, 422 for one without an acceptable codec (naming what was offered).
func parseOffer(body []byte) (offer, *requestError) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return offer{}, badRequest(http.StatusBadRequest, "malformed SDP offer: %v", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return offer{}, badRequest(http.StatusBadRequest, "the SDP offer has no media section")
	}
	if len(sd.MediaDescriptions) > maxMediaSections {
		return offer{}, badRequest(http.StatusBadRequest, "the SDP offer has %d media sections (at most %d)", len(sd.MediaDescriptions), maxMediaSections)
	}
	o := offer{sdp: string(body)}
	o.ufrag, _ = sd.Attribute("ice-ufrag")
	var video bool
	var offered []string
	for _, md := range sd.MediaDescriptions {
		if o.ufrag == "" {
			o.ufrag, _ = md.Attribute("ice-ufrag")
		}
		kind := md.MediaName.Media
		if md.MediaName.Port.Value == 0 || (kind != "video" && kind != "audio") {
			continue // rejected section, or a data channel
		}
		for _, c := range sectionCodecs(md) {
			name := strings.ToLower(c.name)
			switch {
			case kind == "video" && name == "h264" && c.packetizationMode1():
				video = true
			case kind == "audio" && name == "opus" && c.clock == "48000":
				o.audio = true
			case name == "rtx" || name == "red" || name == "ulpfec" || name == "flexfec-03" || name == "cn" || name == "telephone-event":
				// repair and comfort streams, not media codecs
			default:
				label := c.name
				if name == "h264" {
					label = "H264 (packetization-mode 0)"
				}
				if !slices.Contains(offered, label) {
					offered = append(offered, label)
				}
			}
		}
	}
	if o.ufrag == "" {
		return offer{}, badRequest(http.StatusBadRequest, "the SDP offer has no ICE credentials (a=ice-ufrag)")
	}
	if !video {
		msg := "no acceptable video codec offered: send H.264 (packetization-mode=1) video, with Opus audio if any"
		if len(offered) > 0 {
			msg += "; offered: " + strings.Join(offered, ", ")
		}
		return offer{}, badRequest(http.StatusUnprocessableEntity, "%s", msg)
	}
	return o, nil
}

// sdpCodec is one payload type of a media section.
type sdpCodec struct {
	pt, name, clock, fmtp string
}

func (c sdpCodec) packetizationMode1() bool {
	for p := range strings.SplitSeq(c.fmtp, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "packetization-mode") {
			return strings.TrimSpace(v) == "1"
		}
	}
	return false
}

// sectionCodecs lists md's payload types with their a=rtpmap and a=fmtp
// (per section: payload type numbers may repeat across sections).
func sectionCodecs(md *sdp.MediaDescription) []sdpCodec {
	byPT := map[string]*sdpCodec{}
	var out []*sdpCodec
	for _, pt := range md.MediaName.Formats {
		c := &sdpCodec{pt: pt}
		byPT[pt] = c
		out = append(out, c)
	}
	for _, a := range md.Attributes {
		pt, rest, _ := strings.Cut(a.Value, " ")
		c, ok := byPT[pt]
		if !ok {
			continue
		}
		switch a.Key {
		case "rtpmap":
			// "H264/90000" or "opus/48000/2"
			parts := strings.Split(rest, "/")
			c.name = parts[0]
			if len(parts) > 1 {
				c.clock = parts[1]
			}
		case "fmtp":
			c.fmtp = rest
		}
	}
	res := make([]sdpCodec, 0, len(out))
	for _, c := range out {
		if c.name != "" {
			res = append(res, *c)
		}
	}
	return res
}

// fragment is a PATCH body of type application/trickle-ice-sdpfrag
// (RFC 8840 §4.4, as RFC 9725 §4.3.1 uses it).
type fragment struct {
	ufrag, pwd string
	candidates []candidate
}

type candidate struct {
	mid   string
	value string // "candidate:…" without "a="
}

// parseFragment reads a trickle-ice-sdpfrag: ICE credentials, m= and
// a=mid lines that say which section the following candidates belong to,
// a=candidate lines and a=end-of-candidates. Other lines are ignored, as
// RFC 8840 asks.
func parseFragment(body []byte) (fragment, error) {
	var f fragment
	mid := ""
	for line := range strings.SplitSeq(string(body), "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case line == "":
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "m="):
			mid = ""
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=candidate:"):
			if len(f.candidates) >= maxFragmentCandidates {
				return fragment{}, errors.New("too many candidates in one fragment")
			}
			f.candidates = append(f.candidates, candidate{mid: mid, value: strings.TrimPrefix(line, "a=")})
		case len(line) < 2 || line[1] != '=':
			return fragment{}, fmt.Errorf("not an SDP line: %.40q", line)
		}
	}
	return f, nil
}

// maxFragmentCandidates bounds one PATCH: a host has a few addresses, each
// with a handful of candidate types.
const maxFragmentCandidates = 64
