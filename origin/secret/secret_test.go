package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNeverPrinted(t *testing.T) {
	const value = "hunter2-very-secret"
	s := String(value)
	holder := struct {
		Token String
		Ptr   *String
	}{s, &s}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, holder))
	}
	j, _ := json.Marshal(holder)
	outs = append(outs, string(j))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", s, "holder", holder)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "token", s, "ptr", &s)
	outs = append(outs, buf.String())
	for _, o := range outs {
		if strings.Contains(o, value) || strings.Contains(o, fmt.Sprintf("%x", value)) {
			t.Fatalf("secret leaked: %s", o)
		}
	}
	if s.Reveal() != value {
		t.Fatal("Reveal lost the value")
	}
}

func TestEqual(t *testing.T) {
	s := String("abc")
	if !s.Equal("abc") || s.Equal("abd") || s.Equal("ab") || s.Equal("") {
		t.Fatal("Equal compares wrongly")
	}
	var u String
	if err := u.UnmarshalText([]byte("xyz")); err != nil || u.Reveal() != "xyz" {
		t.Fatal("UnmarshalText")
	}
}

func TestFingerprint(t *testing.T) {
	a, b := Fingerprint("key-one"), Fingerprint("key-two")
	if a == b || a != Fingerprint("key-one") {
		t.Fatalf("fingerprints not stable and distinct: %q %q", a, b)
	}
	if len(a) != 18 || a[:2] != "k:" || strings.Contains(a, "key-one") {
		t.Fatalf("fingerprint %q: want k: and 16 hex digits", a)
	}
	if Fingerprint("") != "" || String("key-one").Fingerprint() != a {
		t.Fatal("empty or method form differs")
	}
}
