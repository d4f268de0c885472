// Package page is the browser publish page of WHIP (RFC 9725): one
// self-contained HTML page that sends the camera and the microphone of the
// browser to a WHIP endpoint, with the stream key as a bearer token.
//
// The page has no assets of its own: its script and style sheet are inline,
// pinned by their SHA-256 hashes in the Content-Security-Policy, so it loads
// nothing but itself and works under any mount path. Mount it with a pattern
// without a method, so that the handler answers other methods with 405 itself:
//
//	h := page.Handler()
//	mux.Handle("/publish", h)
//	mux.Handle("/publish/", h) // optional: the same page for /publish/…
//
// Query parameters prefill the WHIP URL field: ?url=<WHIP URL>, or
// ?slot=<slot id> for <page origin>/whip/<slot id>. The stream key is never
// taken from, or put in, a URL.
//
// The element with id "status" holds exactly one of "idle", "connecting",
// "connected", "stopped" or "error: <message>" (an HTTP refusal reads
// "error: <status code> <the server's text body>"). Tests drive the page
// through it and through the ids "whip-url", "stream-key", "start", "stop"
// and "preview".
//
// A WHIP endpoint on another origin than the page must allow the page by
// CORS (the Authorization and Content-Type request headers, the DELETE
// method) and expose the Location and Link response headers.
package page

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
)

var (
	//go:embed publish.html
	htmlTemplate string
	//go:embed publish.js
	script string
	//go:embed publish.css
	style string
)

// The placeholders of publish.html that the script and the style replace.
const (
	scriptPlaceholder = "{{SCRIPT}}"
	stylePlaceholder  = "{{STYLE}}"
)

// body and csp are built once from the embedded files.
var body, csp = build()

// build inlines the script and the style into the page and returns it with
// the Content-Security-Policy that allows exactly them (CSP Level 3,
// hash-source): nothing else runs, loads or styles the page. connect-src
// is * because the WHIP URL is whatever the user types.
func build() ([]byte, string) {
	if strings.Contains(strings.ToLower(script), "</script") || strings.Contains(strings.ToLower(style), "</style") {
		panic("page: publish.js or publish.css closes its own element")
	}
	if strings.Count(htmlTemplate, scriptPlaceholder) != 1 || strings.Count(htmlTemplate, stylePlaceholder) != 1 {
		panic("page: publish.html must hold each placeholder once")
	}
	html := strings.Replace(htmlTemplate, scriptPlaceholder, script, 1)
	html = strings.Replace(html, stylePlaceholder, style, 1)
	policy := strings.Join([]string{
		"default-src 'none'",
		"script-src " + hashSource(script),
		"style-src " + hashSource(style),
		"connect-src *",
		"media-src 'self' blob: mediastream:",
		"img-src 'self' data:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
	return []byte(html), policy
}

// hashSource is the CSP hash-source of an inline element's text.
func hashSource(text string) string {
	sum := sha256.Sum256([]byte(text))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// Handler serves the publish page on GET and HEAD, whatever the request
// path; other methods get 405 Method Not Allowed with an Allow header. The
// page is never cached (no-store) and sends no Referer. It is safe for
// concurrent use.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Permissions-Policy", "camera=(self), microphone=(self)")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}
