package push

import (
	"bufio"
	"net/http"
	"path"
	"strings"
	"testing"

	"github.com/liveingest/liveingest/origin/keys"
)

// pathCases feed TestParseTarget and the seeds of FuzzPushPath: raw request
// targets as they appear on the request line.
var pathCases = []struct {
	raw string
	ok  bool
}{
	{"/push/cam-1/seg1.ts", true},
	{"/push/cam-1/720p/seg%31.ts", true},
	{"/push/cam-1/", true},
	{"/push/cam-1", true},
	{"/push/cam-1/720p/", true},
	{"/push/cam-1/..", false},
	{"/push/cam-1/%2e%2e/x", false},
	{"/push/cam-1/%252e%252e/x", false},
	{"/push/cam-1/..%2fx", false},
	{"/push/cam-1/a%2fb", false},
	{"/push/cam-1/a%5cb", false},
	{"/push/cam-1/a%00b", false},
	{"/push/cam-1//etc/passwd", false},
	{"/push/cam-1/../other/x", false},
	{"/push/../x", false},
	{"/push/Cam/x", false},
	{"/push/cam-1%2fx/y", false},
	{"/push/cam-1/a%zz", false},
	{"/other/cam-1/x", false},
}

func parseRaw(raw string) (target, *rejection, bool) {
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("PUT " + raw + " HTTP/1.1\r\nHost: x\r\n\r\n")))
	if err != nil {
		return target{}, nil, false
	}
	t, rej := parseTarget(req)
	return t, rej, true
}

func TestParseTarget(t *testing.T) {
	for _, c := range pathCases {
		tg, rej, parsed := parseRaw(c.raw)
		if !parsed {
			if c.ok {
				t.Errorf("%q: net/http refused it", c.raw)
			}
			continue
		}
		if (rej == nil) != c.ok {
			t.Errorf("parseTarget(%q) = %+v, %v; want ok=%v", c.raw, tg, rej, c.ok)
		}
	}
}

// FuzzPushPath: whatever request target net/http accepts and parseTarget
// admits maps to a key under the slot's role prefix, in canonical form.
func FuzzPushPath(f *testing.F) {
	for _, c := range pathCases {
		f.Add(c.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, rej, parsed := parseRaw(raw)
		if !parsed || rej != nil {
			return
		}
		for _, role := range []keys.Role{keys.Primary, keys.Backup} {
			root := keys.RolePrefix(tg.id, role)
			k := tg.prefix(role)
			if tg.rel != "" {
				k = tg.key(role)
				if err := keys.ValidateObjectKey(k); err != nil {
					t.Fatalf("%q → invalid key %q: %v", raw, k, err)
				}
			}
			if !strings.HasPrefix(k, root) || path.Clean("/"+k) != "/"+strings.TrimSuffix(k, "/") {
				t.Fatalf("%q → key %q escapes %q", raw, k, root)
			}
			if strings.ContainsAny(k, "\\%\x00") {
				t.Fatalf("%q → key %q holds a forbidden byte", raw, k)
			}
		}
	})
}
