package tlsauto

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	first, err := LoadOrCreate(dir, hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created {
		t.Fatal("first call did not create a certificate")
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi.Mode(), err)
	}

	again, err := LoadOrCreate(dir, hosts, now)
	if err != nil || again.Created || again.Fingerprint != first.Fingerprint {
		t.Fatalf("second call did not reuse the certificate: created=%v err=%v", again.Created, err)
	}
	// A new host name, or an expiry within the renewal window, makes a new one.
	other, err := LoadOrCreate(dir, append(hosts, "ingest.example"), now)
	if err != nil || !other.Created || other.Fingerprint == first.Fingerprint {
		t.Fatalf("new host did not renew: created=%v err=%v", other.Created, err)
	}
	late, err := LoadOrCreate(dir, hosts, now.Add(validity-renewBefore/2))
	if err != nil || !late.Created {
		t.Fatalf("near expiry did not renew: %v", err)
	}
	// A corrupt pair is replaced rather than failing start-up.
	if err := os.WriteFile(filepath.Join(dir, CertFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := LoadOrCreate(dir, hosts, now); err != nil || !s.Created {
		t.Fatalf("corrupt certificate not replaced: %v", err)
	}
	if _, err := LoadOrCreate(dir, nil, now); err == nil {
		t.Fatal("no hosts accepted")
	}
}

// TestServesVerifiedTLS: a client that trusts the certificate (and nothing
// else) completes a verified handshake for each host it names.
func TestServesVerifiedTLS(t *testing.T) {
	s, err := LoadOrCreate(t.TempDir(), []string{"localhost", "127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	srv.TLS = s.TLSConfig()
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, host := range []string{"localhost", "127.0.0.1"} {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.Pool()}}}
		resp, err := c.Get("https://" + net.JoinHostPort(host, port) + "/")
		if err != nil {
			t.Fatalf("verified GET via %s: %v", host, err)
		}
		resp.Body.Close()
		c.CloseIdleConnections()
	}
}
