package storemetrics

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liveingest/liveingest/internal/testenv"
	"github.com/liveingest/liveingest/origin/store"
	"github.com/liveingest/liveingest/origin/store/disk"
	"github.com/liveingest/liveingest/origin/store/storetest"
	"github.com/liveingest/liveingest/origin/store/teststores"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The wrapper changes nothing a store promises: the conformance suite
// passes through it (on the disk backend: the wrapper only forwards, and
// the backends run the suite themselves, MinIO included).
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return wrap(t, teststores.Disk(t), nil) })
}

func wrap(t *testing.T, st store.Store, reg prometheus.Registerer) *Store {
	t.Helper()
	s, err := Wrap(st, reg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestObserved: each operation is counted once under its op, class and
// result.
func TestObserved(t *testing.T) {
	reg := prometheus.NewRegistry()
	d, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := wrap(t, d, reg)
	ctx := context.Background()
	put := func(key string, m store.Meta) error {
		_, err := s.Put(ctx, key, bytes.NewReader([]byte("x")), m)
		return err
	}
	if err := put("live/a/v/1.m4s", store.Meta{}); err != nil {
		t.Fatal(err)
	}
	if err := put("live/a/index.m3u8", store.Meta{Class: store.ClassManifest}); err != nil {
		t.Fatal(err)
	}
	if err := put("live/a/index.m3u8", store.Meta{Class: store.ClassManifest, IfNoneMatch: "*"}); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("conditional put: %v", err)
	}
	if _, err := s.Stat(ctx, "live/a/index.m3u8"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "live/a/missing"); !errors.Is(err, store.ErrNotExist) {
		t.Fatal(err)
	}
	if err := s.List(ctx, "live/", func(store.Info) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "live/a/v/1.m4s"); err != nil {
		t.Fatal(err)
	}
	want := `
liveingest_store_operation_seconds_count{class="-",op="delete",result="ok"} 1
liveingest_store_operation_seconds_count{class="-",op="list",result="ok"} 1
liveingest_store_operation_seconds_count{class="-",op="stat",result="not_found"} 1
liveingest_store_operation_seconds_count{class="manifest",op="put",result="ok"} 1
liveingest_store_operation_seconds_count{class="manifest",op="put",result="precondition"} 1
liveingest_store_operation_seconds_count{class="manifest",op="stat",result="ok"} 1
liveingest_store_operation_seconds_count{class="segment",op="put",result="ok"} 1
`
	got := counts(t, reg)
	if got != strings.TrimSpace(want) {
		t.Fatalf("counts:\n%s\nwant:\n%s", got, strings.TrimSpace(want))
	}
	// A second wrapper on the same registry shares the histogram.
	if _, err := Wrap(d, reg); err != nil {
		t.Fatalf("second Wrap: %v", err)
	}
}

// counts renders the histogram's _count series, one per line, sorted.
func counts(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			lines = append(lines, "liveingest_store_operation_seconds_count{class=\""+l["class"]+"\",op=\""+l["op"]+"\",result=\""+l["result"]+"\"} "+
				strconv.FormatUint(m.GetHistogram().GetSampleCount(), 10))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
