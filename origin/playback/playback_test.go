package playback_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/playback"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeSlots is a SlotSource over a fixed map.
type fakeSlots map[keys.SlotID]*slots.Slot

func (f fakeSlots) Lookup(_ context.Context, id keys.SlotID) (*slots.Slot, error) {
	if s, ok := f[id]; ok {
		return s, nil
	}
	return nil, slots.ErrNotFound
}

func slot(id keys.SlotID) *slots.Slot {
	return &slots.Slot{ID: id, Name: string(id), SegmentDuration: 4, FileExpiry: 300, DVRWindow: 60}
}

func backends(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Run("disk", func(t *testing.T) { fn(t, teststores.Disk(t)) })
	t.Run("minio", func(t *testing.T) { fn(t, teststores.MinIO(t)) })
}

func put(t *testing.T, st store.Store, id keys.SlotID, role keys.Role, rel, body string) store.Info {
	t.Helper()
	// The stored content type is deliberately wrong: playback must ignore it.
	info, err := st.Put(t.Context(), keys.Media(id, role, keys.RelPath(rel)), strings.NewReader(body),
		store.Meta{Class: lifecycle.ClassOf(rel), ContentType: "text/html"})
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// serve starts the handler on a loopback listener.
func serve(t *testing.T, st store.Store, cfg playback.Config, s fakeSlots) *httptest.Server {
	t.Helper()
	srv, err := playback.New(cfg, playback.Deps{Slots: s, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestContentTypesAndCache(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		ts := serve(t, st, playback.Config{}, fakeSlots{"cam": slot("cam")})
		tests := []struct{ rel, ct, cache string }{
			{"index.m3u8", "application/vnd.apple.mpegurl", "public, max-age=2"},
			{"720p/INDEX.M3U8", "application/vnd.apple.mpegurl", "public, max-age=2"},
			{"manifest.mpd", "application/dash+xml", "public, max-age=2"},
			{"seg1.m4s", "video/iso.segment", "public, max-age=31536000, immutable"},
			{"init.mp4", "video/mp4", "public, max-age=31536000, immutable"},
			{"video.init", "application/octet-stream", "public, max-age=31536000, immutable"},
			{"a.m4a", "audio/mp4", "public, max-age=31536000, immutable"},
			{"v.m4v", "video/mp4", "public, max-age=31536000, immutable"},
			{"seg1.ts", "video/mp2t", "public, max-age=31536000, immutable"},
			{"a.aac", "audio/aac", "public, max-age=31536000, immutable"},
			{"sub.vtt", "text/vtt", "public, max-age=31536000, immutable"},
			{"sub.webvtt", "text/vtt", "public, max-age=31536000, immutable"},
			{"page.html", "application/octet-stream", "public, max-age=31536000, immutable"},
		}
		for _, tc := range tests {
			info := put(t, st, "cam", keys.Primary, tc.rel, "body of "+tc.rel)
			resp, body := do(t, http.MethodGet, ts.URL+"/live/cam/"+tc.rel, nil)
			if resp.StatusCode != 200 || body != "body of "+tc.rel {
				t.Fatalf("%s: %d %q", tc.rel, resp.StatusCode, body)
			}
			h := resp.Header
			if got := h.Get("Content-Type"); got != tc.ct {
				t.Errorf("%s: Content-Type %q, want %q", tc.rel, got, tc.ct)
			}
			if got := h.Get("Cache-Control"); got != tc.cache {
				t.Errorf("%s: Cache-Control %q, want %q", tc.rel, got, tc.cache)
			}
			if h.Get("ETag") != info.ETag || h.Get("Last-Modified") == "" || h.Get("Accept-Ranges") != "bytes" {
				t.Errorf("%s: headers %v (stored ETag %s)", tc.rel, h, info.ETag)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: no nosniff", tc.rel)
			}
		}

		// HEAD: headers only.
		resp, body := do(t, http.MethodHead, ts.URL+"/live/cam/seg1.m4s", nil)
		if resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len("body of seg1.m4s")) {
			t.Fatalf("HEAD: %d len %d %q", resp.StatusCode, resp.ContentLength, body)
		}

		// 404 is cached briefly; unknown slots too.
		for _, p := range []string{"/live/cam/seg99.m4s", "/live/nobody/index.m3u8"} {
			resp, _ = do(t, http.MethodGet, ts.URL+p, nil)
			if resp.StatusCode != 404 || resp.Header.Get("Cache-Control") != "public, max-age=1" {
				t.Fatalf("%s: %d %q", p, resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
		}

		// Another method.
		resp, _ = do(t, http.MethodPost, ts.URL+"/live/cam/seg1.m4s", nil)
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Fatalf("POST: %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
}

func TestManifestMaxAge(t *testing.T) {
	st := teststores.Disk(t)
	short := slot("short")
	short.SegmentDuration = 1
	put(t, st, "short", keys.Primary, "index.m3u8", "#EXTM3U\n")
	put(t, st, "cam", keys.Primary, "index.m3u8", "#EXTM3U\n")
	ts := serve(t, st, playback.Config{}, fakeSlots{"short": short, "cam": slot("cam")})
	if resp, _ := do(t, "GET", ts.URL+"/live/short/index.m3u8", nil); resp.Header.Get("Cache-Control") != "public, max-age=1" {
		t.Fatalf("1 s segments: %q, want the 1 s minimum", resp.Header.Get("Cache-Control"))
	}
	ts = serve(t, st, playback.Config{ManifestMaxAge: 5 * time.Second, SegmentMaxAge: time.Hour},
		fakeSlots{"cam": slot("cam")})
	if resp, _ := do(t, "GET", ts.URL+"/live/cam/index.m3u8", nil); resp.Header.Get("Cache-Control") != "public, max-age=5" {
		t.Fatalf("configured: %q", resp.Header.Get("Cache-Control"))
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg   playback.Config
		field string
	}{
		{playback.Config{Role: "third"}, "Role"},
		{playback.Config{ManifestMaxAge: -1}, "ManifestMaxAge"},
		{playback.Config{SegmentMaxAge: -1}, "SegmentMaxAge"},
		{playback.Config{AllowOrigin: "a\r\nSet-Cookie: x"}, "AllowOrigin"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
	if _, err := playback.New(playback.Config{}, playback.Deps{}); err == nil {
		t.Error("New without deps succeeded")
	}
}

func TestCORS(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		put(t, st, "cam", keys.Primary, "seg1.m4s", "0123456789")
		ts := serve(t, st, playback.Config{}, fakeSlots{"cam": slot("cam")})
		resp, _ := do(t, http.MethodGet, ts.URL+"/live/cam/seg1.m4s", map[string]string{"Origin": "https://player.example"})
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
		}
		for _, h := range []string{"Content-Length", "Content-Range", "ETag"} {
			if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), h) {
				t.Errorf("Expose-Headers %q lacks %s", resp.Header.Get("Access-Control-Expose-Headers"), h)
			}
		}
		resp, body := do(t, http.MethodOptions, ts.URL+"/live/cam/seg1.m4s", map[string]string{
			"Origin": "https://player.example", "Access-Control-Request-Method": "GET",
			"Access-Control-Request-Headers": "range",
		})
		if resp.StatusCode != 204 || body != "" {
			t.Fatalf("preflight: %d %q", resp.StatusCode, body)
		}
		if resp.Header.Get("Access-Control-Allow-Methods") != "GET, HEAD, OPTIONS" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Range") ||
			resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("preflight headers %v", resp.Header)
		}

		ts = serve(t, st, playback.Config{AllowOrigin: "https://player.example"}, fakeSlots{"cam": slot("cam")})
		resp, _ = do(t, http.MethodGet, ts.URL+"/live/cam/seg1.m4s", nil)
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://player.example" {
			t.Fatalf("configured origin: %q", resp.Header.Get("Access-Control-Allow-Origin"))
		}
	})
}

func TestRanges(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		put(t, st, "cam", keys.Primary, "seg1.m4s", "0123456789")
		put(t, st, "cam", keys.Primary, "empty.m4s", "")
		ts := serve(t, st, playback.Config{}, fakeSlots{"cam": slot("cam")})
		u := ts.URL + "/live/cam/seg1.m4s"
		tests := []struct {
			rng, method string
			code        int
			body, cr    string
		}{
			{"bytes=2-5", "GET", 206, "2345", "bytes 2-5/10"},
			{"bytes=7-", "GET", 206, "789", "bytes 7-9/10"},
			{"bytes=-3", "GET", 206, "789", "bytes 7-9/10"},
			{"bytes=-30", "GET", 206, "0123456789", "bytes 0-9/10"},
			{"bytes=8-100", "GET", 206, "89", "bytes 8-9/10"},
			{"bytes=0-0", "GET", 206, "0", "bytes 0-0/10"},
			{"bytes=2-5", "HEAD", 206, "", "bytes 2-5/10"},
			{"bytes=10-", "GET", 416, "", "bytes */10"},
			{"bytes=10-20", "GET", 416, "", "bytes */10"},
			{"bytes=-0", "GET", 416, "", "bytes */10"},
			// Multi-range and bad syntax: the whole object (documented).
			{"bytes=0-1,4-5", "GET", 200, "0123456789", ""},
			{"bytes=5-2", "GET", 200, "0123456789", ""},
			{"bytes=x-", "GET", 200, "0123456789", ""},
			{"items=0-1", "GET", 200, "0123456789", ""},
		}
		for _, tc := range tests {
			resp, body := do(t, tc.method, u, map[string]string{"Range": tc.rng})
			if resp.StatusCode != tc.code || resp.Header.Get("Content-Range") != tc.cr {
				t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.rng, resp.StatusCode,
					resp.Header.Get("Content-Range"), tc.code, tc.cr)
			}
			if tc.code != 416 && body != tc.body {
				t.Errorf("%s %s: body %q, want %q", tc.method, tc.rng, body, tc.body)
			}
		}
		resp, _ := do(t, "GET", ts.URL+"/live/cam/empty.m4s", map[string]string{"Range": "bytes=0-"})
		if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */0" {
			t.Errorf("empty object: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
		}
		// If-Range with a stale validator: the whole object.
		resp, body := do(t, "GET", u, map[string]string{"Range": "bytes=2-5", "If-Range": `"stale"`})
		if resp.StatusCode != 200 || body != "0123456789" {
			t.Errorf("If-Range stale: %d %q", resp.StatusCode, body)
		}
		resp, body = do(t, "GET", u, map[string]string{"Range": "bytes=2-5", "If-Range": resp.Header.Get("ETag")})
		if resp.StatusCode != 206 || body != "2345" {
			t.Errorf("If-Range current: %d %q", resp.StatusCode, body)
		}
	})
}

func TestConditional(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		info := put(t, st, "cam", keys.Primary, "seg1.m4s", "0123456789")
		ts := serve(t, st, playback.Config{}, fakeSlots{"cam": slot("cam")})
		u := ts.URL + "/live/cam/seg1.m4s"
		later := info.Modified.Add(time.Hour).UTC().Format(http.TimeFormat)
		earlier := info.Modified.Add(-time.Hour).UTC().Format(http.TimeFormat)
		tests := []struct {
			name string
			hdr  map[string]string
			code int
		}{
			{"etag", map[string]string{"If-None-Match": info.ETag}, 304},
			{"etag in list", map[string]string{"If-None-Match": `"x", ` + info.ETag}, 304},
			{"weak etag", map[string]string{"If-None-Match": "W/" + info.ETag}, 304},
			{"star", map[string]string{"If-None-Match": "*"}, 304},
			{"other etag", map[string]string{"If-None-Match": `"other"`}, 200},
			{"other etag wins over date", map[string]string{"If-None-Match": `"other"`, "If-Modified-Since": later}, 200},
			{"date after", map[string]string{"If-Modified-Since": later}, 304},
			{"date equal", map[string]string{"If-Modified-Since": info.Modified.UTC().Format(http.TimeFormat)}, 304},
			{"date before", map[string]string{"If-Modified-Since": earlier}, 200},
			{"bad date", map[string]string{"If-Modified-Since": "yesterday"}, 200},
		}
		for _, tc := range tests {
			for _, m := range []string{"GET", "HEAD"} {
				resp, body := do(t, m, u, tc.hdr)
				if resp.StatusCode != tc.code {
					t.Errorf("%s %s: %d, want %d", m, tc.name, resp.StatusCode, tc.code)
				}
				if tc.code == 304 && (body != "" || resp.Header.Get("ETag") != info.ETag || resp.Header.Get("Cache-Control") == "") {
					t.Errorf("%s %s: 304 with body %q, headers %v", m, tc.name, body, resp.Header)
				}
				if tc.code == 200 && m == "GET" && body != "0123456789" {
					t.Errorf("%s %s: body %q", m, tc.name, body)
				}
			}
		}
	})
}

func TestViewerIPLists(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		pfx := func(s string) slots.IPList { return slots.IPList{netip.MustParsePrefix(s)} }
		denied, allowed, notListed, both := slot("denied"), slot("allowed"), slot("notlisted"), slot("both")
		denied.ViewerIPDeny = pfx("127.0.0.0/8")
		allowed.ViewerIPAllow = pfx("127.0.0.1/32")
		notListed.ViewerIPAllow = pfx("10.0.0.0/8")
		both.ViewerIPAllow, both.ViewerIPDeny = pfx("127.0.0.0/8"), pfx("127.0.0.1/32") // deny wins
		all := fakeSlots{"denied": denied, "allowed": allowed, "notlisted": notListed, "both": both}
		for id := range all {
			put(t, st, id, keys.Primary, "seg1.m4s", "bytes of "+string(id))
		}
		ts := serve(t, st, playback.Config{}, all)
		for id, want := range map[keys.SlotID]int{"denied": 403, "allowed": 200, "notlisted": 403, "both": 403} {
			resp, body := do(t, "GET", ts.URL+"/live/"+string(id)+"/seg1.m4s", nil)
			if resp.StatusCode != want {
				t.Errorf("%s: %d, want %d", id, resp.StatusCode, want)
			}
			if want == 403 {
				if !strings.Contains(body, "127.0.0.1") || !strings.Contains(body, "not allowed") || strings.Contains(body, "bytes of") {
					t.Errorf("%s: 403 body %q", id, body)
				}
				if resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("%s: 403 Cache-Control %q", id, resp.Header.Get("Cache-Control"))
				}
			}
		}
	})
}

// rawGet sends a request line as written, so that no client cleans or
// re-encodes the path.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		// net/http itself refused the request line (e.g. a raw NUL).
		return 400, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTraversal(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		const secret = "OTHER-SLOT-SECRET-BYTES"
		put(t, st, "cam", keys.Primary, "seg1.m4s", "cam bytes")
		put(t, st, "other", keys.Primary, "seg1.m4s", secret)
		put(t, st, "other", keys.Backup, "seg1.m4s", secret)
		if _, err := st.Put(t.Context(), keys.SlotConfig("other"), strings.NewReader(secret), store.Meta{Class: store.ClassConfig}); err != nil {
			t.Fatal(err)
		}
		other := slot("other")
		other.ViewerIPDeny = slots.IPList{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
		ts := serve(t, st, playback.Config{}, fakeSlots{"cam": slot("cam"), "other": other})
		addr := ts.Listener.Addr().String()
		targets := []string{
			"/live/cam/../other/seg1.m4s",
			"/live/cam/../../live/other/primary/seg1.m4s",
			"/live/cam/%2e%2e/other/seg1.m4s",
			"/live/cam/%2E%2E/%2e%2e/live/other/primary/seg1.m4s",
			"/live/cam/%252e%252e/other/seg1.m4s",
			"/live/cam/..%2fother%2fseg1.m4s",
			"/live/cam/..%2f..%2flive%2fother%2fprimary%2fseg1.m4s",
			"/live/cam/..%5c..%5clive%5cother%5cprimary%5cseg1.m4s",
			"/live/cam/%5c..%5cother%5cseg1.m4s",
			"/live/cam/seg1.m4s%00",
			"/live/cam/%00/../other/seg1.m4s",
			"/live/cam//live/other/primary/seg1.m4s",
			"/live/cam/live/other/primary/seg1.m4s",
			"/live/cam/../backup/seg1.m4s",
			"/live/cam/./seg1.m4s",
			"/live/../config/slots/other.json",
			"/live/%2e%2e/config/slots/other.json",
			"/live/cam/.%2e/.%2e/config/slots/other.json",
			"/live/other%2fprimary/seg1.m4s",
			"/live//other/seg1.m4s",
			"/live/cam",
			"/other/seg1.m4s",
			"http://" + addr + "/live/cam/../other/seg1.m4s",
		}
		for _, target := range targets {
			code, body := rawGet(t, addr, target)
			// 403: the path named "other" legitimately, whose viewer
			// lists deny everyone.
			if code != 400 && code != 403 && code != 404 {
				t.Errorf("%s: %d %q, want 400, 403 or 404", target, code, body)
			}
			if strings.Contains(body, secret) {
				t.Errorf("%s: served the other slot's bytes", target)
			}
		}
		// The legitimate path still works.
		if code, body := rawGet(t, addr, "/live/cam/seg1.m4s"); code != 200 || body != "cam bytes" {
			t.Fatalf("legit: %d %q", code, body)
		}
	})
}

func TestStoreErrors(t *testing.T) {
	st := &failingStore{Store: teststores.Disk(t)}
	ts := serve(t, st, playback.Config{}, fakeSlots{"cam": slot("cam")})
	st.err = fmt.Errorf("boom: %w", store.ErrUnavailable)
	resp, _ := do(t, "GET", ts.URL+"/live/cam/seg1.m4s", nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("unavailable: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	st.err = fmt.Errorf("secret detail")
	resp, body := do(t, "GET", ts.URL+"/live/cam/seg1.m4s", nil)
	if resp.StatusCode != 500 || strings.Contains(body, "secret detail") {
		t.Fatalf("other: %d %q", resp.StatusCode, body)
	}
}

type failingStore struct {
	store.Store
	err error
}

func (f *failingStore) Get(context.Context, string) (io.ReadCloser, store.Info, error) {
	return nil, store.Info{}, f.err
}

func (f *failingStore) Stat(context.Context, string) (store.Info, error) {
	return store.Info{}, f.err
}

// TestStreamsLargeObject checks a multi-megabyte body and a range inside it
// arrive intact (the body is streamed, never a short write).
func TestStreamsLargeObject(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
		key := keys.Media("cam", keys.Primary, "big.mp4")
		if _, err := st.Put(t.Context(), key, bytes.NewReader(big), store.Meta{Size: int64(len(big))}); err != nil {
			t.Fatal(err)
		}
		ts := serve(t, st, playback.Config{}, fakeSlots{"cam": slot("cam")})
		_, body := do(t, "GET", ts.URL+"/live/cam/big.mp4", nil)
		if body != string(big) {
			t.Fatalf("body of %d bytes differs", len(body))
		}
		resp, body := do(t, "GET", ts.URL+"/live/cam/big.mp4", map[string]string{"Range": "bytes=1000000-1000015"})
		if resp.StatusCode != 206 || body != string(big[1000000:1000016]) {
			t.Fatalf("range: %d %q", resp.StatusCode, body)
		}
	})
}
