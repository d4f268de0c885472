package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
)

// TestLogKeys (issue 14): dev at debug level, every protocol driven once
// with a publish and a refusal — RTMP, RTMPS, SRT, WHIP and Live Push —
// and the admin API refused once; every line of the log is one JSON object
// in which no key appears twice (slog's JSON handler writes a key as often
// as it is added, so a "component" added by the caller and by the package
// shows twice), "protocol" is no log key (the protocol is "proto"), and
// each protocol's own lines name it as "proto".
func TestLogKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping real-time encoder runs")
	}
	ingesttest.NeedFFmpeg(t)
	var logs testenv.Buffer
	base, httpsBase, token := startDevLogged(t, &logs)
	slot := createStreamSlot(t, base, token, map[string]any{"name": "logkeys", "type": "transmux"})
	key := slot.StreamKey
	pushID := pushSlot(t, base, token, "logkeys-push", nil)
	host := func(proto string) string {
		u, err := url.Parse(slot.Ingest[proto].Primary)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Replace(u.Host, "localhost", "127.0.0.1", 1)
	}
	insecure := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // dev's self-signed certificate, loopback only
	}}
	defer insecure.CloseIdleConnections()

	t.Run("rtmp", func(t *testing.T) {
		ffmpegRefused(t, "rtmp://"+host("rtmp")+"/live/"+key+"x")
		enc := startEncoder(t, 4, []string{"-f", "flv"}, strings.Replace(slot.Ingest["rtmp"].Primary, "localhost", "127.0.0.1", 1))
		waitLive(t, base, token, slot.ID, "rtmp", enc)
		enc.wait(t, time.Minute)
		waitNotLive(t, base, token, slot.ID, 30*time.Second)
	})
	t.Run("rtmps", func(t *testing.T) {
		ffmpegRefused(t, "rtmps://"+host("rtmps")+"/live/"+key+"x")
	})
	t.Run("srt", func(t *testing.T) {
		ingesttest.SRTRejectCode(t, host("srt"), "#!::r="+key+"x,m=publish")
		enc := startEncoder(t, 4, []string{"-f", "mpegts"}, strings.Replace(slot.Ingest["srt"].Primary, "localhost", "127.0.0.1", 1))
		waitLive(t, base, token, slot.ID, "srt", enc)
		enc.wait(t, time.Minute)
		waitNotLive(t, base, token, slot.ID, 30*time.Second)
	})
	t.Run("whip", func(t *testing.T) {
		endpoint := httpsBase + "/whip/" + slot.ID
		whipPost(t, endpoint, key+"x")
		p := ingesttest.WHIPPublish(t, endpoint, key, ingesttest.WHIPOptions{Client: insecure})
		waitLive(t, base, token, slot.ID, "whip", nil)
		if status, body := p.Delete(t); status != http.StatusOK {
			t.Fatalf("DELETE = %d %q", status, body)
		}
		waitNotLive(t, base, token, slot.ID, 30*time.Second)
	})
	t.Run("push", func(t *testing.T) {
		for _, password := range []string{"push-secret-1x", "push-secret-1"} {
			req, _ := http.NewRequest(http.MethodPut, httpsBase+"/push/"+pushID+"/index.m3u8", strings.NewReader("#EXTM3U\n"))
			req.SetBasicAuth("enc1", password)
			resp, err := insecure.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if ok := resp.StatusCode < 300; ok != (password == "push-secret-1") {
				t.Errorf("PUT with password %q: %d", password, resp.StatusCode)
			}
		}
	})
	t.Run("admin", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/slots", nil)
		req.Header.Set("Authorization", "Bearer "+token+"x")
		doInsecure(t, req)
	})

	// Each protocol's lines, the end lines included, as they must appear
	// once the connections and sessions are over. They are waited for
	// (a refused RTMP connection lingers up to 3 s), then the whole log is
	// checked, whether they came or not.
	want := map[string]string{
		"rtmp": "rtmp connection closed", "rtmps": "rtmp connection closed", "srt": "srt connection closed",
		"whip": "whip session closed", "push": "publish rejected", // admission logs Live Push refusals
	}
	missing := func(lines []map[string]any) []string {
		var out []string
		for proto, msg := range want {
			if !hasLine(lines, proto, msg) {
				out = append(out, fmt.Sprintf("%q with proto=%s", msg, proto))
			}
		}
		return out
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if len(missing(checkLogKeys(t, logs.String(), false))) == 0 {
			break
		}
	}
	lines := checkLogKeys(t, logs.String(), true)
	for _, m := range missing(lines) {
		t.Errorf("no line %s", m)
	}
	for _, c := range []struct{ key, value string }{{"component", "admit"}, {"component", "segment"}, {"service", "dev"}} {
		if !hasAttr(lines, c.key, c.value) {
			t.Errorf("no line with %s=%s: the scan missed a source", c.key, c.value)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs.String())
	}
}

// checkLogKeys decodes every line of log; with report it fails the test
// on a line that is no JSON object, a key twice in one object, or a
// "protocol" key. It returns the lines decoded.
func checkLogKeys(t *testing.T, log string, report bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, line := range strings.Split(strings.TrimSpace(log), "\n") {
		keys, err := objectKeys([]byte(line))
		if err != nil {
			if report {
				t.Errorf("log line %d is no JSON object (%v): %.300s", i, err, line)
			}
			continue
		}
		for _, k := range keys {
			switch {
			case !report:
			case k.count > 1:
				t.Errorf("log line %d has %q %d times: %.300s", i, k.path, k.count, line)
			case k.name == "protocol":
				t.Errorf("log line %d has the key %q (the protocol is \"proto\"): %.300s", i, k.path, line)
			}
		}
		var m map[string]any
		_ = json.Unmarshal([]byte(line), &m)
		out = append(out, m)
	}
	return out
}

// hasLine reports whether a line with message msg names proto as "proto".
func hasLine(lines []map[string]any, proto, msg string) bool {
	for _, l := range lines {
		if l["proto"] == proto && l["msg"] == msg {
			return true
		}
	}
	return false
}

// hasAttr reports whether a line has key = value.
func hasAttr(lines []map[string]any, key, value string) bool {
	for _, l := range lines {
		if l[key] == value {
			return true
		}
	}
	return false
}

// objectKey is a key of a JSON object in a line, with how often it occurs
// in its object.
type objectKey struct {
	name, path string // path: "group.key" for a key inside an object value
	count      int
}

// objectKeys lists the keys of the JSON object b and of the objects nested
// in it, each with its count in its own object: what encoding/json's
// decoding into a map would hide, since it keeps the last of duplicates.
func objectKeys(b []byte) ([]objectKey, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out []objectKey
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not an object: %v %v", tok, err)
	}
	if err := walkObject(d, "", &out); err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one value")
	}
	return out, nil
}

// walkObject reads the members of an object whose '{' d has just read.
func walkObject(d *json.Decoder, prefix string, out *[]objectKey) error {
	seen := map[string]int{} // index into *out
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		name := tok.(string)
		if i, ok := seen[name]; ok {
			(*out)[i].count++
		} else {
			seen[name] = len(*out)
			*out = append(*out, objectKey{name: name, path: prefix + name, count: 1})
		}
		if err := walkValue(d, prefix+name+".", out); err != nil {
			return err
		}
	}
	_, err := d.Token() // '}'
	return err
}

// walkValue reads one value, descending into objects and arrays.
func walkValue(d *json.Decoder, prefix string, out *[]objectKey) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(d, prefix, out)
	case json.Delim('['):
		for d.More() {
			if err := walkValue(d, prefix, out); err != nil {
				return err
			}
		}
		_, err = d.Token() // ']'
		return err
	}
	return nil
}

// TestObjectKeys: the duplicate finder sees what json.Unmarshal hides.
func TestObjectKeys(t *testing.T) {
	for _, c := range []struct {
		line string
		dup  string // the key counted twice; "" for none
	}{
		{`{"msg":"a","component":"admit","component":"admit"}`, "component"},
		{`{"msg":"a","g":{"x":1,"x":2}}`, "g.x"},
		{`{"msg":"a","g":{"x":1},"h":{"x":2},"l":[{"y":1},{"y":2}]}`, ""},
	} {
		keys, err := objectKeys([]byte(c.line))
		if err != nil {
			t.Fatalf("%s: %v", c.line, err)
		}
		dup := ""
		for _, k := range keys {
			if k.count > 1 {
				dup = k.path
			}
		}
		if dup != c.dup {
			t.Errorf("%s: duplicate %q, want %q", c.line, dup, c.dup)
		}
	}
	for _, bad := range []string{`not json`, `["a"]`, `{"a":1}{"b":2}`} {
		if _, err := objectKeys([]byte(bad)); err == nil {
			t.Errorf("%s: taken for one JSON object", bad)
		}
	}
}
