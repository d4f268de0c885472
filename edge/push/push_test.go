package push

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
)

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "EdgeID") {
		t.Fatalf("missing EdgeID: %v", err)
	}
	for field, c := range map[string]Config{
		"MaxObjectBytes": {EdgeID: "e", MaxObjectBytes: -1},
		"IdleTimeout":    {EdgeID: "e", IdleTimeout: time.Millisecond},
		"AdmitTimeout":   {EdgeID: "e", AdmitTimeout: -1},
		"Role":           {EdgeID: "e", Role: "tertiary"},
		"EdgeID":         {EdgeID: "a b"},
	} {
		if err := c.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "Config."+field) {
			t.Errorf("%s: error %v does not name the field", field, err)
		}
	}
	d := (Config{EdgeID: "e"}).WithDefaults()
	if d.MaxObjectBytes != 64<<20 || d.IdleTimeout != 15*time.Second || d.AdmitTimeout != 10*time.Second || d.Role != keys.Primary {
		t.Fatalf("defaults: %+v", d)
	}
	if _, err := New(d, Deps{Store: teststoresDisk(t)}); err == nil || !strings.Contains(err.Error(), "Deps.Admitter") {
		t.Fatalf("New without an Admitter: %v", err)
	}
}

// TestPut covers the write path and every admission rejection, on both
// store backends.
func TestPut(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		key := func(rel string) string { return keys.RolePrefix(e.id, keys.Primary) + rel }

		if r := e.put(t, "seg1.ts", "one"); r.status != http.StatusCreated {
			t.Fatalf("first PUT = %d %s", r.status, r.body)
		}
		if r := e.do(t, http.MethodPut, e.url(e.id, "index.m3u8"), strings.NewReader("#EXTM3U\n"), testUser, testPass, "Content-Type", "application/vnd.apple.mpegurl"); r.status != http.StatusCreated {
			t.Fatalf("manifest PUT = %d %s", r.status, r.body)
		}
		if r := e.do(t, http.MethodPut, e.url(e.id, "index.m3u8"), strings.NewReader("#EXTM3U\n#2\n"), testUser, testPass, "Content-Type", "application/vnd.apple.mpegurl"); r.status != http.StatusNoContent {
			t.Fatalf("manifest overwrite = %d %s", r.status, r.body)
		}
		if i, ok := e.stat(t, key("index.m3u8")); !ok || i.Class != store.ClassManifest || i.Size != 11 || i.ContentType != "application/vnd.apple.mpegurl" {
			t.Fatalf("manifest stored as %+v (ok=%v)", i, ok)
		}
		if i, ok := e.stat(t, key("seg1.ts")); !ok || i.Class != store.ClassSegment || i.Size != 3 {
			t.Fatalf("segment stored as %+v (ok=%v)", i, ok)
		}
		// Chunked body (no Content-Length) streams too.
		pr, pw := io.Pipe()
		go func() { _, _ = io.WriteString(pw, "chunked body"); pw.Close() }()
		if r := e.do(t, http.MethodPut, e.url(e.id, "v/init.mp4"), pr, testUser, testPass); r.status != http.StatusCreated {
			t.Fatalf("chunked PUT = %d %s", r.status, r.body)
		}
		if i, ok := e.stat(t, key("v/init.mp4")); !ok || i.Class != store.ClassInit || i.Size != 12 {
			t.Fatalf("init stored as %+v (ok=%v)", i, ok)
		}

		// Rejections.
		r := e.do(t, http.MethodPut, e.url(e.id, "x.ts"), strings.NewReader("x"), testUser, "wrong")
		if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Basic realm="liveingest push", charset="UTF-8"` {
			t.Fatalf("wrong password = %d %q", r.status, r.header.Get("WWW-Authenticate"))
		}
		if !strings.HasPrefix(r.body, "unauthorized: ") {
			t.Fatalf("wrong password body %q", r.body)
		}
		if r := e.do(t, http.MethodPut, e.url(e.id, "x.ts"), strings.NewReader("x"), "", ""); r.status != http.StatusUnauthorized {
			t.Fatalf("no credentials = %d", r.status)
		}
		pc := &http.Client{Timeout: 10 * time.Second}
		req, _ := http.NewRequest(http.MethodPut, e.plain.URL+PathPrefix+string(e.id)+"/x.ts", strings.NewReader("x"))
		req.SetBasicAuth(testUser, testPass)
		resp, err := pc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "HTTPS") {
			t.Fatalf("plain HTTP = %d %q", resp.StatusCode, b)
		}
		pc.CloseIdleConnections()
		other := e.createSlot(t, "rtmp-1", slots.TypeTransmux, nil, slots.CredentialIn{Username: testUser, Password: testPass})
		if r := e.do(t, http.MethodPut, e.url(other, "x.ts"), strings.NewReader("x"), testUser, testPass); r.status != http.StatusForbidden || !strings.Contains(r.body, "not a live-push slot") {
			t.Fatalf("transmux slot = %d %q", r.status, r.body)
		}
		if r := e.do(t, http.MethodPut, e.url("nosuchslot", "x.ts"), strings.NewReader("x"), testUser, testPass); r.status != http.StatusNotFound || r.body != "not-found: no slot nosuchslot\n" {
			t.Fatalf("unknown slot = %d %q", r.status, r.body)
		}
		fenced := e.createSlot(t, "fenced", slots.TypeLivePush, []string{"10.0.0.0/8", "2001:db8::/32"}, slots.CredentialIn{Username: testUser, Password: testPass})
		if r := e.do(t, http.MethodPut, e.url(fenced, "x.ts"), strings.NewReader("x"), testUser, testPass); r.status != http.StatusForbidden || !strings.HasPrefix(r.body, "forbidden-ip: address 127.0.0.1 may not publish") {
			t.Fatalf("IP outside allow-list = %d %q", r.status, r.body)
		}
		if r := e.do(t, "PATCH", e.url(e.id, "x.ts"), nil, testUser, testPass); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") == "" {
			t.Fatalf("PATCH = %d allow=%q", r.status, r.header.Get("Allow"))
		}
		if r := e.do(t, http.MethodOptions, e.url(e.id, ""), nil, "", ""); r.status != http.StatusOK || r.header.Get("DAV") != "1" || !strings.Contains(r.header.Get("Allow"), "PROPFIND") {
			t.Fatalf("OPTIONS = %d %v", r.status, r.header)
		}
		// Nothing of the rejected requests was stored anywhere.
		for k := range e.objects(t, "live/") {
			if strings.HasSuffix(k, "/x.ts") {
				t.Fatalf("rejected PUT stored %s", k)
			}
		}
	})
}

// zeros is an n-byte reader that allocates nothing.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), z.n)]
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

func TestTooLarge(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		const size = 65 << 20
		// With Content-Length: refused before the body is read.
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, e.url(e.id, "big.ts"), &zeros{size})
		req.ContentLength = size
		req.SetBasicAuth(testUser, testPass)
		if resp, err := e.c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("65 MiB with Content-Length = %d", resp.StatusCode)
			}
		} else if e.rejections("too_large") < 1 {
			t.Fatalf("65 MiB with Content-Length: %v", err)
		}
		// Chunked: cut off at the cap, nothing stored.
		req, _ = http.NewRequestWithContext(t.Context(), http.MethodPut, e.url(e.id, "big2.ts"), io.NopCloser(&zeros{size}))
		req.ContentLength = -1
		req.SetBasicAuth(testUser, testPass)
		if resp, err := e.c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("65 MiB chunked = %d", resp.StatusCode)
			}
		}
		waitFor(t, "two too_large rejections", 30*time.Second, func() bool { return e.rejections("too_large") >= 2 })
		if objs := e.objects(t, keys.MediaPrefix(e.id)); len(objs) != 0 {
			t.Fatalf("oversize bodies left objects: %v", objs)
		}
	})
}

// TestAbortedUpload: a client that sends half the body and hangs up leaves
// nothing visible.
func TestAbortedUpload(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		for _, chunked := range []bool{false, true} {
			conn, err := tls.Dial("tcp", e.ts.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			half := strings.Repeat("x", 50000)
			if chunked {
				fmt.Fprintf(conn, "PUT %saborted.ts HTTP/1.1\r\nHost: a\r\nAuthorization: %s\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n",
					PathPrefix+string(e.id)+"/", basic(testUser, testPass), len(half), half)
			} else {
				fmt.Fprintf(conn, "PUT %saborted.ts HTTP/1.1\r\nHost: a\r\nAuthorization: %s\r\nContent-Length: 100000\r\n\r\n%s",
					PathPrefix+string(e.id)+"/", basic(testUser, testPass), half)
			}
			conn.Close()
		}
		waitFor(t, "two aborted uploads", 30*time.Second, func() bool { return e.rejections("aborted") >= 2 })
		if _, ok := e.stat(t, keys.RolePrefix(e.id, keys.Primary)+"aborted.ts"); ok {
			t.Fatal("aborted upload is visible")
		}
		if objs := e.objects(t, keys.MediaPrefix(e.id)); len(objs) != 0 {
			t.Fatalf("aborted uploads left objects: %v", objs)
		}
	})
}

func TestAuthRateLimit(t *testing.T) {
	e := newEnv(t, teststoresDisk(t))
	for i := 1; i <= 10; i++ {
		if r := e.put2(t, "wrong"); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d %s", i, r.status, r.body)
		}
	}
	r := e.put2(t, "wrong")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || r.header.Get("Retry-After") == "0" {
		t.Fatalf("11th failure = %d Retry-After=%q", r.status, r.header.Get("Retry-After"))
	}
	// Blocked: even correct credentials wait (no bcrypt for a flooding IP).
	if r := e.put2(t, testPass); r.status != http.StatusTooManyRequests {
		t.Fatalf("blocked IP, right password = %d", r.status)
	}
}

func (e *env) put2(t *testing.T, pass string) reply {
	return e.do(t, http.MethodPut, e.url(e.id, "seg.ts"), strings.NewReader("x"), testUser, pass)
}

// TestSecondPublisher: one publisher per slot and role (R-EDGE-1/2): while
// a publisher's session lives, another user of the slot is refused busy by
// admission; listing is not; once the first is idle the second gets in.
func TestSecondPublisher(t *testing.T) {
	e := newEnv(t, teststoresDisk(t), func(c *Config, a *admit.Config) {
		c.IdleTimeout = 300 * time.Millisecond
		a.KeyRate = coord.Rate{Burst: 1000, Interval: time.Millisecond} // the waiting publisher retries often
	})
	id := e.createSlot(t, "two-users", slots.TypeLivePush, nil,
		slots.CredentialIn{Username: "a", Password: "a-Passw0rd"}, slots.CredentialIn{Username: "b", Password: "other-Pass"})
	put := func(user, pass string) reply {
		return e.do(t, http.MethodPut, e.url(id, "seg.ts"), strings.NewReader("x"), user, pass)
	}
	if r := put("a", "a-Passw0rd"); r.status != http.StatusCreated {
		t.Fatalf("first PUT = %d %q", r.status, r.body)
	}
	// Same user keeps the session; another user is refused.
	if r := put("a", "a-Passw0rd"); r.status != http.StatusNoContent {
		t.Fatalf("PUT in the session = %d %q", r.status, r.body)
	}
	r := put("b", "other-Pass")
	busy := regexp.MustCompile(`^busy: slot ` + string(id) + ` \(primary\) is already being published over push since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$`)
	if r.status != http.StatusConflict || !busy.MatchString(r.body) || strings.Contains(r.body, "Pass") {
		t.Fatalf("second user = %d %q", r.status, r.body)
	}
	// Reads do not need the session.
	if r := e.do(t, "PROPFIND", e.url(id, ""), nil, "b", "other-Pass", "Depth", "1"); r.status != http.StatusMultiStatus {
		t.Fatalf("PROPFIND by second user = %d", r.status)
	}
	// IdleTimeout after a's last request its session ends; b gets in.
	waitFor(t, "second publisher admitted", 30*time.Second, func() bool {
		return put("b", "other-Pass").status == http.StatusNoContent
	})
	if l := e.live(t, id); len(l) != 1 || l[0].Protocol != "push" {
		t.Fatalf("live status = %+v", l)
	}
}

// TestBusyAcrossProtocols: an RTMP session (admitted by stream key, as
// edge/rtmp does) and a Live Push session on one slot — retyped between
// transmux and live-push while published — refuse each other with the same
// busy message, and push answers it as 409.
func TestBusyAcrossProtocols(t *testing.T) {
	e := newEnv(t, teststoresDisk(t), func(c *Config, a *admit.Config) {
		c.IdleTimeout = time.Hour
		a.KeyRate = coord.Rate{Burst: 10, Interval: time.Second} // four admissions of one slot in a row
	})
	c, err := e.repo.Create(t.Context(), slots.Input{Name: ptr("both"), Type: ptr(slots.TypeTransmux),
		Credentials: &[]slots.CredentialIn{{Username: testUser, Password: testPass}}})
	if err != nil {
		t.Fatal(err)
	}
	id := c.Slot.ID
	retype := func(typ slots.Type) {
		t.Helper()
		if _, err := e.repo.Update(t.Context(), id, 0, slots.Input{Type: ptr(typ)}); err != nil {
			t.Fatal(err)
		}
	}
	busy := func(proto string) *regexp.Regexp {
		return regexp.MustCompile(`^slot ` + string(id) + ` \(primary\) is already being published over ` + proto + ` since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	}
	rtmpReq := admit.Request{Protocol: admit.ProtocolRTMP, StreamKey: c.StreamKey, Role: keys.Primary, Remote: netip.MustParseAddrPort("192.0.2.7:50000")}

	rtmp, err := e.adm.Admit(t.Context(), rtmpReq)
	if err != nil {
		t.Fatal(err)
	}
	retype(slots.TypeLivePush)
	r := e.do(t, http.MethodPut, e.url(id, "seg.ts"), strings.NewReader("x"), testUser, testPass)
	msg, ok := strings.CutPrefix(strings.TrimSuffix(r.body, "\n"), "busy: ")
	if r.status != http.StatusConflict || !ok || !busy("rtmp").MatchString(msg) {
		t.Fatalf("PUT while RTMP publishes = %d %q", r.status, r.body)
	}
	if err := rtmp.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	if r := e.do(t, http.MethodPut, e.url(id, "seg.ts"), strings.NewReader("x"), testUser, testPass); r.status != http.StatusCreated {
		t.Fatalf("PUT once RTMP ended = %d %q", r.status, r.body)
	}
	retype(slots.TypeTransmux)
	_, err = e.adm.Admit(t.Context(), rtmpReq)
	if rej := admit.AsRejection(err); rej.Reason != admit.ReasonBusy || !busy("push").MatchString(rej.Message) || rej.HeldBy != admit.ProtocolPush {
		t.Fatalf("RTMP while Live Push publishes = %v", err)
	}
}

// TestTraversal: every escape attempt is refused and nothing lands outside
// the slot's prefix.
func TestTraversal(t *testing.T) {
	backends(t, func(t *testing.T, st store.Store) {
		e := newEnv(t, st)
		other := e.createSlot(t, "victim", slots.TypeLivePush, nil, slots.CredentialIn{Username: "v", Password: "other-Pass"})
		auth := basic(testUser, testPass)
		p := PathPrefix + string(e.id) + "/"
		cases := []string{
			p + "..",
			p + "../x.ts",
			p + "a/../../x.ts",
			p + "%2e%2e/x.ts",
			p + "%2E%2E/%2e%2e/config/slots/x.json",
			p + "%252e%252e/x.ts",
			p + "..%2fx.ts",
			p + "a%2f..%2f..%2fx.ts",
			p + "a%2fb.ts",
			p + "%5c..%5cx.ts",
			p + "..%5cx.ts",
			p + "a%00.ts",
			p + "/etc/passwd",
			p + "//etc/passwd",
			p + "./x.ts",
			p + ".hidden",
			p + "a%25.ts",
			p + "../" + string(other) + "/x.ts",
			p + "%2e%2e/" + string(other) + "/x.ts",
			PathPrefix + ".." + "/" + "x.ts",
			PathPrefix + "%2e%2e/config/x.json",
			PathPrefix + string(e.id) + "%2f..%2f" + string(other) + "/x.ts",
			PathPrefix + string(other) + "/x.ts", // another slot, first slot's credentials
		}
		before := e.objects(t, "")
		for _, c := range cases {
			r := raw(t, e.bare, http.MethodPut, c, auth, "evil")
			if r.status != http.StatusBadRequest && r.status != http.StatusForbidden && r.status != http.StatusUnauthorized && r.status != http.StatusNotFound {
				t.Errorf("bare handler: PUT %q = %d %q, want 400/401/403/404", c, r.status, r.body)
			}
			// Through a mux as cmd mounts it: the mux may redirect to the
			// cleaned path instead; nothing is written either way.
			r = raw(t, e.ts, http.MethodPut, c, auth, "evil")
			if r.status < 300 || r.status == http.StatusConflict || r.status >= 500 {
				t.Errorf("mux: PUT %q = %d %q", c, r.status, r.body)
			}
			for _, m := range []string{"MKCOL", http.MethodDelete} {
				if r := raw(t, e.bare, m, c, auth, ""); r.status < 400 || r.status >= 500 || r.status == http.StatusConflict {
					t.Errorf("bare: %s %q = %d", m, c, r.status)
				}
			}
		}
		if r := e.do(t, http.MethodPut, e.url(other, "x.ts"), strings.NewReader("x"), testUser, testPass); r.status != http.StatusUnauthorized {
			t.Errorf("other slot with first slot's credentials = %d", r.status)
		}
		after := e.objects(t, "")
		for k := range after {
			if _, ok := before[k]; !ok {
				t.Errorf("traversal attempt wrote %s", k)
			}
		}
		// A valid nested path still works and lands under the role prefix.
		if r := raw(t, e.bare, http.MethodPut, p+"720p/seg%31.ts", auth, "ok"); r.status != http.StatusCreated {
			t.Fatalf("valid encoded path = %d %q", r.status, r.body)
		}
		if _, ok := e.stat(t, keys.RolePrefix(e.id, keys.Primary)+"720p/seg1.ts"); !ok {
			t.Fatal("valid PUT not stored")
		}
	})
}

// TestDAV exercises MKCOL, PROPFIND and DELETE semantics directly.
func TestDAV(t *testing.T) {
	e := newEnv(t, teststoresDisk(t))
	do := func(m, rel string, hdr ...string) reply {
		return e.do(t, m, e.url(e.id, rel), nil, testUser, testPass, hdr...)
	}
	if r := do("MKCOL", "720p"); r.status != http.StatusCreated {
		t.Fatalf("MKCOL = %d %s", r.status, r.body)
	}
	if r := do("MKCOL", "720p/"); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("MKCOL again = %d", r.status)
	}
	r := do("PROPFIND", "", "Depth", "1")
	if r.status != http.StatusMultiStatus || !strings.Contains(r.body, "<D:href>"+PathPrefix+string(e.id)+"/720p/</D:href>") || !strings.Contains(r.body, "<D:collection/>") {
		t.Fatalf("PROPFIND root = %d %s", r.status, r.body)
	}
	if r := do("PROPFIND", "720p/", "Depth", "0"); r.status != http.StatusMultiStatus {
		t.Fatalf("PROPFIND empty collection = %d", r.status)
	}
	if r := e.put(t, "720p/seg1.ts", "12345"); r.status != http.StatusCreated {
		t.Fatalf("PUT into collection = %d", r.status)
	}
	r = do("PROPFIND", "720p", "Depth", "1")
	if r.status != http.StatusMultiStatus || !strings.Contains(r.body, "<D:getcontentlength>5</D:getcontentlength>") || !strings.Contains(r.body, "seg1.ts</D:href>") || !strings.Contains(r.body, "<D:getetag>") || !strings.Contains(r.body, "GMT</D:getlastmodified>") {
		t.Fatalf("PROPFIND collection = %d %s", r.status, r.body)
	}
	if r := do("PROPFIND", "", "Depth", "infinity"); r.status != http.StatusForbidden || !strings.Contains(r.body, "propfind-finite-depth") {
		t.Fatalf("Depth infinity = %d %s", r.status, r.body)
	}
	if r := e.do(t, "PROPFIND", e.url(e.id, ""), strings.NewReader(strings.Repeat("<a>", 30000)), testUser, testPass, "Depth", "1"); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("big PROPFIND body = %d", r.status)
	}
	if r := do("PROPFIND", "nope", "Depth", "0"); r.status != http.StatusNotFound {
		t.Fatalf("PROPFIND missing = %d", r.status)
	}
	if r := do(http.MethodDelete, ""); r.status != http.StatusForbidden {
		t.Fatalf("DELETE root = %d", r.status)
	}
	if r := do(http.MethodDelete, "720p/"); r.status != http.StatusNoContent {
		t.Fatalf("DELETE collection = %d", r.status)
	}
	if objs := e.objects(t, keys.MediaPrefix(e.id)); len(objs) != 0 {
		t.Fatalf("DELETE left %v", objs)
	}
	if r := do(http.MethodDelete, "720p/"); r.status != http.StatusNotFound {
		t.Fatalf("DELETE again = %d", r.status)
	}
}

// TestCloseReleases: Close ends the session: the lease is back and the live
// status empty at once.
func TestCloseReleases(t *testing.T) {
	e := newEnv(t, teststoresDisk(t), func(c *Config, _ *admit.Config) { c.IdleTimeout = time.Hour })
	if r := e.put(t, "a.ts", "x"); r.status != http.StatusCreated {
		t.Fatal(r.status)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := e.srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !e.leaseFree(t, e.id) || len(e.live(t, e.id)) != 0 {
		t.Fatalf("after Close: lease free %v, live %+v", e.leaseFree(t, e.id), e.live(t, e.id))
	}
	if r := e.put(t, "b.ts", "x"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("PUT after Close = %d", r.status)
	}
}
