package lifecycle_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/keys"
	"github.com/liveingest/liveingest/origin/lifecycle"
	"github.com/liveingest/liveingest/origin/store"
)

func TestPlan(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	const expiry = 300 * time.Second
	age := func(d time.Duration) time.Time { return now.Add(-d) }
	p := "live/cam/primary/"
	b := "live/cam/backup/"
	obj := func(key string, modified time.Time) store.Info { return store.Info{Key: key, Modified: modified} }

	tests := []struct {
		name    string
		objects []store.Info
		want    []string
	}{
		{"fresh segment kept", []store.Info{obj(p+"seg1.m4s", age(10*time.Second))}, nil},
		{"old segment expired", []store.Info{obj(p+"seg1.m4s", age(301*time.Second))}, []string{p + "seg1.m4s"}},
		{"exactly at the boundary is due", []store.Info{obj(p+"seg1.m4s", age(expiry))}, []string{p + "seg1.m4s"}},
		{"one nanosecond before the boundary is kept", []store.Info{obj(p+"seg1.m4s", age(expiry-1))}, nil},
		{"manifest kept while segments exist", []store.Info{
			obj(p+"index.m3u8", age(time.Hour)),
			obj(p+"init.mp4", age(time.Hour)),
			obj(p+"seg1.m4s", age(time.Hour)),
			obj(p+"seg2.m4s", age(time.Second)),
		}, []string{p + "seg1.m4s"}},
		{"manifest kept when alone but young", []store.Info{
			obj(p+"index.m3u8", age(10*time.Second)),
			obj(p+"seg1.m4s", age(time.Hour)),
		}, []string{p + "seg1.m4s"}},
		{"manifest and init expired when alone and old", []store.Info{
			obj(p+"index.m3u8", age(time.Hour)),
			obj(p+"init.mp4", age(time.Hour)),
			obj(p+"manifest.mpd", age(time.Hour)),
		}, []string{p + "index.m3u8", p + "init.mp4", p + "manifest.mpd"}},
		{"stream state kept while segments exist", []store.Info{
			obj(p+"_state.json", age(time.Hour)),
			obj(p+"seg1.m4s", age(time.Hour)),
			obj(p+"seg2.m4s", age(time.Second)),
		}, []string{p + "seg1.m4s"}},
		{"stream state goes with the last segments and manifests", []store.Info{
			obj(p+"_state.json", age(time.Hour)),
			obj(p+"index.m3u8", age(time.Hour)),
			obj(p+"seg1.m4s", age(time.Hour)),
			obj(p+"state.m3u8", age(2*time.Hour)), // the legacy name, left by a migration
		}, []string{p + "_state.json", p + "index.m3u8", p + "seg1.m4s", p + "state.m3u8"}},
		{"young stream state kept when alone", []store.Info{
			obj(p+"_state.json", age(10*time.Second)),
			obj(p+"index.m3u8", age(time.Hour)),
		}, []string{p + "index.m3u8"}},
		{"exempt files go in the same pass as the last segments", []store.Info{
			obj(p+"a.m3u8", age(time.Hour)),
			obj(p+"seg1.ts", age(time.Hour)),
		}, []string{p + "a.m3u8", p + "seg1.ts"}},
		{"only the old exempt files go", []store.Info{
			obj(p+"index.m3u8", age(time.Second)),
			obj(p+"init.mp4", age(time.Hour)),
		}, []string{p + "init.mp4"}},
		{"init* and *.init names are exempt", []store.Info{
			obj(p+"INIT_720p.mp4", age(time.Hour)),
			obj(p+"video.init", age(time.Hour)),
			obj(p+"v/init-0.m4s", age(time.Hour)),
			obj(p+"v/seg-1.m4s", age(time.Second)),
		}, nil},
		{"a name that merely contains init is a segment", []store.Info{
			obj(p+"reinit.m4s", age(time.Hour)),
			obj(p+"index.m3u8", age(time.Hour)),
		}, []string{p + "reinit.m4s", p + "index.m3u8"}},
		{"mixed roles: backup segments keep the primary's manifests", []store.Info{
			obj(b+"index.m3u8", age(time.Second)),
			obj(b+"seg9.m4s", age(time.Second)),
			obj(p+"index.m3u8", age(time.Hour)),
			obj(p+"init.mp4", age(time.Hour)),
			obj(p+"seg1.m4s", age(time.Hour)),
		}, []string{p + "seg1.m4s"}},
		{"mixed roles: both stopped and old", []store.Info{
			obj(b+"index.m3u8", age(time.Hour)),
			obj(b+"seg9.m4s", age(time.Hour)),
			obj(p+"index.m3u8", age(time.Hour)),
		}, []string{b + "index.m3u8", b + "seg9.m4s", p + "index.m3u8"}},
		{"empty listing", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := lifecycle.Plan(tc.objects, expiry, now)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Plan = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPlanZeroExpiryKeepsEverything(t *testing.T) {
	objs := []store.Info{{Key: "live/cam/primary/seg1.m4s", Modified: time.Unix(0, 0)}}
	if got := lifecycle.Plan(objs, 0, time.Now()); len(got) != 0 {
		t.Fatalf("Plan with expiry 0 = %q, want nothing", got)
	}
}

func TestS3BackstopDays(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want int32
	}{
		{0, 1},
		{time.Second, 2},
		{24 * time.Hour, 2},
		{24*time.Hour + time.Second, 3},
		{7 * 24 * time.Hour, 8},
	}
	for _, tc := range tests {
		if got := lifecycle.S3BackstopDays(tc.in); got != tc.want {
			t.Errorf("S3BackstopDays(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestS3RulesCoverMediaSegmentsOnly(t *testing.T) {
	rules := lifecycle.S3Rules(7 * 24 * time.Hour)
	if len(rules) != 1 {
		t.Fatalf("rules = %+v", rules)
	}
	r := rules[0]
	key := keys.Media("cam", keys.Primary, "seg1.m4s")
	if !strings.HasPrefix(key, r.Prefix) {
		t.Fatalf("rule prefix %q does not cover media key %q", r.Prefix, key)
	}
	if strings.HasPrefix(keys.SlotConfig("cam"), r.Prefix) {
		t.Fatalf("rule prefix %q covers slot configuration", r.Prefix)
	}
	if r.Tags["class"] != string(store.ClassSegment) || len(r.Tags) != 1 || r.Days != 8 {
		t.Fatalf("rule = %+v", r)
	}
}
