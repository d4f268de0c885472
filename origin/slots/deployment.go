package slots

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Region is one ingest region of the deployment (R-SLOT-3).
type Region struct {
	ID         string // e.g. "local", "eu-west"
	PublicHost string // host name encoders and players use. Default: "localhost".
	BackupHost string // the backup PoP's host; "" means PublicHost (one PoP, as in dev)
}

// Deployment describes where the edges and the origin listen, so that a
// slot's ingest and playback URLs can be derived (R-SLOT-11). The zero ports
// take the defaults of `liveingest dev` (SPEC §8).
type Deployment struct {
	Regions []Region // the first is the default region of new slots

	RTMPPort  int // Default: 1935.
	RTMPSPort int // Default: 1936.
	SRTPort   int // Default: 9000.
	HTTPPort  int // Default: 8080 (playback over http).
	HTTPSPort int // Default: 8443 (push, WHIP, playback over https).
}

// DevDeployment is the deployment of `liveingest dev` with the given
// --public-host and --region (defaults "localhost" and "local").
func DevDeployment(publicHost, region string) Deployment {
	if publicHost == "" {
		publicHost = "localhost"
	}
	if region == "" {
		region = "local"
	}
	return Deployment{Regions: []Region{{ID: region, PublicHost: publicHost}}}.withDefaults()
}

func (d Deployment) withDefaults() Deployment {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&d.RTMPPort, 1935)
	def(&d.RTMPSPort, 1936)
	def(&d.SRTPort, 9000)
	def(&d.HTTPPort, 8080)
	def(&d.HTTPSPort, 8443)
	return d
}

// Validate checks the deployment at start-up; errors name the field.
func (d Deployment) Validate() error {
	if len(d.Regions) == 0 {
		return fmt.Errorf("Deployment.Regions: at least one region is needed")
	}
	seen := map[string]bool{}
	for i, r := range d.Regions {
		if r.ID == "" || strings.ContainsAny(r.ID, " /?#") {
			return fmt.Errorf("Deployment.Regions[%d].ID: %q is not a valid region id", i, r.ID)
		}
		if seen[r.ID] {
			return fmt.Errorf("Deployment.Regions[%d].ID: %q is listed twice", i, r.ID)
		}
		seen[r.ID] = true
		if r.PublicHost == "" {
			return fmt.Errorf("Deployment.Regions[%d].PublicHost: is required", i)
		}
	}
	for name, p := range map[string]int{"RTMPPort": d.RTMPPort, "RTMPSPort": d.RTMPSPort, "SRTPort": d.SRTPort, "HTTPPort": d.HTTPPort, "HTTPSPort": d.HTTPSPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("Deployment.%s: %d is not a port", name, p)
		}
	}
	return nil
}

// Region returns the region with id.
func (d Deployment) Region(id string) (Region, bool) {
	for _, r := range d.Regions {
		if r.ID == id {
			return r, true
		}
	}
	return Region{}, false
}

// RegionIDs lists the configured region ids.
func (d Deployment) RegionIDs() []string {
	ids := make([]string, 0, len(d.Regions))
	for _, r := range d.Regions {
		ids = append(ids, r.ID)
	}
	return ids
}

// DefaultRegion is the region of slots created without one.
func (d Deployment) DefaultRegion() string {
	if len(d.Regions) == 0 {
		return ""
	}
	return d.Regions[0].ID
}

// StreamKeyPlaceholder stands for the stream key in ingest URLs when the key
// is not known: it is stored only as a hash, so only the create and rotate
// responses can show the full URL.
const StreamKeyPlaceholder = "<stream_key>"

// Endpoint is one protocol's ingest URL per role; Backup is "" unless the
// slot has a backup ingest point.
type Endpoint struct {
	Primary string `json:"primary"`
	Backup  string `json:"backup,omitempty"`
}

// IngestURLs are the URLs encoders publish to. Only the protocols the slot's
// type accepts are set: RTMP, RTMPS, SRT and WHIP for transmux and transcode
// slots, push (HTTPS PUT/WebDAV) for live-push slots, none for pull slots.
type IngestURLs struct {
	RTMP  *Endpoint `json:"rtmp,omitempty"`
	RTMPS *Endpoint `json:"rtmps,omitempty"`
	SRT   *Endpoint `json:"srt,omitempty"`
	WHIP  *Endpoint `json:"whip,omitempty"`
	Push  *Endpoint `json:"push,omitempty"`
}

// PlaybackURLs are the URLs players read (R-SLOT-11).
type PlaybackURLs struct {
	HLS       string `json:"hls"`
	DASH      string `json:"dash"`
	HLSHTTPS  string `json:"hls_https"`
	DASHHTTPS string `json:"dash_https"`
}

// IngestURLs derives the slot's ingest URLs. streamKey "" puts
// StreamKeyPlaceholder where the key goes.
//
// The backup ingest point is the same URL on the region's BackupHost with the
// same stream key: the role (primary or backup) is a property of the edge
// that receives the publish (each PoP's edges are configured with their
// role), not of the key, so no second secret exists and the key alone never
// tells which PoP it is for. In a one-host deployment (dev) both URLs name
// the same host.
func (d Deployment) IngestURLs(s *Slot, streamKey string) IngestURLs {
	d = d.withDefaults()
	r, _ := d.Region(s.Region)
	primary, backup := r.PublicHost, r.BackupHost
	if backup == "" {
		backup = primary
	}
	keyText := streamKey
	if keyText == "" {
		keyText = StreamKeyPlaceholder
	}
	ep := func(build func(host string) string) *Endpoint {
		e := &Endpoint{Primary: build(primary)}
		if s.Backup {
			e.Backup = build(backup)
		}
		return e
	}
	var out IngestURLs
	switch {
	case s.Type.Pushed():
		out.RTMP = ep(func(h string) string { return "rtmp://" + hostPort(h, d.RTMPPort, 0) + "/live/" + keyText })
		out.RTMPS = ep(func(h string) string { return "rtmps://" + hostPort(h, d.RTMPSPort, 443) + "/live/" + keyText })
		out.SRT = ep(func(h string) string { return srtURL(hostPort(h, d.SRTPort, 0), streamKey) })
		out.WHIP = ep(func(h string) string { return "https://" + hostPort(h, d.HTTPSPort, 443) + "/whip/" + string(s.ID) })
	case s.Type == TypeLivePush:
		out.Push = ep(func(h string) string {
			return "https://" + hostPort(h, d.HTTPSPort, 443) + "/push/" + string(s.ID) + "/"
		})
	}
	return out
}

// srtURL builds the SRT caller URL with the access-control stream id
// "#!::r=<key>,m=publish" (SRT Access Control guidelines), query-escaped as
// ffmpeg and srt-live-transmit expect. Without a key the placeholder is left
// readable instead of escaped.
func srtURL(hostport, key string) string {
	if key == "" {
		return "srt://" + hostport + "?streamid=" + url.QueryEscape("#!::r=") + StreamKeyPlaceholder + url.QueryEscape(",m=publish")
	}
	return "srt://" + hostport + "?streamid=" + url.QueryEscape("#!::r="+key+",m=publish")
}

// PlaybackURLs derives the slot's playback URLs on the primary host.
func (d Deployment) PlaybackURLs(s *Slot) PlaybackURLs {
	d = d.withDefaults()
	r, _ := d.Region(s.Region)
	httpBase := "http://" + hostPort(r.PublicHost, d.HTTPPort, 80) + "/live/" + string(s.ID) + "/"
	httpsBase := "https://" + hostPort(r.PublicHost, d.HTTPSPort, 443) + "/live/" + string(s.ID) + "/"
	return PlaybackURLs{
		HLS:       httpBase + "index.m3u8",
		DASH:      httpBase + "manifest.mpd",
		HLSHTTPS:  httpsBase + "index.m3u8",
		DASHHTTPS: httpsBase + "manifest.mpd",
	}
}

// hostPort joins host and port, bracketing IPv6 literals and leaving out the
// scheme's default port.
func hostPort(host string, port, schemeDefault int) string {
	if port == schemeDefault {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
