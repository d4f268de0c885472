package slots

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/secret"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestRepoDisk(t *testing.T)  { runRepoSuite(t, teststores.Disk) }
func TestRepoMinIO(t *testing.T) { runRepoSuite(t, teststores.MinIO) }

var testDeployment = Deployment{Regions: []Region{
	{ID: "local", PublicHost: "localhost"},
	{ID: "eu", PublicHost: "eu.example", BackupHost: "eu-b.example"},
}}

func newRepo(t *testing.T, st store.Store) *Repo {
	r, err := New(st, Options{Deployment: testDeployment, BcryptCost: 4, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runRepoSuite runs every repository test on a fresh store from newStore.
func runRepoSuite(t *testing.T, newStore func(*testing.T) store.Store) {
	tests := map[string]func(*testing.T, *Repo, store.Store){
		"CreateGet":          testCreateGet,
		"NameTaken":          testNameTaken,
		"List":               testList,
		"Clone":              testClone,
		"UpdateVersion":      testUpdateVersion,
		"Rename":             testRename,
		"Delete":             testDelete,
		"RotateKey":          testRotateKey,
		"CheckPassword":      testCheckPassword,
		"ConcurrentCreate":   testConcurrentCreate,
		"ConcurrentUpdate":   testConcurrentUpdate,
		"StaleNameIndex":     testStaleNameIndex,
		"ViewHasNoSecrets":   testViewHasNoSecrets,
		"CacheInvalidation":  testCacheInvalidation,
		"ProvisioningFailed": testProvisioningFailed,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			fn(t, newRepo(t, st), st)
		})
	}
}

func mustCreate(t *testing.T, r *Repo, in Input) *Created {
	t.Helper()
	c, err := r.Create(ctxFor(t), in)
	if err != nil {
		t.Fatalf("Create(%v): %v", *in.Name, err)
	}
	return c
}

func testCreateGet(t *testing.T, r *Repo, _ store.Store) {
	ctx := ctxFor(t)
	c := mustCreate(t, r, Input{Name: ptr("cam-1"), Backup: ptr(true)})
	if _, err := keys.ParseSlotID(string(c.Slot.ID)); err != nil {
		t.Fatalf("id %q: %v", c.Slot.ID, err)
	}
	if len(c.StreamKey.Reveal()) < 32 {
		t.Fatalf("stream key too short")
	}
	if c.Slot.Status != StatusPublished || c.Slot.Version != 1 {
		t.Fatalf("created status %s version %d, want published 1", c.Slot.Status, c.Slot.Version)
	}
	got, err := r.Get(ctx, c.Slot.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "cam-1" || got.Status != StatusPublished || got.SegmentDuration != DefaultSegmentDuration {
		t.Fatalf("Get = %+v", got)
	}
	b, _ := json.Marshal(got.View(r.Deployment(), ""))
	if strings.Contains(string(b), c.StreamKey.Reveal()) || strings.Contains(string(b), `"stream_key"`) {
		t.Fatalf("Get view reveals the stream key: %s", b)
	}
	if !strings.Contains(string(b), StreamKeyPlaceholder) && !strings.Contains(string(b), `\u003cstream_key\u003e`) {
		t.Fatalf("Get view lacks the key placeholder: %s", b)
	}
	if _, err := r.Get(ctx, "nosuchslot"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get unknown = %v", err)
	}
}

func testNameTaken(t *testing.T, r *Repo, _ store.Store) {
	mustCreate(t, r, Input{Name: ptr("Cam-1")})
	if _, err := r.Create(ctxFor(t), Input{Name: ptr("cAM-1")}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("duplicate name = %v, want ErrNameTaken", err)
	}
}

func testList(t *testing.T, r *Repo, _ store.Store) {
	ctx := ctxFor(t)
	mustCreate(t, r, Input{Name: ptr("b-slot"), Region: ptr("eu"), Type: ptr(TypeTransmux)})
	mustCreate(t, r, Input{Name: ptr("C-slot"), Region: ptr("local"), Type: ptr(TypeTranscode720)})
	mustCreate(t, r, Input{Name: ptr("a-slot"), Region: ptr("eu"), Type: ptr(TypeTranscode1080)})
	names := func(o ListOptions) string {
		t.Helper()
		l, err := r.List(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, s := range l {
			n = append(n, s.Name)
		}
		return strings.Join(n, ",")
	}
	for _, c := range []struct {
		o    ListOptions
		want string
	}{
		{ListOptions{}, "b-slot,C-slot,a-slot"},
		{ListOptions{Sort: "created", Order: "desc"}, "a-slot,C-slot,b-slot"},
		{ListOptions{Sort: "name"}, "a-slot,b-slot,C-slot"},
		{ListOptions{Sort: "name", Order: "desc"}, "C-slot,b-slot,a-slot"},
		{ListOptions{Sort: "region"}, "a-slot,b-slot,C-slot"},
		{ListOptions{Sort: "region", Order: "desc"}, "C-slot,a-slot,b-slot"},
		{ListOptions{Sort: "type"}, "a-slot,C-slot,b-slot"},
		{ListOptions{Sort: "type", Order: "desc"}, "b-slot,C-slot,a-slot"},
		{ListOptions{Region: "eu", Sort: "name"}, "a-slot,b-slot"},
		{ListOptions{Type: TypeTranscode720}, "C-slot"},
		{ListOptions{Region: "eu", Type: TypeTranscode720}, ""},
	} {
		if got := names(c.o); got != c.want {
			t.Errorf("List(%+v) = %s, want %s", c.o, got, c.want)
		}
	}
	var fe *FieldError
	if _, err := r.List(ctx, ListOptions{Sort: "size"}); !errors.As(err, &fe) || fe.Field != "sort" {
		t.Errorf("bad sort = %v", err)
	}
}

func testClone(t *testing.T, r *Repo, _ store.Store) {
	ctx := ctxFor(t)
	src := mustCreate(t, r, Input{
		Name: ptr("src"), Type: ptr(TypeLivePush), Region: ptr("eu"), Backup: ptr(true),
		Credentials:   &[]CredentialIn{{Username: "enc1", Password: "password1"}},
		SRTPassphrase: ptr(secret.String("passphrase-123")),
		TokenAuth:     &TokenAuthIn{Mode: ptr(TokenURL), Secrets: ptr([]secret.String{"0123456789abcdef"})},
		ViewerIPDeny:  ptr([]string{"10.0.0.0/8"}),
	})
	var fe *FieldError
	if _, err := r.Clone(ctx, src.Slot.ID, ""); !errors.As(err, &fe) || fe.Field != "name" {
		t.Fatalf("clone without name = %v, want FieldError name", err)
	}
	if _, err := r.Clone(ctx, src.Slot.ID, "SRC"); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("clone with taken name = %v", err)
	}
	c, err := r.Clone(ctx, src.Slot.ID, "copy")
	if err != nil {
		t.Fatal(err)
	}
	if c.Slot.ID == src.Slot.ID || c.StreamKey.Reveal() == src.StreamKey.Reveal() {
		t.Fatal("clone shares id or stream key")
	}
	a, b := src.Slot.View(r.Deployment(), ""), c.Slot.View(r.Deployment(), "")
	a.ID, a.Name, a.CreatedAt, a.UpdatedAt, a.IngestURLs, a.PlaybackURLs = b.ID, b.Name, b.CreatedAt, b.UpdatedAt, b.IngestURLs, b.PlaybackURLs
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("clone settings differ:\n%s\n%s", ja, jb)
	}
	got, _ := r.Get(ctx, c.Slot.ID)
	if got.CheckPassword("enc1", "password1") != nil || got.SRTPassphrase.Reveal() != "passphrase-123" || got.TokenAuth.Secrets[0].Reveal() != "0123456789abcdef" {
		t.Fatal("clone lost credentials, passphrase or token secrets")
	}
	if s, err := r.ByStreamKey(ctx, c.StreamKey.Reveal()); err != nil || s.ID != c.Slot.ID {
		t.Fatalf("clone's key resolves to %v, %v", s, err)
	}
}

func testUpdateVersion(t *testing.T, r *Repo, _ store.Store) {
	ctx := ctxFor(t)
	c := mustCreate(t, r, Input{Name: ptr("cam")})
	s, err := r.Update(ctx, c.Slot.ID, 1, Input{Description: ptr("first")})
	if err != nil || s.Version != 2 || s.Description != "first" {
		t.Fatalf("Update = %+v, %v", s, err)
	}
	if _, err := r.Update(ctx, c.Slot.ID, 1, Input{Description: ptr("stale")}); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("stale update = %v, want ErrVersionMismatch", err)
	}
	var fe *FieldError
	if _, err := r.Update(ctx, c.Slot.ID, 2, Input{SegmentDuration: ptr(11)}); !errors.As(err, &fe) {
		t.Fatalf("invalid update = %v", err)
	}
	if got, _ := r.Get(ctx, c.Slot.ID); got.Description != "first" || got.Version != 2 {
		t.Fatalf("after failed updates: %+v", got)
	}
}

func testRename(t *testing.T, r *Repo, _ store.Store) {
	ctx := ctxFor(t)
	a := mustCreate(t, r, Input{Name: ptr("old-name")})
	mustCreate(t, r, Input{Name: ptr("other")})
	if _, err := r.Update(ctx, a.Slot.ID, 1, Input{Name: ptr("OTHER")}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("rename to taken = %v", err)
	}
	s, err := r.Update(ctx, a.Slot.ID, 1, Input{Name: ptr("new-name")})
	if err != nil || s.Name != "new-name" {
		t.Fatalf("rename = %v, %v", s, err)
	}
	if _, err := r.Update(ctx, a.Slot.ID, 2, Input{Name: ptr("New-Name")}); err != nil {
		t.Fatalf("case-only rename = %v", err)
	}
	mustCreate(t, r, Input{Name: ptr("old-name")}) // freed
	if _, err := r.Create(ctx, Input{Name: ptr("new-name")}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("new name not held: %v", err)
	}
}

func testDelete(t *testing.T, r *Repo, st store.Store) {
	ctx := ctxFor(t)
	c := mustCreate(t, r, Input{Name: ptr("gone")})
	for _, rel := range []string{"seg1.m4s", "v/seg2.m4s"} {
		p, _ := keys.ParseRelPath(rel)
		if _, err := st.Put(ctx, keys.Media(c.Slot.ID, keys.Primary, p), strings.NewReader("x"), store.Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Delete(ctx, c.Slot.ID, 7); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("Delete stale = %v", err)
	}
	if err := r.Delete(ctx, c.Slot.ID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, c.Slot.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete = %v", err)
	}
	if err := r.Delete(ctx, c.Slot.ID, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete twice = %v", err)
	}
	if _, err := r.ByStreamKey(ctx, c.StreamKey.Reveal()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key after delete = %v", err)
	}
	var left []string
	_ = st.List(ctx, keys.MediaPrefix(c.Slot.ID), func(i store.Info) error { left = append(left, i.Key); return nil })
	_ = st.List(ctx, "config/", func(i store.Info) error { left = append(left, i.Key); return nil })
	if len(left) > 0 {
		t.Fatalf("objects left after delete: %v", left)
	}
	mustCreate(t, r, Input{Name: ptr("gone")})
}

func testRotateKey(t *testing.T, r *Repo, _ store.Store) {
	ctx := ctxFor(t)
	c := mustCreate(t, r, Input{Name: ptr("rot")})
	if s, err := r.ByStreamKey(ctx, c.StreamKey.Reveal()); err != nil || s.ID != c.Slot.ID {
		t.Fatalf("ByStreamKey = %v, %v", s, err)
	}
	n, err := r.RotateKey(ctx, c.Slot.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n.StreamKey.Reveal() == c.StreamKey.Reveal() || n.Slot.Version != 2 {
		t.Fatal("rotate kept the key or the version")
	}
	if _, err := r.ByStreamKey(ctx, c.StreamKey.Reveal()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old key = %v, want ErrNotFound", err)
	}
	if s, err := r.ByStreamKey(ctx, n.StreamKey.Reveal()); err != nil || s.ID != c.Slot.ID {
		t.Fatalf("new key = %v, %v", s, err)
	}
	for _, bad := range []string{"", "nope", strings.Repeat("k", 300)} {
		if _, err := r.ByStreamKey(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ByStreamKey(%q) = %v", bad, err)
		}
	}
}

func testCheckPassword(t *testing.T, r *Repo, _ store.Store) {
	ctx := ctxFor(t)
	c := mustCreate(t, r, Input{Name: ptr("push"), Type: ptr(TypeLivePush),
		Credentials: &[]CredentialIn{{Username: "enc1", Password: "password1"}, {Username: "enc2", Password: "password2"}}})
	id := c.Slot.ID
	if _, err := r.CheckPassword(ctx, id, "enc1", "password1"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	for _, p := range [][2]string{{"enc1", "password2"}, {"enc3", "password1"}, {"", ""}} {
		if _, err := r.CheckPassword(ctx, id, p[0], p[1]); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("CheckPassword(%q) = %v", p[0], err)
		}
	}
	// Sending the list back without passwords keeps them; a new one replaces.
	if _, err := r.Update(ctx, id, 1, Input{Credentials: &[]CredentialIn{{Username: "enc1"}, {Username: "enc2", Password: "newpassword"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CheckPassword(ctx, id, "enc1", "password1"); err != nil {
		t.Fatalf("kept password: %v", err)
	}
	if _, err := r.CheckPassword(ctx, id, "enc2", "password2"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("replaced password still works: %v", err)
	}
	if _, err := r.CheckPassword(ctx, "nosuch", "enc1", "password1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown slot: %v", err)
	}
}

func testConcurrentCreate(t *testing.T, r *Repo, st store.Store) {
	ctx := ctxFor(t)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name := "race" // half of the creates differ in case only
			if i%2 == 1 {
				name = "RACE"
			}
			_, errs[i] = r.Create(ctx, Input{Name: ptr(name)})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrNameTaken):
			t.Errorf("create: %v, want ErrNameTaken", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creates won, want exactly 1", won)
	}
	l, _ := r.List(ctx, ListOptions{})
	if len(l) != 1 {
		t.Fatalf("%d slots stored, want 1", len(l))
	}
	var keyIdx int
	_ = st.List(ctx, keys.SlotKeyIndexPrefix(), func(store.Info) error { keyIdx++; return nil })
	if keyIdx != 1 {
		t.Fatalf("%d stream key index objects, want 1 (losers must clean up)", keyIdx)
	}
}

func testConcurrentUpdate(t *testing.T, r *Repo, _ store.Store) {
	ctx := ctxFor(t)
	c := mustCreate(t, r, Input{Name: ptr("upd")})
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = r.Update(ctx, c.Slot.ID, 1, Input{Description: ptr(fmt.Sprint("writer ", i))})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrVersionMismatch):
			t.Errorf("update: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d updates won, want exactly 1", won)
	}
	if s, _ := r.Get(ctx, c.Slot.ID); s.Version != 2 {
		t.Fatalf("version %d, want 2", s.Version)
	}
}

// testStaleNameIndex simulates crashes that leave name index objects behind.
func testStaleNameIndex(t *testing.T, r *Repo, st store.Store) {
	ctx := ctxFor(t)
	put := func(name string, idx nameIndex) {
		t.Helper()
		k, _ := keys.SlotNameIndex(name)
		b, _ := json.Marshal(idx)
		if _, err := st.Put(ctx, k, strings.NewReader(string(b)), store.Meta{Class: store.ClassConfig}); err != nil {
			t.Fatal(err)
		}
	}
	// Committed index whose slot is gone (crash during Delete): free at once.
	put("deleted", nameIndex{SlotID: "ghost", State: stateCommitted, ClaimedAt: time.Now()})
	mustCreate(t, r, Input{Name: ptr("Deleted")})
	// Fresh pending claim (a create in progress): not taken over.
	put("inflight", nameIndex{SlotID: "ghost2", State: statePending, ClaimedAt: time.Now()})
	if _, err := r.Create(ctx, Input{Name: ptr("inflight")}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("fresh pending claim taken over: %v", err)
	}
	// Old pending claim (crash between claim and slot write): free.
	put("crashed", nameIndex{SlotID: "ghost3", State: statePending, ClaimedAt: time.Now().Add(-time.Hour)})
	mustCreate(t, r, Input{Name: ptr("crashed")})
	// Index of a slot that was renamed (crash before the old index was removed).
	a := mustCreate(t, r, Input{Name: ptr("renamed-to")})
	put("renamed-from", nameIndex{SlotID: a.Slot.ID, State: stateCommitted, ClaimedAt: time.Now()})
	mustCreate(t, r, Input{Name: ptr("renamed-from")})
	// A live slot's own index is never stale.
	if _, err := r.Create(ctx, Input{Name: ptr("renamed-to")}); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("live name taken over: %v", err)
	}
}

func testViewHasNoSecrets(t *testing.T, r *Repo, _ store.Store) {
	ctx := ctxFor(t)
	const pw, pass, tok = "hunter2-password", "srt-passphrase-42", "token-secret-0123456789"
	c := mustCreate(t, r, Input{Name: ptr("sec"), Type: ptr(TypeTransmux), Region: ptr("eu"), Backup: ptr(true),
		Credentials:   &[]CredentialIn{{Username: "enc1", Password: pw}},
		SRTPassphrase: ptr(secret.String(pass)),
		TokenAuth:     &TokenAuthIn{Mode: ptr(TokenCookie), Secrets: ptr([]secret.String{tok})}})
	key := c.StreamKey.Reveal()
	created, _ := json.Marshal(c.Slot.View(r.Deployment(), key))
	got, _ := r.Get(ctx, c.Slot.ID)
	plain, _ := json.Marshal(got.View(r.Deployment(), ""))
	for name, b := range map[string][]byte{"create": created, "get": plain} {
		for _, s := range []string{pw, pass, tok, "$2a$", got.streamKeyHash} {
			if strings.Contains(string(b), s) {
				t.Errorf("%s view contains secret %q: %s", name, s, b)
			}
		}
		var m map[string]json.RawMessage
		_ = json.Unmarshal(b, &m)
		want := "backup created_at credentials description dvr_window file_expiry id ingest_bitrate_kbps ingest_urls name playback_urls publish_ip_allow pull_urls region segment_duration status status_reason token_auth type updated_at version viewer_ip_allow viewer_ip_deny"
		if name == "create" {
			want = strings.Replace(want, "status_reason ", "status_reason stream_key ", 1)
		}
		ks := slices.Sorted(maps.Keys(m))
		if got := strings.Join(ks, " "); got != want {
			t.Errorf("%s view fields:\n got %s\nwant %s", name, got, want)
		}
	}
	if strings.Contains(string(plain), key) || !strings.Contains(string(created), key) {
		t.Error("stream key must appear in the create view only")
	}
	if s := fmt.Sprintf("%v %+v %#v", got, *got, got); strings.Contains(s, pass) || strings.Contains(s, tok) {
		t.Errorf("fmt reveals a secret: %s", s)
	}
	v := c.Slot.View(r.Deployment(), key)
	if v.IngestURLs.RTMP.Primary != "rtmp://eu.example:1935/live/"+key || v.IngestURLs.RTMP.Backup != "rtmp://eu-b.example:1935/live/"+key ||
		v.IngestURLs.SRT.Primary != "srt://eu.example:9000?streamid=%23%21%3A%3Ar%3D"+key+"%2Cm%3Dpublish" ||
		v.IngestURLs.WHIP.Primary != "https://eu.example:8443/whip/"+string(c.Slot.ID) ||
		v.IngestURLs.Push != nil || v.PlaybackURLs.HLS != "http://eu.example:8080/live/"+string(c.Slot.ID)+"/index.m3u8" ||
		v.PlaybackURLs.DASHHTTPS != "https://eu.example:8443/live/"+string(c.Slot.ID)+"/manifest.mpd" {
		t.Errorf("URLs: %+v %+v %+v", *v.IngestURLs.RTMP, *v.IngestURLs.SRT, v.PlaybackURLs)
	}
}

func testCacheInvalidation(t *testing.T, _ *Repo, st store.Store) {
	ctx := ctxFor(t)
	r, err := New(st, Options{Deployment: testDeployment, BcryptCost: 4, CacheTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := mustCreate(t, r, Input{Name: ptr("cached")})
	if _, err := r.ByStreamKey(ctx, c.StreamKey.Reveal()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.RotateKey(ctx, c.Slot.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ByStreamKey(ctx, c.StreamKey.Reveal()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rotated key served from cache: %v", err)
	}
	if err := r.Delete(ctx, c.Slot.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Lookup(ctx, c.Slot.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted slot served from cache: %v", err)
	}
}

func testProvisioningFailed(t *testing.T, _ *Repo, st store.Store) {
	r, err := New(st, Options{Deployment: testDeployment, BcryptCost: 4, CacheTTL: -1,
		Provisioners: []Provisioner{ProvisionFunc(func(context.Context, *Slot) error { return errors.New("lifecycle rule refused") })}})
	if err != nil {
		t.Fatal(err)
	}
	c := mustCreate(t, r, Input{Name: ptr("broken")})
	got, _ := r.Get(ctxFor(t), c.Slot.ID)
	if got.Status != StatusError || !strings.Contains(got.StatusReason, "lifecycle rule refused") || got.Version != 1 {
		t.Fatalf("status %s %q v%d, want error with reason", got.Status, got.StatusReason, got.Version)
	}
}
