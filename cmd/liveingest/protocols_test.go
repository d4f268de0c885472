package main

import (
	"encoding/json"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/liveingest/liveingest/internal/ingesttest"
	"github.com/liveingest/liveingest/internal/testenv"
)

// TestProtocolFlags: the list and the flags agree — every listen address
// an entry of ingestProtocols takes is a flag of both dev and edge, and
// every address flag of DevIngestFlags and EdgeIngestFlags belongs to an
// entry, so a protocol added to one and not the other fails here.
func TestProtocolFlags(t *testing.T) {
	var cli CLI
	p, err := kong.New(&cli)
	if err != nil {
		t.Fatal(err)
	}
	flagsOf := func(cmd string) map[string]bool {
		out := map[string]bool{}
		for _, n := range p.Model.Children {
			if n.Name == cmd {
				for _, f := range n.Flags {
					out["--"+f.Name] = true
				}
			}
		}
		return out
	}
	var listed []string
	var c ingestConfig
	for _, e := range ingestProtocols {
		for _, l := range e.listens(&c) {
			listed = append(listed, l.flag)
			if l.network != "tcp" && l.network != "udp" {
				t.Errorf("%s: network %q", l.flag, l.network)
			}
		}
	}
	for cmd, flags := range map[string]any{"dev": DevIngestFlags{}, "edge": EdgeIngestFlags{}} {
		have := flagsOf(cmd)
		for _, f := range listed {
			if !have[f] {
				t.Errorf("%s has no flag %s, which ingestProtocols listens on", cmd, f)
			}
		}
		// The address flags: the string fields (the others are options).
		ty := reflect.TypeOf(flags)
		for i := range ty.NumField() {
			if f := ty.Field(i); f.Type.Kind() == reflect.String && !slices.Contains(listed, "--"+f.Tag.Get("name")) {
				t.Errorf("%s's --%s is no entry's listen address: nothing would start it", cmd, f.Tag.Get("name"))
			}
		}
	}
}

// TestDevProtocolsBound: dev started on port 0 everywhere reports every
// protocol's bound address in its "started" line, each one serves there
// (TCP accepts; UDP is bound, so a second bind fails), and the slot URLs
// name the same ports: the ports were made concrete once, before binding.
func TestDevProtocolsBound(t *testing.T) {
	var logs testenv.Buffer
	base, _, token := startDevLogged(t, &logs)
	var started map[string]any
	ingesttest.WaitFor(t, `the "started" line`, 30*time.Second, func() bool {
		for line := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(line, `"msg":"started"`) {
				return json.Unmarshal([]byte(line), &started) == nil
			}
		}
		return false
	})
	slot := createStreamSlot(t, base, token, map[string]any{"name": "bound", "type": "transmux"})
	for _, c := range []struct{ key, network, url string }{
		{"rtmp", "tcp", slot.Ingest["rtmp"].Primary},
		{"rtmps", "tcp", slot.Ingest["rtmps"].Primary},
		{"srt", "udp", slot.Ingest["srt"].Primary},
		{"webrtc_udp", "udp", ""},
	} {
		addr, _ := started[c.key].(string)
		_, port, err := net.SplitHostPort(addr)
		if err != nil || port == "0" {
			t.Errorf("started line: %s = %q, want a bound address", c.key, started[c.key])
			continue
		}
		if c.network == "tcp" {
			nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
			if err != nil {
				t.Errorf("%s at %s: %v", c.key, addr, err)
			} else {
				nc.Close()
			}
		} else if pc, err := net.ListenPacket("udp", addr); err == nil {
			pc.Close()
			t.Errorf("%s: nothing bound at %s", c.key, addr)
		}
		if c.url != "" {
			u, err := url.Parse(c.url)
			if err != nil || u.Port() != port {
				t.Errorf("slot's %s URL %q, want port %s", c.key, c.url, port)
			}
		}
	}
}
