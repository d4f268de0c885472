package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/memory"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The API's repository interface is the real repository's.
var _ Slots = (*slots.Repo)(nil)

const testToken = "test-admin-token-0123456789"

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// env is one API on a fresh store, served over real HTTP on 127.0.0.1.
type env struct {
	t    *testing.T
	srv  *httptest.Server
	repo *slots.Repo
	reg  *memory.Coord
	logs *testenv.Buffer // everything the API logged
}

func newEnv(t *testing.T, st store.Store) *env {
	dep := slots.DevDeployment("localhost", "local")
	dep.Regions = append(dep.Regions, slots.Region{ID: "eu", PublicHost: "eu.example"})
	logs := &testenv.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	repo, err := slots.New(st, slots.Options{Deployment: dep, BcryptCost: 4, CacheTTL: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, repo: repo, reg: memory.New(nil), logs: logs}
	lim, err := e.reg.NewLimiter(DefaultAuthFailRate)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{AdminToken: testToken, MaxBodyBytes: 64 << 10}, Deps{Slots: repo, Registry: e.reg, AuthLimiter: lim, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(a.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

// resp is a read response.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r resp) want(t *testing.T, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

// wantErr checks an error response: status, JSON body, field.
func (r resp) wantErr(t *testing.T, status int, field string) {
	t.Helper()
	r.want(t, status)
	var e Error
	r.decode(t, &e)
	if e.Error == "" || e.Field != field {
		t.Fatalf("error body %s: want field %q", r.body, field)
	}
}

// do sends a request with the admin token (unless hdr overrides it) and a
// JSON Content-Type when there is a body. body is a string or a value to
// encode.
func (e *env) do(method, path string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctxFor(e.t), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); ct != contentTypeJSON {
		e.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		e.t.Errorf("%s %s: Cache-Control %q", method, path, cc)
	}
	if len(b) > 0 && !json.Valid(b) {
		e.t.Errorf("%s %s: body is not JSON: %s", method, path, b)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// create makes a slot and returns its view (with the stream key).
func (e *env) create(in map[string]any) slots.View {
	e.t.Helper()
	var v slots.View
	e.do("POST", "/api/v1/slots", in).want(e.t, http.StatusCreated).decode(e.t, &v)
	return v
}

func TestAPIDisk(t *testing.T)  { runSuite(t, teststores.Disk) }
func TestAPIMinIO(t *testing.T) { runSuite(t, teststores.MinIO) }

// runSuite runs every API test through real HTTP on a fresh store from
// newStore, so both backends answer the same.
func runSuite(t *testing.T, newStore func(*testing.T) store.Store) {
	tests := map[string]func(*testing.T, *env){
		"CreateGet":       testCreateGet,
		"DuplicateName":   testDuplicateName,
		"ListFilterSort":  testListFilterSort,
		"Clone":           testClone,
		"PatchIfMatch":    testPatchIfMatch,
		"Delete":          testDelete,
		"Auth":            testAuth,
		"BadRequests":     testBadRequests,
		"RotateKey":       testRotateKey,
		"Live":            testLive,
		"ConcurrentNames": testConcurrentCreate,
		"NoSecretsEchoed": testNoSecretsEchoed,
		"Routing":         testRouting,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, newStore(t)))
		})
	}
}

func testCreateGet(t *testing.T, e *env) {
	r := e.do("POST", "/api/v1/slots", map[string]any{"name": "cam-1", "backup": true}).want(t, http.StatusCreated)
	var v slots.View
	r.decode(t, &v)
	if v.StreamKey == "" || v.Name != "cam-1" || v.Version != 1 || v.Region != "local" {
		t.Fatalf("created %+v", v)
	}
	if got := r.header.Get("Location"); got != "/api/v1/slots/"+v.ID {
		t.Fatalf("Location %q", got)
	}
	if got := r.header.Get("ETag"); got != `"1"` {
		t.Fatalf("ETag %q", got)
	}
	if !strings.Contains(v.IngestURLs.RTMP.Primary, v.StreamKey) || v.IngestURLs.RTMP.Backup == "" {
		t.Fatalf("ingest urls %+v", v.IngestURLs.RTMP)
	}
	g := e.do("GET", "/api/v1/slots/"+v.ID, nil).want(t, http.StatusOK)
	if bytes.Contains(g.body, []byte(`"stream_key":`)) || bytes.Contains(g.body, []byte(v.StreamKey)) {
		t.Fatalf("GET shows the stream key: %s", g.body)
	}
	if g.header.Get("ETag") != `"1"` {
		t.Fatalf("GET ETag %q", g.header.Get("ETag"))
	}
	var got slots.View
	g.decode(t, &got)
	if got.ID != v.ID || got.Name != "cam-1" || !got.Backup {
		t.Fatalf("GET %+v", got)
	}
	e.do("GET", "/api/v1/slots/nope-0", nil).wantErr(t, http.StatusNotFound, "")
	e.do("GET", "/api/v1/slots/Not..An_Id", nil).wantErr(t, http.StatusNotFound, "")
}

func testDuplicateName(t *testing.T, e *env) {
	e.create(map[string]any{"name": "dup"})
	e.do("POST", "/api/v1/slots", map[string]any{"name": "DUP"}).wantErr(t, http.StatusConflict, "name")
}

func testListFilterSort(t *testing.T, e *env) {
	e.create(map[string]any{"name": "bravo", "region": "eu", "type": "transmux"})
	e.create(map[string]any{"name": "alpha", "region": "local", "type": "live-push",
		"credentials": []map[string]any{{"username": "enc1", "password": "pw-0123456789"}}})
	e.create(map[string]any{"name": "charlie", "region": "eu", "type": "transcode-720p"})
	names := func(query string) string {
		t.Helper()
		var l SlotList
		e.do("GET", "/api/v1/slots"+query, nil).want(t, http.StatusOK).decode(t, &l)
		var out []string
		for _, v := range l.Slots {
			if v.StreamKey != "" {
				t.Fatalf("list shows a stream key")
			}
			out = append(out, v.Name)
		}
		return strings.Join(out, ",")
	}
	for query, want := range map[string]string{
		"":                                "bravo,alpha,charlie",
		"?sort=created&order=desc":        "charlie,alpha,bravo",
		"?sort=name":                      "alpha,bravo,charlie",
		"?sort=name&order=desc":           "charlie,bravo,alpha",
		"?sort=region&order=asc":          "bravo,charlie,alpha",
		"?sort=region&order=desc":         "alpha,bravo,charlie", // ties: by name, ascending
		"?sort=type&order=asc":            "alpha,charlie,bravo",
		"?sort=type&order=desc":           "bravo,charlie,alpha",
		"?region=eu":                      "bravo,charlie",
		"?region=local":                   "alpha",
		"?type=live-push":                 "alpha",
		"?region=eu&type=transmux":        "bravo",
		"?region=local&type=transmux":     "",
		"?region=eu&sort=name&order=desc": "charlie,bravo",
	} {
		if got := names(query); got != want {
			t.Errorf("GET /slots%s: %q, want %q", query, got, want)
		}
	}
	for query, field := range map[string]string{
		"?sort=size":         "sort",
		"?order=up":          "order",
		"?type=webcam":       "type",
		"?region=mars":       "region",
		"?regoin=eu":         "regoin",
		"?sort=name&sort=id": "sort",
	} {
		e.do("GET", "/api/v1/slots"+query, nil).wantErr(t, http.StatusBadRequest, field)
	}
}

func testClone(t *testing.T, e *env) {
	src := e.create(map[string]any{"name": "src", "region": "eu", "description": "the source"})
	e.do("POST", "/api/v1/slots/"+src.ID+"/clone", map[string]any{}).wantErr(t, http.StatusBadRequest, "name")
	e.do("POST", "/api/v1/slots/"+src.ID+"/clone", "").wantErr(t, http.StatusBadRequest, "")
	e.do("POST", "/api/v1/slots/"+src.ID+"/clone", map[string]any{"name": "src"}).wantErr(t, http.StatusConflict, "name")
	e.do("POST", "/api/v1/slots/"+src.ID+"/clone", map[string]any{"name": "-bad-"}).wantErr(t, http.StatusUnprocessableEntity, "name")
	e.do("POST", "/api/v1/slots/"+src.ID+"/clone", map[string]any{"name": "x", "region": "eu"}).wantErr(t, http.StatusBadRequest, "region")
	e.do("POST", "/api/v1/slots/nope/clone", map[string]any{"name": "x"}).wantErr(t, http.StatusNotFound, "")
	r := e.do("POST", "/api/v1/slots/"+src.ID+"/clone", map[string]any{"name": "copy"}).want(t, http.StatusCreated)
	var c slots.View
	r.decode(t, &c)
	if c.ID == src.ID || c.Name != "copy" || c.StreamKey == "" || c.StreamKey == src.StreamKey {
		t.Fatalf("clone %+v of %+v", c, src)
	}
	if c.Region != "eu" || c.Description != "the source" {
		t.Fatalf("clone lost settings: %+v", c)
	}
	if r.header.Get("Location") != "/api/v1/slots/"+c.ID {
		t.Fatalf("Location %q", r.header.Get("Location"))
	}
}

func testPatchIfMatch(t *testing.T, e *env) {
	v := e.create(map[string]any{"name": "p"})
	path := "/api/v1/slots/" + v.ID
	// Version 1 → 2 unconditionally, so that "1" is stale.
	e.do("PATCH", path, map[string]any{"description": "one"}).want(t, http.StatusOK)
	e.do("PATCH", path, map[string]any{"description": "x"}, "If-Match", `"1"`).wantErr(t, http.StatusPreconditionFailed, "If-Match")
	e.do("PATCH", path, map[string]any{"description": "x"}, "If-Match", `"0"`).wantErr(t, http.StatusPreconditionFailed, "If-Match")
	e.do("PATCH", path, map[string]any{"description": "x"}, "If-Match", `"abc"`).wantErr(t, http.StatusBadRequest, "If-Match")
	version := int64(2)
	for _, im := range []string{`"2"`, `W/"3"`, `4`, `*`} {
		r := e.do("PATCH", path, map[string]any{"description": "v" + im}, "If-Match", im).want(t, http.StatusOK)
		var got slots.View
		r.decode(t, &got)
		version++
		if got.Version != version || got.Description != "v"+im || got.StreamKey != "" {
			t.Fatalf("PATCH If-Match %s: %+v", im, got)
		}
		if r.header.Get("ETag") != etag(version) {
			t.Fatalf("ETag %q, want %q", r.header.Get("ETag"), etag(version))
		}
	}
	// The merge-patch media type is accepted; other types are not.
	e.do("PATCH", path, `{"backup": true}`, "Content-Type", "application/merge-patch+json").want(t, http.StatusOK)
	e.do("PATCH", path, `{"backup": true}`, "Content-Type", "text/plain").wantErr(t, http.StatusUnsupportedMediaType, "Content-Type")
	e.do("PATCH", path, map[string]any{"segment_duration": -1}).wantErr(t, http.StatusUnprocessableEntity, "segment_duration")
	e.do("PATCH", "/api/v1/slots/nope", map[string]any{"description": "x"}).wantErr(t, http.StatusNotFound, "")
}

func testDelete(t *testing.T, e *env) {
	v := e.create(map[string]any{"name": "d"})
	path := "/api/v1/slots/" + v.ID
	e.do("DELETE", path, nil, "If-Match", `"7"`).wantErr(t, http.StatusPreconditionFailed, "If-Match")
	r := e.do("DELETE", path, nil, "If-Match", `"1"`).want(t, http.StatusNoContent)
	if len(r.body) != 0 {
		t.Fatalf("204 with body %s", r.body)
	}
	e.do("GET", path, nil).wantErr(t, http.StatusNotFound, "")
	e.do("DELETE", path, nil).wantErr(t, http.StatusNotFound, "")
	// The name is free again.
	e.create(map[string]any{"name": "d"})
}

func testAuth(t *testing.T, e *env) {
	for _, auth := range []string{"", "Bearer", "Bearer wrong-token-0123456789", "Basic " + testToken, "Bearer " + testToken + "x"} {
		r := e.do("GET", "/api/v1/slots", nil, "Authorization", auth)
		r.wantErr(t, http.StatusUnauthorized, "")
		if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="liveingest"` {
			t.Fatalf("WWW-Authenticate %q", got)
		}
	}
	e.do("POST", "/api/v1/slots", map[string]any{"name": "x"}, "Authorization", "").wantErr(t, http.StatusUnauthorized, "")
	e.do("GET", "/api/v1/slots", nil, "Authorization", "bearer "+testToken).want(t, http.StatusOK)
	if strings.Contains(e.logs.String(), "wrong-token") || strings.Contains(e.logs.String(), testToken) {
		t.Fatalf("a token was logged: %s", e.logs)
	}
	if !strings.Contains(e.logs.String(), "remote=127.0.0.1") {
		t.Fatalf("failed auth not logged with the remote address: %s", e.logs)
	}
	// The OpenAPI document is public.
	r := e.do("GET", "/api/v1/openapi.json", nil, "Authorization", "")
	r.want(t, http.StatusOK)
	if !bytes.Equal(r.body, openAPIDoc) {
		t.Fatalf("served document differs from the embedded one")
	}
}

func testBadRequests(t *testing.T, e *env) {
	post := func(body string, hdr ...string) resp { return e.do("POST", "/api/v1/slots", body, hdr...) }
	post(`{"name": "x"`).wantErr(t, http.StatusBadRequest, "")
	post(`not json`).wantErr(t, http.StatusBadRequest, "")
	post(``).wantErr(t, http.StatusBadRequest, "")
	post(`{"name": "a"} {"name": "b"}`).wantErr(t, http.StatusBadRequest, "")
	post(`{"name": "x", "colour": "red"}`).wantErr(t, http.StatusBadRequest, "colour")
	post(`{"name": 7}`).wantErr(t, http.StatusBadRequest, "name")
	post(`{"description": "no name"}`).wantErr(t, http.StatusBadRequest, "name")
	post(`{"name": "has space"}`).wantErr(t, http.StatusUnprocessableEntity, "name")
	post(`{"name": "x", "type": "webcam"}`).wantErr(t, http.StatusUnprocessableEntity, "type")
	post(`{"name": "x", "publish_ip_allow": ["10.0.0.0/33"]}`).wantErr(t, http.StatusUnprocessableEntity, "publish_ip_allow[0]")
	post(`{"name": "x"}`, "Content-Type", "text/plain").wantErr(t, http.StatusUnsupportedMediaType, "Content-Type")
	post(`{"name": "x"}`, "Content-Type", "").wantErr(t, http.StatusUnsupportedMediaType, "Content-Type")
	big := `{"name": "x", "description": "` + strings.Repeat("a", 65<<10) + `"}`
	post(big).wantErr(t, http.StatusRequestEntityTooLarge, "")
	// Read-only fields sent back are ignored, so a GET body can be PATCHed.
	v := e.create(map[string]any{"name": "ro"})
	g := e.do("GET", "/api/v1/slots/"+v.ID, nil).want(t, http.StatusOK)
	e.do("PATCH", "/api/v1/slots/"+v.ID, string(g.body), "If-Match", g.header.Get("ETag")).want(t, http.StatusOK)
}

func testRotateKey(t *testing.T, e *env) {
	v := e.create(map[string]any{"name": "rk"})
	ctx := ctxFor(t)
	if s, err := e.repo.ByStreamKey(ctx, v.StreamKey); err != nil || string(s.ID) != v.ID {
		t.Fatalf("created key does not resolve: %v", err)
	}
	r := e.do("POST", "/api/v1/slots/"+v.ID+"/rotate-key", nil).want(t, http.StatusOK)
	var got slots.View
	r.decode(t, &got)
	if got.StreamKey == "" || got.StreamKey == v.StreamKey || got.Version != 2 || r.header.Get("ETag") != `"2"` {
		t.Fatalf("rotated %+v (ETag %s)", got, r.header.Get("ETag"))
	}
	if _, err := e.repo.ByStreamKey(ctx, v.StreamKey); err == nil {
		t.Fatalf("old key still resolves")
	}
	if s, err := e.repo.ByStreamKey(ctx, got.StreamKey); err != nil || string(s.ID) != v.ID {
		t.Fatalf("new key does not resolve: %v", err)
	}
	e.do("POST", "/api/v1/slots/"+v.ID+"/rotate-key", nil, "Content-Type", "text/plain").wantErr(t, http.StatusUnsupportedMediaType, "Content-Type")
	e.do("POST", "/api/v1/slots/nope/rotate-key", nil).wantErr(t, http.StatusNotFound, "")
}

func testLive(t *testing.T, e *env) {
	v := e.create(map[string]any{"name": "lv"})
	path := "/api/v1/slots/" + v.ID + "/live"
	r := e.do("GET", path, nil).want(t, http.StatusOK)
	if got := strings.TrimSpace(string(r.body)); got != `{"live":false,"sessions":[],"recent":[]}` {
		t.Fatalf("live before ingest: %s", got)
	}
	started := time.Now().UTC().Truncate(time.Second)
	sess := coord.Session{
		ID: "sess-1", Slot: v.ID, Role: "primary", Protocol: "rtmp",
		Edge: "edge-1", Remote: "192.0.2.7:50000", Started: started, BitrateKbps: 4500,
	}
	if err := e.reg.Heartbeat(ctxFor(t), sess, time.Minute); err != nil {
		t.Fatal(err)
	}
	var l Live
	e.do("GET", path, nil).want(t, http.StatusOK).decode(t, &l)
	if !l.Live || len(l.Sessions) != 1 {
		t.Fatalf("live after heartbeat: %+v", l)
	}
	if s := l.Sessions[0]; s.ID != "sess-1" || s.Protocol != "rtmp" || s.BitrateKbps != 4500 || !s.Started.Equal(started) {
		t.Fatalf("session %+v", s)
	}
	// A record of a refused publish shows under recent, not as live.
	if err := e.reg.Remove(ctxFor(t), v.ID, "sess-1"); err != nil {
		t.Fatal(err)
	}
	ended := coord.Session{ID: "last-busy-primary", Slot: v.ID, Role: "primary", Protocol: "srt", Edge: "edge-2",
		Started: started, Ended: started, EndReason: "busy: slot lv (primary) is already being published over rtmp"}
	if err := e.reg.Heartbeat(ctxFor(t), ended, time.Minute); err != nil {
		t.Fatal(err)
	}
	l = Live{}
	e.do("GET", path, nil).want(t, http.StatusOK).decode(t, &l)
	if l.Live || len(l.Sessions) != 0 || len(l.Recent) != 1 || l.Recent[0].EndReason != ended.EndReason || !l.Recent[0].Ended.Equal(started) {
		t.Fatalf("live with an ended record: %+v", l)
	}
	e.do("GET", "/api/v1/slots/nope/live", nil).wantErr(t, http.StatusNotFound, "")
}

// testConcurrentCreate: of 20 simultaneous creates of one name, exactly one
// wins and the others are told the name is taken.
func testConcurrentCreate(t *testing.T, e *env) {
	const n = 20
	statuses := make(chan int, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			req, err := http.NewRequestWithContext(ctxFor(t), "POST", e.srv.URL+"/api/v1/slots", strings.NewReader(`{"name": "race"}`))
			if err != nil {
				statuses <- 0
				return
			}
			req.Header.Set("Authorization", "Bearer "+testToken)
			req.Header.Set("Content-Type", "application/json")
			res, err := e.srv.Client().Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			statuses <- res.StatusCode
		}()
	}
	close(start)
	count := map[int]int{}
	for range n {
		count[<-statuses]++
	}
	if count[http.StatusCreated] != 1 || count[http.StatusConflict] != n-1 {
		t.Fatalf("statuses %v, want one 201 and %d 409", count, n-1)
	}
	var l SlotList
	e.do("GET", "/api/v1/slots", nil).want(t, http.StatusOK).decode(t, &l)
	if len(l.Slots) != 1 {
		t.Fatalf("%d slots after the race", len(l.Slots))
	}
}

// testNoSecretsEchoed: the write-only secrets sent on create never come back
// in any response, nor reach the log.
func testNoSecretsEchoed(t *testing.T, e *env) {
	const pw, pass, tok = "pw-Very-Secret-1", "srt-Passphrase-Secret-2", "token-Hmac-Secret-3-abcdefghijkl"
	in := map[string]any{
		"name": "sec", "type": "transmux",
		"credentials":    []map[string]any{{"username": "enc1", "password": pw}},
		"srt_passphrase": pass,
		"token_auth":     map[string]any{"mode": "url", "secrets": []string{tok}},
	}
	var bodies [][]byte
	r := e.do("POST", "/api/v1/slots", in).want(t, http.StatusCreated)
	var v slots.View
	r.decode(t, &v)
	id := "/api/v1/slots/" + v.ID
	bodies = append(bodies, r.body,
		e.do("GET", id, nil).want(t, http.StatusOK).body,
		e.do("GET", "/api/v1/slots", nil).want(t, http.StatusOK).body,
		e.do("PATCH", id, map[string]any{"description": "x", "srt_passphrase": pass}).want(t, http.StatusOK).body,
		e.do("POST", id+"/clone", map[string]any{"name": "sec-2"}).want(t, http.StatusCreated).body,
		e.do("POST", id+"/rotate-key", nil).want(t, http.StatusOK).body,
		e.do("GET", id+"/live", nil).want(t, http.StatusOK).body,
		e.do("POST", "/api/v1/slots", in).body, // 409
	)
	for _, b := range bodies {
		for _, s := range []string{pw, pass, tok} {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("response shows a secret: %s", b)
			}
		}
	}
	if len(v.Credentials) != 1 || v.Credentials[0].Username != "enc1" || v.TokenAuth.Mode != "url" {
		t.Fatalf("view %+v", v)
	}
	for _, s := range []string{pw, pass, tok, testToken} {
		if strings.Contains(e.logs.String(), s) {
			t.Fatalf("log shows a secret: %s", e.logs)
		}
	}
}

func testRouting(t *testing.T, e *env) {
	e.do("GET", "/api/v1/nothing", nil).wantErr(t, http.StatusNotFound, "")
	e.do("GET", "/api/v1/slots/a/b/c", nil).wantErr(t, http.StatusNotFound, "")
	e.do("POST", "/api/v1/slots/abc/start", nil).wantErr(t, http.StatusNotFound, "")
	r := e.do("PUT", "/api/v1/slots/abc", "{}")
	r.wantErr(t, http.StatusMethodNotAllowed, "")
	if got := r.header.Get("Allow"); got != "GET, PATCH, DELETE, HEAD" {
		t.Fatalf("Allow %q", got)
	}
	r = e.do("DELETE", "/api/v1/slots", nil)
	r.wantErr(t, http.StatusMethodNotAllowed, "")
	if got := r.header.Get("Allow"); got != "GET, POST, HEAD" {
		t.Fatalf("Allow %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	repo, err := slots.New(teststores.Disk(t), slots.Options{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	co := memory.New(nil)
	lim, err := co.NewLimiter(DefaultAuthFailRate)
	if err != nil {
		t.Fatal(err)
	}
	deps := Deps{Slots: repo, Registry: co, AuthLimiter: lim}
	for _, c := range []struct {
		cfg   Config
		deps  Deps
		field string
	}{
		{Config{}, deps, "Config.AdminToken"},
		{Config{AdminToken: "short"}, deps, "Config.AdminToken"},
		{Config{AdminToken: testToken, MaxBodyBytes: -1}, deps, "Config.MaxBodyBytes"},
		{Config{AdminToken: testToken}, Deps{Registry: deps.Registry, AuthLimiter: lim}, "Deps.Slots"},
		{Config{AdminToken: testToken}, Deps{Slots: repo, AuthLimiter: lim}, "Deps.Registry"},
		{Config{AdminToken: testToken}, Deps{Slots: repo, Registry: co}, "Deps.AuthLimiter"},
	} {
		a, err := New(c.cfg, c.deps)
		if err == nil || a != nil || !strings.HasPrefix(err.Error(), c.field+":") {
			t.Errorf("New(%+v): %v, want an error naming %s", c.cfg, err, c.field)
		}
	}
	a, err := New(Config{AdminToken: testToken}, deps)
	if err != nil || a.cfg.MaxBodyBytes != 1<<20 {
		t.Fatalf("New: %v, MaxBodyBytes %d", err, a.cfg.MaxBodyBytes)
	}
}
