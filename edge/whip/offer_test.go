package whip

import (
	"net/http"
	"strings"
	"testing"
)

// sdpOffer builds an offer with the given media sections (each a block
// of lines starting with m=).
func sdpOffer(sections ...string) string {
	s := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n"
	for _, m := range sections {
		s += strings.ReplaceAll(strings.TrimSpace(m), "\n", "\r\n") + "\r\n"
	}
	return s
}

const (
	h264Section = `m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103
c=IN IP4 0.0.0.0
a=mid:0
a=ice-ufrag:abcd
a=ice-pwd:0123456789012345678901
a=fingerprint:sha-256 00:11
a=setup:actpass
a=sendonly
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=rtpmap:102 H264/90000
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f
a=rtpmap:103 rtx/90000
a=fmtp:103 apt=102`
	opusSection = `m=audio 9 UDP/TLS/RTP/SAVPF 111 0
c=IN IP4 0.0.0.0
a=mid:1
a=ice-ufrag:abcd
a=ice-pwd:0123456789012345678901
a=sendonly
a=rtpmap:111 opus/48000/2
a=rtpmap:0 PCMU/8000`
	vp8Section = `m=video 9 UDP/TLS/RTP/SAVPF 96 98
c=IN IP4 0.0.0.0
a=mid:0
a=ice-ufrag:abcd
a=ice-pwd:0123456789012345678901
a=rtpmap:96 VP8/90000
a=rtpmap:98 VP9/90000`
	h264Mode0Section = `m=video 9 UDP/TLS/RTP/SAVPF 104
c=IN IP4 0.0.0.0
a=mid:0
a=ice-ufrag:abcd
a=ice-pwd:0123456789012345678901
a=rtpmap:104 H264/90000
a=fmtp:104 packetization-mode=0;profile-level-id=42e01f`
)

func TestParseOffer(t *testing.T) {
	for _, c := range []struct {
		name   string
		body   string
		status int    // 0: accepted
		msg    string // in the refusal
		audio  bool
	}{
		{"h264 and opus", sdpOffer(h264Section, opusSection), 0, "", true},
		{"h264 only", sdpOffer(h264Section), 0, "", false},
		{"vp8 and vp9 only", sdpOffer(vp8Section, opusSection), http.StatusUnprocessableEntity, "offered: VP8, VP9, PCMU", false},
		{"h264 mode 0 only", sdpOffer(h264Mode0Section), http.StatusUnprocessableEntity, "H264 (packetization-mode 0)", false},
		{"audio only", sdpOffer(opusSection), http.StatusUnprocessableEntity, "no acceptable video codec", false},
		{"not sdp", "hello", http.StatusBadRequest, "malformed SDP offer", false},
		{"no media", sdpOffer(), http.StatusBadRequest, "no media section", false},
		{"no ice credentials", sdpOffer(strings.ReplaceAll(h264Section, "a=ice-ufrag:abcd\n", "")), http.StatusBadRequest, "no ICE credentials", false},
		{"too many sections", sdpOffer(strings.Repeat(opusSection+"\n", maxMediaSections+1)), http.StatusBadRequest, "media sections", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := parseOffer([]byte(c.body))
			if c.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if o.audio != c.audio || o.ufrag != "abcd" {
					t.Errorf("offer = audio %v ufrag %q", o.audio, o.ufrag)
				}
				return
			}
			if err == nil || err.status != c.status || !strings.Contains(err.msg, c.msg) {
				t.Fatalf("err = %#v, want %d containing %q", err, c.status, c.msg)
			}
		})
	}
}

func TestParseFragment(t *testing.T) {
	f, err := parseFragment([]byte("a=ice-ufrag:abcd\r\na=ice-pwd:secret\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
		"a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.ufrag != "abcd" || f.pwd != "secret" || len(f.candidates) != 1 ||
		f.candidates[0].mid != "0" || f.candidates[0].value != "candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host" {
		t.Fatalf("fragment = %+v", f)
	}
	if _, err := parseFragment([]byte("no sdp here\n")); err == nil {
		t.Error("a non-SDP line was accepted")
	}
	many := strings.Repeat("a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\n", maxFragmentCandidates+1)
	if _, err := parseFragment([]byte(many)); err == nil {
		t.Error("an unbounded number of candidates was accepted")
	}
}
