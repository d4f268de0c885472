package keys

import (
	"errors"
	"net/netip"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// relPathCases feeds both TestParseRelPath and the seeds of FuzzParseRelPath.
// The inputs are what reaches ParseRelPath after net/http decoded the URL once,
// so "%2e%2e" here stands for a client that sent "%252e%252e".
var relPathCases = []struct {
	name string
	in   string
	ok   bool
}{
	{"segment", "seg00001.m4s", true},
	{"nested", "video/720p/seg1.m4s", true},
	{"manifest", "index.m3u8", true},
	{"dash template name", "chunk-stream0-00001.m4s", true},
	{"allowed punctuation", "a_b~c+d=e,f@g.ts", true},
	{"empty", "", false},
	{"dot dot", "..", false},
	{"dot dot prefix", "../secret", false},
	{"dot dot inside", "a/../../b", false},
	{"dot dot suffix", "a/..", false},
	{"dot segment", "a/./b", false},
	{"absolute", "/etc/passwd", false},
	{"trailing slash", "dir/", false},
	{"double slash", "a//b", false},
	{"backslash", `..\secret`, false},
	{"backslash inside", `a\b`, false},
	{"encoded dots", "%2e%2e", false},
	{"encoded dots upper", "%2E%2E/x", false},
	{"double encoded dots", "%252e%252e", false},
	{"dots encoded slash", "..%2fsecret", false},
	{"encoded slash", "a%2fb", false},
	{"encoded backslash", "a%5cb", false},
	{"nul", "a\x00b", false},
	{"newline", "a\nb", false},
	{"space", "a b", false},
	{"colon", "c:x", false},
	{"hidden", ".tmp/x", false},
	{"hidden inside", "a/.git", false},
	{"non ascii", "séance.ts", false},
	{"too long segment", strings.Repeat("a", MaxSegmentLen+1), false},
	{"longest segment", strings.Repeat("a", MaxSegmentLen), true},
	{"too deep", strings.Repeat("a/", MaxPathDepth) + "a", false},
	{"deepest", strings.Repeat("a/", MaxPathDepth-1) + "a", true},
	{"too long", strings.Repeat("abcdefgh/", 100), false},
}

func TestParseRelPath(t *testing.T) {
	for _, c := range relPathCases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseRelPath(c.in)
			if c.ok {
				if err != nil {
					t.Fatalf("ParseRelPath(%q) = %v, want ok", c.in, err)
				}
				if string(got) != c.in {
					t.Fatalf("ParseRelPath(%q) = %q, want unchanged", c.in, got)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseRelPath(%q) accepted, want rejection", c.in)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseRelPath(%q) error %v does not wrap ErrInvalid", c.in, err)
			}
		})
	}
}

// FuzzParseRelPath checks the one property that matters: whatever is accepted
// stays below any root it is joined to, on every platform's separator rules.
func FuzzParseRelPath(f *testing.F) {
	for _, c := range relPathCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseRelPath(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		s := string(got)
		if s != in {
			t.Fatalf("accepted %q but returned %q", in, s)
		}
		if path.Clean(s) != s || !filepath.IsLocal(s) || !path.IsAbs("/"+s) {
			t.Fatalf("accepted non-local path %q", s)
		}
		if strings.ContainsAny(s, "\\%\x00:") || strings.Contains(s, "..") && hasDotDotSegment(s) {
			t.Fatalf("accepted %q with a forbidden character", s)
		}
		root := "/srv/root"
		if j := path.Join(root, s); !strings.HasPrefix(j, root+"/") {
			t.Fatalf("%q escapes the root: %q", s, j)
		}
	})
}

func hasDotDotSegment(s string) bool {
	for seg := range strings.SplitSeq(s, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

func TestParseSlotID(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"a", true},
		{"cam-1", true},
		{"0123456789abcdef0123456789abcdef", true},
		{strings.Repeat("a", MaxSlotIDLen), true},
		{strings.Repeat("a", MaxSlotIDLen+1), false},
		{"", false},
		{"Cam", false},
		{"a/b", false},
		{"..", false},
		{"a_b", false},
		{"a b", false},
	} {
		_, err := ParseSlotID(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseSlotID(%q) err = %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

func TestBuilders(t *testing.T) {
	id, _ := ParseSlotID("cam-1")
	rel, _ := ParseRelPath("720p/seg1.m4s")
	for _, c := range []struct{ got, want string }{
		{SlotConfig(id), "config/slots/cam-1.json"},
		{MediaPrefix(id), "live/cam-1/"},
		{RolePrefix(id, Backup), "live/cam-1/backup/"},
		{Media(id, Primary, rel), "live/cam-1/primary/720p/seg1.m4s"},
		{SlotLease(id, Primary), "slot:cam-1:primary"},
		{Redis("liveingest", "lease", SlotLease(id, Primary)), "liveingest:{slot:cam-1:primary}:lease"},
		{IngestKeyLimit(id, Backup), "ingest:key:cam-1:backup"},
		{IngestAuthFailLimit(netip.MustParsePrefix("192.0.2.1/32")), "ingest:authfail:192.0.2.1/32"},
		{IngestAuthFailLimit(netip.MustParsePrefix("2001:db8:1:2::/64")), "ingest:authfail:2001:db8:1:2::/64"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	for _, n := range []string{SlotLease(id, Backup), IngestKeyLimit(id, Backup), IngestAuthFailLimit(netip.MustParsePrefix("2001:db8:1:2::/64"))} {
		if err := ValidateCoordName(n); err != nil {
			t.Errorf("built coordination name %q is not valid: %v", n, err)
		}
	}
	for _, k := range []string{SlotConfig(id), Media(id, Primary, rel)} {
		if err := ValidateObjectKey(k); err != nil {
			t.Errorf("built key %q is not a valid object key: %v", k, err)
		}
	}
	for _, p := range []string{MediaPrefix(id), RolePrefix(id, Backup), SlotConfigPrefix()} {
		if err := ValidatePrefix(p); err != nil {
			t.Errorf("built prefix %q is not a valid prefix: %v", p, err)
		}
	}
	if _, err := Probe("../x"); err == nil {
		t.Error("Probe accepted a traversal name")
	}
}

func TestMediaSlot(t *testing.T) {
	id, _ := ParseSlotID("cam-1")
	for _, c := range []struct {
		key  string
		want SlotID
		ok   bool
	}{
		{Media(id, Primary, "720p/seg1.m4s"), id, true},
		{MediaPrefix(id) + "x", id, true},
		{MediaPrefix(id), id, true},
		{"live/cam-1", "", false},
		{"live/Cam/primary/seg1.m4s", "", false},
		{SlotConfig(id), "", false},
		{"probe/live/cam-1/x", "", false},
	} {
		got, ok := MediaSlot(c.key)
		if got != c.want || ok != c.ok {
			t.Errorf("MediaSlot(%q) = %q, %v; want %q, %v", c.key, got, ok, c.want, c.ok)
		}
	}
}

// TestMediaKeyOfDeepestLongestPath is the regression case of the push path
// fuzzer: a RelPath at the depth and length limits must still make a valid
// object key once keys.Media adds its prefix.
func TestMediaKeyOfDeepestLongestPath(t *testing.T) {
	id, _ := ParseSlotID(strings.Repeat("a", MaxSlotIDLen))
	deep, err := ParseRelPath(strings.Repeat("0/", MaxPathDepth-1) + "0")
	if err != nil {
		t.Fatal(err)
	}
	seg := strings.Repeat("a", MaxSegmentLen) + "/"
	long, err := ParseRelPath(strings.Repeat(seg, 3) + strings.Repeat("x", MaxPathLen-3*len(seg)))
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []RelPath{deep, long} {
		if err := ValidateObjectKey(Media(id, Backup, rel)); err != nil {
			t.Errorf("Media key of a valid RelPath (%d bytes) is invalid: %v", len(rel), err)
		}
	}
	if err := ValidateObjectKey(strings.Repeat("a/", MaxPathDepth+maxPrefixDepth) + "a"); err == nil {
		t.Error("a key deeper than prefix + RelPath was accepted")
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"", true}, {"live/", true}, {"live/cam/seg", true},
		{"/", false}, {"../", false}, {"live//", false}, {"/live/", false},
	} {
		if err := ValidatePrefix(c.in); (err == nil) != c.ok {
			t.Errorf("ValidatePrefix(%q) = %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

func TestValidateCoordName(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"slot:cam-1:primary", true}, {"rate:ip:2001:db8::1", true},
		{"", false}, {"a b", false}, {"a{b}", false}, {"a\x00", false}, {strings.Repeat("x", 257), false},
	} {
		if err := ValidateCoordName(c.in); (err == nil) != c.ok {
			t.Errorf("ValidateCoordName(%q) = %v, want ok=%v", c.in, err, c.ok)
		}
	}
}

func TestStreamStateKeys(t *testing.T) {
	if got, want := StreamState("cam", Primary), "live/cam/primary/_state.json"; got != want {
		t.Errorf("StreamState = %q, want %q", got, want)
	}
	if got, want := LegacyStreamState("cam", Backup), "live/cam/backup/state.m3u8"; got != want {
		t.Errorf("LegacyStreamState = %q, want %q", got, want)
	}
	for _, c := range []struct {
		rel  RelPath
		want bool
	}{
		{StreamStateName, true},
		{LegacyStreamStateName, true},
		{"_anything/else.bin", true},
		{"index.m3u8", false},
		{"v/7/state.m3u8", false}, // only the root name is the legacy state
		{"v/_7/1.m4s", false},     // the namespace is the first segment only
		{"v/7/init.mp4", false},
	} {
		if got := Internal(c.rel); got != c.want {
			t.Errorf("Internal(%q) = %v, want %v", c.rel, got, c.want)
		}
	}
	if _, err := ParseRelPath(string(StreamStateName)); err != nil {
		t.Errorf("the state name must be a valid RelPath: %v", err)
	}
}
