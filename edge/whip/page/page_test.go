package page

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestPageServesGETAndHEAD(t *testing.T) {
	ts := httptest.NewServer(Handler())
	defer ts.Close()
	for _, path := range []string{"/", "/publish", "/publish/?slot=abc"} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			req, err := http.NewRequest(method, ts.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
			}
			for k, want := range map[string]string{
				"Content-Type":           "text/html; charset=utf-8",
				"Cache-Control":          "no-store",
				"X-Content-Type-Options": "nosniff",
				"Referrer-Policy":        "no-referrer",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s %s: %s = %q, want %q", method, path, k, got, want)
				}
			}
			if resp.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("%s %s: no Content-Security-Policy", method, path)
			}
			if method == http.MethodHead && len(b) != 0 {
				t.Errorf("HEAD %s: %d body bytes", path, len(b))
			}
			if method == http.MethodGet && len(b) != len(body) {
				t.Errorf("GET %s: %d body bytes, want %d", path, len(b), len(body))
			}
		}
	}
}

func TestPageRefusesOtherMethods(t *testing.T) {
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		rec := httptest.NewRecorder()
		Handler().ServeHTTP(rec, httptest.NewRequest(method, "/publish", strings.NewReader("x")))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d, want 405", method, rec.Code)
		}
		if got := rec.Header().Get("Allow"); got != "GET, HEAD" {
			t.Errorf("%s: Allow = %q", method, got)
		}
		if strings.Contains(rec.Body.String(), "<script") {
			t.Errorf("%s: the refusal carries the page", method)
		}
	}
}

func TestPageBody(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/publish", nil))
	html := rec.Body.String()
	for _, want := range []string{
		`id="whip-url"`, `id="stream-key"`, `type="password"`,
		`<video id="preview" muted autoplay playsinline`,
		`id="start"`, `id="stop"`, `id="status"`, `>idle<`,
		`<label for="whip-url">WHIP URL</label>`, `<label for="stream-key">Stream key</label>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(html, "{{") {
		t.Error("a placeholder was left in the page")
	}
	// Nothing is loaded from elsewhere: no src= or href= at all.
	if m := regexp.MustCompile(`(?i)\s(src|href)\s*=`).FindString(html); m != "" {
		t.Errorf("the page references an external resource (%s)", m)
	}
	// The key is never stored nor put in a URL.
	for _, bad := range []string{"localStorage", "sessionStorage", "document.cookie", "searchParams.set", "history."} {
		if strings.Contains(html, bad) {
			t.Errorf("the page uses %s", bad)
		}
	}
}

// TestPageCSPAllowsExactlyItsInlineCode checks that the policy's hashes are
// those of the inline script and style as served: a browser would refuse
// to run a script whose text differs by one byte.
func TestPageCSPAllowsExactlyItsInlineCode(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/publish", nil))
	html := rec.Body.String()
	policy := rec.Header().Get("Content-Security-Policy")
	directives := map[string]string{}
	for d := range strings.SplitSeq(policy, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{
		"default-src":     "'none'",
		"connect-src":     "*",
		"base-uri":        "'none'",
		"form-action":     "'none'",
		"frame-ancestors": "'none'",
	} {
		if directives[name] != want {
			t.Errorf("%s = %q, want %q (policy %q)", name, directives[name], want, policy)
		}
	}
	for _, el := range []struct{ tag, directive string }{{"script", "script-src"}, {"style", "style-src"}} {
		re := regexp.MustCompile(`(?s)<` + el.tag + `>(.*?)</` + el.tag + `>`)
		all := re.FindAllStringSubmatch(html, -1)
		if len(all) != 1 {
			t.Fatalf("%d inline <%s> elements, want 1", len(all), el.tag)
		}
		sum := sha256.Sum256([]byte(all[0][1]))
		want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if directives[el.directive] != want {
			t.Errorf("%s = %q, want exactly %s", el.directive, directives[el.directive], want)
		}
	}
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "http:", "https:"} {
		if strings.Contains(directives["script-src"]+directives["style-src"], bad) {
			t.Errorf("script-src or style-src allows %s", bad)
		}
	}
}
