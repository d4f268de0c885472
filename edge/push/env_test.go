package push

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/liveingest/liveingest/edge/admit"
	"github.com/liveingest/liveingest/edge/tlsauto"
	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/coord"
	"github.com/liveingest/liveingest/origin/coord/memory"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/slots"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	testUser = "enc1"
	testPass = "s3cret-Pass"
)

// env is one test wiring: a slot repository on a real store, memory
// coordination, the push server behind a TLS test server (mounted on a mux,
// as cmd does), the bare handler behind a second TLS server (to see the
// handler's own answer to paths a mux would redirect), and a plain-HTTP one.
type env struct {
	st    store.Store
	repo  *slots.Repo
	coord *memory.Coord
	adm   *admit.Admission // the edge's one admission, as RTMP, SRT and WHIP would share it
	srv   *Server
	reg   *prometheus.Registry
	ts    *httptest.Server // https, mux
	bare  *httptest.Server // https, handler only
	plain *httptest.Server // http, mux
	c     *http.Client
	id    keys.SlotID
}

// envOpt adjusts the push server's and the admission's configuration.
type envOpt func(*Config, *admit.Config)

func backends(t *testing.T, f func(t *testing.T, st store.Store)) {
	t.Run("disk", func(t *testing.T) { f(t, teststores.Disk(t)) })
	t.Run("minio", func(t *testing.T) { f(t, teststores.MinIO(t)) })
}

func newEnv(t *testing.T, st store.Store, opts ...envOpt) *env {
	t.Helper()
	repo, err := slots.New(st, slots.Options{BcryptCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	co := memory.New(nil)
	cfg := Config{EdgeID: "edge-test", IdleTimeout: 2 * time.Second}
	acfg := admit.Config{EdgeID: "edge-test"}
	for _, o := range opts {
		o(&cfg, &acfg)
	}
	acfg = acfg.WithDefaults()
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	keyLim, err := co.NewLimiter(acfg.KeyRate)
	if err != nil {
		t.Fatal(err)
	}
	authLim, err := co.NewLimiter(acfg.AuthFailRate)
	if err != nil {
		t.Fatal(err)
	}
	adm, err := admit.New(acfg, admit.Deps{Slots: repo, Locker: co, KeyLimiter: keyLim, AuthLimiter: authLim, Registry: co, Logger: logger, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, Deps{Admitter: adm, Store: st, Logger: logger, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsauto.LoadOrCreate(t.TempDir(), []string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(PathPrefix, srv.Handler())
	e := &env{st: st, repo: repo, coord: co, adm: adm, srv: srv, reg: reg}
	e.ts = httptest.NewUnstartedServer(mux)
	e.ts.TLS = cert.TLSConfig()
	e.ts.StartTLS()
	e.bare = httptest.NewUnstartedServer(srv.Handler())
	e.bare.TLS = cert.TLSConfig()
	e.bare.StartTLS()
	e.plain = httptest.NewServer(mux)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool()}}
	e.c = &http.Client{Transport: tr, Timeout: time.Minute}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		e.ts.Close()
		e.bare.Close()
		e.plain.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	e.id = e.createSlot(t, "push-1", slots.TypeLivePush, nil, slots.CredentialIn{Username: testUser, Password: testPass})
	return e
}

// testWriter sends server logs to the test log, and fails the test if a
// password ever shows up in one.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), testPass) || strings.Contains(string(p), "other-Pass") || strings.Contains(string(p), "Basic ") {
		w.t.Errorf("secret in log line: %s", p)
	}
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (e *env) createSlot(t *testing.T, name string, typ slots.Type, allow []string, creds ...slots.CredentialIn) keys.SlotID {
	t.Helper()
	in := slots.Input{Name: &name, Type: &typ, Credentials: &creds}
	if allow != nil {
		in.PublishIPAllow = &allow
	}
	c, err := e.repo.Create(t.Context(), in)
	if err != nil {
		t.Fatalf("create slot %s: %v", name, err)
	}
	return c.Slot.ID
}

func (e *env) url(id keys.SlotID, rel string) string {
	return e.ts.URL + PathPrefix + string(id) + "/" + rel
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(t *testing.T, method, url string, body io.Reader, user, pass string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func (e *env) put(t *testing.T, rel, body string) reply {
	t.Helper()
	return e.do(t, http.MethodPut, e.url(e.id, rel), strings.NewReader(body), testUser, testPass)
}

// raw sends a request line written by hand over TLS to srv (Go's client
// would clean the path) and returns the status.
func raw(t *testing.T, srv *httptest.Server, method, target, auth, body string) reply {
	t.Helper()
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		method, target, auth, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %q: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// objects lists every key in the store.
func (e *env) objects(t *testing.T, prefix string) map[string]store.Info {
	t.Helper()
	out := map[string]store.Info{}
	if err := e.st.List(t.Context(), prefix, func(i store.Info) error { out[i.Key] = i; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) stat(t *testing.T, key string) (store.Info, bool) {
	t.Helper()
	i, err := e.st.Stat(t.Context(), key)
	if errors.Is(err, store.ErrNotExist) {
		return i, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return i, true
}

func (e *env) rejections(reason string) float64 {
	fams, err := e.reg.Gather()
	if err != nil {
		return -1
	}
	for _, f := range fams {
		if f.GetName() != "liveingest_push_rejections_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// live lists the slot's live registry entries (the live status's sessions).
func (e *env) live(t *testing.T, id keys.SlotID) []coord.Session {
	t.Helper()
	l, err := e.coord.List(t.Context(), string(id))
	if err != nil {
		t.Fatal(err)
	}
	var out []coord.Session
	for _, s := range l {
		if s.Ended.IsZero() {
			out = append(out, s)
		}
	}
	return out
}

// leaseFree reports whether the slot's primary lease can be taken now (and
// gives it back at once).
func (e *env) leaseFree(t *testing.T, id keys.SlotID) bool {
	t.Helper()
	l, err := e.coord.Acquire(t.Context(), keys.SlotLease(id, keys.Primary), time.Second, coord.Owner{ID: "probe"})
	if err != nil {
		return false
	}
	_ = l.Release(t.Context())
	return true
}

func basic(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

func teststoresDisk(t *testing.T) store.Store { return teststores.Disk(t) }
