package slots

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
)

func ptr[T any](v T) *T { return &v }

// nameCases feeds TestValidateName and the seeds of FuzzValidateName.
var nameCases = []struct {
	name string
	in   string
	ok   bool
}{
	{"simple", "cam-1", true},
	{"upper", "Cam-1", true},
	{"one char", "a", true},
	{"digits", "123", true},
	{"length 63", strings.Repeat("a", 63), true},
	{"length 64", strings.Repeat("a", 64), false},
	{"empty", "", false},
	{"leading hyphen", "-cam", false},
	{"trailing hyphen", "cam-", false},
	{"only hyphen", "-", false},
	{"space", "cam 1", false},
	{"underscore", "cam_1", false},
	{"dot", "cam.1", false},
	{"slash", "cam/1", false},
	{"non ascii", "caméra", false},
	{"nul", "cam\x00", false},
}

func TestValidateName(t *testing.T) {
	for _, c := range nameCases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateName(c.in)
			if (err == nil) != c.ok {
				t.Fatalf("ValidateName(%q) = %v, want ok=%v", c.in, err, c.ok)
			}
			var fe *FieldError
			if err != nil && (!errors.As(err, &fe) || fe.Field != "name") {
				t.Fatalf("ValidateName(%q) = %#v, want a FieldError on name", c.in, err)
			}
		})
	}
}

// FuzzValidateName: every accepted name has a valid, case-folded name index
// key, so the repository can always enforce uniqueness for it.
func FuzzValidateName(f *testing.F) {
	for _, c := range nameCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		k, err := keys.SlotNameIndex(name)
		if err != nil {
			t.Fatalf("accepted name %q has no index key: %v", name, err)
		}
		if k2, _ := keys.SlotNameIndex(strings.ToUpper(name)); k2 != k {
			t.Fatalf("index of %q is not case-insensitive", name)
		}
		if err := keys.ValidateObjectKey(k); err != nil {
			t.Fatalf("index key %q invalid: %v", k, err)
		}
	})
}

func TestValidateInput(t *testing.T) {
	creds := func(c ...CredentialIn) *[]CredentialIn { return &c }
	good := CredentialIn{Username: "enc1", Password: "password1"}
	d := DevDeployment("", "")
	cases := []struct {
		name  string
		in    Input
		field string // "" = valid
	}{
		{"defaults", Input{Name: ptr("cam-1")}, ""},
		{"no name", Input{}, "name"},
		{"bad name", Input{Name: ptr("cam 1")}, "name"},
		{"description 255 runes", Input{Name: ptr("a"), Description: ptr(strings.Repeat("é", 255))}, ""},
		{"description 256 runes", Input{Name: ptr("a"), Description: ptr(strings.Repeat("é", 256))}, "description"},
		{"bad type", Input{Name: ptr("a"), Type: ptr(Type("hls"))}, "type"},
		{"every type", Input{Name: ptr("a"), Type: ptr(TypeTranscode1080)}, ""},
		{"unknown region", Input{Name: ptr("a"), Region: ptr("mars")}, "region"},
		{"bitrate zero", Input{Name: ptr("a"), IngestBitrateKbps: ptr(0)}, "ingest_bitrate_kbps"},
		{"bitrate too high", Input{Name: ptr("a"), IngestBitrateKbps: ptr(MaxIngestBitrateKbps + 1)}, "ingest_bitrate_kbps"},
		{"bitrate max", Input{Name: ptr("a"), IngestBitrateKbps: ptr(MaxIngestBitrateKbps)}, ""},
		{"segment 0", Input{Name: ptr("a"), SegmentDuration: ptr(0)}, "segment_duration"},
		{"segment 11", Input{Name: ptr("a"), SegmentDuration: ptr(11)}, "segment_duration"},
		{"segment 10", Input{Name: ptr("a"), SegmentDuration: ptr(10)}, ""},
		{"expiry below segment", Input{Name: ptr("a"), SegmentDuration: ptr(6), FileExpiry: ptr(5), DVRWindow: ptr(5)}, "file_expiry"},
		{"dvr zero", Input{Name: ptr("a"), DVRWindow: ptr(0)}, "dvr_window"},
		{"dvr below segment", Input{Name: ptr("a"), SegmentDuration: ptr(6), DVRWindow: ptr(4)}, "dvr_window"},
		{"dvr above expiry", Input{Name: ptr("a"), DVRWindow: ptr(301)}, "dvr_window"},
		{"bad cidr", Input{Name: ptr("a"), PublishIPAllow: ptr([]string{"10.0.0.0/33"})}, "publish_ip_allow[0]"},
		{"bad ip", Input{Name: ptr("a"), ViewerIPAllow: ptr([]string{"1.2.3.4", "nope"})}, "viewer_ip_allow[1]"},
		{"good ips", Input{Name: ptr("a"), ViewerIPDeny: ptr([]string{"2001:db8::/32", "::1", "10.1.2.3"})}, ""},
		{"pull url on transmux", Input{Name: ptr("a"), PullURLs: ptr([]string{"rtmp://h/a"})}, "pull_urls"},
		{"pull without url", Input{Name: ptr("a"), Type: ptr(TypePull)}, "pull_urls"},
		{"pull http", Input{Name: ptr("a"), Type: ptr(TypePull), PullURLs: ptr([]string{"http://h/a"})}, "pull_urls[0]"},
		{"pull no host", Input{Name: ptr("a"), Type: ptr(TypePull), PullURLs: ptr([]string{"srt://:9000"})}, "pull_urls[0]"},
		{"pull ok", Input{Name: ptr("a"), Type: ptr(TypePull), PullURLs: ptr([]string{"rtmp://h/a", "rtmps://h:443/a", "srt://h:9000?streamid=x"})}, ""},
		{"live-push without credentials", Input{Name: ptr("a"), Type: ptr(TypeLivePush)}, "credentials"},
		{"live-push ok", Input{Name: ptr("a"), Type: ptr(TypeLivePush), Credentials: creds(good)}, ""},
		{"username colon", Input{Name: ptr("a"), Credentials: creds(CredentialIn{Username: "a:b", Password: "password1"})}, "credentials[0].username"},
		{"username empty", Input{Name: ptr("a"), Credentials: creds(CredentialIn{Password: "password1"})}, "credentials[0].username"},
		{"username 64", Input{Name: ptr("a"), Credentials: creds(CredentialIn{Username: strings.Repeat("u", 64), Password: "password1"})}, ""},
		{"username 65", Input{Name: ptr("a"), Credentials: creds(CredentialIn{Username: strings.Repeat("u", 65), Password: "password1"})}, "credentials[0].username"},
		{"username twice", Input{Name: ptr("a"), Credentials: creds(good, good)}, "credentials[1].username"},
		{"password short", Input{Name: ptr("a"), Credentials: creds(CredentialIn{Username: "u", Password: "1234567"})}, "credentials[0].password"},
		{"password missing", Input{Name: ptr("a"), Credentials: creds(CredentialIn{Username: "u"})}, "credentials[0].password"},
		{"password too long", Input{Name: ptr("a"), Credentials: creds(CredentialIn{Username: "u", Password: secret.String(strings.Repeat("p", 73))})}, "credentials[0].password"},
		{"srt passphrase short", Input{Name: ptr("a"), SRTPassphrase: ptr(secret.String("123456789"))}, "srt_passphrase"},
		{"srt passphrase 10", Input{Name: ptr("a"), SRTPassphrase: ptr(secret.String("1234567890"))}, ""},
		{"srt passphrase 80", Input{Name: ptr("a"), SRTPassphrase: ptr(secret.String(strings.Repeat("p", 80)))}, "srt_passphrase"},
		{"token bad mode", Input{Name: ptr("a"), TokenAuth: &TokenAuthIn{Mode: ptr(TokenMode("jwt"))}}, "token_auth.mode"},
		{"token url without secret", Input{Name: ptr("a"), TokenAuth: &TokenAuthIn{Mode: ptr(TokenURL)}}, "token_auth.secrets"},
		{"token short secret", Input{Name: ptr("a"), TokenAuth: &TokenAuthIn{Mode: ptr(TokenCookie), Secrets: ptr([]secret.String{"short"})}}, "token_auth.secrets[0]"},
		{"token ok", Input{Name: ptr("a"), TokenAuth: &TokenAuthIn{Mode: ptr(TokenURL), Secrets: ptr([]secret.String{"0123456789abcdef"})}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newDraft(d)
			err := s.apply(c.in, d, 4)
			if c.field == "" {
				if err != nil {
					t.Fatalf("apply = %v, want ok", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Fatalf("apply = %v, want a FieldError on %s", err, c.field)
			}
		})
	}
}

func TestIPList(t *testing.T) {
	l, err := ParseIPList("f", []string{"10.1.2.3/8", "192.0.2.7", "::ffff:198.51.100.0/120", "2001:db8::1/32", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "198.51.100.0/24", "2001:db8::/32", "::1/128"}
	if got := l.Strings(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("canonical = %v, want %v", got, want)
	}
	for addr, in := range map[string]bool{
		"10.9.9.9": true, "::ffff:10.9.9.9": true, "192.0.2.7": true, "192.0.2.8": false,
		"::ffff:198.51.100.200": true, "2001:db8:1::5": true, "2001:db9::": false, "::1": true, "11.0.0.1": false,
	} {
		if got := l.Contains(netip.MustParseAddr(addr)); got != in {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, in)
		}
	}
	if _, err := ParseIPList("f", []string{"::ffff:0:0/64"}); err == nil {
		t.Error("a mapped prefix shorter than /96 was accepted")
	}
	if _, err := ParseIPList("f", []string{"fe80::1%eth0"}); err == nil {
		t.Error("a zoned address was accepted")
	}
}

func TestDecodeInput(t *testing.T) {
	in, err := DecodeInput(strings.NewReader(`{"name":"cam-1","id":"x","version":3,"ingest_urls":{},"credentials":[{"username":"u","password":"password1"}],"token_auth":{"mode":"url","secrets":["0123456789abcdef"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if *in.Name != "cam-1" || (*in.Credentials)[0].Password.Reveal() != "password1" || (*in.TokenAuth.Secrets)[0].Reveal() != "0123456789abcdef" {
		t.Fatalf("decoded %+v", in)
	}
	var fe *FieldError
	if _, err := DecodeInput(strings.NewReader(`{"nmae":"x"}`)); !errors.As(err, &fe) || fe.Field != "nmae" {
		t.Fatalf("unknown field: %v", err)
	}
	if _, err := DecodeInput(strings.NewReader(`{"segment_duration":"2"}`)); !errors.As(err, &fe) || fe.Field != "segment_duration" {
		t.Fatalf("wrong type: %v", err)
	}
	if _, err := DecodeInput(strings.NewReader(`{"name":`)); err == nil {
		t.Fatal("truncated JSON accepted")
	}
}
