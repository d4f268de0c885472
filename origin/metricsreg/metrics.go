// Package metricsreg is how liveingest's components register their Prometheus
// collectors: several of them (two Segmenters, an edge serving RTMP and SRT
// through one Admission, a worker restarted in one process) share one
// registry, so registering a collector that is already there must reuse it
// instead of failing.
package metricsreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c in reg and returns it, or returns the collector of
// the same description that is already registered. Any other registration
// error (a name with other labels, another type) is returned with c.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		return c, err
	}
	existing, ok := are.ExistingCollector.(C)
	if !ok {
		return c, err
	}
	return existing, nil
}
