//go:build !lean

package server

import (
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Gathered is a MetricsWriter of what g gathers (the full build's Go and
// process collectors), encoded by client_golang's text encoder.
func Gathered(g prometheus.Gatherer) MetricsWriter { return gathered{g} }

type gathered struct{ g prometheus.Gatherer }

func (g gathered) WriteMetrics(w io.Writer) error {
	mfs, err := g.g.Gather()
	if err != nil && len(mfs) == 0 {
		return err
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(w, mf); err != nil {
			return err
		}
	}
	return nil
}
