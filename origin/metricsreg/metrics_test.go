package metricsreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterReuses(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "liveingest_test_total", Help: "test"}
	a, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Register(reg, prometheus.NewCounter(opts))
	if err != nil || b != a {
		t.Fatalf("second Register = %v, %v; want the first counter", b, err)
	}
	// The same name with labels is another description: an error.
	if _, err := Register(reg, prometheus.NewCounterVec(opts, []string{"x"})); err == nil {
		t.Fatal("a conflicting collector was accepted")
	}
}
